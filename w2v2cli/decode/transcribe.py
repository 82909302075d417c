"""Transcribing audio files directly (no manifest): collect files, decode them, write text, JSON lines,
subtitles or CTM.

    >>> res = transcribe_files("exp/ft/best", ["talks/", "extra.mp3"], TranscribeConfig(chunk_seconds=30))
    >>> for item in res.items:
    ...     print(item.path, item.hypothesis.text if item.ok else item.error)
    >>> write_transcripts(res, "srt", out="subs/")                     # subs/<id>.srt per file

Inputs are files, directories (searched recursively for the `extensions`, hidden files skipped) or `-`
for a list of paths on stdin, one per line. Every file is read by `w2v2cli.audio` (FLAC, WAV, OGG, MP3 ...;
several channels averaged, any sample rate resampled to the model's 16 kHz), batched by duration and decoded
by the same code as `w2v2 decode` (`run.compute_emissions`: long files in overlapping windows; greedy or
lexicon + KenLM beam; word times and confidences). A file that cannot be read is reported (`items[k].error`,
and `on_skip(path, reason)` as it happens) and skipped; the others are still transcribed. Results keep the
order of the inputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

import numpy as np
import torch

from w2v2cli.decode.ctc import Hypothesis
from w2v2cli.decode.options import AUDIO_EXTENSIONS, TranscribeConfig
from w2v2cli.decode.run import SAMPLE_RATE, EmissionModel, compute_emissions, utterance_decoder
from w2v2cli.decode.writers import (
    ctm_text, hypothesis_record, srt_text, subtitle_cues, utterance_ids, vtt_text,
)
from w2v2cli.errors import AudioError, ConfigError, DataError

FORMATS = ("text", "jsonl", "srt", "vtt", "ctm")


@dataclass
class TranscribedFile:
    """One input: its path as given or found, its duration and hypothesis, or why it was skipped."""

    path: str
    duration: float = 0.0
    hypothesis: Hypothesis | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.hypothesis is not None


@dataclass
class TranscribeResult:
    """All inputs in order (`items`), with the audio seconds decoded and the wall time it took."""

    items: list[TranscribedFile] = field(default_factory=list)
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    precision: str = ""  # the model's dtype and why (`--dtype auto` says what it chose)

    @property
    def transcribed(self) -> list[TranscribedFile]:
        return [it for it in self.items if it.ok]

    @property
    def skipped(self) -> list[TranscribedFile]:
        return [it for it in self.items if not it.ok]

    @property
    def rtf(self) -> float:
        return self.elapsed_seconds / self.audio_seconds if self.audio_seconds else float("nan")


# ---------------------------------------------------------------------------------------------- inputs
def collect_audio(inputs: Sequence[str | os.PathLike], extensions: Iterable[str] = AUDIO_EXTENSIONS,
                  stdin: TextIO | None = None) -> list[TranscribedFile]:
    """Expands `inputs` into one item per file, in order, each path once. A directory gives its files with one
    of `extensions` (recursively, sorted); `-` reads paths from `stdin` (default: sys.stdin). A path that
    does not exist becomes an item with its error, so it is reported with the others."""
    exts = {e.lower().lstrip(".") for e in extensions}
    items: list[TranscribedFile] = []
    seen: set[str] = set()

    def add(path: str, error: str | None = None) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            items.append(TranscribedFile(path, error=error))

    def expand(spec: str) -> None:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in exts
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            for p in found:
                add(str(p))
        elif path.exists():
            add(spec)
        else:
            add(spec, "no such file or directory")

    for spec in inputs:
        if str(spec) == "-":
            for line in (stdin or sys.stdin):
                if line.strip():
                    expand(line.rstrip("\r\n").strip())
        else:
            expand(str(spec))
    if not items:
        raise DataError(f"no audio files found in {', '.join(map(str, inputs)) or 'the input'}",
                        hint=f"directories are searched for {', '.join(sorted(exts))} (--ext changes the list)")
    return items


# ---------------------------------------------------------------------------------------------- decoding
def transcribe_files(model: str | os.PathLike | None, inputs: Sequence[str | os.PathLike],
                     cfg: TranscribeConfig | None = None, loaded=None, dict_path: str | os.PathLike | None = None,
                     stdin: TextIO | None = None,
                     on_skip: Callable[[str, str], None] | None = None) -> TranscribeResult:
    """Transcribes the audio files in `inputs` with a CTC model: our checkpoint, a transformers directory, a
    fairseq `.pt` (with `dict_path`), a `.onnx` file of `w2v2 export onnx` (`cfg.backend`), or an already `loaded`
    one. See the module docstring."""
    from tqdm import tqdm

    from w2v2cli.audio import audio_info, load_audio
    from w2v2cli.decode.backends import open_backend
    from w2v2cli.runtime import configure_runtime

    cfg = cfg or TranscribeConfig()
    cfg.check()
    configure_runtime(threads=cfg.threads)  # process-level CPU settings, as for w2v2 decode
    items = collect_audio(inputs, cfg.extensions, stdin)
    em = EmissionModel(open_backend(model, cfg, loaded, dict_path))
    decode_one = utterance_decoder(cfg, em.vocab)
    normalize = bool(getattr(em.cfg, "normalize_audio", False))
    result = TranscribeResult(items=items, precision=f"{em.dtype} ({em.dtype_reason})")

    def skip(idx: int, reason: str) -> None:
        items[idx].error = reason
        if on_skip is not None:
            on_skip(items[idx].path, reason)

    work: list[tuple[int, Path, int]] = []
    for idx, item in enumerate(items):
        if item.error is not None:
            skip(idx, item.error)
            continue
        try:
            info = audio_info(item.path)
        except AudioError as err:
            skip(idx, _reason(err, item.path))
            continue
        work.append((idx, Path(item.path), int(info.frames * SAMPLE_RATE / max(1, info.samplerate))))
    index_of = {str(path): idx for idx, path, _ in work}

    def load(path: Path) -> np.ndarray | None:
        idx = index_of[str(path)]
        try:
            wave = load_audio(path, SAMPLE_RATE, normalize=normalize)
        except AudioError as err:
            skip(idx, _reason(err, items[idx].path))
            return None
        if len(wave) < em.receptive_field:
            skip(idx, f"{len(wave) / SAMPLE_RATE:.3f} s is shorter than one model frame "
                      f"({em.receptive_field / SAMPLE_RATE:.3f} s)")
            return None
        items[idx].duration = len(wave) / SAMPLE_RATE
        result.audio_seconds += items[idx].duration
        return wave

    def done(idx: int, lp: torch.Tensor) -> None:
        items[idx].hypothesis = decode_one(lp)

    start = time.perf_counter()
    with tqdm(total=len(work), unit="file", disable=not cfg.progress, desc="transcribe", file=sys.stderr) as bar:
        compute_emissions(em, work, load, cfg, done, bar.update)
    result.elapsed_seconds = time.perf_counter() - start
    return result


def _reason(err: AudioError, path: str) -> str:
    """The error's words without the leading path (the report names the file once)."""
    text = err.message
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


# ---------------------------------------------------------------------------------------------- outputs
def format_transcripts(res: TranscribeResult, fmt: str) -> str:
    """All transcribed files in one text: `text` (`path<TAB>transcript` lines), `jsonl` (one object per input
    with path, duration, text, words with start/end/confidence; skipped files as `{"path", "error"}`) or
    `ctm`. Subtitles are per file: see `subtitles`."""
    ok = res.transcribed
    if fmt == "text":
        return "".join(f"{it.path}\t{' '.join(it.hypothesis.text.split())}\n" for it in ok)
    if fmt == "jsonl":
        ids = dict(zip((it.path for it in ok), utterance_ids([it.path for it in ok])))
        lines = []
        for it in res.items:
            if it.ok:
                record = {"path": it.path, "duration": round(it.duration, 3),
                          **hypothesis_record(ids[it.path], it.hypothesis)}
            else:
                record = {"path": it.path, "error": it.error}
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        return "".join(lines)
    if fmt == "ctm":
        return ctm_text(utterance_ids([it.path for it in ok]), [it.hypothesis for it in ok])
    raise ConfigError(f"unknown format {fmt!r} for one combined output", hint=f"one of {', '.join(FORMATS)}")


def subtitles(item: TranscribedFile, fmt: str) -> str:
    """One file's SubRip (`srt`) or WebVTT (`vtt`) subtitles."""
    cues = subtitle_cues(item.hypothesis, item.duration)
    return srt_text(cues) if fmt == "srt" else vtt_text(cues)


def write_transcripts(res: TranscribeResult, fmt: str, out: str | os.PathLike | None = None,
                      stream: TextIO | None = None) -> list[Path]:
    """Writes the results as `fmt` (one of FORMATS) and returns the files written.

    text / jsonl / ctm: into the file `out`, or onto `stream` (default stdout) when `out` is None.
    srt / vtt: one `<id>.srt` per transcribed file in the directory `out`; without `out`, a single file's
    subtitles go onto `stream`."""
    from w2v2cli.config import atomic_write_text

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    stream = stream or sys.stdout
    if fmt in ("srt", "vtt"):
        ok = res.transcribed
        if out is None:
            if len(ok) > 1:
                raise _subtitles_need_dir(fmt, len(ok))
            if ok:
                stream.write(subtitles(ok[0], fmt))
            return []
        out_dir = Path(out)
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir}: subtitles go into a directory, and this is a file")
        paths = []
        for utt_id, item in zip(utterance_ids([it.path for it in ok]), ok):
            path = out_dir / f"{utt_id}.{fmt}"
            atomic_write_text(path, subtitles(item, fmt))
            paths.append(path)
        return paths
    text = format_transcripts(res, fmt)
    if out is None:
        stream.write(text)
        stream.flush()
        return []
    atomic_write_text(Path(out), text)
    return [Path(out)]


def _subtitles_need_dir(fmt: str, files: int) -> ConfigError:
    return ConfigError(f"--format {fmt} writes one subtitle file per audio file; {files} files need an output "
                       "directory", hint="add --out DIR")


def check_output(fmt: str, out: str | os.PathLike | None, files: int) -> None:
    """ConfigError before any decoding when `fmt` / `out` cannot hold the output of `files` inputs."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("srt", "vtt") and out is None and files > 1:
        raise _subtitles_need_dir(fmt, files)


def summary_rows(res: TranscribeResult) -> list[tuple[str, str]]:
    """(name, value) rows for the command's summary table."""
    rtf = res.rtf
    return [("files transcribed", str(len(res.transcribed))), ("files skipped", str(len(res.skipped))),
            ("audio minutes", f"{res.audio_seconds / 60:.2f}"), ("elapsed s", f"{res.elapsed_seconds:.2f}"),
            ("real-time factor", "-" if rtf != rtf else f"{rtf:.4f}"), ("precision", res.precision)]
