"""What the user sees during training: a rich progress display, DIR/metrics.jsonl, TensorBoard, health warnings.

    >>> log = RunLogger(out_dir, cfg.logging, max_updates=cfg.optim.max_updates, enabled=rank == 0)
    >>> log.train(update, {"loss": 3.1, "accuracy": 0.4, "lr": 5e-4, "audio_s_per_s": 812.0})
    >>> log.warn(update, "loss is still at chance level ...")
    >>> log.close()

`metrics.jsonl` has one JSON object per log step: `{"split": "train"|"valid", "update": N, ...metrics}`; warnings
are records with `"event": "warning"`. On resume the records after the checkpoint's update are dropped, so the
file always describes the run that the checkpoints continue. Only rank 0 creates a logger that writes.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Console

from w2v2cli.errors import TrainingError
from w2v2cli.train.config import LoggingConfig
from w2v2cli.textio import atomic_write_text

METRICS_FILE = "metrics.jsonl"

# shown on the progress line, in this order, when present
_SHOW = [("loss", "loss", "{:.3f}"), ("accuracy", "acc", "{:.3f}"), ("code_perplexity", "code_ppl", "{:.1f}"),
         ("prob_perplexity", "prob_ppl", "{:.1f}"), ("temperature", "temp", "{:.3f}"), ("wer", "wer", "{:.2%}"),
         ("lr", "lr", "{:.2e}"), ("grad_norm", "gnorm", "{:.2f}"), ("audio_s_per_s", "audio s/s", "{:.0f}")]


def format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, label, fmt in _SHOW:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {fmt.format(value)}")
    return " | ".join(parts)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of DIR/metrics.jsonl (a truncated last line, from a crash, is ignored)."""
    path = Path(run_dir) / METRICS_FILE
    records = []
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: str | os.PathLike, update: int) -> None:
    """Drops records written after `update` (they belong to a run that was killed before its next checkpoint)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    keep = [r for r in read_metrics(run_dir) if int(r.get("update", 0)) <= update]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


class RunLogger:
    """The one writer of a run's records: `metrics.jsonl` (in `out_dir`; None: console only), TensorBoard and the
    console. Only an `enabled` logger (rank 0) writes or prints."""

    def __init__(self, out_dir: str | os.PathLike | None, cfg: LoggingConfig, max_updates: int | None,
                 enabled: bool = True, console: Console | None = None, start_update: int = 0):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.cfg = cfg
        self.enabled = enabled
        self.max_updates = max_updates
        self.console = console or Console(stderr=True)
        self._file = None
        self._tb = None
        self._progress = None
        self._task = None
        self._t0 = time.monotonic()
        self._start_update = start_update
        self.mode = cfg.progress
        if not enabled:
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.out_dir / METRICS_FILE, "a", encoding="utf-8")
        if cfg.tensorboard and self.out_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tb = None
        mode = cfg.progress
        if mode == "auto":
            mode = "rich" if self.console.is_terminal else "plain"
        self.mode = mode
        if mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]update"), MofNCompleteColumn(), BarColumn(),
                                      TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
                                      console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task("train", total=max_updates, completed=start_update, metrics="")

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()}
        try:
            self._file.write(json.dumps(clean) + "\n")
            self._file.flush()
        except OSError as err:  # disk full, quota: one line naming the file
            raise TrainingError(f"cannot write {self.out_dir / METRICS_FILE}: {err.strerror or err}",
                                hint=f"free space on {self.out_dir}, then continue with --resume auto") from err

    def set_total(self, max_updates: int | None) -> None:
        """The run's length changed (a time budget's plan; None: not known yet)."""
        self.max_updates = max_updates
        if self._progress is not None:
            self._progress.update(self._task, total=max_updates)

    def eta(self, update: int) -> float | None:
        done = update - self._start_update
        if done <= 0 or self.max_updates is None:
            return None
        return (time.monotonic() - self._t0) / done * (self.max_updates - update)

    def train(self, update: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"split": "train", "update": update, **metrics}
        self._write(record)
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"train/{key}", value, update)
        if self._progress is not None:
            self._progress.update(self._task, completed=update, metrics=format_metrics(metrics))
        elif self.mode == "plain":
            eta = self.eta(update)
            eta_text = f" | eta {eta / 60:.1f} min" if eta is not None else ""
            total = f"/{self.max_updates}" if self.max_updates is not None else ""
            self.console.print(f"update {update}{total} | {format_metrics(metrics)}{eta_text}",
                               highlight=False, markup=False)

    def advance(self, update: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=update)

    def valid(self, update: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._write({"split": "valid", "update": update, **metrics})
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"valid/{key}", value, update)
        if self.mode != "none":
            self.console.print(f"[cyan]valid[/] update {update} | {format_metrics(metrics)}", highlight=False)

    def warn(self, update: int | None, text: str) -> None:
        """Prints a warning and records it in metrics.jsonl (not when `update` is None: before the first update)."""
        if not self.enabled:
            return
        if update is not None:
            self._write({"event": "warning", "update": update, "message": text})
        self.console.print(f"[yellow]warning:[/] {text}", highlight=False)

    def info(self, text: str) -> None:
        if self.enabled and self.mode != "none":
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._file is not None:
            self._file.close()
            self._file = None


class HealthMonitor:
    """Generic checks (exploding gradients, NaN/inf); task checks come from `task.health(metrics, update)`.

    A warning is repeated at most every `repeat` log steps, so a persistent problem stays visible without
    flooding the log.
    """

    def __init__(self, grad_norm_warn: float = 100.0, repeat: int = 20):
        self.grad_norm_warn = grad_norm_warn
        self.repeat = repeat
        self._norms: deque[float] = deque(maxlen=50)
        self._last: dict[str, int] = {}
        self._steps = 0
        self._train_loss: float | None = None  # the last logged training loss
        self._valid: list[tuple[int, float, float]] = []  # (update, valid loss, train loss then) per validation
        self._diverged_at: int | None = None  # the validation whose rise was last reported

    def check_valid(self, update: int, valid_loss: float | None) -> list[str]:
        """Over-fitting: the validation loss rose at `rises` validations in a row while the training loss fell.
        Reported once per rise (small labelled sets over-fit within minutes: the best checkpoint is earlier)."""
        rises = 2
        if valid_loss is None or self._train_loss is None or not math.isfinite(valid_loss):
            return []
        self._valid.append((update, float(valid_loss), self._train_loss))
        recent = self._valid[-(rises + 1):]
        if len(recent) <= rises or self._diverged_at == recent[0][0]:
            return []
        rising = all(b[1] > a[1] for a, b in zip(recent, recent[1:]))
        if not rising or recent[-1][2] >= recent[0][2]:
            return []
        self._diverged_at = recent[0][0]
        (u0, v0, t0), (u1, v1, t1) = recent[0], recent[-1]
        return [f"over-fitting: valid loss rose from {v0:.3f} (update {u0}) to {v1:.3f} (update {u1}) while the "
                f"training loss fell from {t0:.3f} to {t1:.3f}; checkpoint_best keeps the best model. More labelled "
                "audio, augmentation (data.speed_perturb, data.noise_prob), stronger masks or fewer updates help"]

    def check(self, metrics: dict[str, Any], task_warnings: list[tuple[str, str]]) -> list[str]:
        self._steps += 1
        loss = metrics.get("loss")
        if isinstance(loss, float) and math.isfinite(loss):
            self._train_loss = loss
        found: list[tuple[str, str]] = list(task_warnings)
        norm = metrics.get("grad_norm")
        if isinstance(norm, float) and math.isfinite(norm):
            if len(self._norms) >= 5:
                median = statistics.median(self._norms)
                if norm > self.grad_norm_warn and norm > 10 * median:
                    found.append(("grad", f"exploding gradient norm: {norm:.3g} (recent median {median:.3g}); "
                                          "lower optim.lr, set optim.clip_norm, or use bf16 instead of fp16"))
            self._norms.append(norm)
        if metrics.get("nonfinite", 0):
            found.append(("nonfinite", f"{metrics['nonfinite']} update(s) skipped for a NaN/inf loss since the last "
                                       "log line (fp16 overflow? bad audio?)"))
        out = []
        for key, text in found:
            last = self._last.get(key)
            if key == "nonfinite" or last is None or self._steps - last >= self.repeat:
                self._last[key] = self._steps
                out.append(text)
        return out
