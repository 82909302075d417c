#!/usr/bin/env python3
"""Files/s of `w2v2 manifest` header reads on a generated LibriSpeech-layout folder.

    python bench/bench_manifest.py            # 20,000 files (hard links of a few synthetic FLACs)
    python bench/bench_manifest.py --quick    # 1,000 files, seconds
    python bench/bench_manifest.py --files 100000 --jobs 1 2 4

Contenders, interleaved in one process on the same folder (page cache warm after the first pass):
- `fairseq-style`: one `soundfile.info(path).frames` per file in a loop, as fairseq's wav2vec_manifest.py does;
- `w2v2 -j N`: `build_manifests` (folder mode, header reads in N processes, atomic writes);
- `w2v2 librispeech -j N`: the same plus transcripts, .wrd/.ltr and dict.ltr.txt.
Prints the median files/s over the repeats. LibriSpeech 960 h has 281,241 files: divide to get the time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v2cli.data.prepare import ManifestConfig, build_manifests  # noqa: E402
from w2v2cli.synth.librispeech import make_librispeech  # noqa: E402


def make_folder(work: Path, n_files: int) -> Path:
    """A LibriSpeech-layout subset of `n_files` hard links to 8 synthetic utterances (100 per chapter)."""
    seed = make_librispeech(work / "seed", subsets={"train-clean-100": (2, 4)}, seed=0, jobs=2)
    sources = [(u.path, u.text) for u in seed.utterances]
    subset = work / "LibriSpeech" / "train-clean-100"
    for start in range(0, n_files, 100):
        spk, chap = 1000 + start // 1000, start // 100
        d = subset / str(spk) / str(chap)
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for k in range(start, min(start + 100, n_files)):
            src, text = sources[k % len(sources)]
            utt = f"{spk}-{chap}-{k % 100:04d}"
            os.link(src, d / f"{utt}.flac")
            lines.append(f"{utt} {text}\n")
        (d / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    return subset


def fairseq_style(subset: Path, dest: Path) -> int:
    n = 0
    with open(dest / "train.tsv", "w") as f:
        print(subset, file=f)
        for path in subset.rglob("*.flac"):
            print(f"{path.relative_to(subset)}\t{sf.info(str(path)).frames}", file=f)
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 files, one repeat")
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n_files, repeats = (1000, 1) if args.quick else (args.files, args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        subset = make_folder(work, n_files)
        print(f"folder: {n_files} FLAC files in {subset} ({time.perf_counter() - t:.1f} s to make)")
        fairseq_style(subset, work)  # warm the page cache so every contender reads from memory
        times: dict[str, list[float]] = {}
        for r in range(repeats):
            t = time.perf_counter()
            fairseq_style(subset, work)
            times.setdefault("fairseq-style (soundfile.info loop)", []).append(time.perf_counter() - t)
            for jobs in args.jobs:
                for corpus in ("folder", "librispeech"):
                    dest = work / f"out-{corpus}-{jobs}-{r}"
                    t = time.perf_counter()
                    res = build_manifests(ManifestConfig(subset, dest, corpus=corpus, valid_percent=0.01, jobs=jobs,
                                                         progress=False))
                    times.setdefault(f"w2v2 {corpus} -j {jobs}", []).append(time.perf_counter() - t)
                    assert sum(res.num_files.values()) == n_files
        print(f"\n{'contender':<40} {'median s':>9} {'files/s':>10} {'281k files':>11}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:<40} {med:9.2f} {n_files / med:10,.0f} {281241 / (n_files / med) / 60:9.1f} m")
    return 0


if __name__ == "__main__":
    sys.exit(main())
