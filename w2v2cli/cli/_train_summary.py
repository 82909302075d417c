"""The end-of-run summary that `w2v2 pretrain` and `w2v2 finetune` print (one table, task rows in the middle)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def print_train_summary(title: str, result, out: Path, rows: list[tuple[str, str]], best_label: str,
                        console: Console, log_console: Console) -> None:
    """`result` is a `w2v2cli.train.trainer.TrainResult`; `rows` are the task's metric rows. The table goes to
    `console` (the commands give stdout, the run's result); a stop by a signal is noted on `log_console` (the
    run's log, stderr), beside the trainer's own notices. Printed by rank 0 only (torchrun). A run stopped by
    SIGINT/SIGTERM exits 130/143 (typer.Exit), so that `&&` chains, recipes and schedulers never take it for a
    finished one."""
    if os.environ.get("RANK", "0") == "0":
        _print(title, result, out, rows, best_label, console, log_console)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _print(title: str, result, out: Path, rows: list[tuple[str, str]], best_label: str, console: Console,
           log_console: Console) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("stopped", f"{result.stopped} at update {result.update} (epoch {result.epoch})")
    for name, value in rows:
        table.add_row(name, value)
    if result.skipped_utterances:
        table.add_row("skipped utterances", str(result.skipped_utterances))
    if result.bad_files:
        table.add_row("bad audio files skipped", f"{result.bad_files} (listed in {out / 'bad_audio.tsv'})")
    if getattr(result, "precision", ""):
        table.add_row("precision", result.precision)
    table.add_row("checkpoint", str(result.last_checkpoint))
    if result.best_checkpoint:
        table.add_row(best_label, str(result.best_checkpoint))
    table.add_row("metrics", str(out / "metrics.jsonl"))
    console.print(table)
    if result.exit_code:
        log_console.print(f"[yellow]stopped by {result.stopped}[/] at update {result.update}: checkpoint saved; the "
                          f"run is not finished (exit status {result.exit_code}): continue it with the same command "
                          f"and --resume auto")
