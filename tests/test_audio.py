"""w2v2cli.audio: formats, channel mixing, PCM scaling, resampling, normalisation, errors."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from w2v2cli.audio import AudioInfo, audio_info, load_audio, normalize_waveform, resample, save_flac
from w2v2cli.errors import AudioError, W2V2Error


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wav: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spec) * sr / len(wav))


@pytest.mark.parametrize(
    "fmt,subtype,ext,tol",
    [("WAV", "PCM_16", "wav", 1 / 32768), ("WAV", "PCM_24", "wav", 1e-6), ("WAV", "PCM_32", "wav", 1e-8),
     ("WAV", "FLOAT", "wav", 0.0), ("FLAC", "PCM_16", "flac", 1 / 32768), ("FLAC", "PCM_24", "flac", 1e-6)],
)
def test_lossless_formats_round_trip(tmp_path, fmt, subtype, ext, tol):
    wav = _sine(440, 16000, 0.5)
    path = tmp_path / f"x.{ext}"
    sf.write(path, wav, 16000, format=fmt, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.shape == wav.shape
    assert np.max(np.abs(out - wav)) <= tol + 1e-7
    assert audio_info(path) == AudioInfo(frames=8000, samplerate=16000, channels=1)


def test_int16_pcm_scaled_to_unit_range(tmp_path):
    ints = np.array([0, 16384, -32768, 32767] * 200, dtype=np.int16)
    path = tmp_path / "i.wav"
    sf.write(path, ints, 16000, subtype="PCM_16")
    out = load_audio(path)
    np.testing.assert_allclose(out[:4], [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-7)


def test_multichannel_averaged_to_mono(tmp_path):
    left, right = _sine(300, 16000, 0.25), _sine(700, 16000, 0.25, amp=0.25)
    path = tmp_path / "st.flac"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    assert audio_info(path).channels == 2
    out = load_audio(path)
    np.testing.assert_allclose(out, (left + right) / 2, atol=2e-6)


def test_ogg_and_mp3_decode(tmp_path):
    wav = _sine(500, 16000, 1.0)
    ogg = tmp_path / "x.ogg"
    sf.write(ogg, wav, 16000, format="OGG", subtype="VORBIS")
    out = load_audio(ogg)
    assert abs(len(out) - len(wav)) <= 0 and abs(_peak_hz(out, 16000) - 500) < 3
    # MP3 written by lame from a 48 kHz wav: the LAME tag makes the decoded length exact
    src48 = tmp_path / "x48.wav"
    sf.write(src48, _sine(500, 48000, 1.0), 48000, subtype="PCM_16")
    mp3 = tmp_path / "x.mp3"
    subprocess.run(["lame", "--quiet", str(src48), str(mp3)], check=True)
    assert audio_info(mp3) == AudioInfo(frames=48000, samplerate=48000, channels=1)
    out = load_audio(mp3)  # resampled to 16 kHz
    assert len(out) == 16000
    assert abs(_peak_hz(out, 16000) - 500) < 3
    assert 0.3 < np.sqrt(2 * np.mean(out[2000:-2000] ** 2)) < 0.7  # amplitude 0.5 survives


def test_resample_keeps_frequency_and_length(tmp_path):
    path = tmp_path / "a44.wav"
    sf.write(path, _sine(1000, 44100, 1.0), 44100, subtype="FLOAT")
    out = load_audio(path, target_sr=16000)
    assert len(out) == 16000
    assert abs(_peak_hz(out, 16000) - 1000) < 2
    # same filter as torchaudio, called directly
    direct = resample(sf.read(path, dtype="float32")[0], 44100, 16000)
    np.testing.assert_array_equal(out, direct)
    # a tone above the new Nyquist is removed, not aliased
    hi = tmp_path / "hi.wav"
    sf.write(hi, _sine(12000, 48000, 0.5), 48000, subtype="FLOAT")
    assert np.sqrt(np.mean(load_audio(hi) ** 2)) < 0.01


def test_normalize_zero_mean_unit_variance(tmp_path):
    path = tmp_path / "n.wav"
    raw = 0.1 + _sine(200, 16000, 0.5, amp=0.5)
    sf.write(path, raw, 16000, subtype="FLOAT")
    out = load_audio(path, normalize=True)
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1.0) < 1e-3
    # the same as fairseq's F.layer_norm over the whole utterance (eps 1e-5)
    import torch

    ref = torch.nn.functional.layer_norm(torch.from_numpy(raw), raw.shape).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(normalize_waveform(np.array([1.0, 3.0], np.float32)), [-1.0, 1.0], atol=1e-4)


def test_start_and_frames_select_region(tmp_path):
    ramp = (np.arange(4000, dtype=np.float32) / 4000) - 0.5
    path = tmp_path / "r.wav"
    sf.write(path, ramp, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, start=1000, frames=500), ramp[1000:1500])
    np.testing.assert_array_equal(load_audio(path, start=3900), ramp[3900:])


def test_save_flac_round_trip(tmp_path):
    wav = _sine(300, 16000, 0.3)
    path = tmp_path / "sub" / "o.flac"
    save_flac(path, wav, 16000)
    assert sf.info(path).format == "FLAC" and sf.info(path).subtype == "PCM_16"
    assert np.max(np.abs(load_audio(path) - wav)) <= 1 / 32768 + 1e-7
    assert [p.name for p in path.parent.iterdir()] == ["o.flac"]


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.flac"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.flac"
    text.write_text("this is not audio\n" * 20)
    truncated = tmp_path / "trunc.wav"
    sf.write(truncated, _sine(100, 16000, 0.2), 16000)
    truncated.write_bytes(truncated.read_bytes()[:30])
    for path, words in [(missing, "no such file"), (empty, "empty file"), (text, "not a readable audio"),
                        (truncated, "")]:
        for fn in (audio_info, load_audio):
            with pytest.raises(AudioError) as info:
                fn(path)
            assert str(path) in str(info.value) and words in str(info.value)
            assert isinstance(info.value, W2V2Error)
