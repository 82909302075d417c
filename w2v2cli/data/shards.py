"""WebDataset tar shards of a manifest: writing them (`w2v2 shard`), their index, reading them back.

    >>> result = write_shards(ShardConfig("data/train.tsv", out="data/train.shards", shard_minutes=30, jobs=8))
    >>> index = read_index("data/train.shards")            # ShardIndex: shards, member sample counts, checksums
    >>> content = read_shard(index.path(3), index.shards[3], wanted={"84/121123/84-121123-0000.flac"})
    >>> content.members, content.damage                    # {name: FLAC bytes}, None (or why the shard is unusable)

Why: at scale a manifest names millions of small files, and training opens each one every epoch; a shard holds
tens of minutes of audio in one file that is read from start to end, so a loader makes one open and one sequential
read per shard instead of one per utterance (bench/bench_shards.py measures both paths).

Why WebDataset: a shard is a plain POSIX tar (`tar tf` lists it, any language reads it), the layout is a
convention others already read (SpeechBrain, NeMo's tarred datasets, torchdata, the `webdataset` package), and
the `webdataset` package is small: we write with its `TarWriter` and stream with its `tar_file_iterator`. lhotse's
Shar would also do, but it splits a cut set into parallel tar files per field plus lhotse's JSON cut manifests:
more format than a list of FLAC files with transcripts needs, and the lhotse package for one reader.

Format of DIR (`w2v2 shard MANIFEST --out DIR`):

- `shard-000000.tar`, ...: one sample per utterance, the members `KEY.flac` (FLAC bytes: FLAC sources are kept as
  they are, every other format is re-encoded to FLAC with soundfile at its own rate) and, when the manifest has
  labels beside it, `KEY.ltr` / `KEY.wrd` (its label line, UTF-8). KEY is the manifest's relative path without its
  extension (dots in the file name become `_`). The utterances are shuffled with `--seed` before they are cut, so
  that a shard mixes speakers, and cut into shards of nearly equal duration (`--shard-minutes`) or size
  (`--shard-size`).
- `shards.json`, the index: per shard its file name, byte size, sha256, and per member its key, sample count (from
  the FLAC header, at the audio's rate, as a manifest row's) and the byte offset and size of each of its tar
  members; the settings and the source manifest's checksum; the label kinds. Batches are planned from it without
  opening any audio (w2v2cli/data/shard_dataset.py).
- `dict.ltr.txt`: copied from beside the manifest, when there is one (fine-tuning's letter vocabulary).

Writing is atomic: shards are written into a temporary directory in DIR, moved in, and the index is written last,
so an interrupted run leaves no `shards.json` (DIR does not look complete, and is rebuilt from scratch); a complete
DIR made from the same manifest with the same settings is a no-op; other settings are an error unless `force`.

Reading: `read_shard` streams a whole shard once (WebDataset's tar iterator), keeps the members asked for, and checks
its size and sha256 against the index: a missing, truncated or altered shard comes back as `damage` (a reason that
names it), never as partial data. `read_member` reads one member at its recorded offset (random access: validation
and k-means draws); `read_shard_labels` reads every label of a shard set that way, without reading the audio.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from w2v2cli.data.manifest import Manifest, labels_path, read_labels, read_manifest
from w2v2cli.errors import DataError, ManifestError
from w2v2cli.textio import atomic_write_text

INDEX = "shards.json"
FORMAT = "w2v2-shards"
VERSION = 1
LABEL_EXTS = ("ltr", "wrd")
DEFAULT_SHARD_MINUTES = 30.0
_TMP_PREFIX = ".shards.tmp-"


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.tar"


# ---------------------------------------------------------------------------------------------- the index
@dataclass
class ShardInfo:
    """One shard as the index records it: file `name`, `nbytes`, `sha256`, and per member its `keys[j]`, `samples[j]`
    (sample count), `sources[j]` (the audio file it was made from) and, per extension, the byte offset and size of its
    tar member (`offsets["flac"][j]`, `sizes["flac"][j]`)."""

    name: str
    nbytes: int
    sha256: str
    keys: list[str]
    samples: list[int]
    sources: list[str]
    offsets: dict[str, list[int]]
    sizes: dict[str, list[int]]

    @property
    def num_samples(self) -> int:
        return int(sum(self.samples))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.nbytes, "sha256": self.sha256, "num_samples": self.num_samples,
                "keys": self.keys, "samples": self.samples, "sources": self.sources, "offsets": self.offsets,
                "sizes": self.sizes}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ShardInfo":
        return cls(str(d["name"]), int(d["bytes"]), str(d["sha256"]), list(d["keys"]), [int(n) for n in d["samples"]],
                   list(d["sources"]), {k: list(v) for k, v in d["offsets"].items()},
                   {k: list(v) for k, v in d["sizes"].items()})


@dataclass
class ShardIndex:
    """A shard directory's `shards.json`: its shards in order, the label kinds its members carry, the settings."""

    root: Path
    shards: list[ShardInfo]
    labels: tuple[str, ...] = ()
    sample_rates: tuple[int, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def num_members(self) -> int:
        return sum(len(s.keys) for s in self.shards)

    @property
    def total_samples(self) -> int:
        return sum(s.num_samples for s in self.shards)

    def path(self, k: int) -> Path:
        return self.root / self.shards[k].name

    def member_name(self, k: int, j: int, ext: str = "flac") -> str:
        """How messages and bad_audio.tsv name member j of shard k: `DIR/shard-000003.tar:KEY.flac`."""
        return f"{self.path(k)}:{self.shards[k].keys[j]}.{ext}"

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "config": self.config, "labels": list(self.labels),
                "sample_rates": list(self.sample_rates), "num_members": self.num_members,
                "num_samples": self.total_samples, "shards": [s.to_json() for s in self.shards]}


def is_shard_dir(path: str | os.PathLike) -> bool:
    """True for a directory holding a shard index (what training takes in place of a manifest)."""
    return (Path(path) / INDEX).is_file()


def read_index(path: str | os.PathLike) -> ShardIndex:
    """The index of shard directory `path`; a missing or malformed index is a DataError naming the file."""
    root = Path(path)
    file = root / INDEX
    if not file.is_file():
        raise DataError(f"{root}: not a shard directory (no {INDEX})",
                        hint="write one with `w2v2 shard MANIFEST --out DIR`; an interrupted `w2v2 shard` leaves "
                             "no index: run it again")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{file}: cannot read the shard index ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{file}: not a w2v2 shard index (format {data.get('format') if isinstance(data, dict) else None!r})")
    if data.get("version") != VERSION:
        raise DataError(f"{file}: shard index version {data.get('version')}, this w2v2 reads version {VERSION}",
                        hint="write the shards again with this version: `w2v2 shard MANIFEST --out DIR --force`")
    try:
        shards = [ShardInfo.from_json(s) for s in data["shards"]]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{file}: malformed shard entry ({type(err).__name__}: {err})") from None
    for s in shards:
        if not (len(s.keys) == len(s.samples) == len(s.offsets.get("flac", ())) == len(s.sizes.get("flac", ()))):
            raise DataError(f"{file}: shard {s.name}: its member lists differ in length")
    return ShardIndex(root.absolute(), shards, tuple(data.get("labels", ())), tuple(data.get("sample_rates", ())),
                      dict(data.get("config", {})))


def index_manifest(index: ShardIndex) -> Manifest:
    """The members of a shard set as a `Manifest` (paths are member names, counts the index's), for code that takes
    a parsed manifest (a task's label checks)."""
    from w2v2cli.data.manifest import ManifestEntry

    entries = [ManifestEntry(index.member_name(k, j), n) for k, s in enumerate(index.shards)
               for j, n in enumerate(s.samples)]
    return Manifest(index.root, entries, index.root / INDEX)


# ---------------------------------------------------------------------------------------------- reading
def open_shard(path: Path) -> BinaryIO:
    """The one place shard files are opened (bench/bench_shards.py counts the calls)."""
    return open(path, "rb")


class _HashingReader:
    """A read-only file wrapper that hashes and counts what passes through it (the tar iterator reads through it)."""

    def __init__(self, f: BinaryIO):
        self.f, self.sha, self.nbytes = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        self.nbytes += len(data)
        return data

    def drain(self) -> None:
        """Reads what the tar iterator left (the end-of-archive blocks and record padding), for the checksum."""
        while self.read(1 << 20):
            pass


@dataclass
class ShardContent:
    """What `read_shard` got: `members` {tar member name: bytes}, or `damage` (why none can be trusted)."""

    members: dict[str, bytes]
    damage: str | None = None
    nbytes: int = 0  # bytes read from the file


def read_shard(path: Path, info: ShardInfo, wanted: Collection[str]) -> ShardContent:
    """Streams shard `path` once and keeps the members named in `wanted` (`KEY.flac`, ...); see the module
    docstring. A missing, unreadable, truncated or altered shard returns no members and the reason."""
    from webdataset.tariterators import tar_file_iterator

    got: dict[str, bytes] = {}
    try:
        with open_shard(path) as f:
            reader = _HashingReader(f)
            for sample in tar_file_iterator(reader, select_files=wanted.__contains__):
                got[sample["fname"]] = sample["data"]
            reader.drain()
    except FileNotFoundError:
        return ShardContent({}, f"missing ({INDEX} lists it)")
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        reason = (str(err.args[0]) if err.args else type(err).__name__).split(" @ ")[0]
        return ShardContent({}, f"damaged tar ({reason}): every member of the shard skipped", 0)
    if reader.nbytes != info.nbytes:
        return ShardContent({}, f"{reader.nbytes} bytes, {INDEX} says {info.nbytes} (truncated or rewritten): every "
                                f"member of the shard skipped", reader.nbytes)
    if reader.sha.hexdigest() != info.sha256:
        return ShardContent({}, f"sha256 does not match {INDEX} (damaged or rewritten): every member of the shard "
                                f"skipped", reader.nbytes)
    return ShardContent(got, None, reader.nbytes)


def read_member(path: Path, offset: int, nbytes: int) -> bytes:
    """`nbytes` bytes at `offset` of shard `path` (fewer when the file is shorter: the caller checks)."""
    with open_shard(path) as f:
        f.seek(offset)
        return f.read(nbytes)


def read_shard_labels(index: ShardIndex, ext: str) -> list[str]:
    """The `ext` label (ltr / wrd) of every member, in index order, read at the members' offsets (one open per
    shard, no audio read); a label that cannot be read is a DataError naming the shard member."""
    if ext not in index.labels:
        raise ManifestError(f"{index.root}: its shards carry no .{ext} labels (they carry: "
                            f"{', '.join(index.labels) or 'none'})",
                            hint="shard a manifest that has labels beside it (`w2v2 manifest --corpus ...`)")
    out: list[str] = []
    for k, s in enumerate(index.shards):
        try:
            with open_shard(index.path(k)) as f:
                for j, (offset, size) in enumerate(zip(s.offsets[ext], s.sizes[ext])):
                    f.seek(offset)
                    data = f.read(size)
                    if len(data) != size:
                        raise DataError(f"{index.member_name(k, j, ext)}: the shard ends before this label "
                                        f"(truncated)", hint="write the shards again: `w2v2 shard ... --force`")
                    try:
                        out.append(data.decode("utf-8"))
                    except UnicodeDecodeError:
                        raise DataError(f"{index.member_name(k, j, ext)}: not valid UTF-8") from None
        except OSError as err:
            raise DataError(f"{index.path(k)}: cannot read ({err.strerror or err})") from None
    return out


# ---------------------------------------------------------------------------------------------- writing
@dataclass
class ShardConfig:
    """Settings of `write_shards` (one field per `w2v2 shard` option)."""

    manifest: Path
    out: Path
    shard_minutes: float = DEFAULT_SHARD_MINUTES  # audio per shard (ignored when shard_bytes > 0)
    shard_bytes: int = 0  # > 0: cut by audio bytes instead of duration
    seed: int = 1  # the shuffle before cutting
    jobs: int = 1  # shards written in parallel processes
    force: bool = False  # rebuild even when OUT is complete
    progress: bool = True


@dataclass
class ShardResult:
    """What `write_shards` wrote (or found complete: `reused`)."""

    out: Path
    num_shards: int
    num_members: int
    hours: float
    nbytes: int
    reencoded: int
    labels: tuple[str, ...]
    reused: bool = False


def write_shards(cfg: ShardConfig) -> ShardResult:
    """Writes the manifest `cfg.manifest` (and its labels) as shards into `cfg.out`; see the module docstring."""
    from w2v2cli.data.verify import probe_all

    cfg.manifest, cfg.out = Path(cfg.manifest), Path(cfg.out)
    _validate(cfg)
    manifest = read_manifest(cfg.manifest)
    if not manifest.entries:
        raise ManifestError(f"{cfg.manifest}: the manifest lists no audio files")
    labels = {ext: read_labels(cfg.manifest, ext) for ext in LABEL_EXTS if labels_path(cfg.manifest, ext).is_file()}
    out = cfg.out.absolute()
    identity = _identity(cfg, labels)
    reused = _reuse(out, identity, cfg.force)
    if reused is not None:
        return reused
    paths = [str(manifest.abspath(i)) for i in range(len(manifest))]
    probes = probe_all(paths, cfg.jobs, verify=False, progress=cfg.progress)
    _check_probes(cfg.manifest, paths, probes)
    jobs = _shard_jobs(manifest, paths, probes, labels, cfg)
    infos = _write_all(out, jobs, cfg)
    rates = sorted({int(p[1]) for p in probes})
    index = ShardIndex(out, infos, tuple(labels), tuple(rates), identity)
    atomic_write_text(out / INDEX, json.dumps(index.to_json(), ensure_ascii=False) + "\n")
    return _result(index, reused=False, reencoded=sum(1 for p in probes if p[2] != "FLAC"))


def _validate(cfg: ShardConfig) -> None:
    if cfg.shard_bytes < 0 or (cfg.shard_bytes == 0 and not cfg.shard_minutes > 0):
        raise ManifestError(f"shard size must be > 0 (--shard-minutes {cfg.shard_minutes}, --shard-size "
                            f"{cfg.shard_bytes})")
    if cfg.jobs < 1:
        raise ManifestError(f"--jobs must be >= 1, got {cfg.jobs}")
    if cfg.out.exists() and not cfg.out.is_dir():
        raise ManifestError(f"{cfg.out}: exists and is not a directory", hint="choose another --out")


def _identity(cfg: ShardConfig, labels: dict[str, list[str]]) -> dict[str, Any]:
    """What a complete output must have been made from: the manifest (and labels) by content, the settings."""
    sha = hashlib.sha256(cfg.manifest.read_bytes())
    for ext in sorted(labels):
        sha.update(labels_path(cfg.manifest, ext).read_bytes())
    return {"manifest": str(cfg.manifest.absolute()), "manifest_sha256": sha.hexdigest(),
            "shard_minutes": cfg.shard_minutes if not cfg.shard_bytes else None,
            "shard_bytes": cfg.shard_bytes or None, "seed": cfg.seed}


def _result(index: ShardIndex, reused: bool, reencoded: int) -> ShardResult:
    rate = index.sample_rates[0] if len(index.sample_rates) == 1 else 16000
    return ShardResult(index.root, len(index.shards), index.num_members, index.total_samples / rate / 3600,
                       sum(s.nbytes for s in index.shards), reencoded, index.labels, reused)


def _reuse(out: Path, identity: dict[str, Any], force: bool) -> ShardResult | None:
    """The complete output already in `out` (same manifest, same settings, every shard present at its size)."""
    if force or not is_shard_dir(out):
        return None
    index = read_index(out)
    if index.config != identity:
        raise ManifestError(f"{out}: holds shards of another manifest or made with other settings ({out / INDEX})",
                            hint="pass --force to rebuild them, or choose another --out")
    for k, s in enumerate(index.shards):
        if not index.path(k).is_file() or index.path(k).stat().st_size != s.nbytes:
            return None
    return _result(index, reused=True, reencoded=0)


def _check_probes(manifest_path: Path, paths: list[str], probes: list) -> None:
    """A ManifestError naming the first unusable file and its manifest line (and how many more there are)."""
    bad = [(i, r) for i, r in enumerate(probes) if isinstance(r, str)]
    if not bad:
        return
    i, reason = bad[0]
    more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
    raise ManifestError(f"{paths[i]} ({manifest_path}:{i + 2}): {reason}{more}",
                        hint="fix or drop the file: `w2v2 manifest --skip-bad` writes a manifest without bad files")


def member_keys(rel_paths: list[str]) -> list[str]:
    """WebDataset keys for manifest paths: the path without its extension, dots in the file name made `_` (a key
    ends at the first dot of the name); a key already taken gets `_LINE` (its manifest line) appended."""
    keys: list[str] = []
    seen: set[str] = set()
    for i, rel in enumerate(rel_paths):
        head, _, name = rel.replace("\\", "/").rpartition("/")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        key = (f"{head}/" if head else "") + (stem.replace(".", "_") or "utt")
        if key in seen:
            key = f"{key}_{i + 2}"
        seen.add(key)
        keys.append(key)
    return keys


def plan_shards(weights: np.ndarray, target: float, seed: int) -> list[np.ndarray]:
    """Entries (by index) per shard: shuffled with `seed`, cut into round(total / target) runs of nearly equal
    weight (duration or bytes)."""
    order = np.random.default_rng(seed).permutation(len(weights))
    total = float(weights.sum())
    n = max(1, min(len(weights), int(round(total / target))))
    ends = np.cumsum(weights[order])
    cuts = np.searchsorted(ends, total * np.arange(1, n) / n, side="left") + 1
    parts = np.split(order, np.unique(np.clip(cuts, 1, len(order) - 1)) if n > 1 else [])
    return [p for p in parts if len(p)]


@dataclass
class _ShardJob:
    """One shard to write: its name and per member (key, audio path, format, {ext: label line})."""

    name: str
    members: list[tuple[str, str, str, dict[str, str]]]


def _shard_jobs(manifest: Manifest, paths: list[str], probes: list, labels: dict[str, list[str]],
                cfg: ShardConfig) -> list[_ShardJob]:
    frames = np.asarray([p[0] for p in probes], dtype=np.float64)
    if cfg.shard_bytes:
        weights, target = np.asarray([os.path.getsize(p) for p in paths], dtype=np.float64), float(cfg.shard_bytes)
    else:
        weights, target = frames / np.asarray([p[1] for p in probes], dtype=np.float64), cfg.shard_minutes * 60
    keys = member_keys([e.path for e in manifest.entries])
    jobs = []
    for k, part in enumerate(plan_shards(weights, target, cfg.seed)):
        jobs.append(_ShardJob(shard_name(k), [(keys[i], paths[i], probes[i][2],
                                               {ext: lines[i] for ext, lines in labels.items()}) for i in part]))
    return jobs


def _flac_bytes(path: str, fmt: str) -> bytes:
    """FLAC bytes of `path`: a FLAC file as it is, anything else re-encoded (16-bit, 24-bit for deeper sources)."""
    import io

    import soundfile as sf

    if fmt == "FLAC":
        with open(path, "rb") as f:
            return f.read()
    with sf.SoundFile(path) as src:
        subtype = "PCM_24" if src.subtype in ("PCM_24", "PCM_32", "FLOAT", "DOUBLE") else "PCM_16"
        data = src.read(dtype="float32" if subtype == "PCM_16" else "float64", always_2d=True)
        rate = src.samplerate
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="FLAC", subtype=subtype)
    return buf.getvalue()


def _flac_frames(data: bytes, name: str) -> int:
    import io

    import soundfile as sf

    try:
        return int(sf.info(io.BytesIO(data)).frames)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ManifestError(f"{name}: not readable as FLAC ({err})") from None


def _write_shard(tmp: Path, job: _ShardJob) -> ShardInfo:
    """Writes one shard into `tmp` (a worker process) and returns its index entry."""
    from webdataset.writer import TarWriter

    path = tmp / job.name
    keys, samples, sources = [], [], []
    with open(path, "wb") as f:
        writer = TarWriter(f, encoder=False, mtime=0.0, user="w2v2", group="w2v2")
        for key, audio, fmt, texts in job.members:
            data = _flac_bytes(audio, fmt)
            keys.append(key)
            samples.append(_flac_frames(data, audio))
            sources.append(audio)
            writer.write({"__key__": key, "flac": data, **{ext: t.encode("utf-8") for ext, t in texts.items()}})
        writer.close()
        f.flush()
        os.fsync(f.fileno())
    exts = ["flac"] + sorted(job.members[0][3]) if job.members else ["flac"]
    offsets = {ext: [0] * len(keys) for ext in exts}
    sizes = {ext: [0] * len(keys) for ext in exts}
    where = {f"{key}.{ext}": (j, ext) for j, key in enumerate(keys) for ext in exts}
    with tarfile.open(path) as tf:  # where each member's data lies, for random access
        for m in tf.getmembers():
            j, ext = where[m.name]
            offsets[ext][j], sizes[ext][j] = m.offset_data, m.size
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            sha.update(block)
    return ShardInfo(job.name, path.stat().st_size, sha.hexdigest(), keys, samples, sources, offsets, sizes)


def _write_all(out: Path, jobs: list[_ShardJob], cfg: ShardConfig) -> list[ShardInfo]:
    """Writes every shard into a temporary directory in `out`, then moves them in (the index comes after)."""
    from w2v2cli.data.parallel import map_parallel

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{_TMP_PREFIX}*"):  # an interrupted run's
        shutil.rmtree(stale, ignore_errors=True)
    if (out / INDEX).exists():
        (out / INDEX).unlink()  # from here until the new index, OUT is not complete
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=out))
    try:
        infos = map_parallel(partial(_write_shard, tmp), jobs, cfg.jobs, "writing shards", cfg.progress,
                             processes=True, min_parallel=2)
        names = {i.name for i in infos}
        for old in out.glob("shard-*.tar"):
            if old.name not in names:
                old.unlink()
        for info in infos:
            os.replace(tmp / info.name, out / info.name)
        letters = cfg.manifest.parent / "dict.ltr.txt"
        if letters.is_file():
            shutil.copyfile(letters, tmp / letters.name)
            os.replace(tmp / letters.name, out / letters.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return infos
