"""The demo recipe itself, interrupted: Ctrl-C during its pretraining stage saves a checkpoint, exits 130, marks
nothing done (the finished stages stay done), and running the recipe again continues that stage from the
checkpoint and marks it done. Real processes: synthesis, manifests, the recipe's own `w2v2 pretrain`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from w2v2cli.train.logging import read_metrics

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TINY = ["--hours", "0.02", "--speakers", "3", "--festival-hours", "0.01", "--lm-sentences", "200",
        "--labeled-speakers", "2", "--labeled-minutes", "0.5", "--pretrain-minutes", "", "--pretrain-updates", "60",
        "--finetune-minutes", "", "--finetune-updates", "10", "--threads", "1", "--nj", "1", "--stop-stage", "2"]


def _updates(run: Path) -> list[int]:
    return [r["update"] for r in read_metrics(run) if r.get("split") == "train"]


def test_demo_interrupted_in_pretraining_exits_130_and_continues(tmp_path):
    exp = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = ["bash", str(RECIPES / "demo" / "run.sh"), "--dir", str(exp), *TINY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # the signal goes to the process group, as Ctrl-C does
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and max(_updates(exp / "pretrain"), default=0) < 10:
            assert time.monotonic() < deadline, "the demo never reached pretraining update 10"
            time.sleep(0.1)
        assert proc.poll() is None, "the demo finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out[-2000:]
    assert (exp / ".synth.done").is_file() and (exp / ".manifest.done").is_file()
    assert not (exp / ".pretrain.done").exists()
    stopped = max(_updates(exp / "pretrain"))
    assert 10 <= stopped < 60
    assert (exp / "pretrain" / "checkpoints" / f"update_{stopped:08d}" / "trainer_state.pt").is_file()
    flat = " ".join(out.split())  # rich wraps long lines at the console width
    assert "interrupted (SIGINT)" in flat and "--resume auto" in flat, out[-2000:]

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resumed from" in again.stdout + again.stderr and "Stage 0" not in again.stdout + again.stderr
    assert (exp / ".pretrain.done").is_file()
    updates = _updates(exp / "pretrain")
    assert max(updates) == 60 and len(updates) == len(set(updates))  # no update logged twice


def test_demo_runs_end_to_end_at_toy_scale_and_reruns_as_a_no_op(tmp_path):
    # every stage, tiny settings: synthesis -> manifests -> pretraining -> fine-tuning -> 4-gram -> decoding -> scoring
    exp = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    toy = TINY[:TINY.index("--stop-stage")] + TINY[TINY.index("--stop-stage") + 2:]
    toy[toy.index("--pretrain-updates") + 1] = "20"
    toy += ["--finetune-set", "task.output_bias=prior checkpoint.best_metric=cer"]
    cmd = ["bash", str(RECIPES / "demo" / "run.sh"), "--dir", str(exp), *toy]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    for marker in (".synth.done", ".manifest.done", ".pretrain.done", ".finetune_pretrained.done", ".lm.done"):
        assert (exp / marker).is_file(), marker
    assert (exp / "pretrain" / "checkpoint_last").exists() and (exp / "finetune_pretrained" / "checkpoint_best").exists()
    settings = yaml.safe_load((exp / "finetune_pretrained" / "config.yaml").read_text())  # --finetune-set arrived
    assert (settings["task"]["output_bias"], settings["checkpoint"]["best_metric"]) == ("prior", "cer")
    speakers = (exp / "corpus" / "SPEAKERS.TXT").read_text().splitlines()[1:]
    voices = [line.split("|")[-1].split()[0] for line in speakers]
    assert voices.count("festival") == 3 and len(voices) == 3 + 3 + 2 + 2  # train, festival, dev, test
    rows = (exp / "results.txt").read_text().splitlines()
    assert rows[0].split() == ["model", "decoder", "WER", "%", "CER", "%", "utts"]
    assert [r.split()[:2] for r in rows[1:]] == [["pretrained", "greedy"], ["pretrained", "4-gram"]]
    n_test = len((exp / "data" / "test-clean.tsv").read_text().splitlines()) - 1
    for decoder, row in zip(("viterbi", "beam"), rows[1:]):
        out = exp / "decode" / f"pretrained_{decoder}"
        assert len((out / "hyp.trn").read_text().splitlines()) == n_test  # one line per utterance, empty or not
        summary = json.loads((out / "report" / "summary.json").read_text())
        assert row.split()[-3:-1] == [f"{float(summary['wer']):.2f}", f"{float(summary['cer']):.2f}"]
    assert all(r.split()[-1] == str(n_test) for r in rows[1:])

    # again: the trained stages are skipped (done markers), decoding and scoring give the same table
    trained = {p: p.stat().st_mtime_ns for p in exp.rglob("*.safetensors")}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    log = again.stdout + again.stderr
    assert not any(f"Stage {n}:" in log for n in (0, 1, 2, 3, 4)), log[-2000:]
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*.safetensors")} == trained
    assert (exp / "results.txt").read_text().splitlines() == rows
