"""w2v2cli.synth.mls: the MLS layout and its transcripts."""

from __future__ import annotations

from w2v2cli.data.text import normalize_text
from w2v2cli.synth.mls import make_mls


def test_mls_layout(tmp_path):
    corpus = make_mls(tmp_path / "mls", langs=("es",), n_speakers=1, utts_per_speaker=2, seed=3)
    base = tmp_path / "mls" / "mls_spanish"
    assert (base / "metainfo.txt").is_file()
    for split, n in (("train", 2), ("dev", 2), ("test", 2)):
        lines = (base / split / "transcripts.txt").read_text().splitlines()
        assert len(lines) == n * len({u.speaker for u in corpus.subset(split)})
        for line in lines:
            utt, text = line.split("\t")
            spk, book, idx = utt.split("_")
            assert len(idx) == 6 and (base / split / "audio" / spk / book / f"{utt}.flac").is_file()
            assert text == text.lower() and normalize_text(text, "es") == text
