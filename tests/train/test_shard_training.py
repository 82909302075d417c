"""Training on shard directories with the real trainer and tiny model (real subprocesses and SIGKILL for the resume).

Proofs:
- kill -9 mid-epoch (at an odd position, so the resumed loader starts on its second worker's stream) + `--resume
  auto` reproduces the uninterrupted run's loss at every update bit for bit, across an epoch boundary, with 2 loader
  workers streaming the shards;
- fine-tuning batches from shards carry the target ids the task makes from the source manifest's labels;
- a truncated shard is skipped, listed once in bad_audio.tsv and counted against data.max_bad_files; validation
  takes a shard directory too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from w2v2cli.cli.app import main
from w2v2cli.data.dataset import Batch
from w2v2cli.data.labels import build_vocab
from w2v2cli.data.shards import read_index, shard_name
from w2v2cli.train.config import load_train_config
from w2v2cli.train.ctc_task import CTCTask
from w2v2cli.train.distributed import DistInfo
from w2v2cli.train.loaders import build_data, task_targets
from w2v2cli.train.state import STATE_FILE, load_trainer_state

UPDATES = 13  # one epoch is 12 batches (12 shards of 2 utterances): the run crosses into epoch 2
FAST = ["--config", "tiny", "--set", "data.max_sample_size=16000", "--set", "data.max_tokens=32000",
        "--set", "data.num_workers=2", "--set", "logging.log_interval=1", "--set", "logging.progress=plain",
        "--set", "logging.tensorboard=false", "--set", "checkpoint.save_interval_updates=5",
        "--set", "checkpoint.keep_last=3", "--set", "lr.warmup_updates=5"]


def _cmd(shards: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "w2v2cli", "pretrain", str(shards), "--out", str(out), "--threads", "1",
            "--max-updates", str(UPDATES), *FAST, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(run: Path) -> dict[int, float]:
    try:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {r["update"]: r["loss"] for r in records if r.get("split") == "train"}


def test_kill9_mid_epoch_then_resume_auto_on_shards_is_bit_exact(signal_shards, tmp_path):
    ref = subprocess.run(_cmd(signal_shards, tmp_path / "ref"), env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(signal_shards, run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        while proc.poll() is None and max(_losses(run), default=0) < 6:  # checkpoint 5 is written
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    state, _ = load_trainer_state(run / "checkpoints" / "update_00000005" / STATE_FILE)
    assert (state.epoch, state.position) == (1, 5)  # mid-epoch, odd: the resumed loader starts on stream 1
    resumed = subprocess.run(_cmd(signal_shards, run, "--resume", "auto"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    got, want = _losses(run), _losses(tmp_path / "ref")
    assert sorted(got) == list(range(1, UPDATES + 1)) and got == want  # bit for bit, every update
    last, _ = load_trainer_state(tmp_path / "ref" / "checkpoints" / f"update_{UPDATES:08d}" / STATE_FILE)
    assert last.epoch == 2  # the comparison spans an epoch boundary


def test_finetuning_batches_from_shards_carry_the_manifest_targets(signal_manifest, signal_shards):
    vocab, source = build_vocab([signal_shards])
    cfg = load_train_config("tiny_ctc", overrides=["data.num_workers=0", "data.max_sample_size=64000",
                                                   "data.max_tokens=128000", f"model.vocab_size={len(vocab)}"])
    assert source == str(signal_shards / "dict.ltr.txt") and vocab == build_vocab([signal_manifest])[0]
    task = CTCTask(cfg, vocab)
    from_tsv = task_targets(task, [str(signal_manifest)])
    from_shards = task_targets(task, [str(signal_shards)])
    rows = {line.split("\t")[0]: i for i, line in enumerate(signal_manifest.read_text().splitlines()[1:])}
    root = signal_manifest.read_text().splitlines()[0]
    sources = [str(Path(src).relative_to(root)) for s in read_index(signal_shards).shards for src in s.sources]
    assert from_shards == [from_tsv[rows[src]] for src in sources]
    ds, plan, loader = build_data(cfg, task, DistInfo(), [str(signal_shards)], None, True, torch.device("cpu"))
    plan.set_epoch(1, 0)
    seen = 0
    for batch in loader:
        assert isinstance(batch, Batch) and batch.targets is not None
        for row, idx in enumerate(batch.ids.tolist()):
            n = int(batch.target_lengths[row])
            assert batch.targets[row, :n].tolist() == from_tsv[rows[sources[idx]]]
            seen += 1
    assert seen == len(sources) - plan.num_dropped > 0


def test_a_truncated_shard_is_skipped_listed_once_and_counted(signal_shards, tmp_path, capsys):
    shards = tmp_path / "shards"
    shutil.copytree(signal_shards, shards)
    victim = shards / shard_name(3)
    victim.write_bytes(victim.read_bytes()[:1000])
    sets = [a for s in ["data.num_workers=0", "checkpoint.save_interval_updates=100"] for a in ("--set", s)]
    args = ["pretrain", str(shards), "--threads", "1", "--max-updates", "13", *FAST, *sets]
    try:
        main([*args, "--out", str(tmp_path / "ok"), "--set", "data.max_bad_files=1", "--valid", str(signal_shards)])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err[-3000:]
    capsys.readouterr()
    lines = (tmp_path / "ok" / "bad_audio.tsv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].split("\t")[1] == str(victim)  # once, though two epochs met it
    assert "damaged tar" in lines[1].split("\t")[2]
    records = [json.loads(line) for line in (tmp_path / "ok" / "metrics.jsonl").read_text().splitlines()]
    warnings = [r["message"] for r in records if r.get("event") == "warning" and "skipped" in r["message"]]
    assert len(warnings) == 1 and warnings[0].startswith(f"skipped {victim}: damaged tar")
    assert sum(r.get("bad_audio", 0) for r in records if r.get("split") == "train") == 1
    assert [r["update"] for r in records if r.get("split") == "valid"] == [13]  # validation reads shards too
    try:
        main([*args, "--out", str(tmp_path / "stop"), "--set", "data.max_bad_files=0"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "more than data.max_bad_files = 0" in err and str(victim) in err
    assert read_index(shards).shards[3].nbytes > 1000
