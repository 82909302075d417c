"""w2v2cli.data.corpora: each layout's manifests (fairseq-identical for LibriSpeech), its bad transcripts and
missing files, and layouts that cannot be recognised."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v2cli.data.manifest import read_labels, read_manifest
from w2v2cli.data.prepare import ManifestConfig, build_manifests
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


def test_mls_manifests(tmp_path):
    from w2v2cli.synth.mls import make_mls

    corpus = make_mls(tmp_path / "mls", langs=("de",), n_speakers=1, utts_per_speaker=2, seed=4)
    r = build_manifests(ManifestConfig(tmp_path / "mls" / "mls_german", tmp_path / "m", corpus="mls", progress=False))
    for split in ("train", "dev", "test"):
        m = read_manifest(r.manifests[split])
        assert m.root == tmp_path / "mls" / "mls_german" / split / "audio"
        utts = corpus.subset(split)
        assert [m.abspath(i) for i in range(len(m))] == [u.path for u in utts]
        assert [e.num_samples for e in m.entries] == [u.num_samples for u in utts]
        assert read_labels(r.manifests[split], "wrd") == [u.text for u in utts]


def test_librilight_needs_its_layout(tmp_path):
    (tmp_path / "ll" / "1h" / "0").mkdir(parents=True)
    with pytest.raises(ManifestError, match="not a Libri-light limited-supervision folder") as err:
        build_manifests(ManifestConfig(audio_dir=tmp_path / "ll", dest=tmp_path / "out", corpus="librilight"))
    assert "1h/1" in err.value.message and "9h" in err.value.message and "librispeech_finetuning" in err.value.hint
    assert not (tmp_path / "out").exists()
