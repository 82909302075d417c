#!/usr/bin/env python3
"""Decoding real-time factor: our CTC model vs transformers' Wav2Vec2ForCTC and torchaudio's wav2vec2_model,
BASE preset, random weights (identical in all three), the same audio, interleaved.

    python bench/bench_decode.py               # 1 x 10 s and 8 x 10 s, 7 repeats, default and keep-memory peers
    python bench/bench_decode.py --quick       # tiny model, 1 x 2 s: proves the script works
    python bench/bench_decode.py --shapes 1x10 4x30 --device cuda --amp bf16

The acoustic model's forward pass is what decoding costs (greedy CTC on top is < 1 ms per utterance; beam
search with a language model is measured by `w2v2 decode`'s summary). RTF = wall seconds per audio second.
Uses bench_model.py's worker processes: each contender in its own process (own malloc setting, own RSS),
and the script checks that all contenders produce the same logits (max difference printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--shapes", nargs="+", default=["1x10", "8x10"], help="BATCHxSECONDS")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--preset", default="base")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--contenders", default="w2v2,transformers,transformers+keep,torchaudio,torchaudio+keep")
    args = p.parse_args()
    shapes = args.shapes
    extra = []
    if args.quick:
        shapes, args.repeats, args.preset = ["1x2"], 2, "tiny"
        extra = ["--threads", "1"]
    elif args.threads:
        extra = ["--threads", str(args.threads)]
    rc = 0
    for shape in shapes:
        batch, seconds = shape.lower().split("x")
        argv = ["bench_model.py", "--workloads", "ctc-infer", "--batch", batch, "--seconds", seconds,
                "--repeats", str(args.repeats), "--preset", args.preset, "--device", args.device,
                "--amp", args.amp, "--contenders", args.contenders] + extra
        print(f"\n=== ctc-infer {batch} x {seconds} s", flush=True)
        sys.argv = argv
        rc = rc or bench_model.main()
    return rc


if __name__ == "__main__":
    sys.exit(main())
