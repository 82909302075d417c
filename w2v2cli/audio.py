"""Audio I/O: read any file soundfile can open as float32 mono at the model's sample rate.

    >>> from w2v2cli.audio import load_audio, audio_info
    >>> wav = load_audio("LibriSpeech/dev-clean/84/121123/84-121123-0000.flac")   # float32 [T] at 16 kHz
    >>> audio_info("clips/common_voice_de_1.mp3")                                  # header only
    AudioInfo(frames=190407, samplerate=48000, channels=1)

Reading goes through soundfile (libsndfile: FLAC, WAV, OGG/Vorbis/Opus, MP3); integer PCM arrives as
float32 in [-1, 1), several channels are averaged to mono, other sample rates are resampled with
`torchaudio.functional.resample` (band-limited sinc, the same filter on every call, so training and
decoding hear the same signal). Every failure is one `AudioError` that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from w2v2cli.errors import AudioError
from w2v2cli.textio import atomic_path

#: Receptive field of the wav2vec 2.0 conv encoder: shorter audio gives zero frames.
MIN_SAMPLES = 400


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says: `frames` samples per channel at `samplerate` Hz."""

    frames: int
    samplerate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.samplerate if self.samplerate else 0.0


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read only the header of `path` (no decoding for FLAC/WAV).

    Raises `AudioError` naming the file when it is missing, empty, unreadable or not audio.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:  # opening parses the header only
            return AudioInfo(frames=int(f.frames), samplerate=int(f.samplerate), channels=int(f.channels))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        _check_readable(path)
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from exc


def check_tail(path: str | os.PathLike, frames: int, tail: int = 4096) -> None:
    """Decodes the last `tail` frames of `path` (at near-header cost): a file cut short after its header (a
    truncated FLAC) fails here, where a header read alone accepts it. Raises `AudioError` naming the file."""
    path = Path(path)
    want = min(tail, frames)
    try:
        with sf.SoundFile(str(path)) as f:
            if f.seekable():
                f.seek(frames - want)
                got = len(f.read(want, dtype="float32", always_2d=True))
            else:
                got = want
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: truncated or corrupt: the last {want} of {frames} samples cannot be decoded "
                         f"({_reason(exc)})") from exc
    if got < want:
        raise AudioError(f"{path}: truncated: the header promises {frames} samples, the file ends "
                         f"{want - got} samples early")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # soundfile prefixes its message with the path; keep only libsndfile's own words.
    return text.split(": ", 1)[-1] if ": " in text else text


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a float32 mono [T] array with torchaudio's band-limited sinc filter."""
    if orig_sr == target_sr:
        return wav
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), orig_sr, target_sr)
    return out.numpy()


def normalize_waveform(wav: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Zero mean, unit variance per utterance (what layer-norm wav2vec 2.0 models expect)."""
    wav = wav.astype(np.float32, copy=False)
    return ((wav - wav.mean()) / np.sqrt(wav.var() + eps)).astype(np.float32)


def load_audio(
    path: str | os.PathLike,
    target_sr: int = 16000,
    normalize: bool = False,
    start: int = 0,
    frames: int = -1,
) -> np.ndarray:
    """Read `path` as float32 mono [T] at `target_sr` Hz.

    `start` / `frames` select a region in samples *of the file* (before resampling), so a manifest's
    `num_samples` at the file's rate can be used directly. `normalize` applies `normalize_waveform`.
    """
    path = Path(path)
    if start < 0:
        raise AudioError(f"{path}: start must be >= 0, got {start}")
    try:
        data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        _check_readable(path)
        try:
            sf.info(str(path))
            what = "truncated or corrupt: the header reads but the audio does not decode"
        except (sf.LibsndfileError, RuntimeError, OSError):
            what = "not a readable audio file"
        raise AudioError(f"{path}: {what} ({_reason(exc)})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples" + (f" from sample {start}" if start else ""))
    return _model_input(data, int(sr), str(path), target_sr, normalize)


def decode_audio(data: bytes, name: str, target_sr: int = 16000, normalize: bool = False,
                 expect_frames: int | None = None) -> np.ndarray:
    """`load_audio` of a file's bytes (a FLAC member of a tar shard): float32 mono [T] at `target_sr` Hz. `name`
    is what an `AudioError` calls it; `expect_frames`: the sample count the file must decode to (before
    resampling), so that damage that makes the decoder drop frames is an error too."""
    import io

    try:
        arr, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioError(f"{name}: not decodable audio ({_reason(exc)})") from exc
    if arr.shape[0] == 0:
        raise AudioError(f"{name}: no audio samples")
    if expect_frames is not None and arr.shape[0] != expect_frames:
        raise AudioError(f"{name}: decodes to {arr.shape[0]} samples, {expect_frames} expected (damaged)")
    return _model_input(arr, int(sr), name, target_sr, normalize)


def _model_input(data: np.ndarray, sr: int, name: str, target_sr: int, normalize: bool) -> np.ndarray:
    """[frames, channels] float32 -> mono [T] at `target_sr`, checked finite, optionally normalised."""
    wav = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if target_sr and sr != target_sr:
        wav = resample(wav, int(sr), int(target_sr))
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if normalize:
        wav = normalize_waveform(wav)
    return wav


def save_flac(path: str | os.PathLike, wav: np.ndarray, samplerate: int) -> None:
    """Write float mono audio as 16-bit FLAC atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wav, -1.0, 1.0 - 1.0 / 32768), samplerate, subtype="PCM_16", format="FLAC")
