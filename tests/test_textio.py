"""File helpers (w2v2cli.textio): UTF-8 line reading with located errors, atomic writes."""

from __future__ import annotations

import pytest

from w2v2cli.errors import ManifestError
from w2v2cli.textio import atomic_path, atomic_write_bytes, atomic_write_text, read_utf8_lines


def test_read_utf8_lines(tmp_path):
    path = tmp_path / "ref.wrd"
    path.write_bytes("A MAN\n\nGRÜSS\n".encode("utf-8"))
    assert read_utf8_lines(path, ManifestError) == ["A MAN", "", "GRÜSS"]


def test_read_utf8_lines_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ManifestError, match="no such transcript file"):
        read_utf8_lines(tmp_path / "missing.txt", ManifestError, "transcript file")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\nalso ok\n\xff\xfe broken\n")
    with pytest.raises(ManifestError, match=r"bad.txt:3: not valid UTF-8"):
        read_utf8_lines(bad, ManifestError)
    with pytest.raises(ManifestError, match="cannot read"):
        read_utf8_lines(tmp_path, ManifestError)  # a directory


def test_atomic_writes_replace_the_file_and_leave_nothing_beside_it(tmp_path):
    path = tmp_path / "sub" / "dict.ltr.txt"
    atomic_write_text(path, "| 10\nE 5\n")
    assert path.read_text(encoding="utf-8") == "| 10\nE 5\n"
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["dict.ltr.txt"]


def test_atomic_path_keeps_the_suffix_and_the_old_file_on_failure(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    with atomic_path(path) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == path.parent and tmp != path
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
