"""w2v2cli.data.manifest: reading fairseq manifests and labels (errors name file and line), writing labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2v2cli.data.manifest import label_texts, letter_dict, read_labels, read_manifest
from w2v2cli.errors import ManifestError


def test_read_existing_fairseq_manifest(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("/data/LibriSpeech/train-clean-100\n103/1240/103-1240-0000.flac\t225360\n"
                   "103/1240/103-1240-0001.flac\t255120\n")
    (tmp_path / "train.ltr").write_text("C H A P T E R |\nA |\n")
    m = read_manifest(tsv)
    assert m.root == Path("/data/LibriSpeech/train-clean-100") and len(m) == 2
    assert m.abspath(1) == Path("/data/LibriSpeech/train-clean-100/103/1240/103-1240-0001.flac")
    assert m.entries[0].num_samples == 225360 and m.total_samples == 480480
    assert read_labels(tsv, "ltr") == ["C H A P T E R |", "A |"]
    assert m.to_text() == tsv.read_text()


@pytest.mark.parametrize("text,err", [
    ("", ":1: empty manifest"), ("a.flac\t10\n", ":1: expected the audio root"),
    ("/r\na.flac\t10\nb.flac\n", ":3: expected 'relative/path<TAB>num_samples'"),
    ("/r\na.flac\tten\n", ":2: num_samples 'ten' is not an integer")])
def test_read_manifest_errors_name_line(tmp_path, text, err):
    tsv = tmp_path / "x.tsv"
    tsv.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_manifest(tsv)
    assert str(tsv) + err in str(info.value)


def test_read_labels_count_mismatch(tmp_path):
    tsv = tmp_path / "x.tsv"
    tsv.write_text("/r\na.flac\t10\nb.flac\t20\n")
    (tmp_path / "x.wrd").write_text("ONLY ONE\n")
    with pytest.raises(ManifestError) as info:
        read_labels(tsv, "wrd")
    assert str(tmp_path / "x.wrd") in str(info.value) and str(tsv) in str(info.value)
    with pytest.raises(ManifestError, match="no label file"):
        read_labels(tsv, "ltr")


def test_label_texts_and_letter_dict():
    wrd, ltr = label_texts(["A MAN", "HE SAID"])
    assert wrd == "A MAN\nHE SAID\n" and ltr == "A | M A N |\nH E | S A I D |\n"
    texts = {"train": ["A MAN"], "dev": ["AXE"]}
    assert letter_dict(texts) == "A 2\n| 2\nM 1\nN 1\n"  # training splits only, as fairseq
    assert letter_dict(texts, all_splits=True) == "A 2\n| 2\nM 1\nN 1\nE 0\nX 0\n"  # + dev-only letters, count 0
    assert letter_dict({"dev": ["AB"]}) == "A 1\nB 1\n| 1\n"  # no training split: all of them
