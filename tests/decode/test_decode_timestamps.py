"""Word times from CTC frames and from torchaudio's forced alignment."""

from __future__ import annotations

import pytest
import torch

from w2v2cli.decode import FRAME_SHIFT, alignment_targets, forced_align_words, frame_spans, greedy_decode
from w2v2cli.errors import DataError


def test_frame_spans_merge_runs_and_average_probabilities():
    spans = frame_spans([0, 5, 5, 0, 5, 7, 7, 7], [0.0] + [torch.log(torch.tensor(p)).item() for p in
                                                         (0.5, 0.7, 0.9, 0.6, 0.2, 0.4, 0.6)], blank=0)
    assert [(s.token, s.start, s.end) for s in spans] == [(5, 1, 3), (5, 4, 5), (7, 5, 8)]
    assert spans[0].prob_sum == pytest.approx(1.2) and spans[2].prob_sum == pytest.approx(1.2)


def test_forced_alignment_recovers_known_segmentation(vocab, make_path, make_emissions):
    text = "THE CAT SAT ON THE MAT"
    path, spans = make_path(text, vocab, per_letter=3)
    probs, alternatives = [0.6] * len(path), {}
    # Make greedy decoding wrong in places: at the middle frame of each A, E is more likely (0.5 vs 0.3).
    for f, tok in enumerate(path):
        if vocab.tokens[tok] == "A" and path[f - 1] == tok and path[f + 1] == tok:
            probs[f], alternatives[f] = 0.3, (vocab.index["E"], 0.5)
    lp = make_emissions(path, len(vocab), probs, alternatives)
    (greedy,) = greedy_decode(lp.unsqueeze(0), None, vocab)
    assert greedy.text != text  # the best path misreads the A's ...
    words = forced_align_words(lp, text, vocab)  # ... the forced alignment keeps the transcript
    assert [w.word for w in words] == text.split()
    for w, (start, end) in zip(words, spans):
        assert w.start == pytest.approx(start * FRAME_SHIFT) and w.end == pytest.approx(end * FRAME_SHIFT)
    # CAT: C and T frames at 0.6, A frames 0.6, 0.3, 0.6 -> mean over 9 frames
    assert words[1].confidence == pytest.approx((8 * 0.6 + 0.3) / 9, abs=1e-5)


def test_forced_alignment_errors_name_the_utterance(vocab, make_path, make_emissions):
    path, _ = make_path("HI", vocab)
    lp = make_emissions(path, len(vocab))
    with pytest.raises(DataError, match=r"utterance u1: letter 'É' of word 'HÉ'"):
        forced_align_words(lp, "HÉ hé", vocab, utt_id="u1")
    with pytest.raises(DataError, match=r"utterance u2: 4 frames cannot hold"):
        forced_align_words(lp[:4], "HELLO", vocab, utt_id="u2")
    assert forced_align_words(lp, "", vocab) == []


def test_alignment_targets_put_separator_between_words(vocab):
    i = vocab.index
    assert alignment_targets("AB C", vocab) == [i["A"], i["B"], i["|"], i["C"]]


def test_random_emissions_times_inside_utterance_and_ordered(vocab):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 120, len(vocab), generator=gen) * 3
    lengths = torch.tensor([120, 90, 37, 5])
    hyps = greedy_decode(logits.log_softmax(-1), lengths, vocab)
    assert sum(len(h.words) for h in hyps) >= 10
    for b, (h, n) in enumerate(zip(hyps, lengths.tolist())):
        prev = 0.0
        for (s, e), c in zip(h.word_times, h.word_conf):
            assert prev <= s < e <= n * FRAME_SHIFT + 1e-9 and 0 < c <= 1
            prev = e
        if h.text:
            fa = forced_align_words(logits[b, :n].log_softmax(-1), h.text, vocab)
            assert [w.word for w in fa] == h.words


def test_alignment_targets_respell_multi_character_symbols(vocab):
    i = vocab.index
    assert alignment_targets("A<unk>B", vocab) == [i["A"], i["<unk>"], i["B"]]
