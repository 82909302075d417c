#!/usr/bin/env python3
"""Is the data path ever the bottleneck? Batches/s and audio s/s of w2v2's DataLoader (FLAC decode, crop,
collate, bucketed batches) against what a training step consumes.

    python bench/bench_data.py                 # 200 FLAC files of 10-16 s, 0 and 2 loader workers
    python bench/bench_data.py --quick         # 40 files, seconds
    python bench/bench_data.py --files 400 --workers 0 1 2 4 --max-tokens 1400000

The files are written once into a temporary folder (speech-like harmonic signal plus noise, 16 kHz FLAC, so
the decoder does real work); the manifest is a fairseq tsv. Each configuration reads one full epoch, twice
(page cache warm), and reports the faster pass. Compare "audio s/s" with the model's training throughput
(BENCHMARKS.md: ~3-4 audio s/s for BASE on a 2-core CPU, a few hundred on one H100): the loader must
deliver more than the step consumes, with the workers running beside the step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_corpus(root: Path, files: int, seed: int = 0) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    lines = [str(root)]
    for i in range(files):
        n = int(rng.uniform(10.0, 16.0) * 16000)
        t = np.arange(n) / 16000.0
        f0 = rng.uniform(90, 220)
        sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 8))
        sig = sig * (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)) + 0.05 * rng.standard_normal(n)
        rel = f"spk{i % 10}/utt{i:05d}.flac"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, (0.2 * sig).astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"{rel}\t{n}")
    tsv = root / "train.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


def epoch_rate(tsv: Path, workers: int, max_tokens: int, max_sample_size: int) -> tuple[float, float, int]:
    """(batches/s, audio s/s, batches) of one epoch, the faster of two passes."""
    from w2v2cli.data.dataset import AudioDataset, make_loader, raise_if_failed
    from w2v2cli.data.sampler import BucketBatchSampler

    ds = AudioDataset.from_manifests([tsv], max_sample_size=max_sample_size)
    best = None
    for epoch in (1, 2):
        sampler = BucketBatchSampler(ds.sizes, max_tokens=max_tokens, max_sample_size=max_sample_size,
                                     seed=1, wrap=False)
        sampler.set_epoch(epoch)
        loader = make_loader(ds, sampler, num_workers=workers)
        t0 = time.perf_counter()
        batches, samples = 0, 0
        for item in loader:
            batch = raise_if_failed(item)
            batches += 1
            samples += int(batch.lengths.sum())
        dt = time.perf_counter() - t0
        rate = (batches / dt, samples / 16000 / dt, batches)
        best = rate if best is None or rate[0] > best[0] else best
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--max-tokens", type=int, default=1_400_000, help="samples per batch (BASE: 1.4M per GPU)")
    p.add_argument("--max-sample-size", type=int, default=250_000)
    args = p.parse_args()
    if args.quick:
        args.files, args.workers = 40, [0, 2]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tsv = write_corpus(Path(tmp), args.files)
        print(f"wrote {args.files} FLAC files in {time.perf_counter() - t0:.1f} s; max_tokens {args.max_tokens}, "
              f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}", flush=True)
        rows = []
        for w in args.workers:
            bps, aps, n = epoch_rate(tsv, w, args.max_tokens, args.max_sample_size)
            rows.append((w, bps, aps, n))
            print(f"workers {w}: {bps:.2f} batches/s, {aps:.0f} audio s/s ({n} batches)", flush=True)
    print("\n| loader workers | batches/s | audio s/s | batches per epoch |\n|---|---|---|---|")
    for w, bps, aps, n in rows:
        print(f"| {w} | {bps:.2f} | {aps:.0f} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
