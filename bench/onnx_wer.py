#!/usr/bin/env python3
"""What int8 costs in accuracy: WER and CER of a fine-tuned checkpoint decoded by PyTorch (fp32), by onnxruntime from
its fp32 export and from its int8 export, on one test manifest; greedy, and with a lexicon + KenLM beam search when
given.

    python bench/onnx_wer.py exp/ft/checkpoint_best data/test-clean.tsv
    python bench/onnx_wer.py exp/ft/checkpoint_best data/test-clean.tsv --lexicon exp/lm/lexicon.txt \\
        --lm exp/lm/lm.bin --beam 500 --lm-weight 2.0 --word-score -1.0 --out exp/onnx_wer

The checkpoint is exported once (`w2v2 export onnx --int8`: OUT/model.onnx and OUT/model.int8.onnx; `--onnx FILE`
takes an existing fp32 export and its `.int8.onnx` twin instead). Every row decodes the same manifest through the same
code (`w2v2cli.decode.run.decode_manifest`, only `--backend` differs) and is scored as `w2v2 score` does; "changed"
counts the utterances whose transcript differs from PyTorch fp32's. Elapsed seconds are the runs' own wall times, one
run each, not interleaved: bench_decode.py measures speed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2v2cli.checkpoint.onnx import export_onnx, int8_path_for  # noqa: E402
from w2v2cli.decode.run import DecodeConfig, decode_manifest  # noqa: E402
from w2v2cli.runtime import cpu_model_name  # noqa: E402
from w2v2cli.score import format_percent  # noqa: E402


def models(args, out: Path) -> list[tuple[str, str, Path]]:
    """(name, backend, model path) of the three contenders, exporting the checkpoint when no --onnx is given."""
    if args.onnx is None:
        report = export_onnx(args.ckpt, out / "model.onnx", int8=True)
        print(f"exported {report.path} and {report.int8_path}: max |logit diff| to PyTorch fp32 "
              f"{report.max_abs_diff:.2e}, int8 {report.int8_max_abs_diff:.2e}", flush=True)
        fp32 = report.path
    else:
        fp32 = args.onnx
    return [("torch fp32", "torch", args.ckpt), ("onnxruntime fp32", "onnxruntime", fp32),
            ("onnxruntime int8", "onnxruntime", int8_path_for(fp32))]


def decoders(args) -> list[tuple[str, dict]]:
    """(label, DecodeConfig fields) for greedy and, with --lexicon, the beam search."""
    out = [("greedy", {"decoder": "viterbi"})]
    if args.lexicon:
        out.append(("beam" + (" + LM" if args.lm else ""),
                    {"decoder": "beam", "lexicon": str(args.lexicon), "lm": str(args.lm) if args.lm else None,
                     "beam_size": args.beam, "lm_weight": args.lm_weight, "word_score": args.word_score}))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", type=Path, help="fine-tuned CTC checkpoint")
    p.add_argument("manifest", type=Path, help="test manifest (TEST.wrd or TEST.ltr beside it)")
    p.add_argument("--onnx", type=Path, help="an existing fp32 export (its .int8.onnx twin beside it)")
    p.add_argument("--lexicon", type=Path)
    p.add_argument("--lm", type=Path)
    p.add_argument("--beam", type=int, default=DecodeConfig.beam_size)
    p.add_argument("--lm-weight", type=float, default=DecodeConfig.lm_weight)
    p.add_argument("--word-score", type=float, default=DecodeConfig.word_score)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, help="keep the exports and hypotheses here (default: a temporary directory)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="onnx-wer-") as tmp:
        out = args.out or Path(tmp)
        print(f"CPU: {cpu_model_name()}; manifest {args.manifest}", flush=True)
        contenders = models(args, out)
        rows = []
        for label, fields in decoders(args):
            ref_texts = None
            for name, backend, model in contenders:
                res = decode_manifest(model, args.manifest, out / f"{name}-{label}".replace(" ", "_"),
                                      DecodeConfig(backend=backend, threads=args.threads, progress=False, **fields))
                if res.words is None:
                    p.error(f"{args.manifest} has no references beside it (.wrd or .ltr)")
                texts = [h.text for h in res.hypotheses]
                ref_texts = texts if ref_texts is None else ref_texts
                changed = sum(a != b for a, b in zip(ref_texts, texts))
                rows.append((label, name, format_percent(res.words.errors, res.words.ref_tokens),
                             format_percent(res.chars.errors, res.chars.ref_tokens), changed, len(texts),
                             res.elapsed_seconds))
                print(f"  {label}, {name}: WER {rows[-1][2]} %", flush=True)
        print("\n| decoder | model | WER % | CER % | changed vs torch fp32 | elapsed s |")
        print("|---|---|---|---|---|---|")
        for label, name, wer, cer, changed, total, elapsed in rows:
            print(f"| {label} | {name} | {wer} | {cer} | {changed} of {total} | {elapsed:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
