"""w2v2cli.data.verify (through build_manifests): bad audio names the file and writes nothing; --skip-bad lists
it in rejected.tsv; audio at another rate needs --resample-to (w2v2cli.data.resample)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v2cli.data.manifest import read_manifest
from w2v2cli.data.prepare import ManifestConfig, build_manifests
from w2v2cli.errors import ManifestError


def _write(path: Path, samples: int, sr: int = 16000, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, samples).astype(np.float32), sr, subtype="PCM_16")


def _bad_folder(root: Path) -> dict[str, str]:
    _write(root / "good1.flac", 16000)
    _write(root / "good2.flac", 400)  # exactly the receptive field: fine
    (root / "empty.flac").write_bytes(b"")
    (root / "notes.flac").write_text("not audio at all\n" * 10)
    _write(root / "short.flac", 399)
    _write(root / "rate8k.flac", 8000, sr=8000)
    return {"empty.flac": "empty file", "notes.flac": "not a readable audio file", "short.flac": "too short",
            "rate8k.flac": "sample rate 8000 Hz"}


def test_bad_files_error_names_file_and_nothing_written(tmp_path):
    bad = _bad_folder(tmp_path / "audio")
    dest = tmp_path / "m"
    with pytest.raises(ManifestError) as info:
        build_manifests(ManifestConfig(tmp_path / "audio", dest, valid_percent=0, progress=False))
    msg = str(info.value)
    assert "4 bad inputs" in msg and "--skip-bad" in msg
    for name, reason in bad.items():
        assert name in msg and reason in msg
    assert not dest.exists() or not any(dest.iterdir())  # no partial manifest


def test_skip_bad_lists_rejects(tmp_path):
    bad = _bad_folder(tmp_path / "audio")
    r = build_manifests(ManifestConfig(tmp_path / "audio", tmp_path / "m", valid_percent=0, skip_bad=True,
                                       progress=False))
    assert [(e.path, e.num_samples) for e in read_manifest(r.manifests["train"]).entries] == [
        ("good1.flac", 16000), ("good2.flac", 400)]
    with open(tmp_path / "m" / "rejected.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == len(r.rejected) == 4
    for row in rows:
        assert bad[Path(row["path"]).name] in row["reason"]
    # the 8 kHz file is usable once resampled
    r2 = build_manifests(ManifestConfig(tmp_path / "audio", tmp_path / "m2", valid_percent=0, skip_bad=True,
                                        resample_to=16000, progress=False))
    m = read_manifest(r2.manifests["train"])
    assert m.root == (tmp_path / "m2" / "audio").absolute() and r2.resampled == 1
    assert {e.path: e.num_samples for e in m.entries} == {"good1.flac": 16000, "good2.flac": 400, "rate8k.flac": 16000}
    assert sf.info(m.root / "rate8k.flac").samplerate == 16000
    assert len(r2.rejected) == 3


def test_commonvoice_without_resample_is_an_error(cv_corpus, tmp_path):
    with pytest.raises(ManifestError, match=r"sample rate 48000 Hz.*--resample-to 16000"):
        build_manifests(ManifestConfig(cv_corpus.root / "en", tmp_path / "m", corpus="commonvoice", progress=False))
    with pytest.raises(ManifestError, match="would be overwritten"):
        build_manifests(ManifestConfig(cv_corpus.root / "en", cv_corpus.root / "en", corpus="commonvoice",
                                       resample_to=16000, progress=False))
