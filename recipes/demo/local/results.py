#!/usr/bin/env python3
"""The demo's final table: test-clean WER and CER of each model and decoder, from `w2v2 score` reports.

    python3 local/results.py exp/demo/decode        # reads DIR/MODEL_DECODER/report/summary.json

Rows are `MODEL_DECODER` directories (e.g. pretrained_viterbi, pretrained_beam, scratch_viterbi), printed
greedy first, then with the language model; with both a pretrained and a scratch model, the relative error
reduction that pretraining brings, per decoder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    root = Path(sys.argv[1])
    rows = []
    for summary in sorted(root.glob("*/report/summary.json")):
        model, _, decoder = summary.parent.parent.name.rpartition("_")
        data = json.loads(summary.read_text(encoding="utf-8"))
        wer, cer = float(data["wer"]), float(data["cer"])
        rows.append((decoder != "viterbi", model, "greedy" if decoder == "viterbi" else "4-gram beam",
                     wer, cer, data["word"]["total"]["sentences"]))
    if not rows:
        print(f"no score reports under {root}", file=sys.stderr)
        return 1
    print(f"{'model':<12} {'decoder':<12} {'WER %':>7} {'CER %':>7} {'utts':>5}")
    for _, model, decoder, wer, cer, n in sorted(rows):
        print(f"{model:<12} {decoder:<12} {wer:>7.2f} {cer:>7.2f} {n:>5}")
    scores = {(model, decoder): (wer, cer) for _, model, decoder, wer, cer, _ in rows}
    for decoder in ("greedy", "4-gram beam"):
        pre, scratch = scores.get(("pretrained", decoder)), scores.get(("scratch", decoder))
        if pre and scratch and scratch[0] > 0 and scratch[1] > 0:
            print(f"pretraining vs scratch, {decoder}: WER {100 * (1 - pre[0] / scratch[0]):+.1f} % lower, "
                  f"CER {100 * (1 - pre[1] / scratch[1]):+.1f} % lower (relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
