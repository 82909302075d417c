"""`w2v2 consolidate`: join the sharded checkpoint of an FSDP run into one model.safetensors.

    w2v2 consolidate exp/pt/checkpoints/update_00250000 exp/pt/consolidated
    w2v2 export hf exp/pt/consolidated exp/pt/hf

The output is our normal checkpoint (model.safetensors + config.yaml): any process loads it, a DDP or
single-process run takes it as --init, and `w2v2 export hf` converts it. A sharded checkpoint is also read
directly by `--init`, decoding and export (joined in memory); this command writes the joined file once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def consolidate_cmd(
    ckpt: Annotated[Path, typer.Argument(help="Sharded checkpoint directory (with shards.json) of an FSDP run.")],
    out: Annotated[Path, typer.Argument(help="Output checkpoint directory (created, or replaced if it is a "
                                             "previous checkpoint).")],
) -> None:
    """Join the per-rank shards of an FSDP checkpoint into our normal checkpoint.

    Example: w2v2 consolidate exp/pt/checkpoint_last exp/pt/consolidated
    """
    from w2v2cli.checkpoint.io import consolidate_checkpoint, read_checkpoint_meta
    from w2v2cli.checkpoint.shards import read_index

    dest = consolidate_checkpoint(ckpt, out)  # names a checkpoint that is not sharded
    index = read_index(ckpt)
    kind = read_checkpoint_meta(dest)["kind"]
    Console().print(f"joined {index['world_size']} shards of {ckpt} ({len(index['model'])} tensors, kind {kind}) "
                    f"into {dest / 'model.safetensors'}")


def register(app: typer.Typer) -> None:
    app.command("consolidate")(consolidate_cmd)
