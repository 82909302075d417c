"""Shared test fixtures: small synthetic corpora (real espeak-ng / flite speech) and their manifests.

- `libri_corpus`: a LibriSpeech-layout corpus (train-clean-100: 3 speakers x 8, dev-clean and
  test-clean: 2 speakers x 4; 40 utterances of about 1.5-5 s, 16 kHz FLAC), a `SynthCorpus`.
- `libri_manifests`: `w2v2 manifest --corpus librispeech` run on it: `{subset: Path(tsv)}`; the
  `.wrd`, `.ltr` and `dict.ltr.txt` lie beside the tsv files.
- `cv_corpus`: Common Voice language folders en/de/fr (48 kHz MP3, CV 17 tsv files), a `SynthCorpus`.
- `few`: a manifest of the first 4 training utterances of `libri_manifests` (module-scoped).
- `one_thread`: torch runs one intra-op thread while a module's tests run (on 2 shared cores, two OpenMP threads
  spin against other processes and make tiny runs many times slower).
- `make_cv_manifests(lang)`: `w2v2 manifest --corpus commonvoice --resample-to 16000` on one language
  of `cv_corpus` -> `{split: Path(tsv)}` (cached per session).
- `signal_manifest`: 24 utterances of 1.5-3.5 s made with soundfile from generated harmonic signals (20 FLAC, 4
  WAV), with `.wrd`, `.ltr` and `dict.ltr.txt` beside `train.tsv` (for shard tests: fast to make, no synthesiser).
- `signal_shards`: `w2v2 shard` of `signal_manifest` in shards of about 5 s (9 to 11 shards).

The corpora are session-scoped and built once (a few seconds on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

LIBRI_SIZES = {"train-clean-100": (3, 8), "dev-clean": (2, 4), "test-clean": (2, 4)}


@pytest.fixture(scope="session")
def libri_corpus(tmp_path_factory):
    from w2v2cli.synth.librispeech import make_librispeech

    root = tmp_path_factory.mktemp("corpora") / "LibriSpeech"
    return make_librispeech(root, subsets=LIBRI_SIZES, seed=1234, jobs=2, min_words=4, max_words=10)


@pytest.fixture(scope="session")
def libri_manifests(libri_corpus, tmp_path_factory) -> dict[str, Path]:
    from w2v2cli.data.prepare import ManifestConfig, build_manifests

    dest = tmp_path_factory.mktemp("manifests") / "librispeech"
    result = build_manifests(ManifestConfig(audio_dir=libri_corpus.root, dest=dest, corpus="librispeech",
                                            jobs=2, progress=False))
    return {name: Path(path) for name, path in result.manifests.items()}


@pytest.fixture(scope="session")
def cv_corpus(tmp_path_factory):
    from w2v2cli.synth.commonvoice import make_commonvoice

    root = tmp_path_factory.mktemp("corpora") / "cv-corpus"
    return make_commonvoice(root, langs=("en", "de", "fr"), n_speakers=2, utts_per_speaker=3, seed=99, jobs=2)


@pytest.fixture(scope="session")
def make_cv_manifests(cv_corpus, tmp_path_factory):
    from w2v2cli.data.prepare import ManifestConfig, build_manifests

    cache: dict[str, dict[str, Path]] = {}

    def make(lang: str) -> dict[str, Path]:
        if lang not in cache:
            dest = tmp_path_factory.mktemp("manifests") / f"cv-{lang}"
            result = build_manifests(ManifestConfig(audio_dir=cv_corpus.root / lang, dest=dest,
                                                    corpus="commonvoice", resample_to=16000, jobs=2,
                                                    progress=False))
            cache[lang] = {name: Path(p) for name, p in result.manifests.items()}
        return cache[lang]

    return make


@pytest.fixture(scope="module")
def few(libri_manifests, tmp_path_factory) -> Path:
    """A manifest of the first 4 training utterances (about 4 x 2-5 s)."""
    lines = Path(libri_manifests["train-clean-100"]).read_text().splitlines()
    path = tmp_path_factory.mktemp("few") / "few.tsv"
    path.write_text("\n".join(lines[:5]) + "\n")
    return path


@pytest.fixture
def run_main(capsys):
    """Runs `w2v2 ARGS` in this process through the console entry point: `run_main(*args)` -> (exit status,
    stderr with whitespace runs joined, as rich wraps long lines at spaces)."""
    from w2v2cli.cli.app import main

    def run(*args: str) -> tuple[int, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        return code, " ".join(capsys.readouterr().err.split())

    return run


@pytest.fixture(scope="module")
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SIGNAL_WORDS = ("A", "MAN", "SAW", "THE", "RED", "BOAT", "ON", "BLUE", "WATER", "QUIZ", "JUMP", "FOX")


@pytest.fixture(scope="session")
def signal_manifest(tmp_path_factory) -> Path:
    import numpy as np
    import soundfile as sf

    from w2v2cli.data.manifest import label_texts, letter_dict

    root = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(11)
    rows, words = [str(root / "audio")], []
    for i in range(24):
        n = int(rng.uniform(1.5, 3.5) * 16000)
        t = np.arange(n) / 16000.0
        f0 = rng.uniform(90, 220)
        sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
        sig = 0.1 * sig * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)) + 0.01 * rng.standard_normal(n)
        rel = f"spk{i % 4}/utt.{i:03d}.{'wav' if i % 6 == 5 else 'flac'}"  # a dot in the name, WAV re-encoded
        (root / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / rel, sig.astype(np.float32), 16000, subtype="PCM_16")
        rows.append(f"{rel}\t{n}")
        words.append(" ".join(rng.choice(SIGNAL_WORDS, size=int(rng.integers(2, 5)))))
    (root / "train.tsv").write_text("\n".join(rows) + "\n")
    wrd, ltr = label_texts(words)
    (root / "train.wrd").write_text(wrd)
    (root / "train.ltr").write_text(ltr)
    (root / "dict.ltr.txt").write_text(letter_dict({"train": words}))
    return root / "train.tsv"


@pytest.fixture(scope="session")
def signal_shards(signal_manifest, tmp_path_factory) -> Path:
    from w2v2cli.data.shards import ShardConfig, write_shards

    out = tmp_path_factory.mktemp("signal-shards") / "train.shards"
    write_shards(ShardConfig(signal_manifest, out, shard_minutes=5 / 60, jobs=1, progress=False))
    return out
