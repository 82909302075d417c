"""End-to-end pretraining with the real tiny model, as users run it (real subprocesses, torchrun, signals).

Proofs (CPU, real model):
- kill -9 mid-run + `--resume auto` reproduces the uninterrupted run's loss at every update bit for bit;
- SIGTERM / SIGINT save a checkpoint, exit 143 / 130 (an interrupted run never looks finished), and resuming
  reproduces the uninterrupted run bit for bit;
- `torchrun --nproc_per_node 2` (gloo) matches 1 process with update_freq 2 (relative 1e-4 on the loss);
- bad inputs give clear errors naming the file or key.
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
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import ConfigError, DataError

FAST = ["--config", "tiny", "--set", "data.max_sample_size=32000", "--set", "data.max_tokens=64000",
        "--set", "logging.log_interval=1", "--set", "checkpoint.save_interval_updates=4",
        "--set", "checkpoint.keep_last=3", "--set", "lr.warmup_updates=5", "--set", "logging.progress=plain"]
UPDATES = 12


def _env(threads: int = 1) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


def _cmd(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "w2v2cli", "pretrain", str(manifest), "--out", str(out), *FAST, *extra]


def _losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("split") == "train":
            out[r["update"]] = r["loss"]
    return out


def _valid_records(run: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["update"]: r for r in records if r.get("split") == "valid"}


def _last_update(run: Path) -> int:
    try:
        return max(_losses(run), default=0)
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.fixture(scope="module")
def reference(few, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run(_cmd(few, out, "--max-updates", str(UPDATES)), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def _run_until(cmd: list[str], run: Path, update: int, sig: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and _last_update(run) < update:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_reference_run_layout(reference):
    losses = _losses(reference)
    assert sorted(losses) == list(range(1, UPDATES + 1))
    ckpts = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert ckpts == ["update_00000004", "update_00000008", "update_00000012"]  # keep_last 3
    assert os.readlink(reference / "checkpoint_last") == os.path.join("checkpoints", "update_00000012")
    files = sorted(p.name for p in (reference / "checkpoint_last").iterdir())
    assert files == ["config.yaml", "model.safetensors", "trainer_state.pt"]
    import yaml

    meta = yaml.safe_load((reference / "checkpoint_last" / "config.yaml").read_text())
    assert meta["kind"] == "pretrain" and meta["train"]["optim"]["max_updates"] == UPDATES
    assert yaml.safe_load((reference / "config.yaml").read_text())["data"]["max_tokens"] == 64000
    from w2v2cli.checkpoint.io import load_checkpoint

    assert load_checkpoint(reference / "checkpoint_last", kind="encoder").cfg.encoder_layers == 4


def test_kill9_then_resume_auto_is_bit_exact(few, reference, tmp_path):
    run = tmp_path / "run"
    killed = _run_until(_cmd(few, run, "--max-updates", str(UPDATES)), run, 6, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run(_cmd(few, run, "--max-updates", str(UPDATES), "--resume", "auto"), env=_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    ref, got = _losses(reference), _losses(run)
    assert sorted(got) == list(range(1, UPDATES + 1))  # records after the checkpoint were replaced, not duplicated
    assert got == ref  # bit for bit: every update's loss equal as float


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_exits_non_zero_and_resumes_exactly(few, reference, tmp_path, sig, status):
    run = tmp_path / "run"
    stopped = _run_until(_cmd(few, run, "--max-updates", str(UPDATES), "--set", "logging.log_interval=5"), run, 2,
                         sig)
    assert stopped.returncode == status, stopped.stderr
    name = signal.Signals(sig).name
    assert f"stopped by {name}" in stopped.stderr and "--resume auto" in stopped.stderr
    at = max(_losses(run))
    assert at < UPDATES and (run / "checkpoints" / f"update_{at:08d}" / "trainer_state.pt").is_file()
    # the summary's loss is the last update's (the meter is flushed at the stop), not the one logged before
    assert f"{name} at update {at}" in stopped.stdout
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["update"] == at
    resumed = subprocess.run(_cmd(few, run, "--max-updates", str(UPDATES), "--resume", "auto"), env=_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    got, ref = _losses(run), _losses(reference)
    assert all(got[u] == ref[u] for u in got if u > at) and max(got) == UPDATES  # bit for bit after the resume
    assert (run / "config.yaml").is_file() and (run / "config.resume-1.yaml").is_file()


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_whole_process_group_still_saves_and_stops_cleanly(few, tmp_path, sig, status):
    """`timeout`, SLURM's scancel and Ctrl-C signal every process of the job, the data loader's workers too: the
    run must still save and stop as when only the main process is signalled (a SIGTERMed worker used to crash
    it: "DataLoader worker ... is killed by signal: Terminated", no checkpoint of the stop)."""
    run, many = tmp_path / "run", tmp_path / "many.tsv"
    rows = few.read_text().splitlines()
    many.write_text("\n".join([rows[0]] + rows[1:] * 40) + "\n")  # an epoch outlasts the test: workers stay up
    cmd = _cmd(many, run, "--max-updates", "200", "--set", "data.num_workers=2",
               "--set", "checkpoint.save_interval_updates=1000")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        workers: list[str] = []  # the loader's worker processes, alive (not zombies)
        while proc.poll() is None and (_last_update(run) < 2 or len(workers) < 2):
            found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            workers = [pid for pid in found if _state(pid) not in ("Z", "")]
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, sig)  # the main process and its workers
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, err[-2000:]
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    at = max(_losses(run))
    assert (run / "checkpoints" / f"update_{at:08d}" / "trainer_state.pt").is_file()


def test_torchrun_two_processes_match_one_with_update_freq_2(few, tmp_path):
    n = 6
    # one validation utterance: with 2 ranks, one rank has no validation batch at all (this used to hang)
    valid = tmp_path / "valid.tsv"
    valid.write_text("\n".join(few.read_text().splitlines()[:2]) + "\n")
    single = tmp_path / "single"
    one = subprocess.run(_cmd(few, single, "--max-updates", str(n), "--set", "optim.update_freq=2",
                              "--valid", str(valid)), env=_env(), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    double = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "w2v2cli",
           "pretrain", str(few), "--out", str(double), *FAST, "--max-updates", str(n), "--valid", str(valid)]
    two = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _losses(single), _losses(double)
    assert sorted(a) == sorted(b) == list(range(1, n + 1))
    for u in a:
        assert b[u] == pytest.approx(a[u], rel=1e-4), (u, a[u], b[u])
    # validation on 2 ranks sums to the same as on 1 process (the same single utterance, counted once)
    va, vb = _valid_records(single), _valid_records(double)
    assert sorted(va) == sorted(vb) and va, (va, vb)
    for u in va:
        assert vb[u]["loss"] == pytest.approx(va[u]["loss"], rel=1e-4)
        assert vb[u]["num_masked"] == va[u]["num_masked"]
    # only rank 0 wrote: one record per update, one checkpoint directory per save
    assert len([1 for line in (double / "metrics.jsonl").read_text().splitlines()
                if json.loads(line).get("split") == "train"]) == n


def test_errors_name_the_file_or_key(few, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["pretrain", str(tmp_path / "nope.tsv"), "--config", "tiny", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, DataError) and "nope.tsv" in res.exception.message
    empty = tmp_path / "empty.tsv"
    empty.write_text(str(tmp_path) + "\n")
    res = runner.invoke(app, ["pretrain", str(empty), "--config", "tiny", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, DataError) and "empty.tsv" in res.exception.message
    assert "no audio" in res.exception.message
    missing = tmp_path / "missing.tsv"
    missing.write_text(f"{tmp_path}\ngone.flac\t32000\n")
    res = runner.invoke(app, ["pretrain", str(missing), "--config", "tiny", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, DataError) and "gone.flac" in res.exception.message
    res = runner.invoke(app, ["pretrain", str(few), "--config", "base_10h", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, ConfigError) and "w2v2 finetune" in res.exception.hint
    # the console script formats the error once, with the hint, and exits non-zero (2 for config errors)
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "pretrain", str(few), "--config", "tiny",
                           "--set", "optim.lrr=1", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown key 'optim.lrr'" in proc.stderr and "did you mean 'lr'" in proc.stderr
    assert "Traceback" not in proc.stderr
