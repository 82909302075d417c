"""Files: reading user text files (transcripts, LM corpora) with errors that name the file and line, and the one
way every module writes a file atomically.

    >>> lines = read_utf8_lines("ref.wrd", ManifestError, "transcript file")
    >>> atomic_write_text("exp/dict.ltr.txt", text)          # readers see the old file or the new one, never half
    >>> with atomic_path("curves.png") as tmp:               # for writers that want a path (soundfile, matplotlib)
    ...     fig.savefig(tmp)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from w2v2cli.errors import W2V2Error


def read_utf8_lines(path: str | Path, error: type[W2V2Error], what: str = "file") -> list[str]:
    """Lines of a UTF-8 text file; a missing, unreadable or non-UTF-8 file raises `error` naming file (and line)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not valid UTF-8") from None
    return text.splitlines()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that go by the extension still work); renamed over
    `path` when the block succeeds, removed when it fails. Creates the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` via a temp file in the same directory, fsync and rename: readers never see half a file."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:  # name the file the caller asked for, not the temporary (disk full, read-only, ...)
        raise OSError(err.errno, err.strerror, str(path)) from err


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))
