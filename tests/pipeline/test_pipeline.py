"""The pipeline as a user runs it, through the `w2v2` command line, on synthetic speech:

subset a labeled manifest (recipe tool) -> fine-tune a tiny CTC model -> build a KenLM 3-gram + lexicon from the
training transcripts -> decode greedily and with lexicon + LM beam search -> score. Proves, with numbers, that a
fine-tuned model decodes, that the LM beam search lowers WER against greedy decoding on the same test set, that word
timestamps are inside their utterance and ordered, and that `w2v2 score` agrees with `w2v2 decode`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]

# Overfit six utterances: no masking, no freezing, constant lr. The learning curve is steep (all wrong until update
# 20-45, nearly all right 10-20 updates later) and its exact position varies with threads and CPU, so the run validates and keeps a
# checkpoint every 4 updates and the test decodes the first one that is part-trained (dev WER 15-60%): letter
# errors that a lexicon + LM can repair.
FINETUNE_SETS = ["data.num_workers=0", "logging.progress=plain", "logging.tensorboard=false", "optim.lr=2e-3",
                 "lr.scheduler=constant", "task.freeze_finetune_updates=0", "model.mask_prob=0",
                 "model.mask_channel_prob=0", "checkpoint.validate_interval_updates=2",
                 "checkpoint.save_interval_updates=4", "checkpoint.keep_last=30"]
MAX_UPDATES = 120


def w2v2(*args: str | Path) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "w2v2cli", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, f"w2v2 {' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr}"
    return res


def _wer(trn_dir: Path) -> float:
    """WER from `w2v2 score --report`'s machine-readable summary."""
    return json.loads((trn_dir / "report" / "summary.json").read_text())["wer"]


@pytest.fixture(scope="module")
def pipeline(libri_manifests, tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    train = libri_manifests["train-clean-100"]
    six = work / "six"
    subprocess.run(["bash", ROOT / "recipes/utils/subset_manifest.sh", train.with_suffix(""), six, "6", "1"],
                   check=True)
    (work / "dict.ltr.txt").write_text((train.parent / "dict.ltr.txt").read_text())
    sets = [a for s in FINETUNE_SETS for a in ("--set", s)]
    w2v2("finetune", f"{six}.tsv", "--valid", f"{six}.tsv", "--init", "none", "--config", "tiny",
         "--out", work / "ft", "--max-updates", str(MAX_UPDATES), "--seed", "1", *sets)
    w2v2("lm", "build", train.with_suffix(".wrd"), "--order", "3", "--out", work / "lm")
    curve = [(r["update"], 100 * r["wer"]) for r in map(json.loads, (work / "ft" / "metrics.jsonl").open())
             if r.get("split") == "valid"]
    part_trained = [u for u, wer in curve if 15.0 <= wer <= 60.0 and u % 4 == 0]  # saved every 4 updates
    assert part_trained, f"no part-trained checkpoint in {MAX_UPDATES} updates: valid WER curve {curve}"
    ckpt = work / "ft" / "checkpoints" / f"update_{part_trained[0]:08d}"
    beam = ["--decoder", "beam", "--lexicon", work / "lm" / "lexicon.txt", "--lm", work / "lm" / "lm.bin",
            "--beam", "100", "--lm-weight", "2.0", "--word-score", "-1.0"]
    for name, extra in (("greedy", []), ("beam", beam)):
        res = w2v2("decode", ckpt, f"{six}.tsv", "--out", work / name, *extra)
        (work / name / "decode_stdout.txt").write_text(res.stdout)
        w2v2("score", work / name / "ref.trn", work / name / "hyp.trn", "--report", work / name / "report")
    return work


def test_lm_beam_search_beats_greedy_on_a_finetuned_model(pipeline):
    greedy, beam = _wer(pipeline / "greedy"), _wer(pipeline / "beam")
    assert 5.0 <= greedy < 90.0, f"greedy WER {greedy}%: the model should be part-trained for this test"
    # The synthetic English draws from a 2,300-word lexicon with Zipf-like frequencies, so a 3-gram of a few
    # hundred training sentences constrains content words far less than the old 217-word grammar did (where the
    # LM halved WER); measured 22 % vs 38 % greedy (0.58x): a quarter lower is the bar.
    assert beam <= 0.75 * greedy, f"LM beam search WER {beam}% is not well below greedy {greedy}%"


def test_outputs_are_in_manifest_order_with_times_inside_each_utterance(pipeline):
    tsv = (pipeline / "six.tsv").read_text().splitlines()
    root, rows = Path(tsv[0]), [line.split("\t") for line in tsv[1:]]
    refs = (pipeline / "six.wrd").read_text().splitlines()
    for name in ("greedy", "beam"):
        records = [json.loads(line) for line in (pipeline / name / "hyp.jsonl").read_text().splitlines()]
        assert len(records) == len(rows)
        hyp_wrd = (pipeline / name / "hyp.wrd").read_text().splitlines()
        ref_trn = (pipeline / name / "ref.trn").read_text().splitlines()
        for (rel, n), rec, hyp, ref_line, ref in zip(rows, records, hyp_wrd, ref_trn, refs):
            utt = Path(rel).stem
            assert rec["id"] == utt and ref_line == f"{ref} ({utt})"
            assert " ".join(w["word"] for w in rec["words"]) == hyp
            duration = sf.info(root / rel).frames / 16000
            assert int(n) == sf.info(root / rel).frames
            starts = [w["start"] for w in rec["words"]]
            assert starts == sorted(starts)
            for w in rec["words"]:
                assert 0.0 <= w["start"] < w["end"] <= duration + 0.02
                assert 0.0 < w["confidence"] <= 1.0


def test_score_agrees_with_the_decode_summary(pipeline):
    for name in ("greedy", "beam"):
        summary = json.loads((pipeline / name / "report" / "summary.json").read_text())
        refs = [l.rsplit(" (", 1)[0].split() for l in (pipeline / name / "ref.trn").read_text().splitlines()]
        assert summary["word"]["total"]["ref_tokens"] == sum(map(len, refs))
        hyps = [l.rsplit(" (", 1)[0].split() for l in (pipeline / name / "hyp.trn").read_text().splitlines()]
        assert summary["word"]["total"]["hyp_tokens"] == sum(map(len, hyps))
        # the decode summary table printed the same WER as the scorer
        assert f"{summary['wer']:.2f}" in (pipeline / name / "decode_stdout.txt").read_text()
