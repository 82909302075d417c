"""Synthetic corpora in Multilingual LibriSpeech's layout.

    >>> from w2v2cli.synth.mls import make_mls
    >>> make_mls("corpus/mls", langs=("de", "fr", "es"), n_speakers=3, utts_per_speaker=5, seed=0)

Layout: `ROOT/mls_LANGUAGE/{train,dev,test}/transcripts.txt` (`SPK_BOOK_UTT<TAB>lower-case text`),
`ROOT/mls_LANGUAGE/{split}/audio/SPK/BOOK/SPK_BOOK_UTT.flac` (16 kHz FLAC, espeak-ng),
`ROOT/mls_LANGUAGE/metainfo.txt`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from w2v2cli.data.corpora import MLS_LANGS
from w2v2cli.data.text import normalize_text
from w2v2cli.synth.corpus import Plan, SynthCorpus, SynthUtterance, build
from w2v2cli.synth.sentences import LANGUAGES, SentenceGenerator
from w2v2cli.synth.speech import check_tools
from w2v2cli.synth.splits import Sizing, check_langs, draw_splits, split_sizes, voice_picker
from w2v2cli.synth.voices import jitter
from w2v2cli.textio import atomic_write_text

MLS_SPLITS = ("train", "dev", "test")
MLS_NAMES = {code: name for name, code in MLS_LANGS.items()}  # "de" -> "german" (mls_german/)


@dataclass
class _MLSPlan(Plan):
    langs: Sequence[str] = ()
    metainfo: list[str] = field(default_factory=list)  # the lines of metainfo.txt


def make_mls(
    out_dir: str | os.PathLike,
    langs: Sequence[str] = ("de", "fr", "es"),
    n_speakers: int = 3,
    utts_per_speaker: int = 5,
    seed: int = 0,
    hours: float | None = None,
    jobs: int = 2,
    min_words: int = 4,
    max_words: int = 16,
    force: bool = False,
    progress: bool = False,
) -> SynthCorpus:
    """Write MLS language folders `out_dir/mls_LANGUAGE/{train,dev,test}` (16 kHz FLAC, espeak-ng)."""
    check_tools("espeak", "sox")
    check_langs(langs, [l for l in LANGUAGES if l in MLS_NAMES])
    sizing = Sizing(split_sizes(MLS_SPLITS, n_speakers, utts_per_speaker), hours, min_words, max_words)
    params = {"kind": "mls", "langs": list(langs), "sizes": sizing.sizes, "seed": seed, "hours": hours,
              "min_words": min_words, "max_words": max_words}
    return build(out_dir, params, force, partial(_plan, langs=langs, sizing=sizing, seed=seed), _write, jobs,
                 progress)


def _plan(root: Path, langs: Sequence[str], sizing: Sizing, seed: int) -> _MLSPlan:
    """Per language: speakers of each split, each reading one book."""
    plan = _MLSPlan(SynthCorpus(root, "mls"), langs=langs)
    for lang in langs:
        rng = random.Random(f"mls-{lang}-{seed}")
        spk_ids = iter(rng.sample(range(100, 15000), 1000))
        pick = voice_picker(rng, lang, ("espeak",), held_out=False)
        for split in draw_splits(sizing, SentenceGenerator(lang, seed), set(), pick):
            for voice, texts in zip(split.voices, split.texts):
                spk, book = next(spk_ids), rng.randint(1000, 14000)
                plan.metainfo.append(f" {spk:<10}|   {voice.gender}   | {split.name:<10}| {len(texts) * 0.06:8.2f} | "
                                     f"{book:<10}| synthetic ({voice.name})")
                for k, written in enumerate(texts):
                    utt_id = f"{spk}_{book}_{k:06d}"
                    book_dir = root / f"mls_{MLS_NAMES[lang]}" / split.name / "audio" / str(spk) / str(book)
                    utt = SynthUtterance(split.name, str(spk), utt_id, book_dir / f"{utt_id}.flac",
                                         normalize_text(written, lang).lower(), 0, 16000, lang, voice.label)
                    plan.add(utt, written, jitter(rng, voice), "flac")
    return plan


def _write(root: Path, plan: _MLSPlan) -> None:
    """Per language each split's transcripts.txt, and metainfo.txt (which lists the speakers of every language)."""
    for lang in plan.langs:
        base = root / f"mls_{MLS_NAMES[lang]}"
        for split in MLS_SPLITS:
            utts = plan.corpus.subset(split, lang)
            atomic_write_text(base / split / "transcripts.txt", "".join(f"{u.utt_id}\t{u.text}\n" for u in utts))
        atomic_write_text(base / "metainfo.txt",
                          "SPEAKER   |   GENDER   | PARTITION  |  MINUTES   |  BOOK ID   |  TITLE\n"
                          + "".join(line + "\n" for line in plan.metainfo))
