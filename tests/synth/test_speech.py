"""w2v2cli.synth.speech: audio format and length, voice parameters, missing tools and voices."""

from __future__ import annotations

import pytest
import soundfile as sf

from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.synth import speech
from w2v2cli.synth.speech import check_tools, synthesize
from w2v2cli.synth.voices import FESTIVAL_VOICES, Voice


def test_mp3_length_is_exact(tmp_path):
    voice = Voice("espeak", "de+f2", 160, 50, "F")
    synthesize("Der alte Mann trug eine Kiste.", voice, tmp_path / "a.flac", "de", 48000, "flac")
    synthesize("Der alte Mann trug eine Kiste.", voice, tmp_path / "a.mp3", "de", 48000, "mp3")
    flac, mp3 = sf.info(tmp_path / "a.flac"), sf.info(tmp_path / "a.mp3")
    assert flac.frames == mp3.frames > 48000 and mp3.samplerate == 48000


def test_flite_voice_parameters_change_audio(tmp_path):
    slow = Voice("flite", "slt", 1.2, 200.0, "F")
    fast = Voice("flite", "slt", 0.85, 200.0, "F")
    for name, v in (("slow", slow), ("fast", fast)):
        synthesize("the quick brown fox jumps over the lazy dog", v, tmp_path / f"{name}.flac", "en")
    ratio = sf.info(tmp_path / "slow.flac").frames / sf.info(tmp_path / "fast.flac").frames
    assert 1.2 < ratio < 1.6


@pytest.mark.parametrize("name", sorted(FESTIVAL_VOICES))
def test_festival_voice_parameters_change_audio(tmp_path, name):
    text = "the quick brown fox jumps over the lazy dog"
    low = 0.0 if FESTIVAL_VOICES[name][2] == "hts" else 95.0
    for tag, speed, f0 in (("slow", 1.2, low), ("fast", 0.85, low), ("high", 0.85, 0.0 if not low else 130.0)):
        synthesize(text, Voice("festival", name, speed, f0, FESTIVAL_VOICES[name][1]), tmp_path / f"{tag}.flac", "en")
    audio = {tag: sf.read(tmp_path / f"{tag}.flac", dtype="int16")[0] for tag in ("slow", "fast", "high")}
    info = sf.info(tmp_path / "slow.flac")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 1.2 < len(audio["slow"]) / len(audio["fast"]) < 1.6  # duration stretch (HTS: the engine's speed rate)
    if low:  # diphone voices follow the target F0: same words, other samples
        assert audio["high"].tobytes() != audio["fast"].tobytes()


def test_missing_festival_voice_is_a_clear_error(monkeypatch, tmp_path):
    check_tools("festival")  # the three voices CI installs
    monkeypatch.setitem(FESTIVAL_VOICES, "xyz", ("voice_xyz_diphone", "M", "diphone"))
    with pytest.raises(ToolMissingError, match=r"festival voice 'xyz' \(voice_xyz_diphone\) is not installed"):
        check_tools("festival")
    with pytest.raises(DataError, match=r"synthesising .*a.flac: 'festival' failed \(255; no audio for 1 of 1 "
                                        r"sentences\): SIOD ERROR: unbound variable : voice_xyz_diphone;"):
        synthesize("hello there", Voice("festival", "xyz", 1.0, 100.0, "M"), tmp_path / "a.flac", "en")
    assert not (tmp_path / "a.flac").exists()
    monkeypatch.setitem(speech._TOOLS, "festival", "text2wave-not-here")
    with pytest.raises(ToolMissingError, match="'text2wave-not-here' is not installed"):
        check_tools("festival")
