"""Bookkeeping of the audio files a run skipped as unreadable or non-finite (`DIR/bad_audio.tsv`).

    >>> bad = BadAudio(out_dir, resumed_update=None)
    >>> bad.add(update=7, files=[("a.flac", "truncated")])     # [("a.flac", "truncated")]: new, warn about it
    >>> bad.add(update=9, files=[("a.flac", "truncated")])     # []: seen before

Each distinct file is warned about once, written as `update<TAB>path<TAB>reason` (every rank appends its own) and
counted; the trainer sums the new ones over ranks at the next update and stops with `error()` past
`data.max_bad_files`. On resume the lines after the checkpoint's update belong to the interrupted run and are
dropped (as in metrics.jsonl), so the files met again are counted again, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from w2v2cli.errors import DataError
from w2v2cli.textio import atomic_write_text

BAD_AUDIO_FILE = "bad_audio.tsv"
_HEADER = "update\tpath\treason\n"


class BadAudio:
    """The run's record of skipped audio files (see the module docstring). `rewrite`: this process owns the file
    (rank 0) and drops the interrupted run's lines from it."""

    def __init__(self, out_dir: Path, resumed_update: int | None, rewrite: bool = True):
        self.path = Path(out_dir) / BAD_AUDIO_FILE
        self.seen: dict[str, str] = {}
        self.new = 0  # distinct files seen since the last update's reduction
        if self.path.is_file():
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines()[1:]:
                parts = line.split("\t", 2)
                if len(parts) == 3 and parts[0].isdigit() and resumed_update is not None \
                        and int(parts[0]) <= resumed_update:
                    keep.append(line)
                    self.seen[parts[1]] = parts[2]
            if rewrite:
                atomic_write_text(self.path, _HEADER + "".join(f"{line}\n" for line in keep))

    def add(self, update: int, files: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Records `files` (path, reason); returns the ones not seen before."""
        fresh = []
        for path, reason in files:
            if path in self.seen:
                continue
            self.seen[path] = reason
            fresh.append((path, reason))
        if fresh:
            header = not self.path.is_file()
            with open(self.path, "a", encoding="utf-8") as f:
                if header:
                    f.write(_HEADER)
                f.writelines(f"{update}\t{p}\t{' '.join(r.split())}\n" for p, r in fresh)
            self.new += len(fresh)
        return fresh

    def note(self, update: int, files: Sequence[tuple[str, str]], limit: int) -> list[str]:
        """Records the files a batch left out at `update`; the warning for each one not seen before."""
        return [f"skipped {path}: {reason} (listed in {self.path.name}; the run stops after more than "
                f"data.max_bad_files = {limit})" for path, reason in self.add(update, files)]

    def settle(self, total: int, new_on_all_ranks: int, limit: int) -> int:
        """The run's count after an update whose ranks met `new_on_all_ranks` new files; DataError past `limit`."""
        self.new = 0
        total += new_on_all_ranks
        if total > limit:
            raise self.error(total, limit)
        return total

    def error(self, total: int, limit: int) -> DataError:
        """The error that stops a run with `total` > `limit` bad files: the first five named, all listed in the file."""
        shown = "\n  ".join(f"{p}: {r}" for p, r in list(self.seen.items())[:5])
        more = f"\n  ... and {len(self.seen) - 5} more" if len(self.seen) > 5 else ""
        return DataError(f"{total} audio files could not be used, more than data.max_bad_files = {limit} "
                         f"(all listed in {self.path}):\n  {shown}{more}",
                         hint="fix or remove them (`w2v2 manifest --verify --skip-bad` finds them all), or raise "
                              "data.max_bad_files; then continue with --resume auto")
