"""Training-time audio augmentation: speed perturbation and additive noise at a chosen SNR.

    >>> aug = Augmenter(speeds=(0.9, 1.0, 1.1), noise_prob=0.5, snr_db=(5.0, 20.0))
    >>> out = aug(wav, np.random.default_rng([seed, epoch, position, slot]))    # float32 [T'] -> float32 [T'']

Speed perturbation is Kaldi's (Ko et al., 2015; sox `speed`): the utterance is resampled so that it plays
`factor` times faster, which changes tempo and pitch together; `factor` is drawn uniformly from `speeds`.
Noise is added at an SNR drawn uniformly from `snr_db` (dB, over the utterance's mean power), either from
noise recordings (`noise_files`, e.g. MUSAN's noise part: a random excerpt, looped when shorter) or, without
recordings, from synthetic coloured noise (white, pink or brown, one drawn per utterance).

Everything is a pure function of the `numpy` generator passed in, which the dataset seeds from
`(seed, epoch, batch position, slot)`: the same batch gets the same augmentation on any rank and after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

#: spectral slopes of the synthetic noises: power ~ 1 / f ** slope
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def speed_perturb(wav: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """`wav` played `factor` times faster (length / factor), as `sox speed factor` does."""
    if factor == 1.0:
        return wav
    import torchaudio.functional as AF

    orig = int(round(sample_rate * factor))  # treat the signal as recorded at orig Hz, resample to sample_rate
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), orig, sample_rate)
    return out.numpy()


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-power white, pink or brown noise (shaped in the frequency domain)."""
    slope = NOISE_COLOURS[colour]
    white = rng.standard_normal(n)
    if slope == 0.0:
        return white.astype(np.float32)
    spec = np.fft.rfft(white)
    freqs = np.arange(len(spec), dtype=np.float64)
    freqs[0] = 1.0
    spec /= freqs ** (slope / 2.0)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n)
    return (out / max(float(np.sqrt(np.mean(out ** 2))), 1e-12)).astype(np.float32)


def add_noise(wav: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`wav + g * noise` with `g` chosen so that mean power(wav) / power(g * noise) = 10 ** (snr_db / 10)."""
    if len(noise) != len(wav):
        raise ValueError(f"noise has {len(noise)} samples, the speech {len(wav)}")
    p_speech = float(np.mean(wav.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_speech <= 0.0 or p_noise <= 0.0:
        return wav
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (wav + gain * noise).astype(np.float32)


@lru_cache(maxsize=64)
def _read_noise(path: str, sample_rate: int) -> np.ndarray:
    from w2v2cli.audio import load_audio

    return load_audio(path, target_sr=sample_rate)


@dataclass(frozen=True)
class Augmenter:
    """Applies speed perturbation, then noise (see the module docstring); inactive when both are off."""

    speeds: tuple[float, ...] = ()
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (5.0, 20.0)
    noise_files: tuple[str, ...] = ()
    sample_rate: int = 16000

    @property
    def active(self) -> bool:
        return bool(self.speeds and set(self.speeds) != {1.0}) or self.noise_prob > 0

    def __call__(self, wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.speeds:
            wav = speed_perturb(wav, float(self.speeds[int(rng.integers(len(self.speeds)))]), self.sample_rate)
        if self.noise_prob > 0 and rng.random() < self.noise_prob:
            snr = float(rng.uniform(*self.snr_db))
            wav = add_noise(wav, self._noise(len(wav), rng), snr)
        return wav

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files:
            return coloured_noise(n, sorted(NOISE_COLOURS)[int(rng.integers(len(NOISE_COLOURS)))], rng)
        src = _read_noise(self.noise_files[int(rng.integers(len(self.noise_files)))], self.sample_rate)
        if len(src) == 0:
            return coloured_noise(n, "white", rng)
        if len(src) < n:
            src = np.tile(src, -(-n // len(src)))
        start = int(rng.integers(0, len(src) - n + 1))
        return src[start:start + n]


def noise_files_from(manifest: str | None) -> tuple[str, ...]:
    """Absolute paths of the audio files a noise manifest (fairseq `.tsv`) lists; () for None/''."""
    if not manifest:
        return ()
    from w2v2cli.data.manifest import read_manifest

    m = read_manifest(manifest)
    return tuple(str(m.abspath(i)) for i in range(len(m.entries)))


def make_augmenter(speeds: Sequence[float], noise_prob: float, snr_db: Sequence[float], noise_manifest: str,
                   sample_rate: int) -> Augmenter | None:
    """The `Augmenter` for the data config's values, or None when nothing is switched on."""
    aug = Augmenter(tuple(float(s) for s in speeds), float(noise_prob), (float(snr_db[0]), float(snr_db[1])),
                    noise_files_from(noise_manifest) if noise_prob > 0 else (), sample_rate)
    return aug if aug.active else None
