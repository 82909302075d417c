"""fairseq-format manifests (`.tsv`, `.wrd`, `.ltr`, `dict.ltr.txt`): read them, and build them from corpora.

    >>> from w2v2cli.data.manifest import ManifestConfig, build_manifests, read_manifest, read_labels
    >>> result = build_manifests(ManifestConfig("LibriSpeech", dest="data", corpus="librispeech", jobs=8))
    >>> m = read_manifest("data/dev-clean.tsv"); m.abspath(0), m.entries[0].num_samples
    >>> read_labels("data/dev-clean.tsv", "ltr")[0]
    'A | M A N | ...'

Format (fairseq's `wav2vec_manifest.py` + `libri_labels.py`, so files load in either tool):

- `NAME.tsv`: line 1 the absolute root directory; then `relative/path.flac<TAB>num_samples`.
- `NAME.wrd`: one transcript per line in tsv order; `NAME.ltr`: its letters, space separated, `|` after
  each word (`A | M A N |`); `dict.ltr.txt`: `symbol count`, most frequent first, from the training splits (with
  `dict_all_splits`, then the letters only the other splits use, with count 0, so that their labels encode).

Corpora (`ManifestConfig.corpus`):

- `folder`: every `*.EXT` under the directory (sorted), split into `train.tsv` / `valid.tsv` by a seeded
  draw per file (`valid_percent`), no labels.
- `librispeech`: one manifest per subset (`train-clean-100.tsv`, `dev-other.tsv`, ...) with labels
  from `SPK/CHAP/SPK-CHAP.trans.txt`; the directory may be `LibriSpeech/` or one subset.
- `commonvoice`: a language folder (`clips/*.mp3`, `train.tsv`, `dev.tsv`, `test.tsv`): one manifest
  per split, in the order of the split's tsv; text normalised for the language (`w2v2cli.data.text`).
- `mls`: `mls_LANGUAGE/` or one of its splits (`transcripts.txt`, `audio/SPK/BOOK/*.flac|opus`).
- `librilight`: Libri-light's limited-supervision sets (`librispeech_finetuning/`: `1h/{0..5}/{clean,other}` and
  `9h/{clean,other}`, LibriSpeech layout inside) -> `train-10m` (`1h/0`), `train-1h` (`1h/*`) and `train-10h`
  (`1h/*` + `9h`), the wav2vec 2.0 paper's low-resource labelled sets, with labels.

Headers are read in `jobs` processes, and the last 4096 samples of each FLAC/WAV are decoded, so that a file cut
short after its header (a truncated download or copy) is caught at near-header cost; `verify` decodes every file
in full instead (in `jobs` processes), which also catches NaN/inf samples and damage in the middle. Audio that is not at
`sample_rate` (or is MP3/Opus) is an error unless `resample_to` is set, which converts it once into
16-bit FLAC under `DEST/audio/` (in parallel; existing converted files are reused).

Bad input - unreadable, empty or non-audio files, audio shorter than `min_samples` (400, the model's
receptive field), missing transcripts or audio, characters outside the language's alphabet - raises a
`ManifestError` naming the file(s); with `skip_bad` such items are left out and listed with their reason
in `DEST/rejected.tsv`. Outputs are written to temporary files and renamed into place only when all
succeeded, then a marker records the settings: re-running on a complete DEST is a no-op unless `force`.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import shutil
import tempfile
import time
from functools import partial
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from w2v2cli.audio import MIN_SAMPLES, audio_info, check_tail, load_audio, save_flac
from w2v2cli.data.text import UnknownCharacterError, format_dict, letter_counts, normalize_text, to_letters
from w2v2cli.errors import AudioError, ManifestError
from w2v2cli.textio import atomic_write_text

MARKER = ".w2v2-manifest.json"
CORPORA = ("folder", "librispeech", "commonvoice", "mls", "librilight")
HEADER_ONLY_FORMATS = ("FLAC", "WAV", "WAVEX", "RF64", "W64", "AIFF")
MLS_LANGS = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
             "dutch": "nl", "portuguese": "pt", "polish": "pl"}


# --------------------------------------------------------------------------------------------
# reading


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


@dataclass
class ManifestConfig:
    """Settings of `build_manifests` (one field per `w2v2 manifest` option)."""

    audio_dir: Path
    dest: Path
    corpus: str = "folder"  # folder | librispeech | commonvoice | mls
    ext: str = "flac"  # audio extension for folder / librispeech / mls
    valid_percent: float = 0.01  # folder: fraction of files drawn into valid.tsv
    seed: int = 42  # folder: seed of the train/valid draw
    path_must_contain: str | None = None  # keep only files whose path contains this
    resample_to: int | None = None  # convert other rates / formats into 16-bit FLAC under DEST/audio
    sample_rate: int = 16000  # the rate manifests must be at (without resample_to)
    min_samples: int = MIN_SAMPLES  # shorter audio is bad input
    lang: str | None = None  # text language (default: from the corpus: en / CV locale / MLS folder)
    splits: tuple[str, ...] = ()  # commonvoice / mls / librispeech: which splits (default: all found)
    jobs: int = 1  # parallel header reads and conversions
    skip_bad: bool = False  # leave bad items out (listed in DEST/rejected.tsv) instead of failing
    verify: bool = False  # decode every file in full (NaN/inf, unreadable frames), not only its header and end
    force: bool = False  # rebuild even if DEST is complete
    # dict.ltr.txt also lists, with count 0, the letters only the non-training splits use (so that their labels
    # encode for validation; small corpora); off: fairseq's dictionary, training letters only
    dict_all_splits: bool = False
    progress: bool = True  # progress bars on stderr


@dataclass
class Rejection:
    path: str
    reason: str


@dataclass
class ManifestResult:
    """What `build_manifests` wrote: `manifests` {name: tsv path}, per-name `num_files` and `hours`."""

    dest: Path
    manifests: dict[str, Path]
    num_files: dict[str, int]
    hours: dict[str, float]
    rejected: list[Rejection]
    resampled: int = 0
    reused: bool = False  # DEST was already complete: nothing was done
    files_per_second: float = 0.0
    outputs: list[Path] = field(default_factory=list)


@dataclass
class _Item:
    split: str
    path: Path  # absolute source audio path
    root: Path  # manifest root for this item
    text: str | None = None  # normalised words (None: no labels)
    frames: int = 0
    sample_rate: int = 0
    fmt: str = ""


# ---- corpus scanners ------------------------------------------------------------------------


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


def _scan_folder(cfg: ManifestConfig, rejects: list[Rejection]) -> list[_Item]:
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
    return [_Item("valid" if rng.random() <= cfg.valid_percent and cfg.valid_percent > 0 else "train", f, root)
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


def _scan_librispeech(cfg: ManifestConfig, rejects: list[Rejection]) -> list[_Item]:
    lang = cfg.lang or "en"
    items: list[_Item] = []
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
                items.append(_Item(subset.name, path, subset, words))
        for path, (_, where) in sorted(transcripts.items()):
            if path not in present and (not cfg.path_must_contain or cfg.path_must_contain in str(path)):
                rejects.append(Rejection(str(path), f"missing audio file for transcript at {where}"))
    return items


#: Libri-light limited-supervision split -> its folders under librispeech_finetuning/ (nested: 10m in 1h in 10h)
LIBRILIGHT_SPLITS = {"train-10m": ("1h/0",), "train-1h": tuple(f"1h/{k}" for k in range(6)),
                     "train-10h": tuple(f"1h/{k}" for k in range(6)) + ("9h",)}


def _scan_librilight(cfg: ManifestConfig, rejects: list[Rejection]) -> list[_Item]:
    base = cfg.audio_dir.absolute()
    missing = sorted({d for dirs in LIBRILIGHT_SPLITS.values() for d in dirs if not (base / d).is_dir()})
    if missing:
        raise ManifestError(f"{base}: not a Libri-light limited-supervision folder (missing {', '.join(missing)})",
                            hint="point AUDIO_DIR at librispeech_finetuning/ (1h/0..5/{clean,other}, 9h/{clean,other})")
    items: list[_Item] = []
    for split, dirs in LIBRILIGHT_SPLITS.items():
        if cfg.splits and split not in cfg.splits:
            continue
        for d in dirs:
            # each folder holds LibriSpeech-layout subsets (clean, other); the same file may be in several splits
            sub_cfg = ManifestConfig(audio_dir=base / d, dest=cfg.dest, corpus="librispeech", ext=cfg.ext,
                                     lang=cfg.lang, path_must_contain=cfg.path_must_contain)
            items += [_Item(split, it.path, it.root, it.text) for it in _scan_librispeech(sub_cfg, rejects)]
    return items


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ManifestError(f"{path}: empty file; expected a Common Voice header (client_id, path, sentence, ...)")
    return rows[0], rows[1:]


def _scan_commonvoice(cfg: ManifestConfig, rejects: list[Rejection]) -> list[_Item]:
    base = cfg.audio_dir.absolute()
    splits = cfg.splits or tuple(s for s in ("train", "dev", "test") if (base / f"{s}.tsv").is_file())
    if not splits:
        raise ManifestError(f"{base}: no Common Voice split files (train.tsv, dev.tsv, test.tsv)",
                            hint="point AUDIO_DIR at one language folder, e.g. cv-corpus-17.0/de")
    clips = base / "clips"
    items: list[_Item] = []
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
                items.append(_Item(split, path, clips, words))
    return items


def _mls_lang(base: Path) -> str:
    for part in (base.name, base.parent.name):
        name = part.lower().removeprefix("mls_").removesuffix("_opus")
        if name in MLS_LANGS:
            return MLS_LANGS[name]
    raise ManifestError(f"{base}: cannot tell the MLS language from the folder name",
                        hint="pass --lang (de, fr, es, ...)")


def _scan_mls(cfg: ManifestConfig, rejects: list[Rejection]) -> list[_Item]:
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
    items: list[_Item] = []
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
                items.append(_Item(sdir.name, path, sdir / "audio", words))
    return items


_SCANNERS: dict[str, Callable[[ManifestConfig, list[Rejection]], list[_Item]]] = {
    "folder": _scan_folder, "librispeech": _scan_librispeech, "commonvoice": _scan_commonvoice, "mls": _scan_mls,
    "librilight": _scan_librilight,
}


# ---- header reads and conversion --------------------------------------------------------------


def _probe(path: str, verify: bool = False) -> tuple[int, int, str] | str:
    """(frames, sample_rate, format) or an error message; runs in worker processes. FLAC/WAV: the last frames
    are decoded too (truncation); `verify`: the whole file is decoded (unreadable frames, NaN/inf samples)."""
    import soundfile as sf

    try:
        info = audio_info(path)
        if path.lower().endswith((".flac", ".wav")):
            fmt = path.rsplit(".", 1)[1].upper()
        else:
            fmt = sf.info(path).format
        if verify:
            wav = load_audio(path, target_sr=0)
            if len(wav) < info.frames:
                return f"truncated: the header promises {info.frames} samples, {len(wav)} could be decoded"
        elif fmt in HEADER_ONLY_FORMATS and info.frames > 0:
            check_tail(path, info.frames)
        return info.frames, info.samplerate, fmt
    except AudioError as exc:
        return exc.message.split(": ", 1)[-1]


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True, disable=not enabled)


def _map_parallel(fn: Callable, args: Sequence, jobs: int, label: str, progress: bool, processes: bool,
                  min_parallel: int | None = None) -> list:
    """`[fn(a) for a in args]` in `jobs` workers (processes for header reads and full decodes, threads for
    conversion); fewer than `min_parallel` items run in this process."""
    out: list = []
    if min_parallel is None:
        min_parallel = 1000 if processes else 4
    if jobs <= 1 or len(args) < min_parallel:
        with _progress(progress) as bar:  # too few items to pay for starting workers
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
    with executor, _progress(progress) as bar:
        task = bar.add_task(label, total=len(args))
        for r in executor.map(fn, args, chunksize=chunk):
            out.append(r)
            bar.advance(task)
    return out


def _convert(args: tuple[str, str, int]) -> tuple[int, int] | str:
    """Decode, resample and write 16-bit FLAC; returns (frames, sample_rate) or an error message."""
    src, dst, sr = args
    try:
        dst_p = Path(dst)
        if dst_p.is_file():
            info = audio_info(dst_p)
            if info.samplerate == sr and info.frames > 0:
                return info.frames, info.samplerate
        wav = load_audio(src, target_sr=sr)
        save_flac(dst_p, wav, sr)
        return len(wav), sr
    except AudioError as exc:
        return exc.message.split(": ", 1)[-1]


# ---- the builder ---------------------------------------------------------------------------


def _identity(cfg: ManifestConfig) -> dict:
    return {"audio_dir": str(Path(cfg.audio_dir).absolute()), "corpus": cfg.corpus, "ext": cfg.ext,
            "valid_percent": cfg.valid_percent, "seed": cfg.seed, "path_must_contain": cfg.path_must_contain,
            "resample_to": cfg.resample_to, "sample_rate": cfg.sample_rate, "min_samples": cfg.min_samples,
            "lang": cfg.lang, "splits": list(cfg.splits), "skip_bad": cfg.skip_bad,
            # only when set, so that manifests made before the option existed still match
            **({"dict_all_splits": True} if cfg.dict_all_splits else {})}


def _validate(cfg: ManifestConfig) -> None:
    if cfg.corpus not in CORPORA:
        raise ManifestError(f"unknown corpus {cfg.corpus!r}", hint=f"choose one of: {', '.join(CORPORA)}")
    if not 0.0 <= cfg.valid_percent <= 1.0:
        raise ManifestError(f"--valid-percent must be between 0 and 1, got {cfg.valid_percent}",
                            hint="it is a fraction: 0.01 puts 1 % of the files into valid.tsv")
    if not cfg.audio_dir.is_dir():
        raise ManifestError(f"{cfg.audio_dir}: no such directory")
    if cfg.jobs < 1:
        raise ManifestError(f"--jobs must be >= 1, got {cfg.jobs}")
    if cfg.resample_to is not None and cfg.resample_to < 1000:
        raise ManifestError(f"--resample-to must be a sample rate in Hz, got {cfg.resample_to}")
    if cfg.dest.absolute() == cfg.audio_dir.absolute() and cfg.corpus == "commonvoice":
        raise ManifestError(f"{cfg.dest}: --dest is the Common Voice folder; its train/dev/test.tsv would be overwritten",
                            hint="choose another --dest")


def _reuse(cfg: ManifestConfig, dest: Path) -> ManifestResult | None:
    marker = dest / MARKER
    if not marker.is_file() or cfg.force:
        return None
    saved = json.loads(marker.read_text(encoding="utf-8"))
    if cfg.verify and not saved.get("verified"):
        return None  # made without --verify: build again, decoding every file
    if saved.get("config") != _identity(cfg):
        raise ManifestError(f"{dest}: holds manifests made with other settings ({marker})",
                            hint="pass --force to rebuild them, or choose another --dest")
    outputs = [dest / p for p in saved["outputs"]]
    if not all(p.is_file() for p in outputs):
        return None
    rejected = [Rejection(**r) for r in saved.get("rejected", [])]
    return ManifestResult(dest, {k: dest / v for k, v in saved["manifests"].items()}, saved["num_files"],
                          saved["hours"], rejected, saved.get("resampled", 0), reused=True, outputs=outputs)


def _bad_input_error(rejects: list[Rejection]) -> ManifestError:
    shown = "\n  ".join(f"{r.path}: {r.reason}" for r in rejects[:5])
    more = f"\n  ... and {len(rejects) - 5} more" if len(rejects) > 5 else ""
    first = rejects[0]
    head = f"{first.path}: {first.reason}" if len(rejects) == 1 else f"{len(rejects)} bad inputs:\n  {shown}{more}"
    return ManifestError(head, hint="fix or remove them, or pass --skip-bad to leave them out "
                                    "(they are then listed in DEST/rejected.tsv)")


def build_manifests(cfg: ManifestConfig) -> ManifestResult:
    """Scan `cfg.audio_dir`, read headers, optionally resample, and write manifests into `cfg.dest`."""
    cfg.audio_dir, cfg.dest = Path(cfg.audio_dir), Path(cfg.dest)
    _validate(cfg)
    dest = cfg.dest.absolute()
    reused = _reuse(cfg, dest)
    if reused is not None:
        return reused
    t0 = time.perf_counter()
    rejects: list[Rejection] = []
    items = _SCANNERS[cfg.corpus](cfg, rejects)

    # header reads (and the last frames of FLAC/WAV) or, with verify, full decodes in parallel processes
    probes = _map_parallel(partial(_probe, verify=cfg.verify), [str(it.path) for it in items], cfg.jobs,
                           "decoding audio (--verify)" if cfg.verify else "reading headers", cfg.progress,
                           processes=True, min_parallel=16 if cfg.verify else None)
    t_read = time.perf_counter() - t0
    good = _usable(cfg, items, probes, rejects)
    if rejects and not cfg.skip_bad:
        raise _bad_input_error(rejects)
    resampled = 0
    if cfg.resample_to is not None:
        good, resampled = _resample(cfg, dest, good, rejects)
        if rejects and not cfg.skip_bad:
            raise _bad_input_error(rejects)

    files, manifests, num_files, hours = _output_texts(cfg, good, rejects)
    _write_all(dest, files, {"config": _identity(cfg), "outputs": sorted(files), "manifests": manifests,
                             "num_files": num_files, "hours": hours, "resampled": resampled,
                             "rejected": [r.__dict__ for r in rejects], "verified": cfg.verify})
    return ManifestResult(dest, {k: dest / v for k, v in manifests.items()}, num_files, hours, rejects, resampled,
                          files_per_second=len(items) / t_read if t_read > 0 else 0.0,
                          outputs=[dest / f for f in sorted(files)])


def _usable(cfg: ManifestConfig, items: list[_Item], probes: list, rejects: list[Rejection]) -> list[_Item]:
    """The items whose probe succeeded and that are long enough at the right rate; the others go to `rejects`."""
    good: list[_Item] = []
    target = cfg.resample_to or cfg.sample_rate
    for it, pr in zip(items, probes):
        if isinstance(pr, str):
            rejects.append(Rejection(str(it.path), pr))
            continue
        it.frames, it.sample_rate, it.fmt = pr
        frames_at_target = it.frames * target // it.sample_rate if it.sample_rate else 0
        if it.frames == 0:
            rejects.append(Rejection(str(it.path), "no audio samples (0 frames)"))
        elif frames_at_target < cfg.min_samples:
            rejects.append(Rejection(str(it.path), f"too short: {frames_at_target} samples at {target} Hz, "
                                                   f"fewer than the model's receptive field of {cfg.min_samples}"))
        elif cfg.resample_to is None and it.sample_rate != cfg.sample_rate:
            rejects.append(Rejection(str(it.path), f"sample rate {it.sample_rate} Hz, manifests need {cfg.sample_rate} Hz "
                                                   f"(pass --resample-to {cfg.sample_rate})"))
        else:
            good.append(it)
    return good


def _resample(cfg: ManifestConfig, dest: Path, good: list[_Item], rejects: list[Rejection]) -> tuple[list[_Item], int]:
    """Conversion into DEST/audio (only the files that need it; the rest is linked beside them): the items now
    pointing there, and how many were converted. Failed conversions go to `rejects`."""
    needs = {id(it) for it in good if it.sample_rate != cfg.resample_to or it.fmt not in HEADER_ONLY_FORMATS}
    if not needs:
        return good, 0
    audio_root = dest / "audio"
    base = cfg.audio_dir.absolute()
    jobs_args, keep = [], []
    for it in good:
        new_root = audio_root / it.root.relative_to(base) if it.root != base else audio_root
        rel = it.path.relative_to(it.root)
        if id(it) in needs:
            dst = new_root / rel.with_suffix(".flac")
            jobs_args.append((str(it.path), str(dst), cfg.resample_to))
        else:
            dst = new_root / rel
            _link_or_copy(it.path, dst)
        keep.append((it, new_root, dst))
    results = iter(_map_parallel(_convert, jobs_args, cfg.jobs, f"converting to {cfg.resample_to} Hz FLAC",
                                 cfg.progress, processes=False))
    converted, resampled = [], 0
    for it, new_root, dst in keep:
        if id(it) in needs:
            r = next(results)
            if isinstance(r, str):
                rejects.append(Rejection(str(it.path), r))
                continue
            it.frames, it.sample_rate = r
            resampled += 1
        it.path, it.root = dst, new_root
        converted.append(it)
    return converted, resampled


def _output_texts(cfg: ManifestConfig, good: list[_Item], rejects: list[Rejection]
                  ) -> tuple[dict[str, str], dict[str, str], dict[str, int], dict[str, float]]:
    """The text of every output file (manifests, labels, dictionary, rejected.tsv), and per split its manifest
    name, file count and hours."""
    splits: dict[str, list[_Item]] = {}
    if cfg.corpus == "folder":
        splits = {"train": [], "valid": []}
    for it in good:
        splits.setdefault(it.split, []).append(it)
    if cfg.corpus in ("librispeech", "librilight"):
        splits = {k: sorted(v, key=lambda i: str(i.path)) for k, v in sorted(splits.items())}
    files: dict[str, str] = {}
    manifests: dict[str, str] = {}
    num_files: dict[str, int] = {}
    hours: dict[str, float] = {}
    labelled = cfg.corpus != "folder"
    for name, its in splits.items():
        root = its[0].root if its else (cfg.audio_dir.absolute())
        roots = {i.root for i in its}
        if len(roots) > 1:  # one manifest has one root: use their common ancestor
            root = Path(os.path.commonpath([str(r) for r in roots]))
        rows = [ManifestEntry(str(i.path.relative_to(root)), i.frames) for i in its]
        files[f"{name}.tsv"] = Manifest(root, rows).to_text()
        manifests[name] = f"{name}.tsv"
        num_files[name] = len(its)
        hours[name] = sum(i.frames / i.sample_rate for i in its) / 3600
        if labelled:
            files[f"{name}.wrd"] = "".join(f"{i.text}\n" for i in its)
            files[f"{name}.ltr"] = "".join(f"{to_letters(i.text)}\n" for i in its)
    if labelled:
        train = [n for n in splits if n.startswith("train")] or list(splits)
        counts = letter_counts(to_letters(i.text) for n in train for i in splits[n])
        if cfg.dict_all_splits:  # letters only the other splits use, count 0: their labels encode for validation
            seen = {sym for sym, _ in counts}
            rest = letter_counts(to_letters(i.text) for n in splits if n not in train for i in splits[n])
            counts += [(sym, 0) for sym, _ in rest if sym not in seen]
        files["dict.ltr.txt"] = format_dict(counts)
    if rejects:
        files["rejected.tsv"] = "path\treason\n" + "".join(f"{r.path}\t{r.reason}\n" for r in rejects)
    return files, manifests, num_files, hours


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_all(dest: Path, files: dict[str, str], record: dict) -> None:
    """Write every output to a temp dir in DEST, then rename them in and write the marker last."""
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / MARKER
    old_outputs: list[str] = []
    if marker.is_file():
        old_outputs = json.loads(marker.read_text(encoding="utf-8")).get("outputs", [])
        marker.unlink()  # from here until the new marker, DEST is not "complete"
    tmp = Path(tempfile.mkdtemp(prefix=".manifest.tmp-", dir=dest))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for name in files:
            os.replace(tmp / name, dest / name)
        for name in old_outputs:
            if name not in files and (dest / name).is_file():
                (dest / name).unlink()
        if "rejected.tsv" not in files and (dest / "rejected.tsv").is_file():
            (dest / "rejected.tsv").unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(marker, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
