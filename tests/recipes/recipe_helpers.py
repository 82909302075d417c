"""Helpers of the recipe tests: the environment recipes run in, Libri-light's layout from a LibriSpeech tree.

Recipes run with `recipe_env()`: one thread, and this checkout first on PYTHONPATH and this Python's bin first on
PATH, so `w2v2`, `python3 -m w2v2cli` and `torchrun` run the code under test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

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
