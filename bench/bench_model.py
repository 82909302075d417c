#!/usr/bin/env python3
"""Our wav2vec 2.0 vs transformers (and torchaudio for inference): step time, audio s/s and peak memory,
same weights, same batch, interleaved.

    python bench/bench_model.py                      # BASE, 4 x 5 s, all workloads, 5 interleaved repeats
    python bench/bench_model.py --quick              # tiny model, seconds: proves the script works
    python bench/bench_model.py --batch 2 --seconds 15 --workloads pretrain --repeats 3
    python bench/bench_model.py --device cuda --amp bf16 --workloads pretrain --batch 16 --seconds 5.47

Every contender runs in its own worker process (built from the same seed, so the weights are identical), so
each has its own allocator settings and its own peak RSS. The parent asks the workers for one step at a time,
round-robin, so all see the same machine state (interleaved), and only one runs at any moment.
Contenders:
- w2v2:                ours, as `w2v2` runs itself (w2v2cli.runtime.configure_runtime: glibc keeps freed memory).
- w2v2-default-malloc: ours without the runtime settings (shows what they are worth; off unless asked).
- w2v2-compile:        ours through torch.compile (opt-in; the compile time is paid in the warm-up step and
                       reported separately as "build s").
- w2v2+ac:             ours with activation checkpointing on every transformer layer
                       (`--set distributed.activation_checkpointing=1`): the memory it saves, the time it costs.
- transformers:        as users run it (default glibc malloc, default attention implementation).
- transformers+keep:   the same with glibc told to keep freed memory (the same mallopt call as ours).
- torchaudio, torchaudio+keep: torchaudio's wav2vec2_model + CTC head, converted from the transformers model
                       by torchaudio's `import_huggingface_model` (ctc-infer only).
- onnxruntime, onnxruntime-int8: ours exported by `w2v2 export onnx` (fp32, or its `--int8` twin: MatMul weights
                       int8) and run by onnxruntime as `w2v2 decode --backend onnxruntime` runs it (ctc-infer, CPU
                       only; the export is paid in "build s"; the threads follow --threads; the peak RSS
                       includes what the PyTorch model it was exported from left in the worker).
- NAME@bf16, NAME@fp32: that contender in that precision, whatever --amp says, so that both precisions run
                       interleaved in one run. Peers get bf16 autocast; ours runs as `w2v2` runs it: training
                       under bf16 autocast, inference (`w2v2 decode --dtype bf16`) with the weights cast to bf16
                       once and bf16 input (no per-call casts), the conv encoder included.
Workloads:
- ctc-infer: CTC model, eval mode, torch.inference_mode (audio seconds per wall second; RTF = 1 / that).
- ctc-train: CTC model, train mode (dropout, time masking), forward + CTC loss + backward + AdamW step.
- pretrain:  pretraining model, train mode, one fixed mask and one fixed set of negatives shared by all,
             forward + loss + backward + AdamW step.
Peak memory: CPU: the worker's peak RSS (VmHWM, reset before each step through /proc/self/clear_refs);
CUDA: max_memory_allocated. Model FLOPs are counted analytically (forward; x3 for a training step) and
reported as TFLOP/s, and as a share of --peak-tflops when given (MFU).
"""

from __future__ import annotations

import argparse
import json
import os
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
from w2v2cli.runtime import cpu_model_name  # noqa: E402

WORKLOADS = ("ctc-infer", "ctc-train", "pretrain")
CONTENDERS = ("w2v2", "w2v2-default-malloc", "w2v2-compile", "w2v2+ac", "transformers", "transformers+keep", "torchaudio",
              "torchaudio+keep", "onnxruntime", "onnxruntime-int8")
INFER_ONLY = ("torchaudio", "onnxruntime")  # contenders (by prefix) with a ctc-infer workload only
DEFAULT_CONTENDERS = ("w2v2", "transformers", "transformers+keep")


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


def forward_flops(cfg, frames: int, batch: int) -> float:
    """Multiply-adds x 2 of one forward pass over a padded batch of `frames` output frames: conv encoder,
    projection, positional conv, transformer (linear layers and attention scores/values)."""
    total = 0.0
    # walk the conv stack from the output back to the samples it needs
    out_frames = []
    t = frames
    for _, k, s in reversed(cfg.conv_layers):
        out_frames.append(t)
        t = (t - 1) * s + k
    out_frames.reverse()
    cin = 1
    for (cout, k, _), f in zip(cfg.conv_layers, out_frames):
        total += 2.0 * cin * cout * k * f
        cin = cout
    d, ffn, n = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.encoder_layers
    total += 2.0 * cfg.conv_dim * d * frames
    total += 2.0 * d * (d // cfg.conv_pos_groups) * cfg.conv_pos * frames
    total += n * frames * (2.0 * (4 * d * d + 2 * d * ffn) + 4.0 * frames * d)
    return total * batch


# --------------------------------------------------------------------------------------------------- workers


def build_onnx_step(cfg, int8: bool, threads: int):
    """ctc-infer through onnxruntime: our CTC model (weights from torch.manual_seed(0)) exported by `export_onnx`
    (which checks the fp32 graph against PyTorch) into a temporary directory, its fp32 or int8 file run."""
    import tempfile

    from w2v2cli.checkpoint.io import LoadedCheckpoint
    from w2v2cli.checkpoint.onnx import export_onnx, load_onnx
    from w2v2cli.vocab import Vocabulary

    torch.manual_seed(0)
    model = build_model(cfg, "ctc").eval()
    vocab = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|"] + [f"t{i}" for i in range(cfg.vocab_size - 5)])
    tmp = tempfile.TemporaryDirectory(prefix="bench-onnx-")
    report = export_onnx(None, Path(tmp.name) / "model.onnx", int8=int8,
                         loaded=LoadedCheckpoint(model, cfg, "ctc", vocab, {}, None, Path("bench")))
    onnx_model = load_onnx(report.int8_path if int8 else report.path, threads=threads or None)

    def step(x, _keep=tmp):  # _keep: the directory lives as long as the step
        logits, _ = onnx_model.run(x["w"].numpy(), x["lengths"].numpy())
        return torch.from_numpy(logits)
    return step


def build_step(cfg, workload: str, impl: str, device: str, amp: str, compile: bool = False, ac: bool = False):
    """One contender's step function (inputs -> output tensor or None), weights from torch.manual_seed(0)."""
    kind = "pretrain" if workload == "pretrain" else "ctc"
    cast_once = impl == "w2v2" and workload == "ctc-infer" and amp == "bf16"  # as w2v2 decode --dtype bf16
    torch.manual_seed(0)
    ours = build_model(cfg, kind)
    if impl == "w2v2":
        model = ours
    elif impl in ("transformers", "torchaudio"):
        import transformers

        if impl == "torchaudio" and kind != "ctc":
            raise ValueError("torchaudio has no pretraining model")
        transformers.logging.set_verbosity_error()
        arch = "Wav2Vec2ForPreTraining" if kind == "pretrain" else "Wav2Vec2ForCTC"
        hf_cfg = transformers.Wav2Vec2Config(**config_to_hf(cfg, None, arch))
        cls = transformers.Wav2Vec2ForPreTraining if kind == "pretrain" else transformers.Wav2Vec2ForCTC
        model = cls(hf_cfg)
        model.load_state_dict(state_dict_to_hf(ours.state_dict(), cfg), strict=True)
        if impl == "torchaudio":
            # torchaudio's own converter turns the transformers model into its wav2vec2_model (+ CTC head)
            from torchaudio.models.wav2vec2.utils import import_huggingface_model

            model = import_huggingface_model(model)
    else:
        raise ValueError(impl)
    if model is not ours:
        del ours
    model.to(device).train(workload != "ctc-infer")
    if ac:
        from w2v2cli.train.distributed import set_activation_checkpointing

        set_activation_checkpointing(model, 1)
    if cast_once:
        from w2v2cli.decode.backends import cast_for_inference

        cast_for_inference(model, "bf16")
        amp = "none"
    if compile:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6) if workload != "ctc-infer" else None
    autocast = None
    if amp != "none":
        autocast = (("cuda" if device.startswith("cuda") else "cpu"), torch.bfloat16 if amp == "bf16" else torch.float16)

    def ctx():
        return torch.autocast(autocast[0], dtype=autocast[1]) if autocast else _Null()

    mask_hf = lambda x: x["attn"] if cfg.extractor_mode == "layer_norm" else None  # noqa: E731 (as HF users run BASE)

    if workload == "ctc-infer":
        def step(x):
            with torch.inference_mode(), ctx():
                if impl == "w2v2":
                    return model(x["w"].to(torch.bfloat16) if cast_once else x["w"], x["lengths"])[0]
                if impl == "transformers":
                    return model(x["w"], attention_mask=mask_hf(x)).logits
                return model(x["w"], x["lengths"].to(x["w"].device))[0]
    elif workload == "ctc-train":
        def step(x):
            opt.zero_grad(set_to_none=True)
            with ctx():
                if impl == "w2v2":
                    logits, frames = model(x["w"], x["lengths"])
                    lp = logits.float().log_softmax(-1).transpose(0, 1)
                    loss = torch.nn.functional.ctc_loss(lp, x["targets"], frames.cpu(), x["target_lengths"],
                                                        reduction="sum", zero_infinity=True)
                else:
                    loss = model(x["w"], attention_mask=mask_hf(x), labels=x["targets"]).loss
            loss.backward()
            opt.step()
    else:
        def step(x):
            opt.zero_grad(set_to_none=True)
            with ctx():
                if impl == "w2v2":
                    out = model(x["w"], x["lengths"], mask_time=x["mask"], negative_indices=x["neg"], temperature=2.0)
                    loss = pretraining_loss(out)[0]
                else:
                    model.set_gumbel_temperature(2.0)
                    loss = model(x["w"], attention_mask=x["attn"], mask_time_indices=x["mask"],
                                 sampled_negative_indices=x["hf_neg"]).loss
            loss.backward()
            opt.step()
    return step


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker_main(args, contender: str) -> int:
    """Serves commands on stdin for one contender: `build WORKLOAD` (build + one warm-up step), `step` (timed),
    `save PATH` (the last output's first row, for the cross-check), `quit`. One JSON line answers each."""
    contender, _, precision = contender.partition("@")
    if precision:
        args.amp = "none" if precision == "fp32" else precision
    impl = contender.split("+")[0].replace("-default-malloc", "").replace("-compile", "")
    if contender in ("w2v2", "w2v2-compile", "w2v2+ac", "onnxruntime", "onnxruntime-int8"):
        from w2v2cli.runtime import configure_runtime

        configure_runtime(threads=args.threads or None)
    elif contender.endswith("+keep"):
        from w2v2cli.runtime import malloc_keep_memory

        malloc_keep_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    import gc

    cfg = _config(args)
    inputs = make_inputs(cfg, args.batch, int(args.seconds * 16000), args.device)
    cuda = args.device.startswith("cuda")
    step = out = None
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "build":
            step = out = None
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            t0 = time.perf_counter()
            if impl.startswith("onnxruntime"):
                step = build_onnx_step(cfg, impl.endswith("-int8"), args.threads)
            else:
                step = build_step(cfg, cmd[1], impl, args.device, args.amp, compile=contender.endswith("-compile"),
                                  ac=contender.endswith("+ac"))
            out = step(inputs)  # warm-up (and compilation)
            print(json.dumps({"built": cmd[1], "build_s": time.perf_counter() - t0}), flush=True)
            continue
        if cmd[0] == "save":
            torch.save(out[0].float().cpu() if out is not None else None, cmd[1])
            print(json.dumps({"saved": cmd[1]}), flush=True)
            continue
        can_reset = (not cuda) and _reset_peak_rss()
        before = _status_kib("VmRSS")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = step(inputs)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if cuda:
            peak = torch.cuda.max_memory_allocated() / 1024 ** 3
            rise = None
        else:
            hwm = _status_kib("VmHWM")
            peak = hwm / 1024 ** 2 if can_reset else None
            rise = (hwm - before) / 1024 ** 2 if can_reset else None
        print(json.dumps({"t": dt, "peak_gb": peak, "rise_gb": rise}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------- parent


class Worker:
    def __init__(self, args, contender: str):
        cmd = [sys.executable, os.path.abspath(__file__), "--_worker", contender] + _forward_args(args)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.name = contender
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str | None = None) -> dict:
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            rc = self.proc.wait()
            raise RuntimeError(f"worker {self.name} exited with status {rc}")
        return json.loads(reply)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


def _config(args):
    return model_preset(args.preset, vocab_size=32, num_negatives=args.negatives)


def _forward_args(args) -> list[str]:
    out = ["--preset", args.preset, "--batch", str(args.batch), "--seconds", str(args.seconds),
           "--device", args.device, "--negatives", str(args.negatives), "--amp", args.amp]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out


def run_workload(args, workload: str, pool: list[Worker], tmp: Path) -> dict:
    cfg = _config(args)
    inputs = make_inputs(cfg, args.batch, int(args.seconds * 16000), "cpu")
    audio_s = float(inputs["lengths"].sum()) / 16000
    frames = int(inputs["frames"].max())
    flops = forward_flops(cfg, frames, args.batch) * (1 if workload == "ctc-infer" else 3)
    workers = [w for w in pool if not (w.name.startswith(INFER_ONLY) and workload != "ctc-infer")]
    workers = [w for w in workers if not (w.name.startswith("onnxruntime") and args.device != "cpu")]
    workers = [w for w in workers if not (w.name.endswith("@fp16") and args.device == "cpu")]
    build_s = {}
    for w in workers:  # one at a time: a worker building its model must not slow another's steps
        build_s[w.name] = w.ask(f"build {workload}")["build_s"]
    if workload == "ctc-infer":
        ref = None
        for w in workers:
            path = tmp / f"{w.name}.pt"
            w.ask(f"save {path}")
            out = torch.load(path)
            if ref is None:
                ref = out
            else:
                diff = (out - ref).abs().max().item()
                print(f"  ctc-infer: max |logit difference| {w.name} vs {workers[0].name}: {diff:.2e}", flush=True)
    times = {w.name: [] for w in workers}
    peaks: dict[str, float | None] = {w.name: None for w in workers}
    rises: dict[str, float | None] = {w.name: None for w in workers}
    for r in range(args.repeats):
        order = workers if r % 2 == 0 else list(reversed(workers))  # alternate who goes first
        for w in order:
            rep = w.ask("step")
            times[w.name].append(rep["t"])
            for store, key in ((peaks, "peak_gb"), (rises, "rise_gb")):
                if rep[key] is not None:
                    store[w.name] = max(store[w.name] or 0.0, rep[key])
    row = {"workload": workload, "audio_s": audio_s, "flops": flops, "results": {}}
    for name, ts in times.items():
        med = statistics.median(ts)
        row["results"][name] = {"median_s": med, "audio_s_per_s": audio_s / med, "tflops": flops / med / 1e12,
                                "peak_gb": peaks[name], "rise_gb": rises[name], "times": ts,
                                "build_s": build_s[name]}
    return row


def format_table(rows: list[dict], device: str, peak_tflops: float | None) -> str:
    mem = "peak RSS GB" if device == "cpu" else "peak CUDA alloc GB"
    head = f"| workload | contender | s/step | audio s/s | RTF | speed vs w2v2 | {mem} | model TFLOP/s | build+warm-up s |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if peak_tflops:
        head += " MFU |"
        sep += "---|"
    lines = [head, sep]
    for row in rows:
        res = row["results"]
        base = res.get("w2v2") or next(iter(res.values()))
        for name, r in res.items():
            ratio = base["audio_s_per_s"] / r["audio_s_per_s"]
            peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f}"
            line = (f"| {row['workload']} | {name} | {r['median_s']:.3f} | {r['audio_s_per_s']:.2f} | "
                    f"{1 / r['audio_s_per_s']:.3f} | {'1.00x (ref)' if r is base else f'w2v2 {ratio:.2f}x'} | "
                    f"{peak} | {r['tflops']:.3f} | {r['build_s']:.1f} |")
            if peak_tflops:
                line += f" {100 * r['tflops'] / peak_tflops:.1f}% |"
            lines.append(line)
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, 1 x 2 s, 2 repeats, 1 thread")
    p.add_argument("--preset", default="base")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--negatives", type=int, default=100)
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                   help=f"comma-separated, from {', '.join(CONTENDERS)} (torchaudio: ctc-infer only)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads in every worker (0 = torch's default)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none",
                   help="autocast every contender (GPU; bf16 on a CPU without bf16 units is ~30x slower)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's dense peak for the dtype used, to report MFU (H100 SXM bf16: 989)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.preset, args.batch, args.seconds, args.repeats, args.negatives = "tiny", 1, 2.0, 2, 20
        args.threads = args.threads or 1  # small ops: one thread is robust on a busy machine
    if args._worker:
        return worker_main(args, args._worker)
    workloads = [w for w in args.workloads.split(",") if w]
    contenders = [c for c in args.contenders.split(",") if c]
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for c in contenders:
        name, _, precision = c.partition("@")
        if name not in CONTENDERS or precision not in ("", "fp32", "bf16", "fp16") or \
                (name.startswith("onnxruntime") and precision):
            p.error(f"unknown contender {c!r}; choose from {', '.join(CONTENDERS)} (optionally @fp32, @bf16; "
                    "onnxruntime runs the precision it was exported in)")
    import tempfile

    import transformers

    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_model_name()
    print(f"device {args.device} ({dev}), torch {torch.__version__}, transformers {transformers.__version__}, "
          f"threads {args.threads or torch.get_num_threads()}, preset {args.preset}, batch {args.batch} x "
          f"{args.seconds:g} s, negatives {args.negatives}, repeats {args.repeats}, autocast {args.amp}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    pool: list[Worker] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in contenders:
                pool.append(Worker(args, name))
            for w in pool:
                w.ask()  # ready
            for workload in workloads:
                row = run_workload(args, workload, pool, Path(tmp))
                rows.append(row)
                print(f"{workload}: " + ", ".join(f"{n} {r['audio_s_per_s']:.2f} audio s/s"
                                                for n, r in row["results"].items()), flush=True)
        finally:
            for w in pool:
                w.close()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    print(format_table(rows, args.device, args.peak_tflops))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
