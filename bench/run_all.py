#!/usr/bin/env python3
"""Runs every benchmark in bench/ (bench_*.py) one after another and collects their tables.

    python bench/run_all.py            # full runs (tens of minutes on 2 cores)
    python bench/run_all.py --quick    # seconds each: proves the scripts still work
    python bench/run_all.py --only model,manifest

Each script compares w2v2 with its peers (transformers, torchaudio) on the same machine, interleaving the
contenders in one process, and prints medians and ratios; BENCHMARKS.md records the full results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. model,manifest")
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    scripts = sorted(HERE.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        missing = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if missing:
            print(f"no benchmark named {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    failed = []
    for script in scripts:
        print(f"\n=== {script.name}{' --quick' if args.quick else ''}", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        rc = subprocess.call(cmd)
        print(f"=== {script.name}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
