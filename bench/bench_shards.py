#!/usr/bin/env python3
"""The shard loader against the manifest (tsv) loader on the same audio: audio s/s delivered, file opens and bytes.

    python bench/bench_shards.py                   # 3,000 FLAC files of 2-6 s, 30-minute shards, 3 repeats
    python bench/bench_shards.py --quick           # 240 files of 1-3 s, 1 repeat: proves the script works
    python bench/bench_shards.py --train 40        # also 40-update tiny pretraining runs on each (updates/s)
    python bench/bench_shards.py --files 20000 --shard-minutes 10 --workers 0 2 4

Many small files, as a corpus is: distinct 16 kHz FLAC files (a speech-like harmonic signal plus noise, so the
decoder does real work), in 100 speaker folders; `w2v2 shard` writes them into shards of `--shard-minutes`. Each
contender reads whole epochs with the training loader (same max_tokens and max_sample_size, crop to the shortest):
the tsv path (AudioDataset + BucketBatchSampler, one file open per utterance) and the shard path (ShardStream: one
open and one sequential read per shard, the members decoded from memory). Two rates: audio decoded per second (the
loader's work) and audio delivered per second (what the batches hold after cropping every utterance to its batch's
shortest): batches never cross a pool of shards (w2v2cli/data/shard_dataset.py), so they are bucketed among a pool's
utterances only and lose a little more to the crops than the tsv path's corpus-wide buckets do. Contenders are interleaved within each
repeat (same page-cache state), after one untimed warm-up epoch each; medians over the repeats, and the ratio
shards / tsv.

What is counted, honestly: file opens by wrapping the one function each path opens files through (tsv:
`w2v2cli.audio.load_audio`, one open per call; shards: `w2v2cli.data.shards.open_shard`), counted in shared memory
so that forked loader workers count too; bytes at the loader level (tsv: the size of each file opened, which
libsndfile reads whole; shards: the bytes streamed); and, for the single-process runs, the kernel's own count of
bytes this process read (`rchar` of /proc/self/io), as a cross-check. The files sit in the page cache after the
first pass: this measures the CPU and system-call cost of each path, not a disk's or a network file system's, where
per-file opens and metadata lookups cost far more than here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import w2v2cli.audio as audio_mod  # noqa: E402
import w2v2cli.data.shards as shards_mod  # noqa: E402
from w2v2cli.runtime import cpu_model_name  # noqa: E402

MAX_TOKENS, MAX_SAMPLE = 1_400_000, 250_000


def write_corpus(root: Path, files: int, low: float, high: float, seed: int = 0) -> Path:
    """`files` distinct FLAC files of `low`-`high` s and their manifest."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    lines = [str(root / "audio")]
    for i in range(files):
        n = int(rng.uniform(low, high) * 16000)
        t = np.arange(n, dtype=np.float32) / 16000.0
        f0 = rng.uniform(90, 220)
        sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
        sig = 0.1 * sig * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)) + 0.01 * rng.standard_normal(n)
        rel = f"spk{i % 100:03d}/utt{i:06d}.flac"
        (root / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / "audio" / rel, sig.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"{rel}\t{n}")
    tsv = root / "train.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


class Counters:
    """File opens and bytes, in shared memory (forked loader workers add to the same numbers)."""

    def __init__(self):
        self.opens = multiprocessing.Value("q", 0)
        self.nbytes = multiprocessing.Value("q", 0)

    def add(self, nbytes: int) -> None:
        with self.opens.get_lock():
            self.opens.value += 1
        with self.nbytes.get_lock():
            self.nbytes.value += nbytes

    def reset(self) -> None:
        self.opens.value, self.nbytes.value = 0, 0


def instrument(counters: Counters) -> None:
    """Counts opens where each path opens files (see the module docstring)."""
    load_audio, open_shard = audio_mod.load_audio, shards_mod.open_shard

    def counted_load_audio(path, *args, **kwargs):
        counters.add(os.path.getsize(path))
        return load_audio(path, *args, **kwargs)

    def counted_open_shard(path):
        counters.add(os.path.getsize(path))
        return open_shard(path)

    audio_mod.load_audio, shards_mod.open_shard = counted_load_audio, counted_open_shard


def rchar() -> int:
    """Bytes this process has read (the kernel's count, page-cache hits included)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def make_loader(kind: str, data: Path, workers: int, epoch: int):
    from w2v2cli.data.dataset import AudioDataset, make_loader as tsv_loader
    from w2v2cli.data.sampler import BucketBatchSampler
    from w2v2cli.data.shard_dataset import ShardMembers, ShardPlan, ShardStream, make_stream_loader

    if kind == "tsv":
        ds = AudioDataset.from_manifests([data], max_sample_size=MAX_SAMPLE, seed=1)
        sampler = BucketBatchSampler(ds.sizes, MAX_TOKENS, MAX_SAMPLE, seed=1, wrap=False)
        sampler.set_epoch(epoch)
        return tsv_loader(ds, sampler, num_workers=workers)
    ms = ShardMembers.from_dirs([data], max_sample_size=MAX_SAMPLE, seed=1)
    plan = ShardPlan(ms.shard_members, ms.sizes, MAX_TOKENS, MAX_SAMPLE, seed=1, streams=max(1, workers))
    plan.set_epoch(epoch)
    return make_stream_loader(ShardStream(ms, plan), num_workers=workers)


def one_epoch(kind: str, data: Path, workers: int, epoch: int, counters: Counters) -> dict[str, float]:
    from w2v2cli.data.dataset import raise_if_failed

    loader = make_loader(kind, data, workers, epoch)
    ds = loader.dataset if kind == "tsv" else loader.dataset.members
    counters.reset()
    r0, t0 = rchar(), time.perf_counter()
    samples, decoded = 0, 0
    for item in loader:
        batch = raise_if_failed(item)
        samples += batch.num_samples
        decoded += int(ds.sizes[batch.ids.numpy()].sum())
    dt = time.perf_counter() - t0
    return {"audio_s_per_s": samples / 16000 / dt, "decoded_s_per_s": decoded / 16000 / dt,
            "kept": samples / decoded, "opens_per_s": counters.opens.value / dt,
            "mb_per_s": counters.nbytes.value / dt / 1e6, "opens": counters.opens.value,
            "rchar_mb_per_s": (rchar() - r0) / dt / 1e6 if workers == 0 else float("nan")}


def train_rate(kind: str, data: Path, out: Path, updates: int) -> float:
    """Updates/s of a tiny pretraining run of `updates` updates (2 loader workers), from its metrics."""
    cmd = [sys.executable, "-m", "w2v2cli", "pretrain", str(data), "--out", str(out), "--config", "tiny",
           "--max-updates", str(updates), "--set", "data.num_workers=2", "--set", "logging.progress=none",
           "--set", "logging.tensorboard=false", "--set", f"logging.log_interval={updates}",
           "--set", f"checkpoint.save_interval_updates={updates}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode:
        raise SystemExit(f"{kind} training failed:\n{proc.stderr[-2000:]}")
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            if json.loads(line).get("split") == "train"][-1]
    return last["update"] / last["wall_s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="240 files of 1-3 s, one repeat")
    p.add_argument("--files", type=int, default=3000)
    p.add_argument("--seconds", type=float, nargs=2, default=[2.0, 6.0], help="utterance length range")
    p.add_argument("--shard-minutes", type=float, default=30.0)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train", type=int, default=0, help="also pretrain tiny for this many updates on each path")
    args = p.parse_args()
    if args.quick:
        args.files, args.seconds, args.shard_minutes, args.repeats = 240, [1.0, 3.0], 1.0, 1
        args.train = min(args.train, 4)
    from w2v2cli.data.shards import ShardConfig, write_shards

    counters = Counters()
    instrument(counters)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        tsv = write_corpus(work, args.files, *args.seconds)
        made = time.perf_counter() - t
        t = time.perf_counter()
        res = write_shards(ShardConfig(tsv, work / "shards", shard_minutes=args.shard_minutes, jobs=2,
                                       progress=False))
        sharded = time.perf_counter() - t
        flac = sum(f.stat().st_size for f in (work / "audio").rglob("*.flac"))
        print(f"CPU: {cpu_model_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        print(f"corpus: {args.files} FLAC files of {args.seconds[0]:g}-{args.seconds[1]:g} s, {res.hours:.2f} h, "
              f"{flac / 1e6:.1f} MB (mean {flac / args.files / 1e3:.0f} kB a file), made in {made:.1f} s")
        print(f"shards: {res.num_shards} of ~{args.shard_minutes:g} min ({res.nbytes / res.num_shards / 1e6:.1f} MB "
              f"each), written in {sharded:.1f} s; max_tokens {MAX_TOKENS}, max_sample_size {MAX_SAMPLE}\n")
        for w in args.workers:  # warm-up, untimed: page cache, imports (webdataset's reader), first kernels
            for kind, data in (("tsv", tsv), ("shards", work / "shards")):
                one_epoch(kind, data, w, 0, counters)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for r in range(args.repeats):
            for w in args.workers:
                for kind, data in (("tsv", tsv), ("shards", work / "shards")):
                    row = one_epoch(kind, data, w, r + 1, counters)
                    results.setdefault((kind, w), []).append(row)
                    print(f"repeat {r + 1} {kind:>6} workers {w}: {row['decoded_s_per_s']:8.0f} audio s/s decoded, "
                          f"{row['audio_s_per_s']:8.0f} delivered, "
                          f"{row['opens_per_s']:8.1f} opens/s, {row['mb_per_s']:7.1f} MB/s", flush=True)
        report(results, args.workers)
        if args.train:
            train_report(tsv, work, args.train, args.repeats)
    return 0


def report(results: dict, workers: list[int]) -> None:
    def med(kind: str, w: int, key: str) -> float:
        return statistics.median(row[key] for row in results[(kind, w)])

    print("\n| path | loader workers | audio s/s decoded | audio s/s delivered | kept by the crops | file opens per "
          "epoch | opens/s | MB/s read (loader) | MB/s read (kernel rchar) |\n|---|---|---|---|---|---|---|---|---|")
    for w in workers:
        for kind in ("tsv", "shards"):
            print(f"| {kind} | {w} | {med(kind, w, 'decoded_s_per_s'):.0f} | {med(kind, w, 'audio_s_per_s'):.0f} | "
                  f"{med(kind, w, 'kept'):.0%} | {med(kind, w, 'opens'):.0f} | "
                  f"{med(kind, w, 'opens_per_s'):.1f} | {med(kind, w, 'mb_per_s'):.1f} | "
                  f"{med(kind, w, 'rchar_mb_per_s'):.1f} |")
    for w in workers:
        decoded = med("shards", w, "decoded_s_per_s") / med("tsv", w, "decoded_s_per_s")
        ratio = med("shards", w, "audio_s_per_s") / med("tsv", w, "audio_s_per_s")
        opens = med("tsv", w, "opens") / max(med("shards", w, "opens"), 1)
        print(f"workers {w}: shards / tsv: {decoded:.2f}x the audio decoded per second, {ratio:.2f}x the audio "
              f"delivered per second (after crop-to-shortest), {opens:.0f}x fewer file opens")


def train_report(tsv: Path, work: Path, updates: int, repeats: int) -> None:
    rates: dict[str, list[float]] = {"tsv": [], "shards": []}
    for r in range(repeats):
        for kind, data in (("tsv", tsv), ("shards", work / "shards")):
            rates[kind].append(train_rate(kind, data, work / f"run-{kind}-{r}", updates))
            print(f"repeat {r + 1} {kind:>6} training: {rates[kind][-1]:.2f} updates/s", flush=True)
    a, b = statistics.median(rates["tsv"]), statistics.median(rates["shards"])
    print(f"\n| path | updates/s (tiny, {updates} updates, 2 workers) |\n|---|---|\n| tsv | {a:.2f} |\n"
          f"| shards | {b:.2f} |\nshards / tsv: {b / a:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
