"""Synthetic corpora laid out exactly like the real ones, shared by the recipe tests (built once per session).

- `ls_full`: a folder holding `LibriSpeech/` with all seven subsets (real espeak-ng / flite speech, 16 kHz FLAC) and
  `librispeech_finetuning/` in Libri-light's limited-supervision layout (`1h/{0..5}/{clean,other}`,
  `9h/{clean,other}`), made of utterances of the synthetic train-clean-100 / train-other-500 (as Libri-light's are
  of LibriSpeech's training audio), with their own `SPK-CHAP.trans.txt`.
- `xlsr_corpus`: a folder holding Common Voice folders `en/ de/ fr/` (48 kHz MP3 + CV tsv files) and MLS folders
  `mls_german/ mls_spanish/` (16 kHz FLAC + transcripts.txt).

Recipes run with `recipe_env()`: one thread and this checkout first on PYTHONPATH, so `w2v2` and `python3 -m
w2v2cli` run the code under test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
FULL_SIZES = {"train-clean-100": (2, 7), "train-clean-360": (1, 3), "train-other-500": (2, 7),
              "dev-clean": (1, 3), "dev-other": (1, 2), "test-clean": (1, 3), "test-other": (1, 2)}
# toy-scale overrides: tiny model, a few updates, small beam, one thread, no data-loader workers
TOY_TRAIN = "--set data.num_workers=0 --set logging.tensorboard=false --set logging.progress=plain"


def recipe_env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
            "PATH": bin_dir + os.pathsep + path}


def make_librilight(libri: Path, out: Path) -> None:
    """`out` = librispeech_finetuning/ from the utterances of `libri`/train-clean-100 (clean) and train-other-500
    (other): utterance k of each goes to 1h/{k mod 7} (k mod 7 < 6) or 9h, with a trans.txt per chapter folder."""
    for kind, subset in (("clean", "train-clean-100"), ("other", "train-other-500")):
        flacs = sorted((libri / subset).glob("*/*/*.flac"))
        assert len(flacs) >= 7, f"{subset}: {len(flacs)} utterances, Libri-light's layout needs 7"
        texts = {}
        for trans in (libri / subset).glob("*/*/*.trans.txt"):
            for line in trans.read_text().splitlines():
                utt, _, words = line.partition(" ")
                texts[utt] = words
        for k, flac in enumerate(flacs):
            folder = f"1h/{k % 7}" if k % 7 < 6 else "9h"
            spk, chap = flac.parent.parent.name, flac.parent.name
            dst = out / folder / kind / spk / chap
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(flac, dst / flac.name)
            with open(dst / f"{spk}-{chap}.trans.txt", "a") as f:
                f.write(f"{flac.stem} {texts[flac.stem]}\n")


@pytest.fixture(scope="session")
def ls_full(tmp_path_factory) -> Path:
    from w2v2cli.data.synth import make_librispeech

    root = tmp_path_factory.mktemp("ls-full")
    make_librispeech(root / "LibriSpeech", subsets=FULL_SIZES, seed=7, jobs=2, min_words=3, max_words=8)
    make_librilight(root / "LibriSpeech", root / "librispeech_finetuning")
    return root


@pytest.fixture(scope="session")
def xlsr_corpus(tmp_path_factory) -> Path:
    from w2v2cli.data.synth import make_commonvoice, make_mls

    root = tmp_path_factory.mktemp("xlsr-corpus")
    make_commonvoice(root / "cv", langs=("en", "de", "fr"), n_speakers=2, utts_per_speaker=3, seed=5, jobs=2,
                     min_words=3, max_words=8)
    make_mls(root / "mls", langs=("de", "es"), n_speakers=2, utts_per_speaker=3, seed=6, jobs=2, min_words=3,
             max_words=8)
    for folder in [*(root / "cv").iterdir(), *(root / "mls").iterdir()]:  # one corpus folder, as --corpus takes
        if folder.is_dir():
            folder.rename(root / folder.name)
    return root
