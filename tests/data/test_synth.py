"""Synthetic corpora: layout, transcripts, audio format, determinism, held-out sentences, text rules."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from collections import Counter

import pytest
import soundfile as sf

from w2v2cli.data.sentences import (_BLOCKED, LANGUAGES, OpenVocabulary, SentenceGenerator, _digest,
                                     held_out_word, sentence_pool)
from w2v2cli.data import synth as synth_mod
from w2v2cli.data.synth import CV_COLUMNS, FESTIVAL_VOICES, Voice, check_tools, make_librispeech, make_mls, synthesize
from w2v2cli.data.text import UnknownCharacterError, format_dict, letter_counts, normalize_text, to_letters
from w2v2cli.errors import DataError, ToolMissingError


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


def test_deterministic_reuse_and_force(tmp_path):
    sizes = {"train-clean-100": (1, 2), "test-clean": (1, 1)}
    a = make_librispeech(tmp_path / "a", subsets=sizes, seed=7, jobs=2)
    b = make_librispeech(tmp_path / "b", subsets=sizes, seed=7, jobs=1)
    c = make_librispeech(tmp_path / "c", subsets=sizes, seed=8, jobs=2)

    def digest(corpus):
        return [(u.path.relative_to(corpus.root).as_posix(), u.text,
                 hashlib.sha1(sf.read(u.path, dtype="int16")[0].tobytes()).hexdigest()) for u in corpus.utterances]

    assert digest(a) == digest(b)
    assert [t for _, t, _ in digest(a)] != [t for _, t, _ in digest(c)]
    # complete corpus with the same settings: reused, nothing rewritten
    mtime = a.utterances[0].path.stat().st_mtime_ns
    again = make_librispeech(tmp_path / "a", subsets=sizes, seed=7)
    assert digest(again) == digest(a) and again.utterances[0].path.stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="other settings"):
        make_librispeech(tmp_path / "a", subsets=sizes, seed=9)
    rebuilt = make_librispeech(tmp_path / "a", subsets=sizes, seed=8, force=True)
    assert [t for _, t, _ in digest(rebuilt)] == [t for _, t, _ in digest(c)]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="refusing to overwrite"):
        make_librispeech(tmp_path / "mine", subsets=sizes, seed=1)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "mine"]  # no temp dirs left


def test_commonvoice_layout(cv_corpus):
    for lang in ("en", "de", "fr"):
        base = cv_corpus.root / lang
        rows_by_split = {}
        for split in ("train", "dev", "test", "validated", "invalidated", "other"):
            with open(base / f"{split}.tsv", newline="") as f:
                rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            assert tuple(rows[0]) == CV_COLUMNS
            rows_by_split[split] = [dict(zip(rows[0], r)) for r in rows[1:]]
        assert len(rows_by_split["train"]) == 6 and len(rows_by_split["dev"]) == 4 and len(rows_by_split["test"]) == 4
        assert len(rows_by_split["validated"]) == 14 and rows_by_split["other"] == []
        train_s = {r["sentence"] for r in rows_by_split["train"]}
        assert not train_s & {r["sentence"] for r in rows_by_split["test"]}
        assert not {r["client_id"] for r in rows_by_split["train"]} & {r["client_id"] for r in rows_by_split["test"]}
        durations = dict(l.split("\t") for l in (base / "clip_durations.tsv").read_text().splitlines()[1:])
        for r in rows_by_split["validated"]:
            assert r["locale"] == lang and len(r["client_id"]) == 128
            assert r["sentence_id"] == hashlib.sha256(r["sentence"].encode()).hexdigest()
            assert r["sentence"][0].isupper() and r["sentence"][-1] in ".?"
            info = sf.info(base / "clips" / r["path"])
            assert (info.format, info.samplerate, info.channels) == ("MP3", 48000, 1)
            assert int(durations[r["path"]]) == round(1000 * info.frames / 48000)


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
    monkeypatch.setitem(synth_mod._TOOLS, "festival", "text2wave-not-here")
    with pytest.raises(ToolMissingError, match="'text2wave-not-here' is not installed"):
        check_tools("festival")


def test_mls_layout(tmp_path):
    corpus = make_mls(tmp_path / "mls", langs=("es",), n_speakers=1, utts_per_speaker=2, seed=3)
    base = tmp_path / "mls" / "mls_spanish"
    assert (base / "metainfo.txt").is_file()
    for split, n in (("train", 2), ("dev", 2), ("test", 2)):
        lines = (base / split / "transcripts.txt").read_text().splitlines()
        assert len(lines) == n * len({u.speaker for u in corpus.subset(split)})
        for line in lines:
            utt, text = line.split("\t")
            spk, book, idx = utt.split("_")
            assert len(idx) == 6 and (base / split / "audio" / spk / book / f"{utt}.flac").is_file()
            assert text == text.lower() and normalize_text(text, "es") == text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sentence_generator_variety_and_pools(lang):
    gen = SentenceGenerator(lang, seed=5)
    sents = list(itertools.islice(gen.unique(None, 4, 16), 3000))
    assert len({normalize_text(s, lang) for s in sents}) == 3000  # thousands of distinct sentences
    pools = Counter(sentence_pool(s) for s in sents)
    assert 0.03 < pools["test"] / 3000 < 0.07 and 0.03 < pools["dev"] / 3000 < 0.07
    test_only = list(itertools.islice(SentenceGenerator(lang, seed=6).unique("test"), 50))
    assert all(sentence_pool(s) == "test" for s in test_only)
    assert SentenceGenerator(lang, 5).sentence() == SentenceGenerator(lang, 5).sentence()


def test_open_vocabulary_sentences():
    ov = OpenVocabulary(seed=5)
    assert len(ov.words) == 30_000 and len(set(ov.words)) == 30_000
    assert all(w.isalpha() and w.islower() and _digest(w) not in _BLOCKED for w in ov.words)
    sents = list(itertools.islice(ov.unique("train", 5, 14), 2000))
    keys = [normalize_text(s, "en") for s in sents]
    assert len(set(keys)) == 2000 and all(s[0].isupper() and s.endswith(".") for s in sents)
    lengths = Counter(len(k.split()) for k in keys)
    assert min(lengths) == 5 and max(lengths) == 14 and len(lengths) == 10
    assert all(sentence_pool(s) == "train" for s in sents)
    words = Counter(w for k in keys for w in k.lower().split())
    assert not any(held_out_word(w) for w in words)  # the test set's OOV words stay out of training text
    assert len(words) > 8000  # the grammar has ~2,400 words in all
    assert set(words) <= set(ov.words)
    # frequency ** 0.6: function words lead, as in real text, but "the" is ~0.5 % of the words, not ~5 %
    top = [w for w, _ in words.most_common(3)]
    assert set(top) <= {"the", "to", "and", "of", "a", "in", "i", "is", "you", "that"}
    assert 0.003 < words["the"] / sum(words.values()) < 0.01
    dev = list(itertools.islice(OpenVocabulary(seed=5).unique("dev"), 20))
    assert all(sentence_pool(s) == "dev" for s in dev)
    assert list(itertools.islice(OpenVocabulary(seed=5).unique("train", 5, 14), 5)) == sents[:5]


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


def test_normalize_text_rules():
    assert normalize_text("Grüß Gott, Herr Müller!", "de") == "grüß gott herr müller"
    assert normalize_text("Don’t stop—it's ‘fine’.", "en") == "DON'T STOP IT'S FINE"
    assert normalize_text("L'homme a vu l’église.", "fr") == "l'homme a vu l'église"
    assert normalize_text("ﬁne ＡＢＣ", "en") == "FINE ABC"  # NFKC
    assert normalize_text("Cafe\u0301 — niño?", "es") == "café niño"  # combining accent composed
    assert normalize_text("well-known 'quoted'", "en") == "WELL KNOWN QUOTED"
    assert normalize_text("O'Brien", "de") == "obrien"  # German keeps no apostrophe
    with pytest.raises(UnknownCharacterError, match="'1'"):
        normalize_text("in 1984", "en")
    with pytest.raises(UnknownCharacterError, match="CYRILLIC"):
        normalize_text("hello мир", "en")
    assert normalize_text("Ελληνικά κείμενα", "el") == "ελληνικά κείμενα"  # unlisted language: any letter


def test_letters_and_dict():
    assert to_letters("A MAN") == "A | M A N |"
    assert to_letters("  HE  SAID ") == "H E | S A I D |"
    counts = letter_counts(["A B A |", "C | A |"])
    assert counts == [("A", 3), ("|", 3), ("B", 1), ("C", 1)]  # count desc, ties by code point
    assert format_dict(counts) == "A 3\n| 3\nB 1\nC 1\n"
