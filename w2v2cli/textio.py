"""Reading user text files (transcripts, LM corpora) with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

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
