"""w2v2cli.synth.librispeech: layout, transcripts, held-out sentences, open-vocabulary and festival extras."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest
import soundfile as sf

from w2v2cli.errors import DataError
from w2v2cli.synth.librispeech import make_librispeech
from w2v2cli.synth.sentences import sentence_pool
from w2v2cli.synth.voices import FESTIVAL_VOICES


def _trans(corpus_root):
    out = {}
    for f in corpus_root.glob("*/*/*/*.trans.txt"):
        for line in f.read_text().splitlines():
            utt, text = line.split(" ", 1)
            out[utt] = (f, text)
    return out


def test_librispeech_layout_and_transcripts(libri_corpus):
    root = libri_corpus.root
    assert {u.subset for u in libri_corpus.utterances} == {"train-clean-100", "dev-clean", "test-clean"}
    assert Counter(u.subset for u in libri_corpus.utterances) == {"train-clean-100": 24, "dev-clean": 8, "test-clean": 8}
    trans = _trans(root)
    assert len(trans) == 40 == len(list(root.glob("*/*/*/*.flac")))
    for u in libri_corpus.utterances:
        rel = u.path.relative_to(root).parts
        spk, chap = rel[1], rel[2]
        assert rel[0] == u.subset and re.fullmatch(r"\d+", spk) and re.fullmatch(r"\d+", chap)
        assert rel[3] == f"{spk}-{chap}-{u.utt_id.split('-')[2]}.flac" and re.fullmatch(r"\d{4}", u.utt_id[-4:])
        tfile, text = trans[u.utt_id]
        assert tfile.name == f"{spk}-{chap}.trans.txt" and tfile.parent == u.path.parent
        assert text == u.text and re.fullmatch(r"[A-Z' ]+", text)
        info = sf.info(u.path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 1)
        assert info.frames == u.num_samples and 1.0 <= info.frames / 16000 <= 5.5
    assert (root / "SPEAKERS.TXT").is_file()
    speakers = {s: {u.speaker for u in libri_corpus.subset(s)} for s in ("train-clean-100", "dev-clean", "test-clean")}
    assert len(speakers["train-clean-100"]) == 3 and len(speakers["dev-clean"]) == 2
    assert not speakers["train-clean-100"] & speakers["test-clean"] and not speakers["dev-clean"] & speakers["test-clean"]
    engines = {u.voice.split(":")[0] for u in libri_corpus.utterances}
    assert engines == {"espeak", "flite"}


def test_test_sentences_never_in_train(libri_corpus):
    texts = {s: {u.text for u in libri_corpus.subset(s)} for s in ("train-clean-100", "dev-clean", "test-clean")}
    assert len(texts["train-clean-100"]) == 24  # no repeats
    assert not texts["test-clean"] & texts["train-clean-100"] and not texts["dev-clean"] & texts["train-clean-100"]
    assert all(sentence_pool(t) == "test" for t in texts["test-clean"])
    assert all(sentence_pool(t) == "train" for t in texts["train-clean-100"])


def test_open_vocab_hours_add_training_audio_only(tmp_path):
    sizes = {"train-clean-100": (2, 2), "test-clean": (1, 2)}
    plain = make_librispeech(tmp_path / "plain", subsets=sizes, seed=3, jobs=2)
    more = make_librispeech(tmp_path / "more", subsets=sizes, seed=3, jobs=2, open_vocab_hours=0.02)

    def digest(corpus, subset):
        return {u.path.relative_to(corpus.root).as_posix(): (u.text, hashlib.sha1(
            sf.read(u.path, dtype="int16")[0].tobytes()).hexdigest()) for u in corpus.subset(subset)}

    assert digest(more, "test-clean") == digest(plain, "test-clean")  # held-out sets unchanged, bit for bit
    old, new = digest(plain, "train-clean-100"), digest(more, "train-clean-100")
    assert {k: new[k] for k in old} == old  # the grammar's training audio too
    extra = [u for u in more.subset("train-clean-100") if u.path.relative_to(more.root).as_posix() not in old]
    assert extra and {u.speaker for u in extra} == {u.speaker for u in plain.subset("train-clean-100")}
    assert all(sentence_pool(u.text) == "train" for u in extra)
    seconds = sum(u.num_samples for u in extra) / 16000
    assert 0.6 * 72 < seconds < 1.5 * 72, seconds  # about the 0.02 h asked for
    chapters = {u.path.parent for u in extra}
    assert len(chapters) == 2 and not chapters & {u.path.parent for u in plain.utterances}
    trans = _trans(more.root)
    assert all(trans[u.utt_id] == (u.path.parent / f"{u.speaker}-{u.path.parent.name}.trans.txt", u.text)
               for u in extra)
    again = make_librispeech(tmp_path / "more", subsets=sizes, seed=3, open_vocab_hours=0.02)  # reused
    assert len(again.utterances) == len(more.utterances)
    with pytest.raises(DataError, match="other settings"):
        make_librispeech(tmp_path / "plain", subsets=sizes, seed=3, open_vocab_hours=0.02)


def test_festival_hours_add_training_speakers_only(tmp_path):
    sizes = {"train-clean-100": (2, 2), "test-clean": (1, 2)}
    plain = make_librispeech(tmp_path / "plain", subsets=sizes, seed=3, jobs=2, lm_sentences=50)
    more = make_librispeech(tmp_path / "more", subsets=sizes, seed=3, jobs=2, lm_sentences=50, festival_hours=0.03)

    def digest(corpus, subset):
        return {u.path.relative_to(corpus.root).as_posix(): (u.text, hashlib.sha1(
            sf.read(u.path, dtype="int16")[0].tobytes()).hexdigest()) for u in corpus.subset(subset)}

    assert digest(more, "test-clean") == digest(plain, "test-clean")  # held-out sets unchanged, bit for bit
    old, new = digest(plain, "train-clean-100"), digest(more, "train-clean-100")
    assert {k: new[k] for k in old} == old  # the other speakers' audio too
    assert (more.root / "librispeech-lm-norm.txt").read_bytes() == (plain.root / "librispeech-lm-norm.txt").read_bytes()
    extra = [u for u in more.subset("train-clean-100") if u.path.relative_to(more.root).as_posix() not in old]
    by_speaker = {u.speaker: u.voice for u in extra}
    assert len(by_speaker) == 3 and sorted(by_speaker.values()) == [f"festival:{v}" for v in sorted(FESTIVAL_VOICES)]
    assert not set(by_speaker) & {u.speaker for u in more.utterances if u not in extra}  # new speaker ids
    assert all(sentence_pool(u.text) == "train" for u in extra)
    assert not {u.text for u in extra} & {u.text for u in more.utterances if u not in extra}  # sentences unique
    seconds = sum(u.num_samples for u in extra) / 16000
    assert 0.7 * 108 < seconds < 1.4 * 108, seconds  # about the 0.03 h asked for
    speakers_txt = (more.root / "SPEAKERS.TXT").read_text()
    for spk, voice in by_speaker.items():
        name = voice.split(":")[1]
        assert re.search(rf"^{spk}\s*\| [MF] \| train-clean-100 .*\| festival {name}$", speakers_txt, re.M)
    trans = _trans(more.root)
    assert all(trans[u.utt_id][1] == u.text for u in extra)
    with pytest.raises(DataError, match="other settings"):
        make_librispeech(tmp_path / "plain", subsets=sizes, seed=3, lm_sentences=50, festival_hours=0.03)
