"""The end-of-run summary that `w2v2 pretrain` and `w2v2 finetune` print (one table, task rows in the middle)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_train_summary(title: str, result, out: Path, rows: list[tuple[str, str]], best_label: str,
                        console: Console, log_console: Console) -> None:
    """`result` is a `w2v2cli.train.trainer.TrainResult`; `rows` are the task's metric rows. The table goes to
    `console` (the commands give stdout, the run's result); a stop by a signal is noted on `log_console` (the
    run's log, stderr), beside the trainer's own notices."""
    table = Table(title=title, show_header=False)
    table.add_row("stopped", f"{result.stopped} at update {result.update} (epoch {result.epoch})")
    for name, value in rows:
        table.add_row(name, value)
    if result.skipped_utterances:
        table.add_row("skipped utterances", str(result.skipped_utterances))
    table.add_row("checkpoint", str(result.last_checkpoint))
    if result.best_checkpoint:
        table.add_row(best_label, str(result.best_checkpoint))
    table.add_row("metrics", str(out / "metrics.jsonl"))
    console.print(table)
    if result.stopped in ("SIGTERM", "SIGINT"):
        log_console.print(f"[yellow]stopped by {result.stopped}[/]: checkpoint saved; continue with --resume auto")
