"""Checking a corpus's audio before it goes into a manifest: header reads (sample counts), truncation, full decodes
(`--verify`), and the rules an utterance must meet; what fails is a `Rejection` (`--skip-bad`).

    >>> from w2v2cli.data.verify import probe_all, usable
    >>> probes = probe_all([str(i.path) for i in items], jobs=8, verify=False, progress=True)
    >>> good = usable(items, probes, rejects, sample_rate=16000, resample_to=None, min_samples=400)

Headers are read in `jobs` processes, and the last 4096 samples of each FLAC/WAV are decoded, so that a file cut
short after its header (a truncated download or copy) is caught at near-header cost; `verify` decodes every file
in full instead (in `jobs` processes), which also catches NaN/inf samples and damage in the middle.

Bad input - unreadable, empty or non-audio files, audio shorter than `min_samples` (400, the model's receptive
field), audio not at the manifests' rate (unless it is resampled) - is listed as a `Rejection`; without
`--skip-bad` the rejections become one `ManifestError` (`bad_input_error`), with it they are written to
`DEST/rejected.tsv` (`rejected_tsv`).
"""

from __future__ import annotations

from functools import partial

from w2v2cli.audio import audio_info, check_tail, load_audio
from w2v2cli.data.corpora import Item, Rejection
from w2v2cli.data.parallel import map_parallel
from w2v2cli.errors import AudioError, ManifestError

#: formats whose header states the sample count exactly (and whose last frames `check_tail` decodes)
HEADER_ONLY_FORMATS = ("FLAC", "WAV", "WAVEX", "RF64", "W64", "AIFF")


def probe(path: str, verify: bool = False) -> tuple[int, int, str] | str:
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


def probe_all(paths: list[str], jobs: int, verify: bool, progress: bool) -> list[tuple[int, int, str] | str]:
    """`probe` of every path, in `jobs` processes (header reads, or with `verify` full decodes)."""
    return map_parallel(partial(probe, verify=verify), paths, jobs,
                        "decoding audio (--verify)" if verify else "reading headers", progress,
                        processes=True, min_parallel=16 if verify else None)


def usable(items: list[Item], probes: list, rejects: list[Rejection], sample_rate: int, resample_to: int | None,
           min_samples: int) -> list[Item]:
    """The items whose probe succeeded and that are long enough at the right rate (`resample_to`, or without it
    `sample_rate`, which then every file must have); the others go to `rejects`."""
    good: list[Item] = []
    target = resample_to or sample_rate
    for it, pr in zip(items, probes):
        if isinstance(pr, str):
            rejects.append(Rejection(str(it.path), pr))
            continue
        it.frames, it.sample_rate, it.fmt = pr
        frames_at_target = it.frames * target // it.sample_rate if it.sample_rate else 0
        if it.frames == 0:
            rejects.append(Rejection(str(it.path), "no audio samples (0 frames)"))
        elif frames_at_target < min_samples:
            rejects.append(Rejection(str(it.path), f"too short: {frames_at_target} samples at {target} Hz, "
                                                   f"fewer than the model's receptive field of {min_samples}"))
        elif resample_to is None and it.sample_rate != sample_rate:
            rejects.append(Rejection(str(it.path), f"sample rate {it.sample_rate} Hz, manifests need {sample_rate} Hz "
                                                   f"(pass --resample-to {sample_rate})"))
        else:
            good.append(it)
    return good


def bad_input_error(rejects: list[Rejection]) -> ManifestError:
    """One error naming the first five bad inputs and their reasons, with the --skip-bad hint."""
    shown = "\n  ".join(f"{r.path}: {r.reason}" for r in rejects[:5])
    more = f"\n  ... and {len(rejects) - 5} more" if len(rejects) > 5 else ""
    first = rejects[0]
    head = f"{first.path}: {first.reason}" if len(rejects) == 1 else f"{len(rejects)} bad inputs:\n  {shown}{more}"
    return ManifestError(head, hint="fix or remove them, or pass --skip-bad to leave them out "
                                    "(they are then listed in DEST/rejected.tsv)")


def rejected_tsv(rejects: list[Rejection]) -> str:
    """The text of `DEST/rejected.tsv`: a `path<TAB>reason` header, then one row per rejection."""
    return "path\treason\n" + "".join(f"{r.path}\t{r.reason}\n" for r in rejects)
