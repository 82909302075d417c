#!/usr/bin/env python3
"""Subsets of a fairseq manifest and its labels, for subset_manifest.sh and subset_speakers.sh.

    python3 subset.py rows SRC DST N SEED                     # N random rows (seeded)
    python3 subset.py speakers SRC DST NUM_SPEAKERS MINUTES SEED   # few voices, up to MINUTES of audio
                                                                   # ("all": every speaker / no limit)

SRC and DST are prefixes: SRC.tsv (with SRC.wrd / SRC.ltr when present) -> DST.tsv / DST.wrd / DST.ltr. Kept rows
stay in their original order; DST.tsv is written last, so its presence means the subset is complete.
"""

from __future__ import annotations

import os
import random
import sys

SAMPLE_RATE = 16000


def read(src: str) -> tuple[str, list[str]]:
    with open(src + ".tsv", encoding="utf-8") as f:
        root, *rows = f.read().splitlines()
    return root, rows


def pick_rows(tool: str, src: str, rows: list[str], n: int, seed: int) -> list[int]:
    if n > len(rows):
        sys.exit(f"{tool}: asked for {n} rows but {src}.tsv has {len(rows)} rows")
    return random.Random(seed).sample(range(len(rows)), n)


def pick_speakers(tool: str, src: str, dst: str, rows: list[str], nspk: int | None, minutes: float, seed: int
                  ) -> list[int]:
    """NUM_SPEAKERS speakers (the first directory of a row's path; None: all), then their rows in a seeded order up
    to MINUTES of audio."""
    speaker = [r.split("\t")[0].split("/")[0] for r in rows]
    speakers = sorted(set(speaker))
    nspk = len(speakers) if nspk is None else nspk
    if nspk > len(speakers):
        sys.exit(f"{tool}: asked for {nspk} speakers but {src}.tsv has {len(speakers)}")
    rng = random.Random(seed)
    chosen = set(rng.sample(speakers, nspk))
    order = [i for i in range(len(rows)) if speaker[i] in chosen]
    rng.shuffle(order)
    keep, total = [], 0.0
    for i in order:
        if total >= minutes * 60:
            break
        keep.append(i)
        total += int(rows[i].split("\t")[1]) / SAMPLE_RATE
    print(f"{dst}.tsv: {len(keep)} utterances, {total / 60:.1f} min from {nspk} speakers "
          f"({', '.join(sorted(chosen))})", file=sys.stderr)
    return keep


def write(tool: str, src: str, dst: str, root: str, rows: list[str], keep: list[int]) -> None:
    keep = sorted(keep)
    outputs = {}
    for ext in ("wrd", "ltr"):
        if os.path.exists(f"{src}.{ext}"):
            with open(f"{src}.{ext}", encoding="utf-8") as f:
                labels = f.read().splitlines()
            if len(labels) != len(rows):
                sys.exit(f"{tool}: {src}.{ext} has {len(labels)} lines, {src}.tsv has {len(rows)} rows")
            outputs[ext] = [labels[i] for i in keep]
    outputs["tsv"] = [root] + [rows[i] for i in keep]  # last
    for ext, lines in outputs.items():
        tmp = f"{dst}.{ext}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, f"{dst}.{ext}")


def main() -> None:
    mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    root, rows = read(src)
    if mode == "rows":
        tool = "subset_manifest.sh"
        keep = pick_rows(tool, src, rows, int(sys.argv[4]), int(sys.argv[5]))
    else:
        tool = "subset_speakers.sh"
        nspk, minutes = sys.argv[4], sys.argv[5]
        keep = pick_speakers(tool, src, dst, rows, None if nspk == "all" else int(nspk),
                             float("inf") if minutes == "all" else float(minutes), int(sys.argv[6]))
    write(tool, src, dst, root, rows, keep)


if __name__ == "__main__":
    main()
