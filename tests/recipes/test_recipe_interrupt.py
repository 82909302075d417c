"""An interrupted recipe never looks finished: Ctrl-C (SIGINT) or a scheduler's SIGTERM to the recipe's process group
during a training stage saves a checkpoint, exits 130 / 143, marks nothing done and skips the later stages; running
the recipe again continues the stage bit for bit and then goes on.

The recipe is a two-stage copy of the stage pattern of `recipes/demo/run.sh` (`.done` markers, `set -euo pipefail`,
`utils/interrupt.sh`, `--resume auto`) with a few tiny-model updates, real processes throughout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from w2v2cli.train.logging import read_metrics

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
UPDATES = 8
SETS = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=plain",
        "logging.tensorboard=false", "logging.log_interval=1", "checkpoint.save_interval_updates=4",
        "lr.warmup_updates=3"]


def _recipe(tmp_path: Path, manifest: Path) -> Path:
    sets = " ".join(f"--set {s}" for s in SETS)
    script = tmp_path / "run.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
. {RECIPES}/utils/log.sh
. {RECIPES}/utils/interrupt.sh
stage=1          # first stage to run
stop_stage=2     # last stage to run
dir=exp          # outputs
. {RECIPES}/utils/parse_options.sh
mkdir -p "$dir"
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ ! -f "$dir/.pretrain.done" ]; then
  log "Stage 1: pretraining"
  {sys.executable} -m w2v2cli pretrain {manifest} --config tiny --out "$dir/pretrain" --max-updates {UPDATES} \\
    --threads 1 {sets} --resume auto
  touch "$dir/.pretrain.done"
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ ! -f "$dir/.next.done" ]; then
  log "Stage 2: the next stage"
  echo ran >> "$dir/next.ran"
  touch "$dir/.next.done"
fi
log "Done"
""")
    return script


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(run: Path) -> dict[int, float]:
    return {r["update"]: r["loss"] for r in read_metrics(run) if r.get("split") == "train"}


@pytest.fixture(scope="module")
def reference(few, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("recipe-ref")
    res = subprocess.run(["bash", _recipe(tmp, few), "--dir", tmp / "exp"], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp / "exp" / ".pretrain.done").is_file() and (tmp / "exp" / "next.ran").read_text() == "ran\n"
    return tmp / "exp" / "pretrain"


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_recipe_exits_non_zero_marks_nothing_and_continues_exactly(few, reference, tmp_path, sig,
                                                                                 status):
    script, exp = _recipe(tmp_path, few), tmp_path / "exp"
    # a new session: the signal goes to the whole process group, as Ctrl-C in a terminal or `scancel` do
    proc = subprocess.Popen(["bash", script, "--dir", exp], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while proc.poll() is None and max(_losses(exp / "pretrain"), default=0) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, "the recipe finished before it could be interrupted"
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, err[-2000:]
    assert not (exp / ".pretrain.done").exists() and not (exp / "next.ran").exists()
    at = max(_losses(exp / "pretrain"))
    assert at < UPDATES
    assert (exp / "pretrain" / "checkpoints" / f"update_{at:08d}" / "trainer_state.pt").is_file()
    assert "--resume auto" in " ".join(err.split())
    # run it again: the stage continues from the checkpoint, then the recipe goes on
    again = subprocess.run(["bash", script, "--dir", exp], env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stderr
    assert (exp / ".pretrain.done").is_file() and (exp / "next.ran").read_text() == "ran\n"
    got, ref = _losses(exp / "pretrain"), _losses(reference)
    assert sorted(got) == list(range(1, UPDATES + 1)) and got == ref  # bit for bit, no update twice
