"""Greedy CTC decoding on constructed emissions with known answers."""

from __future__ import annotations

import pytest
import torch

from w2v2cli.decode import FRAME_SHIFT, greedy_decode


def test_greedy_known_text_times_and_confidence(vocab, make_emissions):
    i = vocab.index
    # frames: - C C - A - T T | - H E | -
    path = [0, i["C"], i["C"], 0, i["A"], 0, i["T"], i["T"], i["|"], 0, i["H"], i["E"], i["|"], 0]
    probs = [0.9, 0.9, 0.8, 0.9, 0.7, 0.9, 0.6, 0.5, 0.9, 0.9, 0.6, 0.8, 0.9, 0.9]
    lp = make_emissions(path, len(vocab), probs).unsqueeze(0)
    (hyp,) = greedy_decode(lp, None, vocab)
    assert hyp.text == "CAT HE" and hyp.words == ["CAT", "HE"]
    assert hyp.word_times[0] == pytest.approx((1 * FRAME_SHIFT, 8 * FRAME_SHIFT))  # C at frame 1 .. T ends at 8
    assert hyp.word_times[1] == pytest.approx((0.20, 0.24))
    assert hyp.word_conf[0] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6 + 0.5) / 5, abs=1e-6)
    assert hyp.word_conf[1] == pytest.approx(0.7, abs=1e-6)
    assert hyp.score is None


def test_greedy_repeated_letters_need_a_blank(vocab, make_emissions):
    i = vocab.index
    path = [i["L"], i["L"], 0, i["L"], i["|"]]  # "LL" then blank then "L" -> two L tokens
    (hyp,) = greedy_decode(make_emissions(path, len(vocab)).unsqueeze(0), None, vocab)
    assert hyp.text == "LL"


def test_greedy_respects_lengths_and_batches(vocab, make_path, make_emissions):
    a, _ = make_path("THE CAT", vocab)
    b, _ = make_path("A DOG RAN", vocab)
    frames = max(len(a), len(b))
    lp = torch.stack([make_emissions(p + [0] * (frames - len(p)), len(vocab)) for p in (a, b)])
    # Garbage after the valid frames of row 0 must be ignored.
    lp[0, len(a):] = make_emissions([vocab.index["X"]] * (frames - len(a)), len(vocab))
    hyps = greedy_decode(lp, torch.tensor([len(a), len(b)]), vocab)
    assert [h.text for h in hyps] == ["THE CAT", "A DOG RAN"]
    full = greedy_decode(lp, None, vocab)
    assert full[0].text == "THE CAT X"  # without lengths the padding is read


def test_greedy_empty_and_all_blank(vocab, make_emissions):
    lp = make_emissions([0] * 6, len(vocab)).unsqueeze(0)
    (hyp,) = greedy_decode(lp, torch.tensor([6]), vocab)
    assert (hyp.text, hyp.words, hyp.word_times) == ("", [], [])
    (hyp,) = greedy_decode(lp, torch.tensor([0]), vocab)
    assert hyp.text == ""


def test_greedy_shape_errors(vocab):
    with pytest.raises(ValueError, match=r"\[batch, frames, vocab\]"):
        greedy_decode(torch.zeros(5, len(vocab)), None, vocab)
    with pytest.raises(ValueError, match="33 outputs"):
        greedy_decode(torch.zeros(1, 5, 33), None, vocab)
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(torch.zeros(1, 5, len(vocab)), torch.tensor([9]), vocab)
