"""`w2v2 export hf`: write a w2v2 checkpoint as a transformers directory.

    w2v2 export hf exp/ft/ckpt exp/ft/hf
    python -c "from transformers import Wav2Vec2ForCTC; Wav2Vec2ForCTC.from_pretrained('exp/ft/hf')"

The directory holds config.json, model.safetensors and preprocessor_config.json, plus vocab.json,
tokenizer_config.json and special_tokens_map.json for CTC models, so `Wav2Vec2ForCTC.from_pretrained` and
`Wav2Vec2Processor.from_pretrained` load it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
