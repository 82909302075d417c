"""Resume never silently starts over, and filesystem faults are one clear line (real runs of the tiny model).

- a damaged `trainer_state.pt`, `model.safetensors` or `config.yaml` in the newest checkpoint: named with the
  reason, the fallback to the older checkpoint announced, and the run continues bit for bit from there;
- the same damage in the only checkpoint: exit 1 naming the file, nothing trained, metrics untouched; `--resume
  restart` moves the old run aside and starts over; no `--resume` on a directory that holds a run is an error;
- resuming with other settings prints the differences and keeps them in config.resume-N.yaml (config.yaml stays
  the first run's); temporaries of an interrupted save are removed at start;
- a full disk (a small tmpfs; where mounting is not allowed, RLIMIT_FSIZE, which makes writes fail with EFBIG)
  during a checkpoint save: one error line naming the checkpoint, exit 1, the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from w2v2cli.train.run_dir import check_resumable

SETS = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=plain",
        "logging.tensorboard=false", "logging.log_interval=1", "checkpoint.save_interval_updates=4",
        "checkpoint.keep_last=3", "lr.warmup_updates=3"]


def _args(manifest: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return ["pretrain", str(manifest), "--config", "tiny", "--out", str(out), "--threads", "1", *sets, *extra]


def _updates(run: Path) -> list[int]:
    return [r["update"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r.get("split") == "train"]


def _losses(run: Path) -> dict[int, float]:
    return {r["update"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r.get("split") == "train"}


@pytest.fixture(scope="module")
def base(few, tmp_path_factory) -> Path:
    """8 updates, checkpoints at 4 and 8."""
    from w2v2cli.train.pretrain import pretrain

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the resumed runs (--threads 1): bit-exact comparisons need the same reductions
    out = tmp_path_factory.mktemp("ft-base") / "run"
    pretrain([few], out, config="tiny", overrides=SETS, max_updates=8)
    torch.set_num_threads(before)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["update_00000004", "update_00000008"]
    return out


def _damage(ckpt: Path, name: str) -> None:
    path = ckpt / name
    if name == "model.safetensors":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # truncated
    elif name == "config.yaml":
        path.write_text("kind: [unclosed\n")
    else:
        path.write_bytes(os.urandom(300))


FILES = ["trainer_state.pt", "model.safetensors", "config.yaml"]


@pytest.mark.parametrize("name", FILES)
def test_damaged_newest_checkpoint_is_named_and_the_fallback_announced(base, few, tmp_path, run_main, name):
    run = tmp_path / "run"
    shutil.copytree(base, run, symlinks=True)
    _damage(run / "checkpoints" / "update_00000008", name)
    code, err = run_main(*_args(few, run, "--max-updates", "8", "--resume", "auto"))
    assert code == 0, err
    assert "cannot resume from update_00000008" in err and name in err
    assert "falling back to the older checkpoint update_00000004" in err
    assert "resumed from" in err and "update_00000004" in err
    assert _updates(run) == list(range(1, 9))  # never an update twice
    assert _losses(run) == _losses(base)  # updates 5-8 again, bit for bit


@pytest.mark.parametrize("name", FILES)
def test_damaged_only_checkpoint_stops_with_the_reason(base, few, tmp_path, run_main, name):
    run = tmp_path / "run"
    shutil.copytree(base, run, symlinks=True)
    shutil.rmtree(run / "checkpoints" / "update_00000004")
    _damage(run / "checkpoints" / "update_00000008", name)
    metrics = (run / "metrics.jsonl").read_text()
    code, err = run_main(*_args(few, run, "--max-updates", "8", "--resume", "auto"))
    assert code == 1
    assert "none of the 1 checkpoint(s)" in err and f"update_00000008/{name}" in err
    assert "--resume restart" in err and "Traceback" not in err
    assert (run / "metrics.jsonl").read_text() == metrics  # nothing was trained or appended
    if name != "trainer_state.pt":
        return
    # without --resume a directory holding a run is not trained into from update 0
    code, err = run_main(*_args(few, run, "--max-updates", "2"))
    assert code == 1 and "already holds a run" in err
    # an explicit restart moves the old run aside
    code, err = run_main(*_args(few, run, "--max-updates", "2", "--resume", "restart"))
    assert code == 0, err
    aside = run / "before-restart-1"
    assert (aside / "checkpoints" / "update_00000008").is_dir() and (aside / "metrics.jsonl").read_text() == metrics
    assert _updates(run) == [1, 2] and _losses(run) == {u: _losses(base)[u] for u in (1, 2)}


def test_resume_with_changed_settings_keeps_both_configs_and_removes_temporaries(base, few, tmp_path, run_main):
    run = tmp_path / "run"
    shutil.copytree(base, run, symlinks=True)
    first_config = (run / "config.yaml").read_text()
    stale = run / "checkpoints" / ".update_00000012.tmp-x1y2"  # a kill during a save leaves this
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    os.symlink("checkpoints/update_00000008", run / ".checkpoint_last.tmp-999")
    code, err = run_main(*_args(few, run, "--max-updates", "9", "--resume", "auto", "--set", "optim.lr=0.002"))
    assert code == 0, err
    assert "differ from update_00000008's" in err and "optim.lr: 0.001 -> 0.002" in err
    assert "optim.max_updates: 8 -> 9" in err
    assert (run / "config.yaml").read_text() == first_config
    import yaml

    assert yaml.safe_load((run / "config.resume-1.yaml").read_text())["optim"]["lr"] == 0.002
    assert "removed 2 temporary file(s)" in err
    assert not stale.exists() and not os.path.lexists(run / ".checkpoint_last.tmp-999")
    assert _updates(run) == list(range(1, 10))


def _fault_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(base, few, tmp_path):
    ckpt4 = base / "checkpoints" / "update_00000004"
    size = sum(p.stat().st_size for p in ckpt4.iterdir())
    biggest = max(p.stat().st_size for p in ckpt4.iterdir())
    disk = tmp_path / "disk"
    # room for the run up to update 4 and half of the next checkpoint
    mounted = _mount_tmpfs(disk, size + size // 2 + 256 * 1024)
    try:
        run = disk / "run"
        shutil.copytree(base, run, symlinks=True, ignore=shutil.ignore_patterns("update_00000008", "tensorboard"))
        os.remove(run / "checkpoint_last")
        os.symlink("checkpoints/update_00000004", run / "checkpoint_last")
        limit = None if mounted else biggest // 2  # RLIMIT_FSIZE: writes past it fail with EFBIG

        def preexec():
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        proc = subprocess.run([sys.executable, "-m", "w2v2cli", *_args(few, run, "--max-updates", "8",
                                                                         "--resume", "auto")],
                              env=_fault_env(), capture_output=True, text=True, preexec_fn=preexec, timeout=300)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, proc.stderr[-2000:]
        reason = "No space left on device" if mounted else "File too large"
        assert "update_00000008" in errors[0] and reason in " ".join(proc.stderr.split())
        check_resumable(run / "checkpoints" / "update_00000004")  # the previous checkpoint is intact
        assert os.readlink(run / "checkpoint_last") == "checkpoints/update_00000004"
        assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporaries left
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)
