"""`w2v2 transcribe`: real synthesised speech in several formats, rates and channel counts, a 3-minute file,
a corrupt file among good ones; every output format parsed back.

The model is a tiny random CTC model (its transcripts are garbage but deterministic) whose attention output
is zeroed, so every frame depends only on nearby audio: decoding a long file in windows must then give
exactly the unchunked transcript, which checks the windowing end to end.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.decode.transcribe import (
    TranscribeConfig, collect_audio, format_transcripts, subtitles, transcribe_files, write_transcripts,
)
from w2v2cli.errors import ConfigError

LETTERS = list("ETAOINSHRDLUCMFWYPVBGKQJXZ'")
SENTENCES = ["the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore",
             "a journey of a thousand miles begins with one step", "every cloud has a silver lining"]


def _espeak(text: str, path, rate: int) -> np.ndarray:
    """espeak-ng speech resampled to `rate` with sox; returns it as float32 mono."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(raw), "--", text], check=True)
    subprocess.run(["sox", "-D", "-V1", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(path), "vol", "0.8"],
                   check=True)
    raw.unlink()
    return sf.read(str(path), dtype="float32")[0]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """flac 16k, wav 8k, ogg 22.05k, mp3 44.1k (in a subfolder), a 48 kHz stereo wav with its mono twin,
    a corrupt flac, a text file (ignored) and a hidden file (ignored)."""
    root = tmp_path_factory.mktemp("audio")
    (root / "sub").mkdir()
    _espeak(SENTENCES[0], root / "a16k.flac", 16000)
    _espeak(SENTENCES[1], root / "b8k.wav", 8000)
    ogg = _espeak(SENTENCES[2], root / "tmp.wav", 22050)
    sf.write(str(root / "c22k.ogg"), ogg, 22050, format="OGG", subtype="VORBIS")
    (root / "tmp.wav").unlink()
    wav44 = _espeak(SENTENCES[3], root / "sub" / "d44k.wav", 44100)
    subprocess.run(["lame", "--quiet", "-m", "m", "-b", "64", str(root / "sub" / "d44k.wav"),
                    str(root / "sub" / "d44k.mp3")], check=True)
    (root / "sub" / "d44k.wav").unlink()
    assert len(wav44) > 0
    mono = _espeak(SENTENCES[0] + " " + SENTENCES[3], root / "e48k_mono.wav", 48000)
    sf.write(str(root / "e48k_stereo.wav"), np.stack([mono, mono], axis=1), 48000, subtype="PCM_16")
    (root / "broken.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden.wav").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """A 3-minute 16 kHz recording: the four sentences with pauses, repeated."""
    root = tmp_path_factory.mktemp("long")
    pieces = []
    for k, text in enumerate(SENTENCES):
        pieces += [_espeak(text, root / f"s{k}.flac", 16000), np.zeros(4000 + 1000 * k, np.float32)]
        (root / f"s{k}.flac").unlink()
    block = np.concatenate(pieces)
    wave = np.tile(block, int(np.ceil(180 * 16000 / len(block))))[: 180 * 16000]
    sf.write(str(root / "talk.flac"), wave, 16000, subtype="PCM_16")
    return root / "talk.flac"


@pytest.fixture(scope="module")
def local_ctc(tmp_path_factory):
    """A tiny random CTC model (layer-norm conv, attention output zeroed: frames depend on nearby audio only)."""
    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.model import build_model, model_preset
    from w2v2cli.vocab import Vocabulary

    vocab = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|"] + LETTERS, blank=0, word_sep="|", unk="<unk>")
    cfg = model_preset("tiny", conv_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
                       extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True, encoder_layers=2,
                       encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4, conv_pos=16,
                       conv_pos_groups=4, final_dim=32, latent_vars=8, vocab_size=len(vocab))
    torch.manual_seed(3)
    model = build_model(cfg, "ctc").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "attention.out_proj" in name:
                p.zero_()
        # the word separator and the blank take over the rows of two letters the random model often picks,
        # so transcripts have blanks and word breaks (words of a few letters) instead of one long word
        head = model.lm_head
        for dst, src in ((vocab.index["|"], 17), (vocab.blank, 28)):
            head.weight[dst] = head.weight[src]
            head.bias[dst] = head.bias[src] + 0.01
    path = tmp_path_factory.mktemp("ckpt") / "local-ctc"
    save_checkpoint(path, model, cfg, "ctc", vocab=vocab)
    return path


@pytest.fixture(scope="module")
def result(local_ctc, audio_dir):
    return transcribe_files(local_ctc, [audio_dir], TranscribeConfig(progress=False))


def _invoke(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


# ---------------------------------------------------------------------------------------------- inputs, robustness
def test_directory_of_formats_and_rates(result, audio_dir):
    names = [p.split("/")[-1] for p in (it.path for it in result.items)]
    assert names == ["a16k.flac", "b8k.wav", "broken.flac", "c22k.ogg", "e48k_mono.wav", "e48k_stereo.wav",
                     "d44k.mp3"]  # sorted, recursive, by extension; no .txt, no hidden file
    broken = result.items[2]
    assert not broken.ok and "not a readable audio file" in broken.error
    good = result.transcribed
    assert len(good) == 6 and all(it.hypothesis.words for it in good)
    expected = {"a16k.flac": 0, "b8k.wav": 1, "c22k.ogg": 2, "d44k.mp3": 3}
    for it in good:
        name = it.path.split("/")[-1]
        if name in expected:  # durations of the resampled audio match the source files
            assert it.duration == pytest.approx(sf.info(it.path).duration, abs=0.05)
    by_name = {it.path.split("/")[-1]: it for it in good}
    # a stereo file with two equal channels is its mono twin after the downmix
    assert by_name["e48k_stereo.wav"].hypothesis.text == by_name["e48k_mono.wav"].hypothesis.text
    assert by_name["e48k_stereo.wav"].hypothesis.word_times == by_name["e48k_mono.wav"].hypothesis.word_times


def test_cli_text_output_skips_corrupt_file(local_ctc, audio_dir, result):
    res = _invoke("transcribe", local_ctc, audio_dir, "--no-progress")
    assert res.exit_code == 1  # some files were skipped; the others are still written
    lines = res.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [it.path for it in result.transcribed]
    assert [line.split("\t")[1] for line in lines] == [it.hypothesis.text for it in result.transcribed]
    assert "skipped" in res.stderr and "broken.flac" in res.stderr and "files skipped" in res.stderr


def test_stdin_list_and_missing_path(local_ctc, audio_dir, tmp_path):
    listing = f"{audio_dir / 'a16k.flac'}\n\n{audio_dir / 'sub'}\n{tmp_path / 'gone.wav'}\n"
    res = _invoke("transcribe", local_ctc, "-", "--no-progress", "--format", "jsonl", input=listing)
    assert res.exit_code == 1
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["path"].split("/")[-1] for r in records] == ["a16k.flac", "d44k.mp3", "gone.wav"]
    assert records[2] == {"path": str(tmp_path / "gone.wav"), "error": "no such file or directory"}
    assert collect_audio([audio_dir / "a16k.flac", audio_dir / "a16k.flac"])[0].path.endswith("a16k.flac")


def test_nothing_to_transcribe_and_bad_options(local_ctc, tmp_path):
    (tmp_path / "empty").mkdir()
    res = _invoke("transcribe", local_ctc, tmp_path / "empty")
    assert res.exit_code == 1 and "no audio files found" in str(res.exception)
    res = _invoke("transcribe", local_ctc, tmp_path / "empty", "--format", "docx")
    assert isinstance(res.exception, ConfigError) and "--format must be one of" in str(res.exception)


# ---------------------------------------------------------------------------------------------- output formats
def _check_times(times, duration):
    for (a, b), (c, _) in zip(times, times[1:] + [(duration, duration)]):
        assert 0 <= a < b <= c + 1e-9 and b <= duration + 1e-3, (a, b, c, duration)


def _parse_clock(text: str) -> float:
    h, m, s = re.fullmatch(r"(\d\d):(\d\d):(\d\d[.,]\d\d\d)", text).groups()
    return int(h) * 3600 + int(m) * 60 + float(s.replace(",", "."))


def test_jsonl_parses_back(result):
    records = [json.loads(line) for line in format_transcripts(result, "jsonl").splitlines()]
    assert len(records) == len(result.items)
    for record, it in zip(records, result.items):
        assert record["path"] == it.path
        if not it.ok:
            assert record["error"] == it.error
            continue
        assert record["text"] == " ".join(w["word"] for w in record["words"]) == it.hypothesis.text
        assert record["duration"] == pytest.approx(it.duration, abs=1e-3)
        _check_times([(w["start"], w["end"]) for w in record["words"]], it.duration)
        assert all(0.0 <= w["confidence"] <= 1.0 for w in record["words"])


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_parse_back(result, fmt, tmp_path):
    written = write_transcripts(result, fmt, tmp_path / "subs")
    assert len(written) == len(result.transcribed)
    for path, it in zip(written, result.transcribed):
        text = path.read_text()
        if fmt == "vtt":
            assert text.startswith("WEBVTT\n\n")
            text = text[len("WEBVTT\n\n"):]
        blocks = [b.splitlines() for b in text.strip().split("\n\n")]
        times, words = [], []
        for k, block in enumerate(blocks, 1):
            if fmt == "srt":
                assert block[0] == str(k)
                block = block[1:]
            start, end = (_parse_clock(t) for t in block[0].split(" --> "))
            times.append((start, end))
            words += " ".join(block[1:]).split()
        assert words == it.hypothesis.words
        _check_times(times, it.duration)
        assert subtitles(it, fmt) == path.read_text()


def test_ctm_parses_back(result):
    rows = [line.split() for line in format_transcripts(result, "ctm").splitlines()]
    durations = {}
    for it in result.transcribed:
        durations[it.path.split("/")[-1].rsplit(".", 1)[0]] = it.duration
    assert len(rows) == sum(len(it.hypothesis.words) for it in result.transcribed)
    for utt, channel, start, dur, word, conf in rows:
        assert channel == "1" and float(dur) > 0 and 0 <= float(conf) <= 1 and word
        assert 0 <= float(start) and float(start) + float(dur) <= durations[utt] + 0.011


def test_srt_on_stdout_needs_one_file(local_ctc, audio_dir):
    res = _invoke("transcribe", local_ctc, audio_dir / "a16k.flac", "--format", "srt", "--no-progress")
    assert res.exit_code == 0 and res.stdout.startswith("1\n00:00:")
    res = _invoke("transcribe", local_ctc, audio_dir / "sub", audio_dir / "a16k.flac", "--format", "vtt",
                  "--no-progress")
    assert isinstance(res.exception, ConfigError) and "files need an output directory" in str(res.exception)


# ---------------------------------------------------------------------------------------------- long audio, models
def test_long_file_chunked_equals_unchunked(local_ctc, long_file):
    whole = transcribe_files(local_ctc, [long_file], TranscribeConfig(progress=False, chunk_seconds=400))
    chunked = transcribe_files(local_ctc, [long_file], TranscribeConfig(progress=False, chunk_seconds=20,
                                                                        chunk_overlap_seconds=1.0))
    a, b = whole.items[0], chunked.items[0]
    assert a.duration == b.duration == 180.0
    assert len(a.hypothesis.words) > 50
    assert b.hypothesis.text == a.hypothesis.text
    assert b.hypothesis.word_times == a.hypothesis.word_times
    assert np.allclose(b.hypothesis.word_conf, a.hypothesis.word_conf, atol=1e-4)
    assert a.hypothesis.word_times[-1][1] <= 180.0


def test_transformers_directory_and_beam_search(local_ctc, audio_dir, tmp_path, result):
    res = _invoke("export", "hf", local_ctc, tmp_path / "hf")
    assert res.exit_code == 0, res.output
    res = _invoke("transcribe", tmp_path / "hf", audio_dir / "a16k.flac", "--no-progress")
    assert res.exit_code == 0, res.output
    assert res.stdout.split("\t")[1].strip() == result.items[0].hypothesis.text

    words = ["FOX", "DOG", "SEA", "ONE", "STEP", "CLOUD"]
    (tmp_path / "lexicon.txt").write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in words))
    res = _invoke("transcribe", local_ctc, audio_dir / "a16k.flac", "--decoder", "beam", "--lexicon",
                  tmp_path / "lexicon.txt", "--beam", "20", "--format", "jsonl", "--no-progress")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["words"] and all(w["word"] in words for w in record["words"])
    with pytest.raises(ConfigError, match="--lexicon/--lm are used by the beam decoder"):
        transcribe_files(local_ctc, [audio_dir / "a16k.flac"], TranscribeConfig(lexicon="x", progress=False))
