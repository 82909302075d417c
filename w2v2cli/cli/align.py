"""`w2v2 align`: word times of the reference transcripts by CTC forced alignment.

    w2v2 align exp/ft/best data/test.tsv --out exp/align
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.cli._options import BatchSeconds, CtcCheckpoint, Device, Dtype, Progress, Threads



def align_cmd(
    ckpt: CtcCheckpoint,
    manifest: Annotated[Path, typer.Argument(help="Manifest TEST.tsv with TEST.wrd or TEST.ltr beside it.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (align.jsonl, align.ctm).")],
    batch_seconds: BatchSeconds = 200.0,
    chunk_seconds: Annotated[float, typer.Option("--chunk-seconds", help="Longer files are processed in overlapping windows.")] = 30.0,
    device: Device = "cpu",
    dtype: Dtype = "fp32",
    progress: Progress = True,
    threads: Threads = None,
) -> None:
    """Force-align reference transcripts to the audio; write align.jsonl and align.ctm.

    Example: w2v2 align exp/ft/best data/test.tsv --out exp/align
    """
    from w2v2cli.decode.run import DecodeConfig, align_manifest, summary_rows  # torch: import on use
    from w2v2cli.runtime import configure_runtime

    configure_runtime(threads=threads)

    cfg = DecodeConfig(batch_seconds=batch_seconds, chunk_seconds=chunk_seconds, device=device, dtype=dtype,
                       progress=progress)
    res = align_manifest(ckpt, manifest, out, cfg)
    table = Table(title="align", header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in summary_rows(res):
        table.add_row(name, value)
    table.add_row("words", str(sum(len(h.words) for h in res.hypotheses)))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("align")(align_cmd)
