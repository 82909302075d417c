#!/usr/bin/env python3
"""GPU smoke run of FSDP2 + bf16 on the LARGE preset, and the MFU of its pretraining step. NOT RUN YET: written
on a machine without a GPU (issue 16); run it on the first machine with one and record the output in BENCHMARKS.md.

    python bench/gpu_smoke_fsdp.py                       # all GPUs of the machine, about 5 minutes
    python bench/gpu_smoke_fsdp.py --gpus 1 --updates 10 --peak-tflops 989

Steps (each one prints PASS/FAIL; the script exits non-zero on the first failure):
1. writes a synthetic corpus (noise with pitch tracks, 16 kHz WAV, `--utts` x 15 s; no download, no espeak);
2. `torchrun --nproc_per_node GPUS -m w2v2cli pretrain --config large --dtype bf16 --set distributed.fsdp=true
   --set distributed.activation_checkpointing=1` for `--updates` updates, a sharded checkpoint half way;
3. kills the run's ranks half way through the second half (SIGKILL) and resumes with `--resume auto`: the losses
   after the resume must equal the uninterrupted run's (bit for bit on the same GPUs is not promised by cuBLAS,
   so the check is 1e-3 relative; on the CPU the test suite proves bit-exactness);
4. `w2v2 consolidate` the last checkpoint and load it in one process;
5. MFU of the pretraining step: the run's audio seconds per second x the model FLOPs per audio second
   (bench_model.forward_flops, x3 for forward + backward; activation recomputation not counted, as MFU is
   defined) / (GPUs x the GPU's dense bf16 peak).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

PEAKS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "B200": 2250.0}


def write_corpus(root: Path, utts: int, seconds: float) -> Path:
    import numpy as np
    import soundfile as sf

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = [str(root)]
    for i in range(utts):
        n = int(seconds * 16000)
        t = np.arange(n) / 16000
        f0 = 100 + 60 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
        wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / 16000) + 0.05 * rng.standard_normal(n)
        sf.write(root / f"u{i:04d}.wav", wave.astype(np.float32), 16000)
        lines.append(f"u{i:04d}.wav\t{n}")
    manifest = root / "train.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("split") == "train":
            out[r["update"]] = r
    return out


def descendants(pid: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        children = [c for c, parent in parents.items() if parent == todo[0]]
        found += children
        todo = todo[1:] + children
    return found


def check(ok: bool, what: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}: {what}", flush=True)
    if not ok:
        sys.exit(1)


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", type=int, default=0, help="processes (default: every GPU)")
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--utts", type=int, default=256)
    p.add_argument("--work", type=Path, default=Path("exp/gpu_smoke"))
    p.add_argument("--peak-tflops", type=float, default=0.0, help="dense bf16 peak of one GPU (default: by name)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no GPU: this smoke run needs CUDA", file=sys.stderr)
        return 2
    gpus = args.gpus or torch.cuda.device_count()
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAKS.items() if k in name), 0.0)
    print(f"{gpus} x {name}, torch {torch.__version__}, bf16 peak {peak or '?'} TFLOP/s per GPU", flush=True)
    manifest = write_corpus(args.work / "corpus", args.utts, 15.0)
    half = args.updates // 2
    sets = ["--set", "distributed.fsdp=true", "--set", "distributed.activation_checkpointing=1",
            "--set", f"checkpoint.save_interval_updates={half}", "--set", "checkpoint.keep_last=2",
            "--set", "logging.log_interval=1", "--set", "logging.progress=plain", "--set", "lr.warmup_updates=5",
            "--set", "data.num_workers=4"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
                "-m", "w2v2cli", "pretrain", str(manifest), "--config", "large", "--dtype", "bf16", *sets,
                "--max-updates", str(args.updates)]
    ref, run = args.work / "ref", args.work / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    proc = subprocess.run(launcher + ["--out", str(ref), "--resume", "restart"], env=env)
    check(proc.returncode == 0, f"FSDP2 + bf16 LARGE pretraining, {args.updates} updates on {gpus} GPU(s) "
                                f"({time.time() - t0:.0f} s)")
    r = losses(ref)
    check(all(math.isfinite(v["loss"]) for v in r.values()), "every loss finite")
    # SIGKILL every process of a second run after the first checkpoint, then --resume auto
    killer = subprocess.Popen(launcher + ["--out", str(run), "--resume", "restart"], env=env)
    while killer.poll() is None and (not (run / "metrics.jsonl").is_file() or max(losses(run), default=0) < half + 2):
        time.sleep(0.2)
    check(killer.poll() is None, "the second run was still running when it was to be killed")
    for pid in descendants(killer.pid) + [killer.pid]:  # torchrun's workers run in sessions of their own
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killer.wait()
    proc = subprocess.run(launcher + ["--out", str(run), "--resume", "auto"], env=env)
    got = losses(run)
    same = all(abs(got[u]["loss"] - r[u]["loss"]) <= 1e-3 * abs(r[u]["loss"]) for u in r)
    check(proc.returncode == 0 and sorted(got) == sorted(r) and same, "kill -9 + --resume auto continues the run "
                                                                     "(losses within 1e-3 relative)")
    cons = args.work / "consolidated"
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "consolidate", str(ref / "checkpoint_last"), str(cons)])
    from w2v2cli.checkpoint.io import load_checkpoint

    loaded = load_checkpoint(cons)
    check(proc.returncode == 0 and loaded.cfg.encoder_layers == 24, "consolidated checkpoint loads in one process")
    # MFU of the pretraining step (updates after the first 3, which include start-up and allocator warm-up)
    from bench_model import forward_flops

    from w2v2cli.model import model_preset

    cfg = model_preset("large")
    frames_per_s = 49.95  # 320x downsampling at 16 kHz
    flops_per_audio_s = 3 * forward_flops(cfg, int(15 * frames_per_s), 1) / 15.0
    speeds = [v["audio_s_per_s"] for u, v in r.items() if u > 3]
    speed = sorted(speeds)[len(speeds) // 2]
    tflops = speed * flops_per_audio_s / 1e12
    print(f"pretraining step: {speed:.0f} audio s/s on {gpus} GPU(s), {tflops:.1f} model TFLOP/s"
          + (f", MFU {100 * tflops / (gpus * peak):.1f} % of {gpus} x {peak:g}" if peak else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
