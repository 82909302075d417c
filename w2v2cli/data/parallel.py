"""`[fn(a) for a in args]` in worker processes or threads, with a progress bar on stderr.

    >>> from w2v2cli.data.parallel import map_parallel
    >>> lengths = map_parallel(read_header, paths, jobs=8, label="reading headers", progress=True, processes=True)

Processes (forked: cheap to start, and the workers only call soundfile) for header reads and full decodes, threads
for conversions; too few items to pay for starting workers run in this process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def progress_bar(enabled: bool):
    """A rich progress bar on stderr that disappears when done (a no-op unless `enabled`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True, disable=not enabled)


def map_parallel(fn: Callable, args: Sequence, jobs: int, label: str, progress: bool, processes: bool,
                 min_parallel: int | None = None) -> list:
    """`[fn(a) for a in args]` in `jobs` workers (processes for header reads and full decodes, threads for
    conversion); fewer than `min_parallel` items run in this process."""
    out: list = []
    if min_parallel is None:
        min_parallel = 1000 if processes else 4
    if jobs <= 1 or len(args) < min_parallel:
        with progress_bar(progress) as bar:  # too few items to pay for starting workers
            task = bar.add_task(label, total=len(args))
            for a in args:
                out.append(fn(a))
                bar.advance(task)
        return out
    if processes:
        # fork is cheap (spawn costs ~1 s per worker); workers are started here, before the progress
        # bar's thread exists, and only call soundfile
        executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
        list(executor.map(int, range(jobs)))
    else:
        executor = ThreadPoolExecutor(jobs)
    chunk = max(1, min(512, len(args) // (jobs * 16))) if processes else 1
    with executor, progress_bar(progress) as bar:
        task = bar.add_task(label, total=len(args))
        for r in executor.map(fn, args, chunksize=chunk):
            out.append(r)
            bar.advance(task)
    return out
