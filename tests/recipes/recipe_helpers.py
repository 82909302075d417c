"""Helpers of the recipe tests: the environment recipes run in, Libri-light's layout from a LibriSpeech tree.

Recipes run with `recipe_env()`: one thread, and this checkout first on PYTHONPATH and this Python's bin first on
PATH, so `w2v2`, `python3 -m w2v2cli` and `torchrun` run the code under test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def run_recipe(script: Path, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *map(str, args)], env=recipe_env(), capture_output=True, text=True,
                          timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> str:
    """The output of a recipe run that must have succeeded (else its tail is the failure message)."""
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def stage_lines(out: str) -> list[str]:
    """The log lines of stages that ran (not the 'done before, skipped' ones)."""
    return [l for l in out.splitlines() if ") Stage " in l and "done before, skipped" not in l]


def stages_run(out: str) -> set[str]:
    """{'Stage 4', ...}: the stages that ran."""
    return {l.split(") ")[1].split(":")[0] for l in stage_lines(out)}


def snapshot(root: Path) -> dict[str, int]:
    """Modification time of every file under `root` (a no-op re-run leaves it equal)."""
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
