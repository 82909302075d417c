#!/usr/bin/env python3
"""One fairseq manifest from several (e.g. LibriSpeech's training subsets -> the pretraining set).

    python3 combine_manifests.py DST SRC1 SRC2 ...      # prefixes: SRCk.tsv (+ .wrd / .ltr) -> DST.tsv (+ labels)

Each manifest has its own root (line 1); the result's root is their common directory and every row's path is
rewritten relative to it. Labels (.wrd, .ltr) are combined when every source has them. DST.tsv is written last
(through a temporary file), so its presence means the combination is complete; a source with as many label lines
as rows is required, otherwise the error names the file.
"""

from __future__ import annotations

import os
import sys

TOOL = "combine_manifests.py"


def fail(message: str) -> None:
    sys.exit(f"{TOOL}: {message}")


def read_rows(src: str) -> tuple[str, list[str]]:
    path = src + ".tsv"
    if not os.path.isfile(path):
        fail(f"manifest not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        fail(f"{path}: empty file (line 1 must be the audio root)")
    root, rows = lines[0], lines[1:]
    for n, row in enumerate(rows, start=2):
        if row.count("\t") != 1:
            fail(f"{path}:{n}: expected 'relative/path<TAB>num_samples', got {row!r}")
    return root, rows


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        fail("usage: combine_manifests.py DST SRC [SRC ...]")
    dst, srcs = argv[0], argv[1:]
    roots, rows_of = [], []
    for src in srcs:
        root, rows = read_rows(src)
        roots.append(root)
        rows_of.append(rows)
    common = os.path.commonpath(roots)
    rows = []
    for root, src_rows in zip(roots, rows_of):
        for row in src_rows:
            rel, samples = row.split("\t")
            rows.append(f"{os.path.relpath(os.path.join(root, rel), common)}\t{samples}")
    outputs: dict[str, list[str]] = {}
    for ext in ("wrd", "ltr"):
        if not all(os.path.isfile(f"{src}.{ext}") for src in srcs):
            continue
        labels = []
        for src, src_rows in zip(srcs, rows_of):
            with open(f"{src}.{ext}", encoding="utf-8") as f:
                lines = f.read().splitlines()
            if len(lines) != len(src_rows):
                fail(f"{src}.{ext} has {len(lines)} lines, {src}.tsv has {len(src_rows)} rows")
            labels += lines
        outputs[ext] = labels
    outputs["tsv"] = [common] + rows  # last: its presence means complete
    for ext, lines in outputs.items():
        tmp = f"{dst}.{ext}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, f"{dst}.{ext}")
    print(f"{dst}.tsv: {len(rows)} rows from {len(srcs)} manifests", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
