"""Stopping a run cleanly on SIGTERM / SIGINT: the trainer saves after the update and exits 143 / 130.

    >>> with Stopper() as stopper:
    ...     while not stopper.signal:     # "SIGTERM" or "SIGINT" once one arrived
    ...         one_update()

Ctrl-C reaches the whole foreground process group, and so does SIGTERM from `timeout`, SLURM's `scancel` or a
preempting scheduler: the main process turns it into a flag checked after each update, and data-loader workers
ignore it (`leave_signals_to_main`), so that no worker dies mid-run and makes the run crash instead of saving.
"""

from __future__ import annotations

import signal
from typing import Any

SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report them


class Stopper:
    """Turns SIGTERM/SIGINT into a flag (`signal`, the signal's name) checked after each update; a second
    Ctrl-C raises KeyboardInterrupt at once. The previous handlers come back on exit."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "Stopper":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some test runners): no handler
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def leave_signals_to_main(_worker_id: int) -> None:
    """A DataLoader `worker_init_fn`: workers ignore SIGINT and SIGTERM and the main process stops the run at the
    end of the update and saves. A worker still exits when the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
