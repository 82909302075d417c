"""`w2v2 export hf`: write a w2v2 checkpoint as a transformers directory; `w2v2 export onnx`: a CTC model as one
self-contained ONNX file.

    w2v2 export hf exp/ft/ckpt exp/ft/hf
    python -c "from transformers import Wav2Vec2ForCTC; Wav2Vec2ForCTC.from_pretrained('exp/ft/hf')"
    w2v2 export onnx exp/ft/ckpt exp/ft/model.onnx                 # fp32, checked against PyTorch
    w2v2 export onnx exp/ft/ckpt exp/ft/model.onnx --int8          # and model.int8.onnx: int8 MatMul weights
    w2v2 transcribe exp/ft/model.int8.onnx talk.flac               # decoded by onnxruntime

The directory holds config.json, model.safetensors and preprocessor_config.json, plus vocab.json,
tokenizer_config.json and special_tokens_map.json for CTC models, so `Wav2Vec2ForCTC.from_pretrained` and
`Wav2Vec2Processor.from_pretrained` load it as it is. The ONNX file (`w2v2cli.checkpoint.onnx`) maps waveforms and
lengths to logits and frame lengths and carries the vocabulary and the audio settings in its metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

export_app = typer.Typer(name="export", help="Export w2v2 checkpoints to other toolkits.", no_args_is_help=True)


@export_app.command("hf")
def export_hf_command(
    ckpt: Annotated[Path, typer.Argument(help="w2v2 checkpoint directory.")],
    out: Annotated[Path, typer.Argument(help="Output transformers directory (created, or replaced if it is a "
                                        "previous export).")],
) -> None:
    """Export a checkpoint as a transformers directory (Wav2Vec2ForCTC, ...ForPreTraining or Wav2Vec2Model).

    Example: w2v2 export hf exp/ft/ckpt exp/ft/hf
    """
    from w2v2cli.checkpoint.hf_dir import KIND_TO_ARCH, export_hf

    loaded = export_hf(ckpt, out)
    table = Table(title=f"exported {ckpt}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("directory", str(out))
    table.add_row("architecture", KIND_TO_ARCH[loaded.kind])
    table.add_row("files", ", ".join(sorted(p.name for p in Path(out).iterdir())))
    if loaded.vocab is not None:
        table.add_row("vocabulary", f"{len(loaded.vocab)} tokens")
    Console().print(table)


@export_app.command("onnx")
def export_onnx_command(
    ckpt: Annotated[Path, typer.Argument(help="Fine-tuned CTC checkpoint: our directory, a transformers directory or "
                                         "a fairseq .pt.")],
    out: Annotated[Path, typer.Argument(help="Output .onnx file, fp32 (replaced if it exists).")],
    int8: Annotated[bool, typer.Option("--int8", help="Also write OUT.int8.onnx: the MatMul weights (linear layers) "
                                       "quantised to int8 (onnxruntime's dynamic quantisation), smaller and cheaper "
                                       "on CPUs.")] = False,
    tolerance: Annotated[Optional[float], typer.Option("--tolerance", min=0.0, help="Largest |logit difference| to "
                                                       "PyTorch allowed for the fp32 graph on a check batch "
                                                       "(default 1e-4).")] = None,
) -> None:
    """Export a CTC checkpoint as an ONNX file for onnxruntime (dynamic batch and length; vocabulary in its metadata).

    Example: w2v2 export onnx exp/ft/checkpoint_best exp/ft/model.onnx --int8
    """
    from w2v2cli.checkpoint.onnx import export_onnx, file_size

    report = export_onnx(ckpt, out, int8=int8, tolerance=tolerance)
    table = Table(title=f"exported {ckpt}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    checked = f"on a batch of {report.check_shape[0]} x {report.check_shape[1]} samples"
    table.add_row("fp32 model", f"{report.path} ({file_size(report.path) / 2 ** 20:.1f} MiB)")
    table.add_row("max |diff| fp32 vs PyTorch", f"{report.max_abs_diff:.2e} ({checked})")
    if report.int8_path is not None:
        table.add_row("int8 model", f"{report.int8_path} ({file_size(report.int8_path) / 2 ** 20:.1f} MiB, MatMul "
                                    "weights int8 per channel)")
        table.add_row("max |diff| int8 vs PyTorch", f"{report.int8_max_abs_diff:.2e} (quantisation error)")
    table.add_row("inputs", escape("waveforms [batch, samples] float32, lengths [batch] int64"))
    table.add_row("outputs", escape("logits [batch, frames, vocab] float32, frame_lengths [batch] int64"))
    meta = report.metadata
    table.add_row("audio", f"{meta['sample_rate']} Hz, normalise per utterance: {meta['normalize_audio']}, "
                           f"frame every {meta['frame_stride']} samples")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
