"""`w2v2 plot DIR`: training curves of a run directory as a PNG (needs matplotlib).

    w2v2 plot exp/pt                 # writes exp/pt/curves.png
    w2v2 plot exp/pt --out pt.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with metrics.jsonl (from pretrain/finetune).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG path (default DIR/curves.png).")] = None,
) -> None:
    """Render loss, accuracy, perplexity, lr and throughput curves.

    Example: w2v2 plot exp/pt --out curves.png
    """
    from w2v2cli.train.plot import plot_run

    typer.echo(str(plot_run(run_dir, out)))


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_cmd)
