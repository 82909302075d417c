"""Beam search through torchaudio's ctc_decoder, with a KenLM model built by `w2v2 lm build`."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
import torch

from w2v2cli.decode import BeamSearchDecoder, DecodeOptions, greedy_decode
from w2v2cli.errors import ConfigError, DataError, ToolMissingError
from w2v2cli.lm import LMConfig, build_lm, find_kenlm_tool
from w2v2cli.score import wer_cer
from w2v2cli.vocab import Vocabulary

# The training text of the language model. Confusable letter pairs (E/A, O/U, T/D, N/M, S/Z, I/Y) make
# greedy decoding of the noisy emissions misspell words or turn them into other words (MEN -> MAN).
SENTENCES = [
    "THE MEN SAT ON THE MAT",
    "TEN DOGS RAN TO THE OLD TOWN",
    "THE CAT SAT ON THE BED",
    "A MAN AND A DOG WENT HOME",
    "THE OLD MAN SAID NOTHING AT ALL",
    "SHE SAW TEN BIRDS IN THE TREE",
    "THE DOG SLEPT ON THE MAT",
    "WE WENT TO THE TOWN AT NOON",
    "THE BIRDS SANG IN THE MORNING",
    "HE SAID THE SUN WAS HOT",
    "THE MEN WENT HOME AT NOON",
    "A CAT AND TEN DOGS SAT IN THE SUN",
    "SHE SANG TO THE OLD DOG",
    "THE TOWN WAS QUIET IN THE MORNING",
    "WE SAW THE MEN IN THE TOWN",
    "THE SUN WAS LOW AND THE TREE WAS OLD",
]
TEST = SENTENCES[::2]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    try:
        find_kenlm_tool("lmplz")
    except ToolMissingError:
        subprocess.run(["bash", str(Path(__file__).resolve().parents[2] / "tools" / "install_kenlm.sh")], check=True)
    out = tmp_path_factory.mktemp("lm")
    (out / "text.txt").write_text("\n".join(SENTENCES) + "\n")
    return build_lm(out / "text.txt", out, LMConfig(order=3, memory="64M"))


def _batch(texts, vocab, make, rng=None):
    lps = [make(t, vocab, rng) for t in texts]
    frames = max(lp.shape[0] for lp in lps)
    batch = torch.full((len(lps), frames, len(vocab)), -30.0)
    batch[:, :, vocab.blank] = 0.0
    for b, lp in enumerate(lps):
        batch[b, : lp.shape[0]] = lp
    return batch, torch.tensor([lp.shape[0] for lp in lps])


def test_lexicon_free_beam_without_lm_reads_clean_emissions(vocab, make_path, make_emissions):
    texts = ["THE CAT SAT", "A DOG", ""]
    paths = [make_path(t, vocab)[0] for t in texts]
    frames = max(len(p) for p in paths)
    lp = torch.stack([make_emissions(p + [0] * (frames - len(p)), len(vocab)) for p in paths])
    lengths = torch.tensor([len(p) for p in paths])
    hyps = BeamSearchDecoder(vocab, DecodeOptions(beam_size=20))(lp, lengths)
    assert [h.text for h in hyps] == texts
    assert [h.text for h in hyps] == [h.text for h in greedy_decode(lp, lengths, vocab)]
    assert all(h.score is not None for h in hyps[:2])
    assert len(hyps[0].word_times) == 3 and len(hyps[0].word_conf) == 3


def test_kenlm_beam_lowers_wer_over_greedy(vocab, lm_dir, make_noisy):
    refs = TEST * 3  # three noisy renditions of each test sentence
    lp, lengths = _batch(refs, vocab, make_noisy, random.Random(0))
    greedy = [h.text for h in greedy_decode(lp, lengths, vocab)]
    lexicon_only = BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(lm_dir.lexicon), beam_size=50,
                                                          word_score=0.0))
    with_lm = BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(lm_dir.lexicon), lm=str(lm_dir.binary),
                                                     beam_size=50, lm_weight=2.0, word_score=0.0))
    lex = [h.text for h in lexicon_only(lp, lengths)]
    beam = [h.text for h in with_lm(lp, lengths)]
    wer_greedy, _ = wer_cer(refs, greedy)
    wer_lex, _ = wer_cer(refs, lex)
    wer_lm, _ = wer_cer(refs, beam)
    # The noise flips about a quarter of the confusable letters: greedy gets many words wrong, the lexicon
    # repairs non-words, and the 3-gram model picks the right one of confusable real words.
    # (MEN -> MAN survives the lexicon; the LM's context fixes it.)
    assert wer_greedy > 0.30
    assert wer_lm < wer_lex < wer_greedy / 5
    assert wer_lm <= 0.01, [(r, h) for r, h in zip(refs, beam) if r != h]
    # The ARPA text loads too and decodes the same.
    arpa = BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(lm_dir.lexicon), lm=str(lm_dir.arpa), beam_size=50,
                                                  lm_weight=2.0, word_score=0.0))
    assert [h.text for h in arpa(lp, lengths)] == beam


def test_token_beam_keeps_the_lm_repairs_until_it_is_too_narrow(vocab, lm_dir, make_noisy):
    # --beam-tokens N expands only the N most likely letters of a frame: every letter (N = vocabulary size) is
    # the full search; N = 10 still holds the confusable partner that the noise made second, so the LM repairs
    # as before; N = 1 is the best path's letters alone, which the lexicon cannot turn back into the right words.
    refs = TEST * 3
    lp, lengths = _batch(refs, vocab, make_noisy, random.Random(0))

    def run(tokens):
        cfg = DecodeOptions(lexicon=str(lm_dir.lexicon), lm=str(lm_dir.binary), beam_size=50,
                            beam_size_token=tokens, lm_weight=2.0, word_score=0.0)
        return [h.text for h in BeamSearchDecoder(vocab, cfg)(lp, lengths)]

    full = run(None)
    assert run(len(vocab)) == full
    assert wer_cer(refs, full)[0] <= 0.01
    assert wer_cer(refs, run(10))[0] <= 0.01
    assert wer_cer(refs, run(1))[0] > 0.30  # as bad as greedy decoding


def test_beam_word_times_are_inside_and_ordered(vocab, lm_dir, make_noisy):
    lp, lengths = _batch(TEST[:4], vocab, make_noisy, random.Random(1))
    beam = BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(lm_dir.lexicon), lm=str(lm_dir.binary), beam_size=50))
    hyps = beam(lp, lengths)
    for h, n in zip(hyps, lengths.tolist()):
        assert len(h.word_times) == len(h.words) > 0
        prev_end = 0.0
        for (s, e), c in zip(h.word_times, h.word_conf):
            assert prev_end <= s < e <= n * 0.02 + 1e-9
            assert 0.0 < c <= 1.0
            prev_end = e


def test_bad_lexicon_and_vocab_errors(tmp_path, vocab):
    (tmp_path / "lex.txt").write_text("CAT\tC A T |\ncafé\tc a f é |\n")
    with pytest.raises(DataError, match=r"lex.txt:2: token 'c' of word 'café'"):
        BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(tmp_path / "lex.txt")))
    with pytest.raises(DataError, match="no such lexicon"):
        BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(tmp_path / "none.txt")))
    (tmp_path / "ok.txt").write_text("CAT\tC A T |\n")
    with pytest.raises(DataError, match="no such language model"):
        BeamSearchDecoder(vocab, DecodeOptions(lexicon=str(tmp_path / "ok.txt"), lm=str(tmp_path / "none.bin")))
    spm_like = Vocabulary(["<blank>", "A", "B"], blank=0, word_sep=None, unk=None)
    with pytest.raises(ConfigError, match="letter vocabulary with a word separator"):
        BeamSearchDecoder(spm_like, DecodeOptions())
