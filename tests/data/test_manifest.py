"""w2v2cli.data.manifest: fairseq-identical outputs, bad input, atomicity, re-runs, reading."""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v2cli.data.manifest import ManifestConfig, build_manifests, read_labels, read_manifest
from w2v2cli.data.text import normalize_text
from w2v2cli.errors import ManifestError


def _fairseq_expected(subset_dir: Path):
    """What wav2vec_manifest.py (--valid-percent 0) + libri_labels.py produce, computed independently."""
    rows, wrd, ltr = [], [], []
    for f in sorted(subset_dir.rglob("*.flac")):
        rows.append(f"{f.relative_to(subset_dir)}\t{sf.info(f).frames}")
        trans = f.parent / f"{f.parent.parent.name}-{f.parent.name}.trans.txt"
        texts = dict(line.split(" ", 1) for line in trans.read_text().splitlines())
        words = texts[f.stem]
        wrd.append(words)
        ltr.append(" ".join(list(words.replace(" ", "|"))) + " |")
    return [str(subset_dir)] + rows, wrd, ltr


def test_librispeech_manifests_match_fairseq(libri_corpus, libri_manifests):
    assert set(libri_manifests) == {"train-clean-100", "dev-clean", "test-clean"}
    for subset, tsv in libri_manifests.items():
        exp_tsv, exp_wrd, exp_ltr = _fairseq_expected(libri_corpus.root / subset)
        assert tsv.read_text().splitlines() == exp_tsv
        assert tsv.with_suffix(".wrd").read_text().splitlines() == exp_wrd
        assert tsv.with_suffix(".ltr").read_text().splitlines() == exp_ltr
        m = read_manifest(tsv)
        assert m.root == libri_corpus.root / subset and len(m) == len(libri_corpus.subset(subset))
        by_path = {u.path: u for u in libri_corpus.subset(subset)}
        for i, e in enumerate(m.entries):
            assert e.num_samples == by_path[m.abspath(i)].num_samples == sf.info(m.abspath(i)).frames
        assert read_labels(tsv, "wrd") == [by_path[m.abspath(i)].text for i in range(len(m))]
    # dict.ltr.txt: symbol counts of the training .ltr, most frequent first, ties by code point
    train_ltr = libri_manifests["train-clean-100"].with_suffix(".ltr").read_text().split()
    counts = Counter(train_ltr)
    lines = (libri_manifests["train-clean-100"].parent / "dict.ltr.txt").read_text().splitlines()
    assert [(s, int(n)) for s, n in (l.split(" ") for l in lines)] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert lines[0].startswith("| ")


def _write(path: Path, samples: int, sr: int = 16000, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, samples).astype(np.float32), sr, subtype="PCM_16")


def test_folder_split_and_filters(tmp_path):
    audio = tmp_path / "audio"
    lengths = {}
    for i in range(40):
        p = audio / ("a" if i % 2 else "b") / f"u{i:02d}.flac"
        _write(p, 800 + 37 * i, seed=i)
        lengths[str(p.relative_to(audio))] = 800 + 37 * i
    _write(audio / "x.wav", 1000)  # other extension: not listed
    r = build_manifests(ManifestConfig(audio, tmp_path / "m", valid_percent=0.3, seed=5, jobs=2, progress=False))
    train, valid = read_manifest(r.manifests["train"]), read_manifest(r.manifests["valid"])
    assert train.root == valid.root == audio.absolute()
    rows = {e.path: e.num_samples for e in train.entries + valid.entries}
    assert rows == lengths and len(train) + len(valid) == 40
    rng = random.Random(5)  # the same draw fairseq makes: valid when random() <= valid_percent
    expect_valid = [p for p in sorted(lengths, key=lambda p: str(audio / p)) if rng.random() <= 0.3]
    assert [e.path for e in valid.entries] == expect_valid
    assert not (tmp_path / "m" / "train.wrd").exists()  # folder manifests carry no labels
    only_a = build_manifests(ManifestConfig(audio, tmp_path / "ma", valid_percent=0.0, path_must_contain="/a/",
                                            progress=False))
    assert len(read_manifest(only_a.manifests["train"])) == 20 and len(read_manifest(only_a.manifests["valid"])) == 0
    wav = build_manifests(ManifestConfig(audio, tmp_path / "mw", ext="wav", valid_percent=0, progress=False))
    assert read_manifest(wav.manifests["train"]).entries[0].path == "x.wav"


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


def test_librispeech_bad_transcripts(tmp_path, libri_corpus):
    import shutil

    src = libri_corpus.subset("dev-clean")
    subset = tmp_path / "LibriSpeech" / "dev-clean"
    shutil.copytree(libri_corpus.root / "dev-clean", subset)
    u0, u1, u2 = src[0], src[1], src[2]
    chap = subset / u0.speaker / u0.utt_id.split("-")[1]
    trans = chap / f"{u0.speaker}-{chap.name}.trans.txt"
    lines = trans.read_text().splitlines()
    lines = [l for l in lines if not l.startswith(u0.utt_id)]  # u0: audio without transcript
    lines = [l.replace(u1.text, "IN 1984 " + u1.text) if l.startswith(u1.utt_id) else l for l in lines]
    lines.append(f"{u0.speaker}-{chap.name}-0099 A LINE WITHOUT AUDIO")
    trans.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as info:
        build_manifests(ManifestConfig(tmp_path / "LibriSpeech", tmp_path / "m", corpus="librispeech", progress=False))
    msg = str(info.value)
    assert f"{u0.utt_id}.flac: missing transcript" in msg
    assert "unknown character '1'" in msg and f"{trans}:" in msg
    assert "0099.flac: missing audio file" in msg
    r = build_manifests(ManifestConfig(subset, tmp_path / "m", corpus="librispeech", skip_bad=True, progress=False))
    assert list(r.manifests) == ["dev-clean"] and r.num_files["dev-clean"] == len(src) - 2
    wrd = read_labels(r.manifests["dev-clean"], "wrd")
    assert u2.text in wrd and u1.text not in wrd
    assert len((tmp_path / "m" / "rejected.tsv").read_text().splitlines()) == 1 + 3


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


def test_commonvoice_manifests(cv_corpus, make_cv_manifests):
    for lang in ("de", "fr"):
        manifests = make_cv_manifests(lang)
        assert list(manifests) == ["train", "dev", "test"]
        for split, tsv in manifests.items():
            with open(cv_corpus.root / lang / f"{split}.tsv", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            m = read_manifest(tsv)
            assert [e.path for e in m.entries] == [r["path"].replace(".mp3", ".flac") for r in rows]  # tsv order
            assert read_labels(tsv, "wrd") == [normalize_text(r["sentence"], lang) for r in rows]
            for i, (e, r) in enumerate(zip(m.entries, rows)):
                info = sf.info(m.abspath(i))
                assert info.samplerate == 16000 and info.format == "FLAC" and info.frames == e.num_samples
                src = sf.info(cv_corpus.root / lang / "clips" / r["path"]).frames
                assert e.num_samples == -(-src * 16000 // 48000)  # ceil(n / 3)
    fr_ltr = read_labels(make_cv_manifests("fr")["train"], "ltr")
    assert all(l.endswith(" |") for l in fr_ltr)
    dict_syms = [l.split(" ")[0] for l in (make_cv_manifests("fr")["train"].parent / "dict.ltr.txt").read_text().splitlines()]
    assert set(dict_syms) == set(" ".join(fr_ltr).split())


def test_commonvoice_without_resample_is_an_error(cv_corpus, tmp_path):
    with pytest.raises(ManifestError, match=r"sample rate 48000 Hz.*--resample-to 16000"):
        build_manifests(ManifestConfig(cv_corpus.root / "en", tmp_path / "m", corpus="commonvoice", progress=False))
    with pytest.raises(ManifestError, match="would be overwritten"):
        build_manifests(ManifestConfig(cv_corpus.root / "en", cv_corpus.root / "en", corpus="commonvoice",
                                       resample_to=16000, progress=False))


def test_mls_manifests(tmp_path):
    from w2v2cli.data.synth import make_mls

    corpus = make_mls(tmp_path / "mls", langs=("de",), n_speakers=1, utts_per_speaker=2, seed=4)
    r = build_manifests(ManifestConfig(tmp_path / "mls" / "mls_german", tmp_path / "m", corpus="mls", progress=False))
    for split in ("train", "dev", "test"):
        m = read_manifest(r.manifests[split])
        assert m.root == tmp_path / "mls" / "mls_german" / split / "audio"
        utts = corpus.subset(split)
        assert [m.abspath(i) for i in range(len(m))] == [u.path for u in utts]
        assert [e.num_samples for e in m.entries] == [u.num_samples for u in utts]
        assert read_labels(r.manifests[split], "wrd") == [u.text for u in utts]


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


def test_librilight_needs_its_layout(tmp_path):
    (tmp_path / "ll" / "1h" / "0").mkdir(parents=True)
    with pytest.raises(ManifestError, match="not a Libri-light limited-supervision folder") as err:
        build_manifests(ManifestConfig(audio_dir=tmp_path / "ll", dest=tmp_path / "out", corpus="librilight"))
    assert "1h/1" in err.value.message and "9h" in err.value.message and "librispeech_finetuning" in err.value.hint
    assert not (tmp_path / "out").exists()
