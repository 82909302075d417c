"""Synthetic corpora in LibriSpeech's layout.

    >>> from w2v2cli.synth.librispeech import make_librispeech
    >>> corpus = make_librispeech("corpus/LibriSpeech", n_speakers=4, utts_per_speaker=10, seed=0)
    >>> corpus.utterances[0].path      # corpus/LibriSpeech/train-clean-100/SPK/CHAP/SPK-CHAP-0000.flac

Layout: `ROOT/SUBSET/SPK/CHAP/SPK-CHAP-UTT.flac` (16 kHz FLAC), `ROOT/SUBSET/SPK/CHAP/SPK-CHAP.trans.txt`
(`SPK-CHAP-UTT TRANSCRIPT IN CAPITALS`), `ROOT/SPEAKERS.TXT`, and with `lm_sentences` `ROOT/librispeech-lm-norm.txt`;
speakers are disjoint across subsets. Speech comes from espeak-ng and flite, plus, with `festival_hours`, extra
training speakers of festival.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from w2v2cli.data.text import normalize_text
from w2v2cli.synth.corpus import Plan, SynthCorpus, SynthUtterance, build
from w2v2cli.synth.sentences import OpenVocabulary, SentenceGenerator, pool_for_subset
from w2v2cli.synth.speech import check_tools
from w2v2cli.synth.splits import Sizing, draw_splits, speaker_texts, split_sizes, voice_picker
from w2v2cli.synth.voices import FESTIVAL_VOICES, Voice, festival_voice, jitter
from w2v2cli.textio import atomic_write_text

LIBRI_SUBSETS = ("train-clean-100", "dev-clean", "test-clean")
LM_TEXT = "librispeech-lm-norm.txt"  # LibriSpeech's LM corpus name (upper case, one sentence a line)


@dataclass
class _LibriPlan(Plan):
    speakers: list[str] = field(default_factory=list)  # the lines of SPEAKERS.TXT
    lm_exclude: set[str] = field(default_factory=set)  # sentences the LM text must not repeat


def make_librispeech(
    out_dir: str | os.PathLike,
    n_speakers: int = 4,
    utts_per_speaker: int = 10,
    seed: int = 0,
    subsets: Sequence[str] | Mapping[str, tuple[int, int]] = LIBRI_SUBSETS,
    hours: float | None = None,
    jobs: int = 2,
    engines: Sequence[str] = ("espeak", "flite"),
    min_words: int = 4,
    max_words: int = 16,
    force: bool = False,
    progress: bool = False,
    lm_sentences: int = 0,
    open_vocab_hours: float = 0.0,
    festival_hours: float = 0.0,
) -> SynthCorpus:
    """Write a LibriSpeech-layout corpus under `out_dir` (which plays the role of `LibriSpeech/`).

    `subsets`: names (training subsets get `n_speakers` x `utts_per_speaker`, dev/test subsets a third of
    the speakers and half the utterances) or a mapping `name -> (speakers, utterances per speaker)`.
    `hours`: size the training subsets by estimated audio length instead (dev/test about 8 % each).
    `lm_sentences`: also write `librispeech-lm-norm.txt`, that many training-pool sentences (upper case, one a line,
    as LibriSpeech's LM corpus), for the language model: text only, never spoken, never a dev/test sentence.
    `open_vocab_hours`: also about that many hours per training subset of open-vocabulary sentences (frequent
    English words in random order, `OpenVocabulary`), spoken by the same training speakers in a chapter of
    their own, so that an acoustic model hears far more words than the grammar's ~2,400; dev/test subsets
    and the LM text stay grammatical and are the same as without them.
    `festival_hours`: also about that many hours per training subset of grammar sentences read by extra training
    speakers (one per 2 minutes, at least 3) of festival's voices (`FESTIVAL_VOICES`), each with its own rate and
    pitch: a third synthesiser in training. Everything else (dev/test, the LM text, the other speakers' audio) is
    the same as without them.
    Speakers of dev/test subsets use voices that training speakers never use (`voice_pool`).
    """
    check_tools(*engines, "sox", *(["festival"] if festival_hours else []))
    sizing = Sizing(split_sizes(subsets, n_speakers, utts_per_speaker), hours, min_words, max_words)
    params = {"kind": "librispeech", "sizes": sizing.sizes, "seed": seed, "hours": hours, "engines": list(engines),
              "min_words": min_words, "max_words": max_words, "lm_sentences": lm_sentences, "voices": 2}
    if open_vocab_hours:  # only when set, so corpora made before the option are still recognised
        params["open_vocab_hours"] = open_vocab_hours
    if festival_hours:
        params["festival_hours"] = festival_hours
    plan = partial(_plan, sizing=sizing, seed=seed, engines=engines, open_vocab_hours=open_vocab_hours,
                   festival_hours=festival_hours)
    write = partial(_write, sizing=sizing, seed=seed, lm_sentences=lm_sentences)
    return build(out_dir, params, force, plan, write, jobs, progress)


def _plan(root: Path, sizing: Sizing, seed: int, engines: Sequence[str], open_vocab_hours: float,
          festival_hours: float) -> _LibriPlan:
    """Speakers and chapters of every subset: the grammar's speakers, then (from random streams of their own, so
    that everything else stays as it was) open-vocabulary chapters and festival speakers."""
    plan = _LibriPlan(SynthCorpus(root, "librispeech"))
    rng = random.Random(f"librispeech-{seed}")
    seen: set[str] = set()
    speaker_ids = rng.sample(range(14, 9999), sum(s for s, _ in sizing.sizes.values()))
    chapters = iter(rng.sample(range(1000, 300000), 2 * len(speaker_ids)))
    open_vocab = OpenVocabulary(seed) if open_vocab_hours else None
    ov_rng = random.Random(f"librispeech-open-vocab-{seed}")
    spk_iter = iter(speaker_ids)
    pick = voice_picker(rng, "en", engines, held_out=True)
    for split in draw_splits(sizing, SentenceGenerator("en", seed), seen, pick):
        spk_ids = sorted(next(spk_iter) for _ in split.voices)
        extra: list[list[str]] = [[] for _ in split.voices]
        if open_vocab and pool_for_subset(split.name) == "train":
            extra = speaker_texts(open_vocab, split.name, split.voices, 0, open_vocab_hours, seen,
                                  sizing.min_words, sizing.max_words, by_letters=True)
        for spk, voice, texts, more in zip(spk_ids, split.voices, split.texts, extra):
            plan.speakers.append(_speakers_line(spk, voice, split.name, len(texts) + len(more)))
            if more:
                _add_chapter(plan, split.name, spk, voice, ov_rng.randrange(300000, 400000), more, ov_rng)
            n_chap = 2 if len(texts) >= 6 and rng.random() < 0.5 else 1
            chaps = sorted(next(chapters) for _ in range(n_chap))
            cut = math.ceil(len(texts) / n_chap)
            for c, chap in enumerate(chaps):
                _add_chapter(plan, split.name, spk, voice, chap, texts[c * cut:(c + 1) * cut], rng)
    plan.lm_exclude = set(seen)  # as without festival speakers, so the LM text stays the same
    if festival_hours:
        _add_festival_speakers(plan, sizing, seed, festival_hours, speaker_ids, seen)
    return plan


def _add_festival_speakers(plan: _LibriPlan, sizing: Sizing, seed: int, festival_hours: float,
                           taken_ids: list[int], seen: set[str]) -> None:
    """About `festival_hours` per training subset of grammar sentences read by new speakers of festival's voices."""
    f_rng = random.Random(f"librispeech-festival-{seed}")
    f_gen = SentenceGenerator("en", seed + 2_000_003)
    free_ids = sorted(set(range(14, 9999)) - set(taken_ids))
    for name in (n for n in sizing.sizes if pool_for_subset(n) == "train"):
        n_spk = max(len(FESTIVAL_VOICES), round(festival_hours * 30))
        spk_ids = sorted(f_rng.sample(free_ids, n_spk))
        free_ids = [i for i in free_ids if i not in spk_ids]
        names = [sorted(FESTIVAL_VOICES)[i % len(FESTIVAL_VOICES)] for i in range(n_spk)]
        f_rng.shuffle(names)
        voices = [festival_voice(f_rng, v) for v in names]
        per = speaker_texts(f_gen, name, voices, 0, festival_hours, seen, sizing.min_words, sizing.max_words)
        for spk, voice, texts in zip(spk_ids, voices, per):
            plan.speakers.append(_speakers_line(spk, voice, name, len(texts)))
            _add_chapter(plan, name, spk, voice, f_rng.randrange(400000, 500000), texts, f_rng)  # own range


def _add_chapter(plan: Plan, subset: str, spk: int, voice: Voice, chap: int, texts: list[str],
                 jitter_rng: random.Random) -> None:
    for k, written in enumerate(texts):
        utt_id = f"{spk}-{chap}-{k:04d}"
        path = plan.corpus.root / subset / str(spk) / str(chap) / f"{utt_id}.flac"
        utt = SynthUtterance(subset, str(spk), utt_id, path, normalize_text(written, "en"), 0, 16000, "en",
                             voice.label)
        plan.add(utt, written, jitter(jitter_rng, voice), "flac")


def _speakers_line(spk: int, voice: Voice, subset: str, n_utts: int) -> str:
    """A speaker's line of LibriSpeech's SPEAKERS.TXT (minutes estimated at ~3.6 s an utterance)."""
    return f"{spk:<5}| {voice.gender} | {subset:<16}| {n_utts * 0.06:6.2f} | {voice.engine} {voice.name}"


def _write(root: Path, plan: _LibriPlan, sizing: Sizing, seed: int, lm_sentences: int) -> None:
    """One `SPK-CHAP.trans.txt` per chapter directory, `SPEAKERS.TXT`, and the LM text."""
    by_chapter: dict[Path, list[SynthUtterance]] = {}
    for u in plan.corpus.utterances:
        by_chapter.setdefault(u.path.parent, []).append(u)
    for chap_dir, utts in by_chapter.items():
        spk, chap = chap_dir.parent.name, chap_dir.name
        atomic_write_text(chap_dir / f"{spk}-{chap}.trans.txt",
                          "".join(f"{u.utt_id} {u.text}\n" for u in sorted(utts, key=lambda u: u.utt_id)))
    atomic_write_text(root / "SPEAKERS.TXT", "; ID  |SEX| SUBSET          |MINUTES| NAME (synthetic voice)\n"
                      + "".join(line + "\n" for line in plan.speakers))
    if lm_sentences:
        stream = SentenceGenerator("en", seed + 1_000_003).unique("train", sizing.min_words, sizing.max_words,
                                                                  plan.lm_exclude)
        atomic_write_text(root / LM_TEXT, "".join(normalize_text(next(stream), "en") + "\n"
                                                  for _ in range(lm_sentences)))
