"""`w2v2 info`: what a checkpoint holds — config, parameters per part, vocabulary, provenance.

    w2v2 info exp/base/ckpt
    w2v2 info wav2vec2-base-960h/            # transformers directories and fairseq .pt files work too
    w2v2 info wav2vec_small_960h.pt --dict dict.ltr.txt
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from w2v2cli.checkpoint import LoadedCheckpoint


def _config_table(loaded: LoadedCheckpoint) -> Table:
    table = Table(title=f"model config ({loaded.kind})", header_style="bold")
    table.add_column("key")
    table.add_column("value")
    for field in dataclasses.fields(loaded.cfg):
        value = getattr(loaded.cfg, field.name)
        if field.name == "conv_layers":
            value = ", ".join(f"({c},{k},{s})" for c, k, s in value)
        table.add_row(field.name, str(value))
    return table


def _params_table(counts: dict[str, int]) -> Table:
    total = sum(counts.values())
    table = Table(title="parameters", header_style="bold")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("%", justify="right")
    for part, n in counts.items():
        table.add_row(part, f"{n:,}", f"{100 * n / total:.1f}")
    table.add_row("total", f"{total:,}", "100.0", style="bold")
    return table


def _vocab_table(loaded: LoadedCheckpoint, limit: int) -> Table:
    vocab = loaded.vocab
    table = Table(title=f"vocabulary ({vocab.kind}, {len(vocab)} tokens)", header_style="bold")
    table.add_column("id", justify="right")
    table.add_column("token")
    table.add_column("role")
    for i, tok in enumerate(vocab.tokens[:limit]):
        role = "blank" if i == vocab.blank else "word separator" if tok == vocab.word_sep else \
            "unknown" if tok == vocab.unk else ""
        table.add_row(str(i), repr(tok)[1:-1] if tok.strip() == tok else repr(tok), role)
    if len(vocab) > limit:
        table.add_row("...", f"{len(vocab) - limit} more", "")
    return table


def info_cmd(
    ckpt: Annotated[Path, typer.Argument(help="w2v2 checkpoint dir, transformers dir or fairseq .pt file.")],
    dict_path: Annotated[Optional[Path], typer.Option(
        "--dict", help="Letter dictionary for a fairseq CTC checkpoint (default: beside it).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Show at most this many vocabulary entries.")] = 100,
) -> None:
    """Print a checkpoint's config, parameter count per part and vocabulary.

    Example: w2v2 info exp/base/ckpt
    """
    from w2v2cli.checkpoint import load_model_any, parameter_counts  # torch: import on use

    loaded = load_model_any(ckpt, dict_path=dict_path)
    console = Console()
    console.print(_config_table(loaded))
    console.print(_params_table(parameter_counts(loaded.model)))
    if loaded.vocab is not None:
        console.print(_vocab_table(loaded, max_tokens))
    if loaded.provenance:
        table = Table(title="provenance", header_style="bold")
        table.add_column("key")
        table.add_column("value")
        for key, value in loaded.provenance.items():
            table.add_row(str(key), str(value))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("info")(info_cmd)
