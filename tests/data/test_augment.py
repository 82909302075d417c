"""Training-time augmentation: speed perturbation changes length and pitch by the factor, noise lands at the SNR
asked for, coloured noise has its spectral slope, and everything is a function of the generator's seed."""

from __future__ import annotations

import numpy as np
import pytest

from w2v2cli.data.augment import Augmenter, add_noise, coloured_noise, make_augmenter, speed_perturb
from w2v2cli.data.dataset import AudioDataset
from w2v2cli.data.sampler import BatchSpec

SR = 16000


def _sine(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wav: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spec) * SR / len(wav))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_scales_length_and_pitch(factor):
    wav = _sine(440.0)
    out = speed_perturb(wav, factor, SR)
    assert abs(len(out) - len(wav) / factor) <= 1
    assert _peak_hz(out) == pytest.approx(440.0 * factor, abs=2.0)  # faster playback raises the pitch


def test_speed_one_is_identity():
    wav = _sine(300.0)
    assert speed_perturb(wav, 1.0, SR) is wav


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_add_noise_hits_the_snr(snr):
    rng = np.random.default_rng(0)
    speech = _sine(200.0, 2.0)
    noise = rng.standard_normal(len(speech)).astype(np.float32) * 3.0
    mixed = add_noise(speech, noise, snr)
    added = mixed.astype(np.float64) - speech
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added ** 2))
    assert measured == pytest.approx(snr, abs=0.01)


def test_add_noise_rejects_length_mismatch():
    with pytest.raises(ValueError, match="noise has 3 samples, the speech 4"):
        add_noise(np.ones(4, np.float32), np.ones(3, np.float32), 10.0)


@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", 1.0), ("brown", 2.0)])
def test_coloured_noise_slope_and_power(colour, slope):
    rng = np.random.default_rng(3)
    x = coloured_noise(2 ** 16, colour, rng)
    assert np.mean(x.astype(np.float64) ** 2) == pytest.approx(1.0, rel=0.02)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(len(power))
    lo, hi = (f >= 100) & (f < 200), (f >= 1600) & (f < 3200)  # four octaves apart
    fitted = np.log2(power[lo].mean() / power[hi].mean()) / 4.0
    assert fitted == pytest.approx(slope, abs=0.15)


def test_augmenter_is_a_function_of_the_generator():
    aug = Augmenter(speeds=(0.9, 1.0, 1.1), noise_prob=1.0, snr_db=(5.0, 10.0))
    wav = _sine(250.0, 1.5)
    a = aug(wav, np.random.default_rng([1, 2, 3]))
    b = aug(wav, np.random.default_rng([1, 2, 3]))
    c = aug(wav, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a, b)
    assert not (len(a) == len(c) and np.array_equal(a, c))
    lengths = {len(aug(wav, np.random.default_rng([s]))) for s in range(40)}
    assert len(lengths) == 3 and all(abs(n - len(wav) / f) <= 1 for n, f in zip(sorted(lengths), (1.1, 1.0, 0.9)))


def test_make_augmenter_off_by_default():
    assert make_augmenter([], 0.0, [5, 20], "", SR) is None
    assert make_augmenter([1.0], 0.0, [5, 20], "", SR) is None
    aug = make_augmenter([0.9, 1.0, 1.1], 0.5, [5, 20], "", SR)
    assert aug is not None and aug.speeds == (0.9, 1.0, 1.1) and aug.snr_db == (5.0, 20.0)


def test_noise_recordings_are_used(tmp_path):
    import soundfile as sf

    hum = _sine(60.0, 0.3)
    sf.write(tmp_path / "hum.wav", hum, SR)
    (tmp_path / "noise.tsv").write_text(f"{tmp_path}\nhum.wav\t{len(hum)}\n")
    aug = make_augmenter([], 1.0, [10, 10], str(tmp_path / "noise.tsv"), SR)
    speech = _sine(1000.0, 1.0)
    out = aug(speech, np.random.default_rng(0))
    assert _peak_hz(out - speech) == pytest.approx(60.0, abs=2.0)  # the (looped) hum was added


def test_dataset_augments_only_when_asked(tmp_path):
    import soundfile as sf

    wav = _sine(300.0, 1.0)
    sf.write(tmp_path / "a.wav", wav, SR)
    spec = BatchSpec(indices=(0,), epoch=1, position=0, crop_to=0)
    plain = AudioDataset([tmp_path / "a.wav"], [len(wav)], max_sample_size=10 ** 6)
    aug = Augmenter(speeds=(0.9,))
    noisy = AudioDataset([tmp_path / "a.wav"], [len(wav)], max_sample_size=10 ** 6, augment=aug)
    assert plain.load(spec).waveforms.shape[1] == len(wav)
    out = noisy.load(spec)
    assert abs(out.waveforms.shape[1] - len(wav) / 0.9) <= 1
    assert np.array_equal(out.waveforms.numpy(), noisy.load(spec).waveforms.numpy())  # same batch, same result
