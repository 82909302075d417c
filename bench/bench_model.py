#!/usr/bin/env python3
"""Our wav2vec 2.0 vs transformers: forward and forward+backward time and peak memory, same weights, same batch.

    python bench/bench_model.py                      # BASE, 4 x 5 s, all workloads, 5 interleaved repeats
    python bench/bench_model.py --quick              # tiny model, seconds: proves the script works
    python bench/bench_model.py --batch 2 --seconds 15 --workloads pretrain --repeats 3 --device cuda

Workloads (each run for both contenders, alternating, after one warm-up each):
- ctc-infer: CTC model, eval mode, no autograd (audio seconds per wall second).
- ctc-train: CTC model, train mode (dropout, time masking), forward + CTC loss + backward.
- pretrain:  pretraining model, train mode, one fixed mask and one fixed set of negatives shared by both,
             forward + loss + backward.
Peak memory: on CUDA `max_memory_allocated` per step; on CPU the process's peak RSS during each step (reset
before it through /proc/self/clear_refs; both models are resident, so compare the "step rise": peak minus the
RSS just before the step). Where the peak cannot be reset, each contender runs in a child process instead.
transformers runs as users run it (default attention implementation, its own masking code path when given the
mask). Prints a table of medians and ratios (>1 = we are faster / smaller).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2v2cli.checkpoint.hf import config_to_hf, state_dict_to_hf  # noqa: E402
from w2v2cli.model import build_model, compute_span_mask, model_preset, sample_negatives  # noqa: E402
from w2v2cli.model.losses import pretraining_loss  # noqa: E402

WORKLOADS = ("ctc-infer", "ctc-train", "pretrain")


def make_inputs(cfg, batch: int, samples: int, device: str):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(batch, samples, generator=g)
    # a realistic bucketed batch: lengths within 10% of the longest
    lengths = torch.tensor([samples - int(samples * 0.1 * i / max(batch - 1, 1)) for i in range(batch)])
    for i, n in enumerate(lengths.tolist()):
        w[i, n:] = 0
    frames = build_model(cfg.replace(encoder_layers=0), "encoder").output_lengths(lengths)
    f = int(frames.max())
    mask = compute_span_mask(frames, f, cfg.mask_prob, cfg.mask_length, cfg.mask_min_masks, generator=g)
    neg = sample_negatives(mask, cfg.num_negatives, generator=g)
    where = mask.nonzero()
    flat = where[:, 0] * f + where[:, 1]
    hf_neg = torch.arange(batch * f).view(batch, f, 1).expand(batch, f, cfg.num_negatives).clone()
    hf_neg[where[:, 0], where[:, 1]] = flat[neg]
    attn = (torch.arange(samples)[None] < lengths[:, None]).long()
    targets = torch.randint(1, cfg.vocab_size, (batch, max(2, f // 4)), generator=g)
    target_lengths = torch.full((batch,), targets.shape[1])
    to = lambda t: t.to(device)  # noqa: E731
    return dict(w=to(w), lengths=lengths, frames=frames, mask=to(mask), neg=to(neg), hf_neg=to(hf_neg),
                attn=to(attn), targets=to(targets), target_lengths=target_lengths)


def build_contenders(cfg, workload: str, device: str, amp: str = "none", only: str | None = None):
    """Returns {name: step_fn(inputs)} with identical weights on both sides (`only`: keep just that one,
    the other model freed, for the memory measurement)."""
    steps = _build_contenders(cfg, workload, device, only)
    if amp == "none":
        return steps
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    device_type = "cuda" if device.startswith("cuda") else "cpu"

    def wrap(fn):
        def step(x):
            with torch.autocast(device_type, dtype=dtype):
                return fn(x)
        return step

    return {name: wrap(fn) for name, fn in steps.items()}


def _build_contenders(cfg, workload: str, device: str, only: str | None = None):
    import transformers

    transformers.logging.set_verbosity_error()
    kind = "pretrain" if workload == "pretrain" else "ctc"
    arch = "Wav2Vec2ForPreTraining" if kind == "pretrain" else "Wav2Vec2ForCTC"
    torch.manual_seed(0)
    ours = build_model(cfg, kind)
    hf_cfg = transformers.Wav2Vec2Config(**config_to_hf(cfg, None, arch))
    hf_cls = transformers.Wav2Vec2ForPreTraining if kind == "pretrain" else transformers.Wav2Vec2ForCTC
    hf = hf_cls(hf_cfg)
    hf.load_state_dict(state_dict_to_hf(ours.state_dict(), cfg), strict=True)
    if only == "w2v2":
        hf = None
    elif only == "transformers":
        ours = None
    if ours is not None:
        ours.to(device)
        ours.train(workload != "ctc-infer")
    if hf is not None:
        hf.to(device)
        hf.train(workload != "ctc-infer")
    params = lambda m: m.parameters() if m is not None else [torch.zeros(1, requires_grad=True)]  # noqa: E731
    opt_ours = torch.optim.SGD(params(ours), lr=0.0)  # zero_grad bookkeeping like a real step
    opt_hf = torch.optim.SGD(params(hf), lr=0.0)

    if workload == "ctc-infer":
        def ours_step(x):
            with torch.inference_mode():
                return ours(x["w"], x["lengths"])[0]

        def hf_step(x):
            with torch.inference_mode():
                return hf(x["w"], attention_mask=x["attn"] if cfg.extractor_mode == "layer_norm" else None).logits
    elif workload == "ctc-train":
        def ours_step(x):
            opt_ours.zero_grad(set_to_none=True)
            logits, frames = ours(x["w"], x["lengths"])
            lp = logits.float().log_softmax(-1).transpose(0, 1)
            loss = torch.nn.functional.ctc_loss(lp, x["targets"], frames.cpu(), x["target_lengths"],
                                                reduction="sum", zero_infinity=True)
            loss.backward()

        def hf_step(x):
            opt_hf.zero_grad(set_to_none=True)
            attn = x["attn"] if cfg.extractor_mode == "layer_norm" else None  # as transformers users run BASE
            out = hf(x["w"], attention_mask=attn, labels=x["targets"])
            out.loss.backward()
    else:
        def ours_step(x):
            opt_ours.zero_grad(set_to_none=True)
            out = ours(x["w"], x["lengths"], mask_time=x["mask"], negative_indices=x["neg"], temperature=2.0)
            loss, n, _ = pretraining_loss(out)
            loss.backward()

        def hf_step(x):
            opt_hf.zero_grad(set_to_none=True)
            hf.set_gumbel_temperature(2.0)
            out = hf(x["w"], attention_mask=x["attn"], mask_time_indices=x["mask"],
                     sampled_negative_indices=x["hf_neg"])
            out.loss.backward()
    steps = {"w2v2": ours_step, "transformers": hf_step}
    return {only: steps[only]} if only else steps


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Resets this process's peak RSS (VmHWM) through /proc/self/clear_refs (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_peak_rss(args, workload: str, name: str) -> tuple[float, float]:
    """Fallback where the peak cannot be reset: (peak RSS, rise during the steps), GiB, of a fresh process that
    builds `name` and runs two `workload` steps. VmHWM, not ru_maxrss: the latter survives fork + exec and would
    report the parent's peak."""
    cmd = [sys.executable, __file__, "--_child", f"{workload}:{name}"] + _forward_args(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {name}/{workload} failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    gib = 1024 ** 2
    return report["peak_kib"] / gib, (report["peak_kib"] - report["before_kib"]) / gib


def _forward_args(args) -> list[str]:
    out = ["--preset", args.preset, "--batch", str(args.batch), "--seconds", str(args.seconds),
           "--device", args.device, "--negatives", str(args.negatives), "--amp", args.amp]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, 1 x 2 s, 2 repeats")
    p.add_argument("--preset", default="base")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--negatives", type=int, default=100)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none",
                   help="autocast both contenders (GPU; bf16 on a CPU without bf16 units is ~30x slower)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.preset, args.batch, args.seconds, args.repeats, args.negatives = "tiny", 1, 2.0, 2, 20
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = model_preset(args.preset, vocab_size=32, num_negatives=args.negatives)
    samples = int(args.seconds * 16000)
    inputs = make_inputs(cfg, args.batch, samples, args.device)
    audio_s = float(inputs["lengths"].sum()) / 16000

    if args._child:
        workload, name = args._child.split(":")
        import gc

        step = build_contenders(cfg, workload, args.device, args.amp, only=name)[name]
        gc.collect()
        before = _status_kib("VmHWM")
        for _ in range(2):
            step(inputs)
        print(json.dumps({"before_kib": before, "peak_kib": _status_kib("VmHWM")}))
        return 0

    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, preset {args.preset}, "
          f"batch {args.batch} x {args.seconds:g} s ({audio_s:.1f} audio s), negatives {args.negatives}, "
          f"repeats {args.repeats}, autocast {args.amp}", flush=True)
    results = []
    for workload in workloads:
        steps = build_contenders(cfg, workload, args.device, args.amp)
        times: dict[str, list[float]] = {n: [] for n in steps}
        peaks: dict[str, float] = {}
        rises: dict[str, float] = {}
        outs = {name: step(inputs) for name, step in steps.items()}  # warm-up
        if workload == "ctc-infer":  # same weights, same audio: the full-length utterance must agree
            diff = (outs["w2v2"][0].float() - outs["transformers"][0].float()).abs().max().item()
            print(f"ctc-infer: max |logit difference| on utterance 0: {diff:.2e}", flush=True)
        del outs
        cpu_mem = args.device == "cpu" and not args.no_memory
        in_process = cpu_mem and reset_peak_rss()
        for _ in range(args.repeats):
            for name, step in steps.items():  # interleaved: both see the same machine state
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                if in_process:
                    reset_peak_rss()
                    rss_before = _status_kib("VmRSS")
                sync(args.device)
                t0 = time.perf_counter()
                step(inputs)
                sync(args.device)
                times[name].append(time.perf_counter() - t0)
                if args.device.startswith("cuda"):
                    peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 1024 ** 3)
                if in_process:
                    hwm = _status_kib("VmHWM")
                    peaks[name] = max(peaks.get(name, 0.0), hwm / 1024 ** 2)
                    rises[name] = max(rises.get(name, 0.0), (hwm - rss_before) / 1024 ** 2)
        del steps
        if cpu_mem and not in_process:
            for name in times:
                peaks[name], rises[name] = child_peak_rss(args, workload, name)
        row = {"workload": workload}
        for name, ts in times.items():
            med = statistics.median(ts)
            row[name] = {"median_s": med, "audio_s_per_s": audio_s / med, "peak_gb": peaks.get(name),
                         "step_rise_gb": rises.get(name)}
        row["speedup"] = row["transformers"]["median_s"] / row["w2v2"]["median_s"]
        if peaks:
            row["memory_ratio"] = peaks["transformers"] / peaks["w2v2"]
        results.append(row)
        print(_format_row(row), flush=True)
    print("\n" + _table(results, "peak RSS" if args.device == "cpu" else "peak CUDA alloc"))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1))
    return 0


def _format_row(row) -> str:
    o, h = row["w2v2"], row["transformers"]
    return (f"{row['workload']}: w2v2 {o['median_s']:.3f} s ({o['audio_s_per_s']:.2f} audio s/s), "
            f"transformers {h['median_s']:.3f} s ({h['audio_s_per_s']:.2f} audio s/s), speedup {row['speedup']:.2f}x")


def _table(results, mem_label: str) -> str:
    lines = [f"| workload | w2v2 s/step | transformers s/step | w2v2 audio s/s | transformers audio s/s | speedup | "
             f"w2v2 {mem_label} GB | transformers {mem_label} GB | memory ratio | w2v2 / transformers step rise GB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        o, h = r["w2v2"], r["transformers"]
        mem = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        ratio = f"{r['memory_ratio']:.2f}x" if "memory_ratio" in r else "-"
        lines.append(f"| {r['workload']} | {o['median_s']:.3f} | {h['median_s']:.3f} | {o['audio_s_per_s']:.2f} | "
                     f"{h['audio_s_per_s']:.2f} | {r['speedup']:.2f}x | {mem(o['peak_gb'])} | {mem(h['peak_gb'])} | "
                     f"{ratio} | {mem(o.get('step_rise_gb'))} / {mem(h.get('step_rise_gb'))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
