#!/usr/bin/env python3
"""A recipe's final table: WER and CER of every scored decode, from `w2v2 score --report` summaries.

    python3 results_table.py exp/decode                    # finds DIR/**/report/summary.json
    python3 results_table.py exp/decode --mean             # plus the mean over rows of each decoder (languages)

A row per decode directory: its path under DIR split into columns (e.g. `train-1h | test-clean | 4gram`, or
`cv_de | viterbi`), then WER %, CER % and the number of utterances; printed as a Markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: results_table.py DECODE_DIR [--mean]", file=sys.stderr)
        return 1
    root, mean = Path(argv[0]), "--mean" in argv[1:]
    rows = []
    for summary in sorted(root.glob("**/report/summary.json")):
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            wer, cer, n = float(data["wer"]), float(data["cer"]), int(data["word"]["total"]["sentences"])
        except (ValueError, KeyError, TypeError) as err:
            print(f"results_table.py: {summary}: not a w2v2 score summary ({err})", file=sys.stderr)
            return 1
        rows.append((summary.parent.parent.relative_to(root).parts, wer, cer, n))
    if not rows:
        print(f"results_table.py: no score reports (*/report/summary.json) under {root}", file=sys.stderr)
        return 1
    width = max(len(parts) for parts, *_ in rows)
    print("| " + " | ".join(["decode"] * width) + " | WER % | CER % | utterances |")
    print("|" + "---|" * (width + 3))
    for parts, wer, cer, n in rows:
        cells = list(parts) + [""] * (width - len(parts))
        print("| " + " | ".join(cells) + f" | {wer:.2f} | {cer:.2f} | {n} |")
    if mean:  # the mean over the rows that share the last column (the decoder), e.g. across languages
        for last in sorted({parts[-1] for parts, *_ in rows}):
            group = [(w, c) for parts, w, c, _ in rows if parts[-1] == last]
            cells = ["mean"] + [""] * (width - 2) + [last]
            print("| " + " | ".join(cells) + f" | {sum(w for w, _ in group) / len(group):.2f} | "
                  f"{sum(c for _, c in group) / len(group):.2f} | {len(group)} rows |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
