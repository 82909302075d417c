#!/usr/bin/env python3
"""Does pretraining beat training from scratch when labels are scarce? Tiny model, synthetic speech, 3 seeds.

    python3 bench/pretrain_vs_scratch.py --work exp/pvs                 # the whole measurement (<= ~60 min, 2 cores)
    python3 bench/pretrain_vs_scratch.py --work exp/pvs --seeds 1 --pretrain-minutes 5 --finetune-updates 300
    python3 bench/pretrain_vs_scratch.py --work exp/pvs_rq --config tiny_fbank_rq --config tiny_fbank --seeds 5
                                                       # two objectives, the same corpus, draws and scratch runs

Stages (each is skipped when its output is complete, so a re-run continues):
1. `w2v2 synth librispeech` with many voices (`--speakers`, `--hours` of training audio; dev-clean and
   test-clean use held-out sentences and voices that training never hears; `--festival-hours`: speakers of a
   third synthesiser in the unlabelled pool only), then `w2v2 manifest`.
2. A labelled subset from few voices (`--labeled-speakers`, `--labeled-minutes`), as Libri-light's 10 min split
   (`recipes/utils/subset_speakers.sh`): with `--label-draws per-seed` (default) every seed draws its own voices
   (seed s: subset seed `--corpus-seed` + s - 1), so the spread covers which voices got labels, not only the
   fine-tuning seed; `--label-draws one` uses seed 1's subset for every seed.
3. `w2v2 pretrain --config tiny` (`--config tiny_fbank`: the log-mel model; `tiny_fbank_rq`: the log-mel model with
   BEST-RQ; several `--config`: each pretrained, in WORK/pretrain-CONFIG) on all of train-clean-100, unlabelled,
   for `--pretrain-updates` updates (its lr decays linearly to 0 there) or at most `--pretrain-minutes` of wall time
   (then SIGTERM: the trainer saves and stops). The default 5,600 updates is what 2 cores of the AMD EPYC in
   BENCHMARKS.md do in 33 min (an Intel Xeon with AMX: 24 min); on a slower machine the 35-min cap stops the run
   before its lr has decayed: lower `--pretrain-updates` there.
4. For each seed: `w2v2 finetune --config tiny` (its `tiny_ctc`, or `tiny_fbank_ctc`; time masks
   `--finetune-mask-prob`, 0.3) with that seed's labelled subset, the same updates and validation on dev-clean, once
   from the pretrained checkpoint and once from scratch (`--init none`); two runs at a time, one thread each (a
   finished run, marked `.done` with its labelled manifest, is kept on a re-run).
5. Greedy test-clean WER/CER of each run's checkpoint_best (chosen by dev CER: with dev WER near 100 %, choosing
   by WER picked noise) and of its last checkpoint, then a table: per seed, mean and spread, and the relative CER
   reduction from pretraining of each pretrained model against the same scratch runs, for both choices. Scores are kept per run
   (`test_scores.json`, by a hash of the weights and the test manifest), so a re-run scores only new checkpoints.

Results: WORK/results.json and the table on stdout, with the CPU they were measured on: the from-scratch runs
differ by up to 10 points of CER between CPUs (bench/ARCHIVE.md, "Ninth search").
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the scoring imports w2v2cli here, also without `pip install -e .`


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], env: dict, logfile: Path, timeout: float | None = None) -> float:
    """Runs a command with its output in `logfile`; on timeout sends SIGTERM (the trainer saves and stops)."""
    log(" ".join(cmd) + f"  > {logfile}")
    t0 = time.monotonic()
    with open(logfile, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"time budget reached: SIGTERM to {cmd[3]} (it saves a checkpoint and stops)")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait()
            rc = 0 if rc in (0, 143) else rc  # 143: stopped by SIGTERM after saving
    if rc != 0:
        sys.exit(f"{' '.join(cmd[2:4])} failed with exit code {rc}; see {logfile}")
    return time.monotonic() - t0


#: pretraining preset -> the fine-tuning preset `w2v2 finetune --config PRESET` means
CTC_COUNTERPART = {"tiny": "tiny_ctc", "tiny_fbank": "tiny_fbank_ctc", "tiny_fbank_rq": "tiny_fbank_ctc",
                   "tiny_fbank_km": "tiny_fbank_ctc"}


def pretrain_once(w2v2: list[str], env: dict, work: Path, data: Path, train_all: Path, config: str, tag: str,
                  args) -> tuple[Path, dict]:
    """Pretrains `config` into WORK/pretrain{tag} (skipped when done); its last checkpoint and a summary."""
    from w2v2cli.train.logging import read_metrics

    pt, marker = work / f"pretrain{tag}", work / f".pretrain{tag}.done"
    if not marker.exists():
        secs = run(w2v2 + ["pretrain", str(train_all), "--valid", str(data / "dev-clean.tsv"),
                           "--config", config, "--out", str(pt), "--max-updates", str(args.pretrain_updates),
                           "--seed", str(args.corpus_seed), "--resume", "auto", "--threads", str(args.pretrain_threads),
                           "--set", "data.num_workers=1", "--set", "logging.progress=plain",
                           "--dtype", args.dtype, "--set", f"data.length_quantum={args.length_quantum}",
                           "--set", "logging.log_interval=100", "--set", "checkpoint.save_interval_updates=500"]
                   + [x for kv in args.pretrain_set for x in ("--set", kv)],
                   env, work / f"pretrain{tag}.log", timeout=args.pretrain_minutes * 60)
        marker.write_text(f"{secs:.0f}\n")
    ckpt = (pt / "checkpoint_last").resolve()
    last_train = [r for r in read_metrics(pt) if r.get("split") == "train"][-1]
    info = {"updates": int(ckpt.name.split("_")[-1]), "seconds": float(marker.read_text()),
            "last": {k: last_train.get(k) for k in ("loss", "accuracy", "code_perplexity", "temperature")}}
    log(f"pretraining {config}: {info['updates']} updates in {info['seconds'] / 60:.1f} min; last {info['last']}")
    return ckpt, info


def finetune_cmd(w2v2: list[str], labeled: Path, data: Path, out: Path, init: str, args, seed: int,
                 config: str) -> list[str]:
    return w2v2 + ["finetune", str(labeled), "--valid", str(data / "dev-clean.tsv"), "--init", init,
                   "--config", config, "--out", str(out), "--max-updates", str(args.finetune_updates),
                   "--seed", str(seed), "--resume", "auto", "--threads", "1",
                   "--set", "data.num_workers=0", "--set", "logging.progress=plain",
                   "--dtype", args.dtype, "--set", f"data.length_quantum={args.length_quantum}",
                   "--set", "logging.log_interval=50",
                   "--set", f"checkpoint.validate_interval_updates={args.validate_every}",
                   "--set", f"checkpoint.save_interval_updates={args.validate_every}",
                   "--set", "checkpoint.best_metric=cer", "--set", f"model.mask_prob={args.finetune_mask_prob}"] + \
        [x for kv in args.finetune_set for x in ("--set", kv)]


def test_scores(ckpt: Path, test: Path) -> dict[str, float]:
    """Greedy WER/CER of `ckpt` on `test`, kept in the run's test_scores.json under a sha256 of the weights and the
    manifest, so that a re-run (more seeds, another table) does not score the same weights again."""
    from w2v2cli.train.evaluate import evaluate_ctc

    digest = hashlib.sha256((ckpt / "model.safetensors").read_bytes() + test.read_bytes()).hexdigest()[:16]
    key = f"{test.name}:{digest}"  # the weights and the test manifest
    cache_file = ckpt.parent / "test_scores.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if key not in cache:
        res = evaluate_ctc(ckpt, [test])
        cache[key] = {"wer": round(float(res["wer"]), 4), "cer": round(float(res["cer"]), 4)}
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(tmp, cache_file)
    return cache[key]


def labeled_info(tsv: Path) -> dict:
    """Minutes and speakers (first path component) of a labelled manifest."""
    from w2v2cli.data.manifest import read_manifest

    manifest = read_manifest(tsv)
    return {"manifest": str(tsv), "minutes": round(manifest.total_samples / 16000 / 60, 2),
            "speakers": sorted({e.path.split("/")[0] for e in manifest.entries})}


def machine_info() -> dict:
    """The CPU this command runs on: model name, cores and bf16 units. A from-scratch run that sits on the
    all-blank plateau for hundreds of updates turns the CPUs' different rounding into up to 10 points of test CER
    (bench/ARCHIVE.md, "Ninth search"), so a table is only comparable with tables from the same kind of CPU."""
    from w2v2cli.runtime import cpu_bf16_units, cpu_model_name

    return {"cpu": cpu_model_name(), "cores": os.cpu_count(), "bf16_units": cpu_bf16_units() or "none"}


def without_festival(src: Path, dst: Path, speakers_txt: Path) -> None:
    """SRC.tsv/.wrd/.ltr without the rows of festival speakers (SPEAKERS.TXT) -> DST, written as the recipes'
    subsets are (`recipes/utils/subset.py`: labels checked against the rows, the .tsv last)."""
    spec = importlib.util.spec_from_file_location("subset", REPO / "recipes/utils/subset.py")
    subset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(subset)
    festival = {line.split("|")[0].strip() for line in speakers_txt.read_text().splitlines()
                if not line.startswith(";") and line.split("|")[-1].split()[0] == "festival"}
    root, rows = subset.read(str(src))
    keep = [i for i, row in enumerate(rows) if row.split("/")[0] not in festival]
    subset.write("pretrain_vs_scratch.py", str(src), str(dst), root, rows, keep)
    log(f"{dst.name}: {len(keep)} of {len(rows)} rows (left out: {len(festival)} festival speakers)")


def done_with(run: Path, labeled: Path) -> bool:
    """True when fine-tuning run `run` finished on the labelled manifest `labeled` (its `.done` holds the
    manifest's name: the work directory may have moved since)."""
    marker = run / ".done"
    return marker.is_file() and marker.read_text().strip() == labeled.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("exp/bench_pretrain_vs_scratch"))
    ap.add_argument("--hours", type=float, default=6.0, help="training audio to synthesise (unlabelled pool)")
    ap.add_argument("--speakers", type=int, default=120,
                    help="voices in the unlabelled pool (dev and test get a third as many unseen voices); 120 "
                         "voices / 6 h gave a 16.8 %% gain where 40 / 2 h gave 9.5 %% on one labelled draw "
                         "(BENCHMARKS.md)")
    ap.add_argument("--festival-hours", type=float, default=0.0,
                    help="also this many hours from speakers of a third synthesiser, festival, in the unlabelled "
                         "pool only: the labelled voices are drawn from the other speakers, the same draws as "
                         "without it (w2v2 synth --festival-hours)")
    ap.add_argument("--labeled-speakers", type=int, default=4, help="voices of the labelled subset")
    ap.add_argument("--labeled-minutes", type=float, default=10.0, help="labelled audio for fine-tuning")
    ap.add_argument("--label-draws", choices=("per-seed", "one"), default="per-seed",
                    help="per-seed: each seed fine-tunes on its own draw of labelled voices (the gain is averaged "
                         "over which voices have labels); one: every seed uses seed 1's draw")
    ap.add_argument("--config", choices=tuple(CTC_COUNTERPART), action="append",
                    help="model and pretraining preset (fine-tuning: its CTC counterpart, tiny_ctc or "
                         "tiny_fbank_ctc): tiny learns its front end from the waveform, tiny_fbank starts from "
                         "log-mel features (bench/ARCHIVE.md, 'Eighteenth search'), tiny_fbank_rq is tiny_fbank "
                         "pretrained with BEST-RQ. Repeat it to compare pretraining objectives against the same "
                         "scratch runs (the presets must share a CTC counterpart). Default: tiny")
    ap.add_argument("--pretrain-updates", type=int, default=5600,
                    help="pretraining updates; the lr decays to 0 at the last (5,600: what 2 cores do in 33 min; "
                         "20,000, decaying beyond the time cap, ended at a valid accuracy of 0.67 where this "
                         "reaches 0.73: bench/ARCHIVE.md, 'Eighth search')")
    ap.add_argument("--pretrain-minutes", type=float, default=35.0,
                    help="wall-time cap of pretraining, a safety net: 5,600 updates take 33 min on 2 cores, and "
                         "the whole command ~60 min")
    ap.add_argument("--pretrain-set", action="append", default=[], help="extra --set for pretraining")
    ap.add_argument("--pretrain-threads", type=int, default=2)
    ap.add_argument("--finetune-updates", type=int, default=600)
    ap.add_argument("--finetune-mask-prob", type=float, default=0.3,
                    help="time masks while fine-tuning, both inits (tiny_ctc has 0.1, measured on the demo's larger "
                         "labelled set; 10 min from 4 voices over-fit with it: bench/ARCHIVE.md, 'Fifth search')")
    ap.add_argument("--finetune-set", action="append", default=[], help="extra --set for fine-tuning")
    ap.add_argument("--validate-every", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds (pretrained and scratch each)")
    ap.add_argument("--corpus-seed", type=int, default=7)
    ap.add_argument("--dtype", choices=("fp32", "bf16", "auto"), default="fp32",
                    help="training precision of every run (fp32: the runs BENCHMARKS.md reports up to its tenth "
                         "search; auto: bf16 on CPUs with bf16 units)")
    ap.add_argument("--length-quantum", type=int, default=0,
                    help="data.length_quantum of every run, in samples (0: exact batch lengths, as in the runs "
                         "BENCHMARKS.md reports up to its tenth search; the tiny presets use 8000)")
    args = ap.parse_args()
    args.config = args.config or ["tiny"]
    if len({CTC_COUNTERPART[c] for c in args.config}) > 1:
        ap.error(f"--config {' '.join(args.config)}: the presets fine-tune with different models "
                 f"({', '.join(sorted({CTC_COUNTERPART[c] for c in args.config}))}), so no scratch run serves both")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    w2v2 = [sys.executable, "-m", "w2v2cli"]
    t_start = time.monotonic()

    # 1. corpus and manifests
    corpus, data = work / "LibriSpeech", work / "data"
    run(w2v2 + ["synth", "librispeech", str(corpus), "--hours", str(args.hours), "--speakers", str(args.speakers),
                "--seed", str(args.corpus_seed), "--jobs", "2", "--festival-hours", str(args.festival_hours)],
        env, work / "synth.log")
    if not (data / "test-clean.tsv").is_file():
        run(w2v2 + ["manifest", str(corpus), "--dest", str(data), "--corpus", "librispeech", "--jobs", "2"], env,
            work / "manifest.log")
    train_all = data / "train-clean-100.tsv"
    label_pool = data / "train-clean-100"
    if args.festival_hours:  # labelled voices come from the espeak-ng / flite speakers only
        label_pool = data / "train-no-festival"
        if not label_pool.with_suffix(".tsv").is_file():
            without_festival(data / "train-clean-100", label_pool, corpus / "SPEAKERS.TXT")

    # 2. the labelled subsets from few voices: seed 1's draw is train-labeled, seed s's train-labeled-sS (subset
    # seed corpus_seed + s - 1); other sizes than the defaults (4 voices / 10 minutes) are named for their size
    # (-2v5m, -4v2_5m), so a work directory never hands one size's draws to another
    default_size = (ap.get_default("labeled_speakers"), ap.get_default("labeled_minutes"))
    size = ("" if (args.labeled_speakers, args.labeled_minutes) == default_size
            else f"-{args.labeled_speakers}v{args.labeled_minutes:g}m".replace(".", "_"))  # no dot: a suffix
    labeled: dict[int, Path] = {}
    for seed in range(1, args.seeds + 1):
        draw = 1 if args.label_draws == "one" else seed
        prefix = data / (f"train-labeled{size}" if draw == 1 else f"train-labeled{size}-s{draw}")
        if not prefix.with_suffix(".tsv").is_file():
            subprocess.run(["bash", str(REPO / "recipes/utils/subset_speakers.sh"), str(label_pool),
                            str(prefix), str(args.labeled_speakers), str(args.labeled_minutes),
                            str(args.corpus_seed + draw - 1)], check=True)
        labeled[seed] = prefix.with_suffix(".tsv")
    labels = {seed: labeled_info(path) for seed, path in labeled.items()}

    # 3. pretraining (unlabelled, all training audio), once per preset
    pretrained: dict[str, Path] = {}
    pt_info: dict[str, dict] = {}
    for config in args.config:
        tag = "" if len(args.config) == 1 else f"-{config}"
        pretrained[config], pt_info[config] = pretrain_once(w2v2, env, work, data, train_all, config, tag, args)
    # 4. fine-tuning: pretrained and scratch for every seed, two runs at a time (one thread each); a run that
    # finished on other labels (an older bench, another --label-draws) starts again instead of resuming
    inits = [("pretrained" if len(args.config) == 1 else f"pretrained-{c}", str(ckpt), c)
             for c, ckpt in pretrained.items()] + [("scratch", "none", args.config[0])]
    jobs = []
    for seed in range(1, args.seeds + 1):
        for name, init, config in inits:
            run_dir = work / f"ft-{name}-s{seed}"
            if done_with(run_dir, labeled[seed]):
                continue
            if (run_dir / ".done").is_file():
                log(f"{run_dir.name} was trained on other labels than {labeled[seed].name}: starting it again")
                shutil.rmtree(run_dir)
                (work / f"{run_dir.name}.log").unlink(missing_ok=True)
            jobs.append((name, init, seed, config))
    running: list[tuple] = []
    while jobs or running:
        while jobs and len(running) < 2:
            name, init, seed, config = jobs.pop(0)
            out = work / f"ft-{name}-s{seed}"
            cmd = finetune_cmd(w2v2, labeled[seed], data, out, init, args, seed, config)
            log(" ".join(cmd))
            logf = open(work / f"ft-{name}-s{seed}.log", "a", encoding="utf-8")
            running.append((subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf, out, seed))
        done = [r for r in running if r[0].poll() is not None]
        if not done:
            time.sleep(1.0)
            continue
        for proc, logf, out, seed in done:
            running.remove((proc, logf, out, seed))
            logf.close()
            if proc.returncode != 0:
                for other, *_ in running:  # no run left behind
                    other.terminate()
                    other.wait()
                sys.exit(f"fine-tuning {out.name} failed with exit code {proc.returncode}; see {logf.name}")
            (out / ".done").write_text(f"{labeled[seed].name}\n")  # what it was trained on (done_with)
    results: dict[str, dict] = {name: {} for name, _, _ in inits}
    last: dict[str, dict] = {name: {} for name, _, _ in inits}
    for seed in range(1, args.seeds + 1):
        for name in results:
            out = work / f"ft-{name}-s{seed}"
            best, final = out / "checkpoint_best", out / "checkpoint_last"
            results[name][seed] = test_scores(best, data / "test-clean.tsv")
            last[name][seed] = test_scores(final, data / "test-clean.tsv")  # the same weights as the best: a cache hit
            log(f"seed {seed} {name}: test {results[name][seed]} (checkpoint_best), {last[name][seed]} (last)")

    # 5. the table: checkpoint_best (by dev CER) and the last checkpoint
    def summarise(scores: dict[str, dict]) -> tuple[dict, dict[str, float]]:
        summary = {}
        for name, per_seed in scores.items():
            cers = [r["cer"] for r in per_seed.values()]
            wers = [r["wer"] for r in per_seed.values()]
            summary[name] = {"cer_mean": statistics.mean(cers), "cer_sd": statistics.pstdev(cers),
                             "cer_range": max(cers) - min(cers),
                             "wer_mean": statistics.mean(wers), "wer_sd": statistics.pstdev(wers)}
        scratch = summary["scratch"]["cer_mean"]
        return summary, {name: 1.0 - s["cer_mean"] / scratch for name, s in summary.items() if name != "scratch"}

    summary, gain = summarise(results)
    summary_last, gain_last = summarise(last)
    machine = machine_info()
    out = {"settings": vars(args) | {"work": str(work)}, "machine": machine, "labels": labels,
           "pretrain": pt_info, "per_seed": results, "summary": summary,
           "relative_cer_gain": {k: round(v, 4) for k, v in gain.items()},
           "per_seed_last": last, "summary_last": summary_last,
           "relative_cer_gain_last": {k: round(v, 4) for k, v in gain_last.items()},
           "total_minutes": round((time.monotonic() - t_start) / 60, 1)}
    (work / "results.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    minutes = [lab["minutes"] for lab in labels.values()]
    print(f"\nlabelled: {min(minutes):.1f}-{max(minutes):.1f} min from {args.labeled_speakers} voices "
          f"({args.label_draws} draw); unlabelled: {args.hours} h from {args.speakers} voices"
          + (f" + {args.festival_hours} h of festival voices" if args.festival_hours else "")
          + "; " + ", ".join(f"{c}: pretraining {i['updates']} updates" for c, i in pt_info.items())
          + f"; fine-tuning {args.finetune_updates} "
          f"updates per run; {machine['cpu']}, {machine['cores']} cores, bf16 units: {machine['bf16_units']}")
    for title, scores, summ, g in (("checkpoint_best (by dev CER)", results, summary, gain),
                                   ("last checkpoint", last, summary_last, gain_last)):
        print(f"\n{title}\n{'init':<26}" + "".join(f"{'seed ' + str(s) + ' CER':>14}" for s in scores["scratch"])
              + f"{'mean CER':>12}{'sd':>7}{'range':>7}{'mean WER':>11}")
        for name, per_seed in scores.items():
            s = summ[name]
            print(f"{name:<26}" + "".join(f"{100 * r['cer']:>13.1f}%" for r in per_seed.values())
                  + f"{100 * s['cer_mean']:>11.1f}%{100 * s['cer_sd']:>6.1f}{100 * s['cer_range']:>7.1f}"
                  + f"{100 * s['wer_mean']:>10.1f}%")
        for name, value in g.items():
            print(f"relative CER reduction from pretraining ({name}): {100 * value:.1f} %")
    print(f"results: {work / 'results.json'}; total {out['total_minutes']} min")


if __name__ == "__main__":
    main()
