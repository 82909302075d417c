"""`w2v2 shard`: a manifest (and its labels) as WebDataset tar shards that training streams.

    w2v2 shard data/train-960.tsv --out data/train-960.shards --jobs 8
    w2v2 shard data/de/train.tsv --out data/de/train.shards --shard-minutes 10
    w2v2 shard data/train.tsv --out data/train.shards --shard-size 512M
    w2v2 pretrain data/train-960.shards --valid data/dev-clean.tsv --config base --out exp/pt   # train on them
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.data.shards import DEFAULT_SHARD_MINUTES, INDEX, ShardConfig, write_shards
from w2v2cli.errors import ConfigError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """'512M' -> 536870912 (K, M, G: powers of 1024; a trailing B or iB is allowed); ConfigError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*", text.upper())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--shard-size must be a size such as 512M or 2G, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def shard_cmd(
    manifest: Annotated[Path, typer.Argument(help="fairseq manifest (.tsv); its .ltr/.wrd labels (and dict.ltr.txt) beside it go into the shards too.")],
    out: Annotated[Path, typer.Option("--out", "-o", help=f"Output directory: shard-NNNNNN.tar files and {INDEX}.")],
    shard_minutes: Annotated[Optional[float], typer.Option("--shard-minutes", help=f"Audio per shard in minutes (default {DEFAULT_SHARD_MINUTES:g}); shards are of nearly equal duration.")] = None,
    shard_size: Annotated[Optional[str], typer.Option("--shard-size", help="Cut by size instead of duration, e.g. 512M or 1G.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffle before cutting (a shard mixes speakers).")] = 1,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Shards written in parallel (and header reads).")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if OUT already holds complete shards.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Write MANIFEST's audio (FLAC kept, other formats re-encoded to FLAC) and labels as WebDataset tar shards.

    Example: w2v2 shard data/train-960.tsv --out data/train-960.shards --jobs 8
    """
    if shard_minutes is not None and shard_size is not None:
        raise ConfigError("give --shard-minutes or --shard-size, not both")
    cfg = ShardConfig(manifest=manifest, out=out, shard_minutes=shard_minutes or DEFAULT_SHARD_MINUTES,
                      shard_bytes=parse_size(shard_size) if shard_size is not None else 0, seed=seed, jobs=jobs,
                      force=force, progress=progress)
    result = write_shards(cfg)
    console = Console()
    if result.reused:
        console.print(f"[green]{result.out} is already complete[/] (nothing to do; --force rebuilds)")
    table = Table(title=f"shards in {result.out}", header_style="bold")
    for col in ("shards", "utterances", "hours", "size", "minutes per shard", "labels"):
        table.add_column(col, justify="right")
    table.add_row(str(result.num_shards), str(result.num_members), f"{result.hours:.3f}",
                  f"{result.nbytes / 2**20:,.1f} MiB", f"{result.hours * 60 / max(result.num_shards, 1):.1f}",
                  ", ".join(result.labels) or "none")
    console.print(table)
    if result.reencoded:
        console.print(f"re-encoded {result.reencoded} non-FLAC files to FLAC")
    console.print(f"train on them: w2v2 pretrain {result.out} ... (or w2v2 finetune {result.out} ...)")


def register(app: typer.Typer) -> None:
    app.command("shard")(shard_cmd)
