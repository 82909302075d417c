"""`w2v2 import`: convert a transformers directory or a fairseq checkpoint into a w2v2 checkpoint.

    w2v2 import hf wav2vec2-base-960h/ exp/base960h
    w2v2 import fairseq wav2vec_small.pt exp/base
    w2v2 import fairseq wav2vec_small_960h.pt exp/base960h --dict dict.ltr.txt

The weights are renamed, checked against the model config (every weight used, every shape right) and
written as model.safetensors + config.yaml. fairseq files are read without running pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from w2v2cli.checkpoint import LoadedCheckpoint

import_app = typer.Typer(
    name="import", help="Convert transformers or fairseq wav2vec 2.0 models into w2v2 checkpoints.",
    no_args_is_help=True,
)


def print_import_summary(loaded: LoadedCheckpoint, source: Path, console: Console | None = None) -> None:
    console = console or Console()
    cfg = loaded.cfg
    table = Table(title=f"imported {source}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("checkpoint", str(loaded.path))
    table.add_row("kind", loaded.kind)
    table.add_row("source", str(loaded.provenance.get("source", "?")))
    from w2v2cli.checkpoint import parameter_counts

    table.add_row("parameters", f"{sum(parameter_counts(loaded.model).values()):,}")
    table.add_row("encoder", f"{cfg.encoder_layers} x {cfg.encoder_embed_dim}, {cfg.encoder_attention_heads} heads, "
                  f"{'pre-LN' if cfg.layer_norm_first else 'post-LN'}, {cfg.extractor_mode} conv")
    table.add_row("normalize audio", str(cfg.normalize_audio))
    if loaded.vocab is not None:
        table.add_row("vocabulary", f"{len(loaded.vocab)} tokens ({loaded.vocab.kind}), blank "
                      f"{loaded.vocab.blank_token!r}")
    console.print(table)


@import_app.command("hf")
def import_hf(
    directory: Annotated[Path, typer.Argument(help="transformers directory: config.json + model.safetensors or "
                                              "pytorch_model.bin (+ vocab.json for Wav2Vec2ForCTC).")],
    out: Annotated[Path, typer.Argument(help="Output w2v2 checkpoint directory.")],
) -> None:
    """Import a transformers Wav2Vec2ForPreTraining / Wav2Vec2Model / Wav2Vec2ForCTC directory.

    Example: w2v2 import hf wav2vec2-base-960h/ exp/base960h
    """
    from w2v2cli.checkpoint import import_checkpoint  # torch: import on use

    loaded = import_checkpoint(directory, out, "hf")
    print_import_summary(loaded, directory)


@import_app.command("fairseq")
def import_fairseq(
    checkpoint: Annotated[Path, typer.Argument(help="fairseq wav2vec 2.0 checkpoint (.pt): pretraining or CTC.")],
    out: Annotated[Path, typer.Argument(help="Output w2v2 checkpoint directory.")],
    dict_path: Annotated[Optional[Path], typer.Option(
        "--dict", help="Letter dictionary of a CTC model (default: dict.ltr.txt beside the checkpoint).")] = None,
) -> None:
    """Import a fairseq wav2vec 2.0 pretraining or CTC fine-tuned checkpoint.

    Example: w2v2 import fairseq wav2vec_small_960h.pt exp/base960h --dict dict.ltr.txt
    """
    from w2v2cli.checkpoint import import_checkpoint  # torch: import on use

    loaded = import_checkpoint(checkpoint, out, "fairseq", dict_path=dict_path)
    print_import_summary(loaded, checkpoint)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
