"""w2v2cli.data.prepare: re-runs are no-ops, --force rebuilds, half-written outputs are rebuilt, --dict-all-splits."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from w2v2cli.data.manifest import read_manifest
from w2v2cli.data.prepare import ManifestConfig, build_manifests
from w2v2cli.errors import ManifestError


def test_rerun_is_noop_and_force_rebuilds(tmp_path, libri_corpus):
    dest = tmp_path / "m"
    cfg = dict(audio_dir=libri_corpus.root, dest=dest, corpus="librispeech", splits=("test-clean",), progress=False)
    first = build_manifests(ManifestConfig(**cfg))
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    again = build_manifests(ManifestConfig(**cfg, jobs=2))
    assert again.reused and again.num_files == first.num_files
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes
    with pytest.raises(ManifestError, match="other settings"):
        build_manifests(ManifestConfig(**{**cfg, "splits": ("dev-clean",)}))
    forced = build_manifests(ManifestConfig(**{**cfg, "splits": ("dev-clean",)}, force=True))
    assert not forced.reused and list(forced.manifests) == ["dev-clean"]
    assert not (dest / "test-clean.tsv").exists()  # outputs of the old settings are gone
    assert sorted(json.loads((dest / ".w2v2-manifest.json").read_text())["outputs"]) == [
        "dev-clean.ltr", "dev-clean.tsv", "dev-clean.wrd", "dict.ltr.txt"]
    # a half-written DEST (marker missing) is rebuilt, not trusted
    (dest / ".w2v2-manifest.json").unlink()
    (dest / "dev-clean.tsv").write_text("garbage")
    rebuilt = build_manifests(ManifestConfig(**{**cfg, "splits": ("dev-clean",)}))
    assert not rebuilt.reused and read_manifest(dest / "dev-clean.tsv").root == libri_corpus.root / "dev-clean"


def test_dict_all_splits_lists_dev_test_only_letters_with_count_zero(libri_corpus, libri_manifests, tmp_path):
    """Default: fairseq's dictionary (training letters only, test above). --dict-all-splits appends the letters only
    dev/test use, count 0 (this corpus has 'X' in dev/test only), most frequent first."""
    res = build_manifests(ManifestConfig(audio_dir=libri_corpus.root, dest=tmp_path / "all", corpus="librispeech",
                                         jobs=2, progress=False, dict_all_splits=True))
    plain = (libri_manifests["train-clean-100"].parent / "dict.ltr.txt").read_text()
    train = set(libri_manifests["train-clean-100"].with_suffix(".ltr").read_text().split())
    others = Counter(sym for s in ("dev-clean", "test-clean")
                     for sym in libri_manifests[s].with_suffix(".ltr").read_text().split() if sym not in train)
    assert others  # the corpus has a dev/test-only letter, so the option has something to do
    extra = "".join(f"{sym} 0\n" for sym, _ in sorted(others.items(), key=lambda kv: (-kv[1], kv[0])))
    assert (res.dest / "dict.ltr.txt").read_text() == plain + extra
    for s in ("train-clean-100", "dev-clean"):  # manifests and labels are the same as without the option
        assert (res.dest / f"{s}.tsv").read_text() == libri_manifests[s].read_text()
    again = build_manifests(ManifestConfig(audio_dir=libri_corpus.root, dest=tmp_path / "all", corpus="librispeech",
                                           jobs=2, progress=False, dict_all_splits=True))
    assert again.reused
