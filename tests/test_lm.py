"""`w2v2 lm build` with the real KenLM programs (built by tools/install_kenlm.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.lm import LMConfig, arpa_ngram_counts, build_lm, find_kenlm_tool, lexicon_lines, spell

CORPUS = "THE CAT SAT\nTHE DOG SAT ON THE MAT\n\nA CAT\n"


@pytest.fixture(scope="module")
def kenlm_ready():
    """Builds KenLM once if this checkout has not (idempotent; ~90 s the first time)."""
    try:
        find_kenlm_tool("lmplz")
        find_kenlm_tool("build_binary")
    except ToolMissingError:
        root = Path(__file__).resolve().parents[1]
        subprocess.run(["bash", str(root / "tools" / "install_kenlm.sh")], check=True)
    return True


def test_build_counts_ngrams_and_writes_lexicon(tmp_path, kenlm_ready):
    (tmp_path / "c.txt").write_text(CORPUS)
    res = build_lm(tmp_path / "c.txt", tmp_path / "lm", LMConfig(order=3, memory="64M"))
    assert (res.sentences, res.tokens, res.words) == (3, 11, 7)
    # 7 words + <s> </s> <unk>; 13 distinct bigrams and 11 trigrams with sentence boundaries (counted by hand).
    assert res.ngrams == {1: 10, 2: 13, 3: 11}
    assert arpa_ngram_counts(res.arpa) == res.ngrams
    assert res.binary.read_bytes()[:4] != b"\\dat"  # KenLM binary, not a copy of the ARPA text
    assert res.lexicon.read_text().splitlines() == [
        "A\tA |", "CAT\tC A T |", "DOG\tD O G |", "MAT\tM A T |", "ON\tO N |", "SAT\tS A T |", "THE\tT H E |"]
    assert sorted(p.name for p in (tmp_path / "lm").iterdir()) == ["lexicon.txt", "lm.arpa", "lm.bin", "lm.yaml"]


def test_letters_filter_keeps_foreign_words_out_of_lexicon(tmp_path, kenlm_ready):
    (tmp_path / "c.txt").write_text("THE CAFÉ IS OPEN\nTHE CAT\n")
    res = build_lm(tmp_path / "c.txt", tmp_path / "lm", LMConfig(order=2, memory="64M", letters=list("THECAISOPN")))
    assert res.skipped_words == ["CAFÉ"]
    assert "CAFÉ" not in res.lexicon.read_text()
    assert res.ngrams[1] == 8  # the LM itself still has every word


def test_binary_and_lexicon_load_in_torchaudio_decoder(tmp_path, kenlm_ready):
    from torchaudio.models.decoder import ctc_decoder

    (tmp_path / "c.txt").write_text(CORPUS)
    res = build_lm(tmp_path / "c.txt", tmp_path / "lm", LMConfig(order=3, memory="64M"))
    tokens = ["-", "|"] + sorted(set(CORPUS.replace(" ", "").replace("\n", "")))
    dec = ctc_decoder(str(res.lexicon), tokens, lm=str(res.binary), blank_token="-", sil_token="|", beam_size=20)
    frames = [tokens.index(c) for c in "CAT|SAT|"]
    lp = torch.full((1, len(frames), len(tokens)), -9.0)
    lp[0, torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    hyp = dec(lp.log_softmax(-1), torch.tensor([len(frames)], dtype=torch.int32))[0][0]
    assert hyp.words == ["CAT", "SAT"]


def test_spelling_helpers():
    assert spell("HELLO") == ["H", "E", "L", "L", "O", "|"]
    assert lexicon_lines(["B", "A", "B"]) == ["A\tA |", "B\tB |"]


def test_bad_corpus_errors(tmp_path, kenlm_ready):
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(DataError, match="empty.txt: the text corpus has no words"):
        build_lm(tmp_path / "empty.txt", tmp_path / "lm")
    with pytest.raises(DataError, match="missing.txt"):
        build_lm(tmp_path / "missing.txt", tmp_path / "lm")
    (tmp_path / "c.txt").write_text("abc\n")
    with pytest.raises(DataError, match="no word of the corpus"):
        build_lm(tmp_path / "c.txt", tmp_path / "lm", LMConfig(letters=list("ABC")))
    assert not (tmp_path / "lm" / "lm.arpa").exists()


def test_cli_build_and_vocab(tmp_path, kenlm_ready):
    (tmp_path / "c.txt").write_text(CORPUS + "ÜBER ALL\n")
    (tmp_path / "dict.ltr.txt").write_text("".join(f"{c} 10\n" for c in "|THECASDOGNMI"))
    result = CliRunner().invoke(app, ["lm", "build", str(tmp_path / "c.txt"), "--order", "2", "--out",
                                      str(tmp_path / "lm"), "--vocab", str(tmp_path / "dict.ltr.txt"),
                                      "--memory", "64M"])
    assert result.exit_code == 0, result.output
    lex = (tmp_path / "lm" / "lexicon.txt").read_text()
    assert "ÜBER" not in lex and "ALL" not in lex and "DOG\tD O G |" in lex  # no L, no Ü in the dict
    assert "2-grams" in result.output


def test_cli_missing_kenlm_says_how_to_install(tmp_path):
    (tmp_path / "c.txt").write_text(CORPUS)
    env = dict(os.environ, W2V2_KENLM_BIN=str(tmp_path / "nowhere"))
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "lm", "build", str(tmp_path / "c.txt"), "--out",
                           str(tmp_path / "lm")], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "lmplz" in proc.stderr and "install_kenlm.sh" in proc.stderr
    assert not (tmp_path / "lm" / "lm.arpa").exists()


def test_vocab_letters_from_a_checkpoint_read_by_the_checkpoint_loader(tmp_path):
    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.cli.lm import vocabulary_letters
    from w2v2cli.errors import ConfigError
    from w2v2cli.model import build_model, model_preset
    from w2v2cli.vocab import Vocabulary

    (tmp_path / "dict.ltr.txt").write_text("".join(f"{c} 10\n" for c in "|THECASDOG"))
    vocab = Vocabulary.from_fairseq_dict(tmp_path / "dict.ltr.txt")
    cfg = model_preset("tiny", vocab_size=len(vocab))
    save_checkpoint(tmp_path / "ctc", build_model(cfg, "ctc"), cfg, "ctc", vocab=vocab)
    assert vocabulary_letters(tmp_path / "ctc") == vocabulary_letters(tmp_path / "dict.ltr.txt")
    assert vocabulary_letters(tmp_path / "ctc") == (list("THECASDOG"), "|")
    pt = model_preset("tiny")
    save_checkpoint(tmp_path / "pt", build_model(pt, "pretrain"), pt, "pretrain")
    with pytest.raises(ConfigError, match="the checkpoint has no vocabulary"):
        vocabulary_letters(tmp_path / "pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty has no config.yaml: not a w2v2 checkpoint"):
        vocabulary_letters(tmp_path / "empty")
