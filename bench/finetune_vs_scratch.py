#!/usr/bin/env python3
"""Does pretraining help when labels are scarce? Fine-tuning from a tiny pretrained model vs from scratch.

    python3 bench/finetune_vs_scratch.py --work /tmp/ftbench                      # the whole measurement
    python3 bench/finetune_vs_scratch.py --work /tmp/ftbench --pretrain-minutes 5 --finetune-updates 600

Stages (each is skipped when its output is complete, so a re-run continues):
1. `w2v2 synth librispeech` a synthetic LibriSpeech-layout corpus (about `--hours` of training audio; dev-clean
   and test-clean use held-out sentences and other voices), then `w2v2 manifest --corpus librispeech`.
2. A labelled subset of train-clean-100 (`--labeled-minutes`, seeded), as the paper's 10-minute split.
3. `w2v2 pretrain --config tiny` on all of train-clean-100, unlabelled, for at most `--pretrain-updates`
   updates or `--pretrain-minutes` of wall time (then SIGTERM: the trainer saves and stops cleanly).
4. `w2v2 finetune --config tiny` (the tiny_ctc recipe) twice with the same labelled subset, updates, seed and
   validation on dev-clean: `--init` the pretraining checkpoint, and `--init none`. Both run at once.
5. Greedy-decoding WER/CER of each run's checkpoint_best (chosen by dev WER) on test-clean.

Results: WORK/results.json and a table on stdout. Every run uses one intra-op thread per process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], env: dict, logfile: Path, timeout: float | None = None) -> tuple[int, float]:
    """Runs a command with its output in `logfile`; on timeout sends SIGTERM (a clean, saving stop)."""
    log(" ".join(cmd) + f"  > {logfile}")
    t0 = time.monotonic()
    with open(logfile, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"time budget reached: SIGTERM to {cmd[1]} (it saves a checkpoint and stops)")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait()
    if rc != 0:
        sys.exit(f"{cmd[:2]} failed with exit code {rc}; see {logfile}")
    return rc, time.monotonic() - t0


def subset(src: Path, dst: Path, minutes: float, seed: int) -> tuple[int, float]:
    """Random rows of manifest `src` (with .ltr/.wrd) totalling about `minutes` of audio; rows keep their order."""
    root, *rows = src.read_text(encoding="utf-8").splitlines()
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    keep, total = [], 0.0
    for i in order:
        if total >= minutes * 60:
            break
        keep.append(i)
        total += int(rows[i].split("\t")[1]) / 16000
    keep.sort()
    for ext in ("ltr", "wrd"):
        lines = src.with_suffix(f".{ext}").read_text(encoding="utf-8").splitlines()
        dst.with_suffix(f".{ext}").write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
    dst.write_text(root + "\n" + "".join(rows[i] + "\n" for i in keep), encoding="utf-8")  # the tsv last
    return len(keep), total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("exp/bench_finetune_vs_scratch"))
    ap.add_argument("--hours", type=float, default=1.0, help="training audio to synthesise (unlabelled pool)")
    ap.add_argument("--speakers", type=int, default=6)
    ap.add_argument("--labeled-minutes", type=float, default=10.0, help="labelled subset for fine-tuning")
    ap.add_argument("--pretrain-updates", type=int, default=6000)
    ap.add_argument("--pretrain-minutes", type=float, default=18.0, help="wall-time cap of pretraining")
    ap.add_argument("--finetune-updates", type=int, default=1200)
    ap.add_argument("--validate-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    w2v2 = [sys.executable, "-m", "w2v2cli"]
    t_start = time.monotonic()

    # 1. corpus and manifests
    corpus, data = work / "LibriSpeech", work / "data"
    run(w2v2 + ["synth", "librispeech", str(corpus), "--hours", str(args.hours), "--speakers", str(args.speakers),
                "--seed", str(args.seed), "--jobs", "2"], env, work / "synth.log")
    if not (data / "test-clean.tsv").is_file():
        run(w2v2 + ["manifest", str(corpus), "--dest", str(data), "--corpus", "librispeech", "--jobs", "2"], env,
            work / "manifest.log")
    train_all = data / "train-clean-100.tsv"
    n_all = len(train_all.read_text().splitlines()) - 1
    hours_all = sum(int(r.split("\t")[1]) for r in train_all.read_text().splitlines()[1:]) / 16000 / 3600

    # 2. the labelled subset
    labeled = data / "train-labeled.tsv"
    n_lab, sec_lab = subset(train_all, labeled, args.labeled_minutes, args.seed)
    log(f"labelled subset: {n_lab} utterances, {sec_lab / 60:.1f} min (of {n_all} utterances, {hours_all:.2f} h)")

    # 3. pretraining (unlabelled, all training audio)
    pt = work / "pretrain"
    if not (work / ".pretrain.done").exists():
        _, secs = run(w2v2 + ["pretrain", str(train_all), "--config", "tiny", "--out", str(pt), "--max-updates",
                              str(args.pretrain_updates), "--seed", str(args.seed), "--resume", "auto",
                              "--set", "data.num_workers=0", "--set", "logging.progress=plain",
                              "--set", "logging.log_interval=100", "--set", "checkpoint.save_interval_updates=500",
                              "--set", f"lr.warmup_updates={max(30, args.pretrain_updates // 20)}"],
                      env, work / "pretrain.log", timeout=args.pretrain_minutes * 60)
        (work / ".pretrain.done").write_text(f"{secs:.0f}\n")
    pt_ckpt = (pt / "checkpoint_last").resolve()
    pt_records = [json.loads(line) for line in (pt / "metrics.jsonl").read_text().splitlines() if line.strip()]
    pt_train = [r for r in pt_records if r.get("split") == "train"]
    pt_info = {"updates": int(pt_ckpt.name.split("_")[-1]), "seconds": float((work / ".pretrain.done").read_text()),
               "first": pt_train[0] if pt_train else None, "last": pt_train[-1] if pt_train else None}
    log(f"pretraining: {pt_info['updates']} updates; last logged {pt_info['last']}")

    # 4. fine-tuning, pretrained vs scratch, side by side (one thread each)
    runs = {"pretrained": str(pt_ckpt), "scratch": "none"}
    procs = {}
    for name, init in runs.items():
        out = work / f"ft-{name}"
        if (work / f".ft-{name}.done").exists():
            continue
        cmd = w2v2 + ["finetune", str(labeled), "--valid", str(data / "dev-clean.tsv"), "--init", init,
                      "--config", "tiny", "--out", str(out), "--max-updates", str(args.finetune_updates),
                      "--seed", str(args.seed), "--resume", "auto",
                      "--set", "data.num_workers=0", "--set", "logging.progress=plain",
                      "--set", "logging.log_interval=50",
                      "--set", f"checkpoint.validate_interval_updates={args.validate_every}",
                      "--set", f"checkpoint.save_interval_updates={args.validate_every}"]
        log(" ".join(cmd))
        logf = open(work / f"ft-{name}.log", "a", encoding="utf-8")
        procs[name] = (subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf, time.monotonic())
    for name, (proc, logf, t0) in procs.items():
        rc = proc.wait()
        logf.close()
        if rc != 0:
            sys.exit(f"fine-tuning '{name}' failed with exit code {rc}; see {work / f'ft-{name}.log'}")
        (work / f".ft-{name}.done").write_text(f"{time.monotonic() - t0:.0f}\n")

    # 5. test-clean WER of each checkpoint_best
    import torch

    from w2v2cli.train.finetune import evaluate_ctc

    torch.set_num_threads(1)
    results = {"settings": vars(args) | {"work": str(work)},
               "corpus": {"train_utterances": n_all, "train_hours": round(hours_all, 3),
                          "labeled_utterances": n_lab, "labeled_minutes": round(sec_lab / 60, 2),
                          "dev_utterances": len((data / "dev-clean.tsv").read_text().splitlines()) - 1,
                          "test_utterances": len((data / "test-clean.tsv").read_text().splitlines()) - 1},
               "pretrain": pt_info, "finetune": {}}
    for name in runs:
        out = work / f"ft-{name}"
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        valid = [{"update": r["update"], "wer": round(r["wer"], 4), "cer": round(r["cer"], 4)}
                 for r in records if r.get("split") == "valid"]
        test = evaluate_ctc(out / "checkpoint_best", [data / "test-clean.tsv"])
        results["finetune"][name] = {
            "dev_curve": valid, "best_dev_wer": min(v["wer"] for v in valid),
            "test_wer": round(test["wer"], 4), "test_cer": round(test["cer"], 4),
            "test_empty_frac": round(test["empty_frac"], 3),
            "seconds": float((work / f".ft-{name}.done").read_text()),
            "warnings": [r["message"][:200] for r in records if r.get("event") == "warning"],
        }
    results["total_minutes"] = round((time.monotonic() - t_start) / 60, 1)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    p, s = results["finetune"]["pretrained"], results["finetune"]["scratch"]
    print(f"\nlabelled: {n_lab} utterances ({sec_lab / 60:.1f} min); unlabelled: {hours_all:.2f} h; "
          f"pretraining: {pt_info['updates']} updates; fine-tuning: {args.finetune_updates} updates each")
    print(f"{'init':<12}{'best dev WER':>14}{'test WER':>10}{'test CER':>10}")
    for name, r in (("pretrained", p), ("scratch", s)):
        print(f"{name:<12}{100 * r['best_dev_wer']:>13.1f}%{100 * r['test_wer']:>9.1f}%{100 * r['test_cer']:>9.1f}%")
    verdict = "holds" if p["test_wer"] < s["test_wer"] else "does not hold"
    print(f"pretraining wins when labels are scarce: {verdict} here "
          f"(test WER {100 * p['test_wer']:.1f}% vs {100 * s['test_wer']:.1f}%)")
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
