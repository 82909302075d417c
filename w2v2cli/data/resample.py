"""`--resample-to`: audio at other rates, or in MP3/Opus, converted once into 16-bit FLAC under `DEST/audio/`.

    >>> from w2v2cli.data.resample import resample_items
    >>> good, converted = resample_items(good, Path("cv-corpus-17.0/de"), Path("data/de"), 16000, jobs=8,
    ...                                  progress=True, rejects=rejects)

Only the files that need it are converted (in `jobs` threads; converted files already there are reused); the
others are hard-linked (or copied) beside them, so that one manifest root holds every file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from w2v2cli.audio import audio_info, load_audio, save_flac
from w2v2cli.data.corpora import Item, Rejection
from w2v2cli.data.parallel import map_parallel
from w2v2cli.data.verify import HEADER_ONLY_FORMATS
from w2v2cli.errors import AudioError


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


def resample_items(good: list[Item], audio_dir: Path, dest: Path, rate: int, jobs: int, progress: bool,
                   rejects: list[Rejection]) -> tuple[list[Item], int]:
    """Conversion into DEST/audio (only the files that need it; the rest is linked beside them): the items now
    pointing there, and how many were converted. Failed conversions go to `rejects`."""
    needs = {id(it) for it in good if it.sample_rate != rate or it.fmt not in HEADER_ONLY_FORMATS}
    if not needs:
        return good, 0
    audio_root = dest / "audio"
    base = audio_dir.absolute()
    jobs_args, keep = [], []
    for it in good:
        new_root = audio_root / it.root.relative_to(base) if it.root != base else audio_root
        rel = it.path.relative_to(it.root)
        if id(it) in needs:
            dst = new_root / rel.with_suffix(".flac")
            jobs_args.append((str(it.path), str(dst), rate))
        else:
            dst = new_root / rel
            _link_or_copy(it.path, dst)
        keep.append((it, new_root, dst))
    results = iter(map_parallel(_convert, jobs_args, jobs, f"converting to {rate} Hz FLAC", progress,
                                processes=False))
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


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
