"""The one split loop of every layout: how many speakers each split gets, their voices and their sentences.

    >>> sizing = Sizing(split_sizes(("train", "dev", "test"), 3, 5), hours=None, min_words=4, max_words=14)
    >>> pick = voice_picker(random.Random(0), "de", ("espeak",), held_out=False)
    >>> for split in draw_splits(sizing, SentenceGenerator("de", 0), set(), pick):
    ...     split.name, split.voices, split.texts      # a layout turns them into utterances here

Training splits come first; dev/test splits draw only from their held-out sentence pools
(`sentences.pool_for_subset`), and no sentence repeats within a corpus (`seen` is shared). With `hours`, training
splits are sized by estimated audio length and dev/test get about 8 % of the training utterances each.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from w2v2cli.errors import DataError
from w2v2cli.synth.sentences import OpenVocabulary, SentenceGenerator, pool_for_subset
from w2v2cli.synth.voices import Voice, estimate_seconds, pick_voice


@dataclass(frozen=True)
class Sizing:
    """How much each split gets: `sizes` {split: (speakers, utterances per speaker)} in the order to draw them,
    or with `hours` the estimated hours of each training split; sentences of `min_words`..`max_words` words."""

    sizes: dict[str, tuple[int, int]]
    hours: float | None
    min_words: int
    max_words: int


@dataclass
class SplitDraw:
    """One split's speakers: their `voices` and, per speaker, the written sentences they say."""

    name: str
    voices: list[Voice]
    texts: list[list[str]]


def split_sizes(subsets: Sequence[str] | Mapping[str, tuple[int, int]], n_speakers: int,
                utts_per_speaker: int) -> dict[str, tuple[int, int]]:
    """{split: (speakers, utterances each)}: training splits `n_speakers` x `utts_per_speaker`, dev/test splits a
    third of the speakers and half the utterances (at least 2 each); a mapping is taken as it is."""
    if isinstance(subsets, Mapping):
        return {k: (int(v[0]), int(v[1])) for k, v in subsets.items()}
    out = {}
    for name in subsets:
        if pool_for_subset(name) == "train":
            out[name] = (n_speakers, utts_per_speaker)
        else:
            out[name] = (max(2, math.ceil(n_speakers / 3)), max(2, math.ceil(utts_per_speaker / 2)))
    return out


def held_out_sizes(sizes: dict[str, tuple[int, int]], hours: float | None, train_utts: int,
                   ) -> dict[str, tuple[int, int]]:
    """With `hours`, dev/test subsets get about 8 % of the training utterances each."""
    if hours is None:
        return sizes
    out = dict(sizes)
    for name, (spk, _) in sizes.items():
        if pool_for_subset(name) != "train":
            out[name] = (spk, max(2, math.ceil(0.08 * train_utts / spk)))
    return out


def speaker_texts(gen: SentenceGenerator | OpenVocabulary, subset: str, voices: list[Voice], utts: int,
                  hours: float | None, seen: set[str], min_words: int, max_words: int,
                  by_letters: bool = False) -> list[list[str]]:
    """Sentences per speaker: `utts` each, or round-robin until the estimated hours are reached."""
    stream = gen.unique(pool_for_subset(subset), min_words, max_words, seen)
    per: list[list[str]] = [[] for _ in voices]
    if hours is None:
        for i in range(len(voices)):
            per[i] = [next(stream) for _ in range(utts)]
        return per
    total, i = 0.0, 0
    while total < hours * 3600:
        text = next(stream)
        per[i].append(text)
        total += estimate_seconds(text, voices[i], by_letters)
        i = (i + 1) % len(voices)
    return per


def voice_picker(rng: random.Random, lang: str, engines: Sequence[str], held_out: bool) -> Callable[[str], Voice]:
    """`pick(split)` for `draw_splits`: a random voice for `lang` from `rng`; with `held_out`, only voices of the
    split's pool (`voices.voice_pool`), so that dev/test speakers have voices that training never hears."""
    return lambda split: pick_voice(rng, lang, engines, pool_for_subset(split) if held_out else None)


def draw_splits(sizing: Sizing, gen: SentenceGenerator, seen: set[str],
                pick: Callable[[str], Voice]) -> Iterator[SplitDraw]:
    """Each split's voices (`pick(split)` per speaker) and sentences, training splits first. A generator: what the
    caller draws from its random streams between two splits comes before the next split's voices."""
    train_utts = 0
    sizes = dict(sizing.sizes)
    for name in sorted(sizing.sizes, key=lambda n: pool_for_subset(n) != "train"):
        train = pool_for_subset(name) == "train"
        if not train:  # dev/test sizes follow from the training utterances drawn
            sizes = held_out_sizes(sizing.sizes, sizing.hours, train_utts)
        n_spk, n_utt = sizes[name]
        voices = [pick(name) for _ in range(n_spk)]
        texts = speaker_texts(gen, name, voices, n_utt, sizing.hours if train else None, seen,
                              sizing.min_words, sizing.max_words)
        yield SplitDraw(name, voices, texts)
        if train:
            train_utts += sum(len(t) for t in texts)


def check_langs(langs: Sequence[str], have: Sequence[str]) -> None:
    """DataError unless every language of `langs` is one of `have` (and there is at least one)."""
    if not langs:
        raise DataError("no languages given", hint=f"choose from {', '.join(have)}")
    for lang in langs:
        if lang not in have:
            raise DataError(f"no synthetic sentences for language '{lang}'", hint=f"choose from {', '.join(have)}")
