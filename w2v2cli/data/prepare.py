"""`w2v2 manifest`'s core: fairseq manifests (and labels) built from a corpus, atomically and only once.

    >>> from w2v2cli.data.prepare import ManifestConfig, build_manifests
    >>> result = build_manifests(ManifestConfig("LibriSpeech", dest="data", corpus="librispeech", jobs=8))
    >>> result.manifests["dev-clean"], result.num_files["dev-clean"], result.hours["dev-clean"]

One run: scan the corpus (`corpora`), read every file's header (`verify`), keep the usable ones, convert what needs
it (`resample`), and write each split's `NAME.tsv` (plus `.wrd`, `.ltr` and `dict.ltr.txt` for labelled corpora;
`manifest` is the format) and `rejected.tsv`. Audio that is not at `sample_rate` (or is MP3/Opus) is an error
unless `resample_to` is set. Bad input raises a `ManifestError` naming the file(s), unless `skip_bad`.
Outputs are written to temporary files and renamed into place only when all succeeded, then a marker records the
settings: re-running on a complete DEST is a no-op unless `force`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from w2v2cli.audio import MIN_SAMPLES
from w2v2cli.data.corpora import CORPORA, Item, Rejection, scan
from w2v2cli.data.manifest import Manifest, ManifestEntry, label_texts, letter_dict
from w2v2cli.data.resample import resample_items
from w2v2cli.data.verify import bad_input_error, probe_all, rejected_tsv, usable
from w2v2cli.errors import ManifestError
from w2v2cli.textio import atomic_write_text

MARKER = ".w2v2-manifest.json"


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
    items = scan(cfg, rejects)

    # header reads (and the last frames of FLAC/WAV) or, with verify, full decodes in parallel processes
    probes = probe_all([str(it.path) for it in items], cfg.jobs, cfg.verify, cfg.progress)
    t_read = time.perf_counter() - t0
    good = usable(items, probes, rejects, cfg.sample_rate, cfg.resample_to, cfg.min_samples)
    if rejects and not cfg.skip_bad:
        raise bad_input_error(rejects)
    resampled = 0
    if cfg.resample_to is not None:
        good, resampled = resample_items(good, cfg.audio_dir, dest, cfg.resample_to, cfg.jobs, cfg.progress, rejects)
        if rejects and not cfg.skip_bad:
            raise bad_input_error(rejects)

    files, manifests, num_files, hours = _output_texts(cfg, good, rejects)
    _write_all(dest, files, {"config": _identity(cfg), "outputs": sorted(files), "manifests": manifests,
                             "num_files": num_files, "hours": hours, "resampled": resampled,
                             "rejected": [r.__dict__ for r in rejects], "verified": cfg.verify})
    return ManifestResult(dest, {k: dest / v for k, v in manifests.items()}, num_files, hours, rejects, resampled,
                          files_per_second=len(items) / t_read if t_read > 0 else 0.0,
                          outputs=[dest / f for f in sorted(files)])


def _splits(cfg: ManifestConfig, good: list[Item]) -> dict[str, list[Item]]:
    """The usable items by split, in manifest order (LibriSpeech layouts: subsets and paths sorted)."""
    splits: dict[str, list[Item]] = {"train": [], "valid": []} if cfg.corpus == "folder" else {}
    for it in good:
        splits.setdefault(it.split, []).append(it)
    if cfg.corpus in ("librispeech", "librilight"):
        splits = {k: sorted(v, key=lambda i: str(i.path)) for k, v in sorted(splits.items())}
    return splits


def _manifest(items: list[Item], default_root: Path) -> Manifest:
    """One split's manifest; items of several roots get their common ancestor (one manifest has one root)."""
    root = items[0].root if items else default_root
    roots = {i.root for i in items}
    if len(roots) > 1:
        root = Path(os.path.commonpath([str(r) for r in roots]))
    return Manifest(root, [ManifestEntry(str(i.path.relative_to(root)), i.frames) for i in items])


def _output_texts(cfg: ManifestConfig, good: list[Item], rejects: list[Rejection]
                  ) -> tuple[dict[str, str], dict[str, str], dict[str, int], dict[str, float]]:
    """The text of every output file (manifests, labels, dictionary, rejected.tsv), and per split its manifest
    name, file count and hours."""
    splits = _splits(cfg, good)
    files: dict[str, str] = {}
    manifests: dict[str, str] = {}
    num_files: dict[str, int] = {}
    hours: dict[str, float] = {}
    labelled = cfg.corpus != "folder"
    for name, its in splits.items():
        files[f"{name}.tsv"] = _manifest(its, cfg.audio_dir.absolute()).to_text()
        manifests[name] = f"{name}.tsv"
        num_files[name] = len(its)
        hours[name] = sum(i.frames / i.sample_rate for i in its) / 3600
        if labelled:
            files[f"{name}.wrd"], files[f"{name}.ltr"] = label_texts([i.text for i in its])
    if labelled:
        files["dict.ltr.txt"] = letter_dict({n: [i.text for i in its] for n, its in splits.items()},
                                            cfg.dict_all_splits)
    if rejects:
        files["rejected.tsv"] = rejected_tsv(rejects)
    return files, manifests, num_files, hours


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
