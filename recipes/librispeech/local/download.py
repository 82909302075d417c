#!/usr/bin/env python3
"""Download and unpack LibriSpeech subsets and Libri-light's limited-supervision splits (stage 0 of run.sh).

    python3 local/download.py /data/librispeech all
    python3 local/download.py /data/librispeech train-clean-100 dev-clean test-clean librilight
    python3 local/download.py /data/librispeech dev-clean --mirror https://us.openslr.org/resources/12

PARTS: the seven LibriSpeech subsets (dev-clean ... train-other-500), `librilight` (librispeech_finetuning.tgz),
or `all`. They land in DEST/LibriSpeech/SUBSET and DEST/librispeech_finetuning, as unpacked from the archives.

- Resumable: an archive is fetched into ARCHIVE.part; an interrupted download continues from where it stopped
  (HTTP Range); a server that ignores Range sends the file again from the start.
- Verified: each archive's sha256 must match (torchaudio's published table for the official URLs, or
  `--checksums FILE` in `sha256sum` format, `HASH  ARCHIVE_NAME` per line). A mismatch is a one-line error naming the
  file; the bad file is deleted and nothing is unpacked.
- Safe: archives are unpacked with tarfile's `data` filter (no absolute paths, no `..`, no links out of DEST,
  no device files) into a temporary folder, then moved into place; a part already present is skipped
  (DEST/.downloads/PART.done), so re-running is a no-op.
- `--mirror URL` (or the environment variable W2V2_LIBRISPEECH_MIRROR) fetches every archive as URL/ARCHIVE_NAME.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

OPENSLR = "http://www.openslr.org/resources/12"
LIBRILIGHT = "https://dl.fbaipublicfiles.com/librilight/data"
# part -> (base URL, archive name, folder it unpacks to (relative to DEST), sha256); checksums as published in
# torchaudio's datasets/librispeech.py and datasets/librilight_limited.py
PARTS = {
    "dev-clean": (OPENSLR, "dev-clean.tar.gz", "LibriSpeech/dev-clean",
                  "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": (OPENSLR, "dev-other.tar.gz", "LibriSpeech/dev-other",
                  "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": (OPENSLR, "test-clean.tar.gz", "LibriSpeech/test-clean",
                   "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": (OPENSLR, "test-other.tar.gz", "LibriSpeech/test-other",
                   "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": (OPENSLR, "train-clean-100.tar.gz", "LibriSpeech/train-clean-100",
                        "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": (OPENSLR, "train-clean-360.tar.gz", "LibriSpeech/train-clean-360",
                        "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": (OPENSLR, "train-other-500.tar.gz", "LibriSpeech/train-other-500",
                        "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
    "librilight": (LIBRILIGHT, "librispeech_finetuning.tgz", "librispeech_finetuning",
                   "5d1efdc777b548194d7e09ba89126e2188026df9fd57aa57eb14408d2b2342af"),
}
CHUNK = 1 << 20


class DownloadError(Exception):
    pass


def read_checksums(path: Path) -> dict[str, str]:
    sums = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or len(fields[0]) != 64:
            raise DownloadError(f"{path}:{n}: expected 'SHA256  ARCHIVE_NAME', got {line!r}")
        sums[fields[1].lstrip("*")] = fields[0].lower()
    return sums


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, part: Path) -> None:
    """Download `url` into `part`, continuing a partial file when the server honours Range."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the partial file is whole (the checksum decides)
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: {getattr(err, 'reason', err)} (run again to retry)") from None
    with resp:
        resumed = have > 0 and resp.status == 206
        if have and not resumed:
            print(f"{url}: the server ignored the range request; downloading from the start", file=sys.stderr)
        total = int(resp.headers.get("Content-Length") or 0) + (have if resumed else 0)
        done, shown = (have if resumed else 0), time.monotonic()
        if resumed:
            print(f"{part.name}: resuming at {have / 1e6:.1f} MB", file=sys.stderr)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while block := resp.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    if time.monotonic() - shown > 10:
                        shown = time.monotonic()
                        pct = f" ({100 * done / total:.0f} %)" if total else ""
                        print(f"{part.name}: {done / 1e6:.0f} MB{pct}", file=sys.stderr)
        except (urllib.error.URLError, OSError) as err:
            raise DownloadError(f"{url}: download stopped at {done / 1e6:.1f} MB: {err} "
                                f"({part} is kept; run again to resume)") from None


def merge(src: Path, dst: Path) -> None:
    """Move the unpacked tree `src` into `dst`; what already exists there is kept."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    elif src.is_dir() and dst.is_dir():
        for child in sorted(src.iterdir()):
            merge(child, dst / child.name)


def unpack(archive: Path, dest: Path, expect: str) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise DownloadError(f"{archive}: this Python's tarfile has no safe extraction filter (needs Python 3.10.12+, "
                            "3.11.4+ or 3.12+); nothing was unpacked")
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DownloadError(f"{archive}: cannot unpack: {err}") from None
        if not (tmp / expect).is_dir():
            raise DownloadError(f"{archive}: does not contain {expect}/")
        for top in sorted(tmp.iterdir()):
            merge(top, dest / top.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get(part: str, dest: Path, mirror: str | None, sums: dict[str, str], keep: bool) -> None:
    base, name, expect, digest = PARTS[part]
    marker = dest / ".downloads" / f"{part}.done"
    archive = dest / ".downloads" / name
    part_file = Path(f"{archive}.part")
    in_progress = archive.exists() or part_file.exists()
    if marker.is_file() or ((dest / expect).is_dir() and not in_progress):  # done, or unpacked by the user
        print(f"{part}: present in {dest / expect}", file=sys.stderr)
        return
    digest = sums.get(name, digest)
    url = f"{(mirror or base).rstrip('/')}/{name}"
    archive.parent.mkdir(parents=True, exist_ok=True)
    if not archive.is_file():  # a verified archive from an earlier run is used as it is
        print(f"{part}: downloading {url}", file=sys.stderr)
        fetch(url, part_file)
        got = sha256(part_file)
        if got != digest:
            part_file.unlink()
            raise DownloadError(f"{archive.name}: sha256 {got} does not match the expected {digest} "
                                f"(from {url}; the file was deleted, nothing was unpacked)")
        os.replace(part_file, archive)
    print(f"{part}: unpacking {archive.name} into {dest}", file=sys.stderr)
    unpack(archive, dest, expect)
    marker.touch()
    if not keep:
        archive.unlink()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path, help="Directory that gets LibriSpeech/ and librispeech_finetuning/.")
    ap.add_argument("parts", nargs="+", help=f"all, or some of: {', '.join(PARTS)}")
    ap.add_argument("--mirror", default=os.environ.get("W2V2_LIBRISPEECH_MIRROR") or None,
                    help="Base URL every archive is fetched from (default: openslr.org and dl.fbaipublicfiles.com).")
    ap.add_argument("--checksums", type=Path, help="sha256sum-format file overriding the built-in checksums.")
    ap.add_argument("--keep-archives", action="store_true", help="Keep the archives in DEST/.downloads.")
    args = ap.parse_args(argv)
    parts = list(PARTS) if args.parts == ["all"] else args.parts
    try:
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise DownloadError(f"unknown part {unknown[0]!r}; choose 'all' or some of: {', '.join(PARTS)}")
        sums = read_checksums(args.checksums) if args.checksums else {}
        args.dest.mkdir(parents=True, exist_ok=True)
        for part in parts:
            get(part, args.dest.absolute(), args.mirror, sums, args.keep_archives)
    except DownloadError as err:
        print(f"download.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
