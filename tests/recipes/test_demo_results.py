"""The demo's results table (recipes/demo/local/results.py) from real `w2v2 score` reports: with a pretrained and a
scratch model it adds the relative error reduction that pretraining brings, per decoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "local" / "results.py"


def _decode_dir(root: Path, name: str, refs: list[str], hyps: list[str]) -> None:
    """ref.trn/hyp.trn of one model and decoder, scored by `w2v2 score --report` as the recipe does."""
    out = root / name
    out.mkdir(parents=True)
    for kind, lines in (("ref", refs), ("hyp", hyps)):
        (out / f"{kind}.trn").write_text("".join(f"{t} (spk-{i:03d})\n" for i, t in enumerate(lines)))
    subprocess.run([sys.executable, "-m", "w2v2cli", "score", str(out / "ref.trn"), str(out / "hyp.trn"),
                    "--report", str(out / "report")], check=True, capture_output=True)


def test_pretrained_and_scratch_rows_and_the_relative_gain(tmp_path):
    refs = ["the cat sat on the mat", "a dog ran home", "we read books"]  # 13 words, 50 letters (no spaces)
    _decode_dir(tmp_path, "pretrained_viterbi", refs, ["the cat sat on the map", "a dog ran home", "we red books"])
    _decode_dir(tmp_path, "scratch_viterbi", refs, ["the bat sad on a map", "a dog ran", "we red book"])
    _decode_dir(tmp_path, "pretrained_beam", refs, refs)
    _decode_dir(tmp_path, "scratch_beam", refs, ["the cat sat on the mat", "a dog ran home", "we red books"])
    res = subprocess.run([sys.executable, str(RESULTS), str(tmp_path)], check=True, capture_output=True, text=True)
    lines = res.stdout.splitlines()
    assert [line.split()[:2] for line in lines[1:5]] == [["pretrained", "greedy"], ["scratch", "greedy"],
                                                        ["pretrained", "4-gram"], ["scratch", "4-gram"]]
    # greedy: 2 of 13 words wrong against 7 (bat, sad, a, map; home deleted; red, book): WER 15.38 vs 53.85 %
    assert lines[1].split()[2] == "15.38" and lines[2].split()[2] == "53.85"
    assert lines[5].startswith("pretraining vs scratch, greedy: WER +71.4 % lower, CER ")
    # with the LM the pretrained model is perfect: 100 % lower
    assert lines[6].startswith("pretraining vs scratch, 4-gram beam: WER +100.0 % lower")
