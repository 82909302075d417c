#!/usr/bin/env python3
"""The two tiny front ends side by side: `tiny` (raw-waveform conv stack) against `tiny_fbank` (log-mel + two
small convs), same transformer, same batch, interleaved in one process; CTC training step (forward + CTC loss +
backward + AdamW step) and inference, fp32 and bf16 autocast. Reports median audio seconds per wall second and
the ratio fbank / conv.

    python bench/bench_frontend.py                         # 3 x 5 s, 7 interleaved repeats after 2 warm-ups
    python bench/bench_frontend.py --batch 2 --seconds 7.5 --repeats 5 --json bench/results/frontend.json
    python bench/bench_frontend.py --quick                 # seconds: proves the script works

Each step sees the same shapes (a fixed batch), so oneDNN builds its kernels in the warm-up steps only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2v2cli.model import build_model, model_preset  # noqa: E402
from w2v2cli.runtime import configure_runtime, cpu_model_name  # noqa: E402


def make_step(preset: str, workload: str, dtype: str, batch: int, samples: int, seed: int = 0):
    """A closure running one step of `workload` ('train' or 'infer') for the preset's CTC model."""
    torch.manual_seed(seed)
    cfg = model_preset(preset, vocab_size=32, mask_prob=0.0, dropout=0.0, attention_dropout=0.0,
                       dropout_input=0.0, layerdrop=0.0, feature_grad_mult=1.0)
    model = build_model(cfg, "ctc")
    g = torch.Generator().manual_seed(seed + 1)
    wav = torch.randn(batch, samples, generator=g) * 0.1
    lengths = torch.full((batch,), samples)
    targets = torch.randint(1, 32, (batch, samples // 1600), generator=g)
    target_lengths = torch.full((batch,), targets.shape[1])
    autocast = (lambda: torch.autocast("cpu", torch.bfloat16)) if dtype == "bf16" else contextlib.nullcontext
    if workload == "infer":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast():
                model(wav, lengths)
        return step
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with autocast():
            logits, frames = model(wav, lengths)
        logp = logits.float().log_softmax(-1).transpose(0, 1)
        loss = F.ctc_loss(logp, targets, frames, target_lengths, zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--workloads", default="train,infer")
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true", help="1 x 2 s, 1 warm-up, 2 repeats: proves the script works")
    args = p.parse_args()
    if args.quick:
        args.batch, args.seconds, args.repeats, args.warmup = 1, 2.0, 2, 1
    configure_runtime()
    samples = int(args.seconds * 16000)
    audio = args.batch * args.seconds
    print(f"CPU: {cpu_model_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch} x "
          f"{args.seconds:g} s; {args.repeats} interleaved repeats after {args.warmup} warm-ups; median audio s/s")
    results = []
    for workload in args.workloads.split(","):
        for dtype in args.dtypes.split(","):
            steps = {name: make_step(name, workload, dtype, args.batch, samples) for name in ("tiny", "tiny_fbank")}
            times: dict[str, list[float]] = {name: [] for name in steps}
            for i in range(args.warmup + args.repeats):
                for name, step in steps.items():
                    t0 = time.perf_counter()
                    step()
                    if i >= args.warmup:
                        times[name].append(time.perf_counter() - t0)
            speed = {name: audio / statistics.median(t) for name, t in times.items()}
            ratio = speed["tiny_fbank"] / speed["tiny"]
            print(f"{workload:5s} {dtype:4s}  tiny (conv) {speed['tiny']:8.1f}  tiny_fbank {speed['tiny_fbank']:8.1f}"
                  f"  ratio {ratio:5.2f}x")
            results.append({"workload": workload, "dtype": dtype, "audio_s_per_s": speed, "ratio_fbank_over_conv":
                            ratio, "step_s": {n: statistics.median(t) for n, t in times.items()}})
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model_name(), "torch": torch.__version__, "batch": args.batch,
                                         "seconds": args.seconds, "repeats": args.repeats, "results": results},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
