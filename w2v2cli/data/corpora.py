"""Corpus scanners: which audio files a corpus has, in which split, with which transcript.

    >>> from w2v2cli.data.corpora import scan
    >>> from w2v2cli.data.prepare import ManifestConfig
    >>> rejects = []; items = scan(ManifestConfig("LibriSpeech", dest="data", corpus="librispeech"), rejects)
    >>> items[0].split, items[0].path, items[0].text        # 'dev-clean', .../84-121123-0000.flac, 'GO DO YOU HEAR'

Corpora (`ManifestConfig.corpus`, `CORPORA`):

- `folder`: every `*.EXT` under the directory (sorted), split into `train` / `valid` by a seeded
  draw per file (`valid_percent`), no labels.
- `librispeech`: one split per subset (`train-clean-100`, `dev-other`, ...) with labels
  from `SPK/CHAP/SPK-CHAP.trans.txt`; the directory may be `LibriSpeech/` or one subset.
- `commonvoice`: a language folder (`clips/*.mp3`, `train.tsv`, `dev.tsv`, `test.tsv`): one split
  per tsv, in the order of its rows; text normalised for the language (`w2v2cli.data.text`).
- `mls`: `mls_LANGUAGE/` or one of its splits (`transcripts.txt`, `audio/SPK/BOOK/*.flac|opus`).
- `librilight`: Libri-light's limited-supervision sets (`librispeech_finetuning/`: `1h/{0..5}/{clean,other}` and
  `9h/{clean,other}`, LibriSpeech layout inside) -> `train-10m` (`1h/0`), `train-1h` (`1h/*`) and `train-10h`
  (`1h/*` + `9h`), the wav2vec 2.0 paper's low-resource labelled sets, with labels.

Missing transcripts or audio and characters outside the language's alphabet are listed as `Rejection`s (a
layout that cannot be recognised at all is a `ManifestError`); `w2v2cli.data.prepare` decides what they mean.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from w2v2cli.data.text import UnknownCharacterError, normalize_text
from w2v2cli.errors import ManifestError

if TYPE_CHECKING:  # the scanners read ManifestConfig's fields; prepare imports this module
    from w2v2cli.data.prepare import ManifestConfig

CORPORA = ("folder", "librispeech", "commonvoice", "mls", "librilight")
MLS_LANGS = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
             "dutch": "nl", "portuguese": "pt", "polish": "pl"}


@dataclass
class Rejection:
    """A bad input left out (or, without --skip-bad, reported): its path (or `file:line`) and why."""

    path: str
    reason: str


@dataclass
class Item:
    """One audio file of a corpus; the header fields are filled once it is read."""

    split: str
    path: Path  # absolute source audio path
    root: Path  # manifest root for this item
    text: str | None = None  # normalised words (None: no labels)
    frames: int = 0
    sample_rate: int = 0
    fmt: str = ""


def scan(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    """The items of `cfg.audio_dir` in the layout `cfg.corpus`; bad ones are appended to `rejects`."""
    return _SCANNERS[cfg.corpus](cfg, rejects)


def _glob_audio(root: Path, ext: str) -> list[Path]:
    suffix = "." + ext.lstrip(".").lower()
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames if f.lower().endswith(suffix) and not f.startswith("."))
    return sorted(out)


def _norm(text: str, lang: str, where: str, rejects: list[Rejection], path: Path) -> str | None:
    try:
        words = normalize_text(text, lang)
    except UnknownCharacterError as exc:
        rejects.append(Rejection(str(path), f"{where}: {exc}"))
        return None
    if not words:
        rejects.append(Rejection(str(path), f"{where}: empty transcript"))
        return None
    return words


def _scan_folder(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    root = cfg.audio_dir
    files = _glob_audio(root, cfg.ext)
    if cfg.path_must_contain:
        files = [f for f in files if cfg.path_must_contain in str(f)]
    if not files:
        raise ManifestError(f"{root}: no *.{cfg.ext} files found"
                            + (f" whose path contains {cfg.path_must_contain!r}" if cfg.path_must_contain else ""),
                            hint="check the directory and --ext (flac, wav, mp3, ...)")
    rng = random.Random(cfg.seed)
    # like fairseq's wav2vec_manifest.py: one draw per file decides valid vs train
    return [Item("valid" if rng.random() <= cfg.valid_percent and cfg.valid_percent > 0 else "train", f, root)
            for f in files]


def _libri_subsets(audio_dir: Path) -> list[Path]:
    def has_trans(d: Path) -> bool:
        return any(True for _ in d.glob("*/*/*.trans.txt"))

    if has_trans(audio_dir):
        return [audio_dir]
    subsets = [d for d in sorted(audio_dir.iterdir()) if d.is_dir() and not d.name.startswith(".") and has_trans(d)]
    if not subsets:
        raise ManifestError(f"{audio_dir}: no LibriSpeech subsets (SUBSET/SPK/CHAP/SPK-CHAP.trans.txt) found",
                            hint="point AUDIO_DIR at LibriSpeech/ or at one subset such as LibriSpeech/dev-clean")
    return subsets


def _scan_librispeech(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    lang = cfg.lang or "en"
    items: list[Item] = []
    suffix = "." + cfg.ext.lstrip(".")
    for subset in _libri_subsets(cfg.audio_dir):
        if cfg.splits and subset.name not in cfg.splits:
            continue
        subset = subset.absolute()
        transcripts: dict[Path, tuple[str, str]] = {}  # audio path -> (raw text, "file:line")
        for trans in sorted(subset.glob("*/*/*.trans.txt")):
            for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                utt, _, text = line.strip().partition(" ")
                transcripts[trans.parent / f"{utt}{suffix}"] = (text, f"{trans}:{n}")
        audio = [f for f in _glob_audio(subset, cfg.ext)
                 if not cfg.path_must_contain or cfg.path_must_contain in str(f)]
        present = set(audio)
        for path in audio:
            if path not in transcripts:
                rejects.append(Rejection(str(path), f"missing transcript (no line '{path.stem} ...' in "
                                                    f"{path.parent / (path.parent.parent.name + '-' + path.parent.name)}.trans.txt)"))
                continue
            text, where = transcripts[path]
            words = _norm(text, lang, where, rejects, path)
            if words is not None:
                items.append(Item(subset.name, path, subset, words))
        for path, (_, where) in sorted(transcripts.items()):
            if path not in present and (not cfg.path_must_contain or cfg.path_must_contain in str(path)):
                rejects.append(Rejection(str(path), f"missing audio file for transcript at {where}"))
    return items


#: Libri-light limited-supervision split -> its folders under librispeech_finetuning/ (nested: 10m in 1h in 10h)
LIBRILIGHT_SPLITS = {"train-10m": ("1h/0",), "train-1h": tuple(f"1h/{k}" for k in range(6)),
                     "train-10h": tuple(f"1h/{k}" for k in range(6)) + ("9h",)}


def _scan_librilight(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    base = cfg.audio_dir.absolute()
    missing = sorted({d for dirs in LIBRILIGHT_SPLITS.values() for d in dirs if not (base / d).is_dir()})
    if missing:
        raise ManifestError(f"{base}: not a Libri-light limited-supervision folder (missing {', '.join(missing)})",
                            hint="point AUDIO_DIR at librispeech_finetuning/ (1h/0..5/{clean,other}, 9h/{clean,other})")
    items: list[Item] = []
    for split, dirs in LIBRILIGHT_SPLITS.items():
        if cfg.splits and split not in cfg.splits:
            continue
        for d in dirs:
            # each folder holds LibriSpeech-layout subsets (clean, other); the same file may be in several splits
            sub_cfg = replace(cfg, audio_dir=base / d, corpus="librispeech", splits=())
            items += [Item(split, it.path, it.root, it.text) for it in _scan_librispeech(sub_cfg, rejects)]
    return items


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ManifestError(f"{path}: empty file; expected a Common Voice header (client_id, path, sentence, ...)")
    return rows[0], rows[1:]


def _scan_commonvoice(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    base = cfg.audio_dir.absolute()
    splits = cfg.splits or tuple(s for s in ("train", "dev", "test") if (base / f"{s}.tsv").is_file())
    if not splits:
        raise ManifestError(f"{base}: no Common Voice split files (train.tsv, dev.tsv, test.tsv)",
                            hint="point AUDIO_DIR at one language folder, e.g. cv-corpus-17.0/de")
    clips = base / "clips"
    items: list[Item] = []
    for split in splits:
        tsv = base / f"{split}.tsv"
        if not tsv.is_file():
            raise ManifestError(f"{tsv}: no such Common Voice split file")
        header, rows = _read_tsv(tsv)
        for col in ("path", "sentence"):
            if col not in header:
                raise ManifestError(f"{tsv}:1: no '{col}' column in the header {header}")
        ip, isent = header.index("path"), header.index("sentence")
        iloc = header.index("locale") if "locale" in header else None
        for n, row in enumerate(rows, start=2):
            if len(row) < len(header):
                rejects.append(Rejection(f"{tsv}:{n}", f"{len(row)} columns, header has {len(header)}"))
                continue
            path = clips / row[ip]
            if cfg.path_must_contain and cfg.path_must_contain not in str(path):
                continue
            if not path.is_file():
                rejects.append(Rejection(str(path), f"missing audio file for {tsv}:{n}"))
                continue
            lang = cfg.lang or (row[iloc] if iloc is not None and row[iloc] else base.name)
            words = _norm(row[isent], lang, f"{tsv}:{n}", rejects, path)
            if words is not None:
                items.append(Item(split, path, clips, words))
    return items


def _mls_lang(base: Path) -> str:
    for part in (base.name, base.parent.name):
        name = part.lower().removeprefix("mls_").removesuffix("_opus")
        if name in MLS_LANGS:
            return MLS_LANGS[name]
    raise ManifestError(f"{base}: cannot tell the MLS language from the folder name",
                        hint="pass --lang (de, fr, es, ...)")


def _scan_mls(cfg: ManifestConfig, rejects: list[Rejection]) -> list[Item]:
    base = cfg.audio_dir.absolute()
    if (base / "transcripts.txt").is_file():
        split_dirs = [base]
    else:
        split_dirs = [base / s for s in (cfg.splits or ("train", "dev", "test")) if (base / s / "transcripts.txt").is_file()]
    if not split_dirs:
        raise ManifestError(f"{base}: no MLS split (train|dev|test/transcripts.txt) found",
                            hint="point AUDIO_DIR at mls_LANGUAGE/ or at one of its splits")
    lang = cfg.lang or _mls_lang(base)
    exts = [cfg.ext.lstrip(".")] + [e for e in ("flac", "opus") if e != cfg.ext.lstrip(".")]
    items: list[Item] = []
    for sdir in split_dirs:
        trans = sdir / "transcripts.txt"
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utt, _, text = line.partition("\t")
            parts = utt.strip().split("_")
            if len(parts) != 3:
                rejects.append(Rejection(f"{trans}:{n}", f"utterance id {utt!r} is not SPEAKER_BOOK_UTT"))
                continue
            cands = [sdir / "audio" / parts[0] / parts[1] / f"{utt.strip()}.{e}" for e in exts]
            path = next((c for c in cands if c.is_file()), cands[0])
            if cfg.path_must_contain and cfg.path_must_contain not in str(path):
                continue
            if not path.is_file():
                rejects.append(Rejection(str(path), f"missing audio file for {trans}:{n}"))
                continue
            words = _norm(text, lang, f"{trans}:{n}", rejects, path)
            if words is not None:
                items.append(Item(sdir.name, path, sdir / "audio", words))
    return items


_SCANNERS: dict[str, Callable[[ManifestConfig, list[Rejection]], list[Item]]] = {
    "folder": _scan_folder, "librispeech": _scan_librispeech, "commonvoice": _scan_commonvoice, "mls": _scan_mls,
    "librilight": _scan_librilight,
}
