"""Command-line parameters that several commands declare the same way (typer `Annotated` aliases), and the
options of `w2v2 decode` and `w2v2 transcribe`, declared once (`decode_options`) with `DecodeOptions`' defaults.

    def align(ckpt: CtcCheckpoint, ..., device: Device = "cpu", dtype: Dtype = "fp32", progress: Progress = True)
    @decode_options
    def decode(ckpt: CtcCheckpoint, ..., *, options: DecodeConfig)      # --decoder ... --threads
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from w2v2cli.decode.options import DecodeOptions

# inference: w2v2 decode, w2v2 align
CtcCheckpoint = Annotated[Path, typer.Argument(
    help="CTC checkpoint: our directory, a transformers directory, a fairseq .pt, or a .onnx file of w2v2 export "
         "onnx.")]
BatchSeconds = Annotated[float, typer.Option("--batch-seconds", help="Padded audio seconds per batch.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
Dtype = Annotated[str, typer.Option("--dtype", help="fp32, bf16 (weights cast once) or auto (bf16 where the "
                                                      "hardware has it: GPUs with bf16, CPUs with AMX or "
                                                      "avx512_bf16; says so in the summary).")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
Backend = Annotated[str, typer.Option("--backend", help="What computes the logits: torch, onnxruntime (a .onnx file "
                                                        "of w2v2 export onnx) or auto (by the model's suffix).")]
# decoding: w2v2 decode, w2v2 transcribe (through decode_options, below)
Decoder = Annotated[str, typer.Option("--decoder", help="viterbi (greedy best path) or beam.")]
Lexicon = Annotated[Optional[Path], typer.Option("--lexicon", help="Lexicon for beam search (w2v2 lm build).")]
LanguageModel = Annotated[Optional[Path], typer.Option("--lm", help="KenLM model, ARPA or binary (w2v2 lm build).")]
BeamSize = Annotated[int, typer.Option("--beam", min=1, help="Beam size.")]
BeamTokens = Annotated[Optional[int], typer.Option("--beam-tokens", min=1, help="Expand only the N most likely "
                                                   "tokens per frame (default: all); with --beam-threshold 25 it "
                                                   "makes a wider beam affordable.")]
BeamThreshold = Annotated[float, typer.Option("--beam-threshold", help="Prune hypotheses this far below the best.")]
LmWeight = Annotated[float, typer.Option("--lm-weight", help="Language model weight.")]
WordScore = Annotated[float, typer.Option("--word-score", help="Score added per word.")]
ChunkSeconds = Annotated[float, typer.Option("--chunk-seconds", help="Longer files are decoded in overlapping "
                                                                     "windows of this length.")]
ChunkOverlap = Annotated[float, typer.Option("--chunk-overlap", help="Seconds of context on each side of a "
                                                                     "window.")]
# every command that runs the model: w2v2 decode, align, transcribe, pretrain, finetune
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for the model (default: "
                                                                          "one per core, fastest on an idle "
                                                                          "machine; 1 when other jobs share "
                                                                          "the cores).")]

# The options w2v2 decode and w2v2 transcribe share, in their order in --help: (parameter, type, DecodeOptions field).
DECODE_OPTIONS = (
    ("decoder", Decoder, "decoder"), ("lexicon", Lexicon, "lexicon"), ("lm", LanguageModel, "lm"),
    ("beam", BeamSize, "beam_size"), ("beam_tokens", BeamTokens, "beam_size_token"),
    ("beam_threshold", BeamThreshold, "beam_threshold"), ("lm_weight", LmWeight, "lm_weight"),
    ("word_score", WordScore, "word_score"), ("batch_seconds", BatchSeconds, "batch_seconds"),
    ("chunk_seconds", ChunkSeconds, "chunk_seconds"), ("chunk_overlap", ChunkOverlap, "chunk_overlap_seconds"),
    ("device", Device, "device"), ("dtype", Dtype, "dtype"), ("backend", Backend, "backend"),
    ("progress", Progress, "progress"), ("threads", Threads, "threads"),
)


def decode_options(command: Callable[..., None]) -> Callable[..., None]:
    """Gives `command` the options of DECODE_OPTIONS with the defaults of `DecodeOptions`: its parameter
    `options` (annotated with `DecodeOptions` or a subclass) becomes --decoder ... --threads, in its place, and
    the command receives their values as one object of that class (its other fields at their defaults)."""
    signature = inspect.signature(command, eval_str=True)
    options_cls = signature.parameters["options"].annotation
    if not (isinstance(options_cls, type) and issubclass(options_cls, DecodeOptions)):
        raise TypeError(f"{command.__name__}: the parameter 'options' must be annotated with DecodeOptions")
    defaults = {f.name: f.default for f in fields(options_cls)}
    keyword = inspect.Parameter.KEYWORD_ONLY  # typer passes every value by name
    params = []
    for param in signature.parameters.values():
        if param.name == "options":
            params += [inspect.Parameter(name, keyword, default=defaults[field], annotation=kind)
                       for name, kind, field in DECODE_OPTIONS]
        else:
            params.append(param.replace(kind=keyword))

    @functools.wraps(command)
    def with_options(**values) -> None:
        given = {field: values.pop(name) for name, _, field in DECODE_OPTIONS}
        given.update({k: str(given[k]) for k in ("lexicon", "lm") if given[k] is not None})
        command(**values, options=options_cls(**given))

    with_options.__signature__ = signature.replace(parameters=params)
    with_options.__annotations__ = {p.name: p.annotation for p in params}
    return with_options


# training: w2v2 pretrain, w2v2 finetune
TrainDtype = Annotated[Optional[str], typer.Option("--dtype", help="auto, fp32 or bf16 (sets optim.precision; "
                                                                   "auto: bf16 on GPUs with bf16 and CPUs with "
                                                                   "AMX or avx512_bf16, named in the log and "
                                                                   "summary).")]
RunDir = Annotated[Path, typer.Option("--out", "-o", help="Run directory (checkpoints, metrics, config).")]
MaxUpdates = Annotated[Optional[int], typer.Option("--max-updates", help="Stop after N updates.")]
MaxMinutes = Annotated[Optional[float], typer.Option("--max-minutes", min=0.0, help="Train for about M minutes: "
                                                     "the number of updates is planned from the measured speed "
                                                     "and the lr schedule ends with it (sets optim.max_minutes; "
                                                     "--max-updates, if given, caps it).")]
Resume = Annotated[Optional[str], typer.Option("--resume", help="'auto' (newest loadable checkpoint in --out, if "
                                                                "any), a checkpoint directory, or 'restart' (move "
                                                                "the run in --out aside and start over).")]
