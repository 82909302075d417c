"""Command-line parameters that several commands declare the same way (typer `Annotated` aliases).

    def decode(ckpt: CtcCheckpoint, ..., device: Device = "cpu", dtype: Dtype = "fp32", progress: Progress = True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# inference: w2v2 decode, w2v2 align
CtcCheckpoint = Annotated[Path, typer.Argument(
    help="CTC checkpoint: our directory, a transformers directory or a fairseq .pt.")]
BatchSeconds = Annotated[float, typer.Option("--batch-seconds", help="Padded audio seconds per batch.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
Dtype = Annotated[str, typer.Option("--dtype", help="fp32, bf16 (weights cast once) or auto (bf16 where the "
                                                      "hardware has it: GPUs with bf16, CPUs with AMX or "
                                                      "avx512_bf16; says so in the summary).")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
# decoding: w2v2 decode, w2v2 transcribe
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
NO_UPDATE_CAP = 1_000_000_000  # optim.max_updates when --max-minutes alone sets the run's length


def budget_options(set_: list[str] | None, max_minutes: float | None,
                   max_updates: int | None) -> tuple[list[str], int | None]:
    """--max-minutes as `--set optim.max_minutes=M` after the other --set values; without --max-updates the
    budget alone sets the run's length (the preset's max_updates would otherwise cap it)."""
    set_ = list(set_ or [])
    if max_minutes:
        set_.append(f"optim.max_minutes={max_minutes}")
        if max_updates is None:
            max_updates = NO_UPDATE_CAP
    return set_, max_updates
Resume = Annotated[Optional[str], typer.Option("--resume", help="'auto' (newest loadable checkpoint in --out, if "
                                                                "any), a checkpoint directory, or 'restart' (move "
                                                                "the run in --out aside and start over).")]
