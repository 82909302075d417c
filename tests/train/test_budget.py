"""Training to a time budget (`--max-minutes`, `optim.max_minutes`) with the real tiny model and trainer.

Proofs: the plan's arithmetic; a real CLI run plans its length from its speed, ends its lr schedule with it and
ends near its budget; a run that slows down after its plan is fixed stops at the overrun guard with a checkpoint
and says so; under torchrun (2 processes, gloo) both ranks keep one plan (a disagreement would hang the run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.config import load_yaml
from w2v2cli.errors import ConfigError
from w2v2cli.train import budget as B
from w2v2cli.train.logging import read_metrics
from w2v2cli.train.optim import lr_at
from w2v2cli.train.resolve import RunOptions, resolve_config
from w2v2cli.train.state import load_trainer_state
from w2v2cli.train.tasks import PretrainTask
from w2v2cli.train.trainer import train

FAST = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=none",
        "checkpoint.save_interval_updates=100000", "lr.warmup_updates=5", "logging.log_interval=5"]


def test_planned_updates_arithmetic():
    assert B.planned_updates(done=120, elapsed=30.0, budget=540.0, cap=100_000) == 2160
    assert B.planned_updates(done=120, elapsed=30.0, budget=540.0, cap=1000) == 1000  # max_updates caps the plan
    assert B.planned_updates(done=120, elapsed=600.0, budget=540.0, cap=100_000) == 120  # past the budget: stop now
    assert B.planned_updates(done=0, elapsed=0.0, budget=540.0, cap=77) == 77
    assert not B.can_plan(B.MIN_UPDATES - 1, 60.0) and not B.can_plan(100, B.MIN_SECONDS / 2)
    assert B.can_plan(B.MIN_UPDATES, B.MIN_SECONDS)
    with pytest.raises(ConfigError, match="optim.max_minutes"):
        resolve_config("tiny", ["optim.max_minutes=-1"], RunOptions(train=("x.tsv",)))


def test_follow_plans_until_half_the_budget_then_keeps_the_plan_and_guards_the_overrun():
    from w2v2cli.train.state import TrainerState

    st = TrainerState()
    st.update = 5
    assert B.follow(st, 1.0, None, 2.0) == B.BudgetStep() and st.planned_updates == 0  # too early to plan
    st.update = 20  # 20 updates in 10 s: a minute holds 120
    step = B.follow(st, 1.0, None, 10.0)
    assert step.replanned and st.planned_updates == 120 and not st.plan_fixed
    assert step.note == ("time budget 1 min: 120 updates (0.5 s per update over the first 20; planned again until "
                         "50% of the budget)")
    st.update = 40  # re-planned quietly (same speed) until half the budget
    assert B.follow(st, 1.0, None, 20.0) == B.BudgetStep(replanned=True) and st.planned_updates == 120
    st.update = 60  # past half the budget: fixed, and max_updates caps it
    step = B.follow(st, 1.0, 100, 31.0)
    assert st.plan_fixed and st.planned_updates == 100 and step.note.endswith("fixed now)")
    st.update = 90
    assert B.follow(st, 1.0, 100, 65.0) == B.BudgetStep()  # within 1.1 x the budget
    step = B.follow(st, 1.0, 100, 67.0)
    assert step.overrun.startswith("1.1 min of training is past the time budget of 1 min (x1.1): stopping at "
                                   "update 90 of the 100 planned")


def test_cli_run_plans_its_length_from_its_speed_and_ends_its_schedule_with_the_budget(few, tmp_path):
    minutes = 0.25  # 15 s of training
    out = tmp_path / "run"
    cmd = ["pretrain", str(few), "--out", str(out), "--config", "tiny", "--max-minutes", str(minutes)]
    for kv in FAST + ["logging.progress=plain"]:
        cmd += ["--set", kv]
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 0, res.output
    state, _ = load_trainer_state(out / "checkpoint_last" / "trainer_state.pt")
    cfg = load_yaml(out / "config.yaml")
    # no --max-updates: the budget alone set the length (the tiny preset's 3,000 updates would otherwise cap it)
    assert cfg["optim"]["max_updates"] == 0 and cfg["optim"]["max_minutes"] == minutes
    assert state.plan_fixed and state.update == state.planned_updates >= B.MIN_UPDATES
    train_records = [r for r in read_metrics(out) if r.get("split") == "train"]
    first = next(i for i, r in enumerate(train_records) if "planned_updates" in r)  # logged once planned
    assert all("planned_updates" in r for r in train_records[first:])
    assert train_records[-1]["planned_updates"] == state.update
    # the polynomial schedule decayed to its end at the planned update, not at max_updates
    peak, tiny = cfg["optim"]["lr"], resolve_config("tiny", FAST, RunOptions(train=(few,))).cfg
    last = train_records[-1]
    assert last["update"] == state.update
    assert last["lr"] == pytest.approx(lr_at(state.update - 1, peak, tiny.lr, state.update), rel=1e-6)
    assert last["lr"] < 0.1 * peak
    # it used its budget: planned from the measured speed, fixed at half the budget (a machine that speeds up
    # afterwards ends early, one that slows down is stopped by the guard at 1.1x)
    assert B.FIX_AT * minutes * 60 <= state.wall_seconds <= B.OVERRUN * minutes * 60 + 5.0
    assert "fixed now" in " ".join(res.output.split())  # rich wraps long lines
    # the progress lines: no length (nor eta) until planned, then the plan's, never the cap that stands for none
    lines = [ln for ln in res.output.splitlines() if ln.startswith("update ")]
    assert lines and not any("/0 " in ln for ln in lines)
    assert lines[0].startswith("update 5 |") and "eta" not in lines[0]  # logging.log_interval=5, planned at >= 10
    assert lines[-1].split(" |")[0].endswith(f"/{state.planned_updates}") and "| eta" in " ".join(res.output.split())


class SlowAfterPlanTask(PretrainTask):
    """The real pretraining task with a fault injected: once the trainer has planned the run's length (it sets the
    task's `total_updates`), every update takes 0.4 s longer, as on a machine that slowed down."""

    def compute_loss(self, model, batch, update):
        if self.total_updates < 1_000_000:
            time.sleep(0.4)
        return super().compute_loss(model, batch, update)


def test_run_that_slows_after_its_plan_stops_at_the_overrun_guard_with_a_checkpoint(few, tmp_path):
    minutes = 0.15  # 9 s: the first plan (after >= 5 s) is past half the budget, so it is fixed at once
    cfg = resolve_config("tiny", FAST + [f"optim.max_minutes={minutes}"], RunOptions(train=(few,), max_updates=1_000_000)).cfg
    result = train(cfg, SlowAfterPlanTask(cfg), tmp_path / "slow")
    state, _ = load_trainer_state(tmp_path / "slow" / "checkpoint_last" / "trainer_state.pt")
    assert result.stopped == "max_minutes" and result.exit_code == 0
    assert state.plan_fixed and result.update == state.update < state.planned_updates
    assert B.OVERRUN * minutes * 60 < state.wall_seconds < B.OVERRUN * minutes * 60 + 5.0
    warnings = [r["message"] for r in read_metrics(tmp_path / "slow") if r.get("event") == "warning"]
    assert any("past the time budget" in w and "before the lr schedule ended" in w for w in warnings), warnings
    assert result.last_checkpoint is not None and result.last_checkpoint.name == f"update_{result.update:08d}"


def test_torchrun_ranks_keep_one_plan(few, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "w2v2cli",
           "pretrain", str(few), "--out", str(out), "--config", "tiny", "--max-minutes", "0.2"]
    for kv in FAST:
        cmd += ["--set", kv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    state, _ = load_trainer_state(out / "checkpoint_last" / "trainer_state.pt")
    assert state.plan_fixed and state.update == state.planned_updates and state.world_size == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["update"] for r in records if r.get("split") == "train") == state.update
    assert (out / "checkpoint_last" / "model.safetensors").is_file()
