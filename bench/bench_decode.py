#!/usr/bin/env python3
"""Decoding real-time factor: our CTC model in PyTorch (fp32, bf16) and in onnxruntime (an fp32 export and its int8
twin) vs transformers' Wav2Vec2ForCTC and torchaudio's wav2vec2_model, BASE preset, random weights (identical in
all), the same audio, interleaved.

    python bench/bench_decode.py               # 1 x 10 s and 8 x 10 s, 7 repeats, every contender below
    python bench/bench_decode.py --quick       # tiny model, 1 x 2 s: proves the script works
    python bench/bench_decode.py --shapes 1x10 4x30 --contenders w2v2,w2v2@bf16,onnxruntime,onnxruntime-int8
    python bench/bench_decode.py --shapes 1x10 4x30 --device cuda --amp bf16

The acoustic model's forward pass is what decoding costs (greedy CTC on top is < 1 ms per utterance; beam
search with a language model is measured by `w2v2 decode`'s summary). RTF = wall seconds per audio second.
Uses bench_model.py's worker processes: each contender in its own process (own malloc setting, own RSS),
and the script checks that all contenders produce the same logits (max difference printed: int8's is its
quantisation error). The table gives medians and each contender's speed relative to ours in fp32 (`w2v2`).
`w2v2@bf16` (`w2v2 decode --dtype bf16`) runs only on CPUs with bf16 units (AMX or avx512_bf16; elsewhere bf16 is
emulated, ~30x slower): the script prints the CPU and its units. The onnxruntime rows export the model first
(`w2v2 export onnx [--int8]`; its time is in "build s") and run on the CPU only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model  # noqa: E402

DEFAULT_CONTENDERS = ("w2v2,w2v2@bf16,onnxruntime,onnxruntime-int8,transformers,transformers+keep,torchaudio,"
                      "torchaudio+keep")


def contenders_for(names: str, device: str) -> str:
    """The contenders to run: `w2v2@bf16` dropped on a CPU without bf16 units (printed with the CPU's model)."""
    from w2v2cli.runtime import cpu_bf16_units, cpu_model_name

    if device != "cpu":
        return names
    units = cpu_bf16_units()
    print(f"CPU: {cpu_model_name()}; bf16 units: {units or 'none (bf16 would be emulated)'}", flush=True)
    keep = [c for c in names.split(",") if c and (units or not c.endswith("@bf16"))]
    if len(keep) < len(names.split(",")):
        print("  skipping the @bf16 contenders: no bf16 units on this CPU", flush=True)
    return ",".join(keep)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--shapes", nargs="+", default=["1x10", "8x10"], help="BATCHxSECONDS")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--preset", default="base")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--contenders", default=DEFAULT_CONTENDERS)
    args = p.parse_args()
    shapes = args.shapes
    extra = []
    if args.quick:
        shapes, args.repeats, args.preset = ["1x2"], 2, "tiny"
        extra = ["--threads", "1"]
    elif args.threads:
        extra = ["--threads", str(args.threads)]
    contenders = contenders_for(args.contenders, args.device)
    rc = 0
    for shape in shapes:
        batch, seconds = shape.lower().split("x")
        argv = ["bench_model.py", "--workloads", "ctc-infer", "--batch", batch, "--seconds", seconds,
                "--repeats", str(args.repeats), "--preset", args.preset, "--device", args.device,
                "--amp", args.amp, "--contenders", contenders] + extra
        print(f"\n=== ctc-infer {batch} x {seconds} s", flush=True)
        sys.argv = argv
        rc = rc or bench_model.main()
    return rc


if __name__ == "__main__":
    sys.exit(main())
