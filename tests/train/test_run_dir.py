"""The run directory (w2v2cli/train/run_dir.py) on real checkpoints of the tiny model, written by the trainer's own
`Checkpointer`: which ones count, which one a run resumes from, what it refuses, and the start-up housekeeping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from w2v2cli.errors import CheckpointError
from w2v2cli.model import build_model
from w2v2cli.train import run_dir as R
from w2v2cli.train.checkpointing import Checkpointer
from w2v2cli.train.config import training_preset
from w2v2cli.train.distributed import DistInfo
from w2v2cli.train.optim import build_optimizer
from w2v2cli.train.state import TrainerState
from w2v2cli.train.tasks import PretrainTask


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Checkpointer]:
    """A run directory with checkpoints at updates 3, 6 and 9 (keep_last 3) and the Checkpointer that wrote them."""
    out = tmp_path_factory.mktemp("rundir") / "run"
    cfg = training_preset("tiny", **{"checkpoint.keep_last": 3})
    torch.manual_seed(0)
    model = build_model(cfg.model, "pretrain")
    optimizer = build_optimizer(model, cfg.optim)
    ckpt = Checkpointer(out, cfg, PretrainTask(cfg), DistInfo(), torch.device("cpu"), model, optimizer,
                        torch.amp.GradScaler("cuda", enabled=False), sharded=False)
    out.mkdir(parents=True)
    for update in (3, 6, 9):
        ckpt.save(TrainerState(seed=cfg.seed, update=update, epoch=1, position=update))
    return out, ckpt


def test_checkpoints_are_listed_newest_first_and_last_points_to_the_newest(run):
    out, _ = run
    assert [u for u, _ in R.list_checkpoints(out)] == [9, 6, 3]
    assert os.readlink(out / R.LAST_LINK) == os.path.join(R.CKPT_DIR, "update_00000009")
    incomplete = R.checkpoint_path(out, 12)
    incomplete.mkdir()
    try:  # a directory without its files is not a checkpoint, unless asked for every one
        assert [u for u, _ in R.list_checkpoints(out)] == [9, 6, 3]
        assert [u for u, _ in R.list_checkpoints(out, complete=False)] == [12, 9, 6, 3]
    finally:
        incomplete.rmdir()


def test_keep_last_prunes_the_oldest(run, tmp_path):
    out, ckpt = run
    other = tmp_path / "pruned"
    other.mkdir()
    small = Checkpointer(other, training_preset("tiny", **{"checkpoint.keep_last": 2}), ckpt.task, ckpt.info,
                         ckpt.device, ckpt.model, ckpt.optimizer, ckpt.scaler, sharded=False)
    for update in (1, 2, 3):
        small.save(TrainerState(update=update))
    assert [u for u, _ in R.list_checkpoints(other)] == [3, 2]


def test_auto_resume_falls_back_past_a_damaged_newest_checkpoint_and_says_so(run, tmp_path):
    out, _ = run
    copy = tmp_path / "copy"
    os.system(f"cp -a {out} {copy}")
    state = R.checkpoint_path(copy, 9) / "trainer_state.pt"
    state.write_bytes(os.urandom(200))
    with pytest.raises(CheckpointError, match="trainer_state.pt"):
        R.check_resumable(state.parent)
    notes: list[str] = []
    assert R.choose_resume(copy, "auto", notes) == R.checkpoint_path(copy, 6)
    assert notes[0].startswith("cannot resume from update_00000009: ") and "trainer_state.pt" in notes[0]
    assert notes[1] == "falling back to the older checkpoint update_00000006 (update 6)"
    for update in (3, 6):
        (R.checkpoint_path(copy, update) / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match=r"none of the 3 checkpoint\(s\)"):
        R.choose_resume(copy, "auto", [])


def test_a_run_is_never_started_over_silently(run, tmp_path):
    out, _ = run
    with pytest.raises(CheckpointError, match="already holds a run .*up to update 9.*refusing"):
        R.choose_resume(out, None, [])
    assert R.choose_resume(out, "restart", []) is None  # restart: the caller moves the old run aside
    assert R.choose_resume(tmp_path / "new", None, []) is None
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        R.find_resume_checkpoint(out, str(tmp_path / "nowhere"))
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    with pytest.raises(CheckpointError, match="has no trainer_state.pt"):
        R.find_resume_checkpoint(out, str(weights_only))
    assert R.find_resume_checkpoint(out, str(R.checkpoint_path(out, 6) / "trainer_state.pt")) == \
        R.checkpoint_path(out, 6)


def test_restart_moves_the_old_run_aside_and_stale_temporaries_are_removed(tmp_path):
    out = tmp_path / "run"
    (out / R.CKPT_DIR / "update_00000004").mkdir(parents=True)
    (out / R.CKPT_DIR / ".update_00000008.tmp-123").mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "config.yaml").write_text("seed: 1\n")
    (out / f".{R.LAST_LINK}.tmp-9").symlink_to("nowhere")
    note = R.remove_stale_temporaries(out)
    assert note.startswith("removed 2 temporary file(s) left by an interrupted save")
    assert not (out / R.CKPT_DIR / ".update_00000008.tmp-123").exists()
    assert R.remove_stale_temporaries(out) is None
    assert R.move_old_run_aside(out).startswith("--resume restart: moved the previous run (checkpoints, "
                                                 "metrics.jsonl, config.yaml)")
    assert sorted(p.name for p in (out / "before-restart-1").iterdir()) == ["checkpoints", "config.yaml",
                                                                           "metrics.jsonl"]
    assert R.move_old_run_aside(out) is None  # nothing left to move
    (out / "metrics.jsonl").write_text("{}\n")
    R.move_old_run_aside(out)
    assert (out / "before-restart-2" / "metrics.jsonl").is_file()


def test_each_resumption_records_its_config_and_what_changed(run, tmp_path):
    out, ckpt = run
    fresh = tmp_path / "cfg"
    fresh.mkdir()
    first = yaml.safe_load((R.checkpoint_path(out, 9) / "config.yaml").read_text())["train"]
    assert R.record_config(fresh, first, None) is None
    changed = dict(first, seed=7, optim=dict(first["optim"], lr=0.5))
    note = R.record_config(fresh, changed, R.checkpoint_path(out, 9))
    assert note == ("resuming with settings that differ from update_00000009's: optim.lr: 0.001 -> 0.5; "
                    "seed: 1 -> 7")
    assert yaml.safe_load((fresh / "config.yaml").read_text())["seed"] == 1  # the first run's stays
    assert yaml.safe_load((fresh / "config.resume-1.yaml").read_text())["seed"] == 7
    assert R.record_config(fresh, first, R.checkpoint_path(out, 9)) is None
    assert (fresh / "config.resume-2.yaml").is_file()
