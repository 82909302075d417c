"""The fairseq manifest format (`.tsv`, `.wrd`, `.ltr`, `dict.ltr.txt`): read it and write it.

    >>> from w2v2cli.data.manifest import read_manifest, read_labels
    >>> m = read_manifest("data/dev-clean.tsv"); m.abspath(0), m.entries[0].num_samples
    >>> read_labels("data/dev-clean.tsv", "ltr")[0]
    'A | M A N | ...'

Format (fairseq's `wav2vec_manifest.py` + `libri_labels.py`, so files load in either tool):

- `NAME.tsv`: line 1 the absolute root directory; then `relative/path.flac<TAB>num_samples`.
- `NAME.wrd`: one transcript per line in tsv order; `NAME.ltr`: its letters, space separated, `|` after
  each word (`A | M A N |`); `dict.ltr.txt`: `symbol count`, most frequent first, from the training splits (with
  `all_splits`, then the letters only the other splits use, with count 0, so that their labels encode).

Manifests are made from corpora by `w2v2cli.data.prepare.build_manifests` (`w2v2 manifest`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from w2v2cli.data.text import format_dict, letter_counts, to_letters
from w2v2cli.errors import ManifestError


@dataclass
class ManifestEntry:
    """One row: `path` relative to the manifest root, `num_samples` at the audio's sample rate."""

    path: str
    num_samples: int


@dataclass
class Manifest:
    """A fairseq manifest: `root` directory and its `entries` in file order."""

    root: Path
    entries: list[ManifestEntry] = field(default_factory=list)
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def abspath(self, i: int) -> Path:
        return self.root / self.entries[i].path

    @property
    def total_samples(self) -> int:
        return sum(e.num_samples for e in self.entries)

    def to_text(self) -> str:
        return f"{self.root}\n" + "".join(f"{e.path}\t{e.num_samples}\n" for e in self.entries)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a fairseq `.tsv` manifest; errors (ManifestError) name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest", hint="make one with `w2v2 manifest AUDIO_DIR --dest DIR`")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc})") from exc
    if not lines or not lines[0].strip():
        raise ManifestError(f"{path}:1: empty manifest; line 1 must be the audio root directory")
    root = lines[0].strip()
    if "\t" in root:
        raise ManifestError(f"{path}:1: expected the audio root directory, got a manifest row {root!r}",
                            hint="fairseq manifests start with the root directory on a line of its own")
    entries = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("\t")
        if len(parts) < 2:
            raise ManifestError(f"{path}:{n}: expected 'relative/path<TAB>num_samples', got {line!r}")
        try:
            num = int(parts[1])
        except ValueError:
            raise ManifestError(f"{path}:{n}: num_samples {parts[1]!r} is not an integer") from None
        if num < 0:
            raise ManifestError(f"{path}:{n}: negative num_samples {num}")
        entries.append(ManifestEntry(parts[0], num))
    return Manifest(Path(root), entries, path)


def labels_path(manifest_path: str | os.PathLike, ext: str) -> Path:
    """`X.tsv` -> `X.ltr` / `X.wrd` beside it."""
    p = Path(manifest_path)
    return p.with_name(p.name[: -len(".tsv")] + f".{ext}" if p.name.endswith(".tsv") else p.name + f".{ext}")


def read_labels(manifest_path: str | os.PathLike, ext: str = "ltr") -> list[str]:
    """Lines of `X.ext` beside `X.tsv` (one per manifest row); a count mismatch names both files."""
    if ext not in ("ltr", "wrd") and not ext.isidentifier():
        raise ManifestError(f"label extension must be 'ltr' or 'wrd', got {ext!r}")
    lpath = labels_path(manifest_path, ext)
    try:
        labels = lpath.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{lpath}: no label file beside {manifest_path}",
                            hint="`w2v2 manifest --corpus librispeech|commonvoice|mls` writes .wrd/.ltr") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{lpath}: cannot read labels ({exc})") from exc
    n = len(read_manifest(manifest_path))
    if len(labels) != n:
        raise ManifestError(f"{lpath} has {len(labels)} lines but {manifest_path} has {n} entries",
                            hint="labels must be one line per manifest row, in the same order")
    return labels


def label_texts(words: Sequence[str]) -> tuple[str, str]:
    """The texts of `X.wrd` and `X.ltr` for normalised transcripts `words` (one line each, in manifest order)."""
    return "".join(f"{w}\n" for w in words), "".join(f"{to_letters(w)}\n" for w in words)


def letter_dict(texts: Mapping[str, Sequence[str]], all_splits: bool = False) -> str:
    """The text of `dict.ltr.txt` for the transcripts of each split: the letter counts of the training splits (names
    starting with 'train'; all splits if none does), most frequent first; with `all_splits`, then the letters only
    the other splits use, with count 0."""
    train = [n for n in texts if n.startswith("train")] or list(texts)
    counts = letter_counts(to_letters(t) for n in train for t in texts[n])
    if all_splits:  # letters only the other splits use, count 0: their labels encode for validation
        seen = {sym for sym, _ in counts}
        rest = letter_counts(to_letters(t) for n in texts if n not in train for t in texts[n])
        counts += [(sym, 0) for sym, _ in rest if sym not in seen]
    return format_dict(counts)
