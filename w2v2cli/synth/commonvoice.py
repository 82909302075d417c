"""Synthetic corpora in Common Voice's layout.

    >>> from w2v2cli.synth.commonvoice import make_commonvoice
    >>> make_commonvoice("corpus/cv", langs=("en", "de", "fr"), n_speakers=3, utts_per_speaker=5, seed=0)

Layout: `ROOT/LANG/clips/common_voice_LANG_N.mp3` (48 kHz MP3), `ROOT/LANG/{train,dev,test,validated,invalidated,
other}.tsv` with the Common Voice 17 column header, `ROOT/LANG/clip_durations.tsv`. Speech comes from espeak-ng
and (English) flite.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from w2v2cli.synth.corpus import Plan, SynthCorpus, SynthUtterance, build
from w2v2cli.synth.sentences import LANGUAGES, SentenceGenerator
from w2v2cli.synth.speech import check_tools
from w2v2cli.synth.splits import Sizing, check_langs, draw_splits, split_sizes, voice_picker
from w2v2cli.synth.voices import Voice, jitter
from w2v2cli.textio import atomic_write_text

CV_SPLITS = ("train", "dev", "test")
#: Common Voice 17 column header of train/dev/test/validated/invalidated/other.tsv
CV_COLUMNS = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment")
_AGES = ["", "twenties", "thirties", "fourties", "fifties"]


@dataclass
class _CVPlan(Plan):
    rows: dict[str, list[tuple[SynthUtterance, Voice, str]]] = field(default_factory=dict)  # lang -> (utt, voice, age)


def make_commonvoice(
    out_dir: str | os.PathLike,
    langs: Sequence[str] = ("en", "de", "fr"),
    n_speakers: int = 3,
    utts_per_speaker: int = 5,
    seed: int = 0,
    hours: float | None = None,
    jobs: int = 2,
    engines: Sequence[str] = ("espeak", "flite"),
    min_words: int = 4,
    max_words: int = 14,
    force: bool = False,
    progress: bool = False,
) -> SynthCorpus:
    """Write Common Voice language folders `out_dir/LANG/` (48 kHz MP3 clips + CV 17 tsv files).

    `n_speakers` x `utts_per_speaker` in train per language; dev and test get a third of the speakers and
    half the utterances (speaker- and sentence-disjoint from train). `hours` sizes train per language.
    """
    check_tools(*engines, "sox", "lame")
    check_langs(langs, LANGUAGES)
    sizing = Sizing(split_sizes(CV_SPLITS, n_speakers, utts_per_speaker), hours, min_words, max_words)
    params = {"kind": "commonvoice", "langs": list(langs), "sizes": sizing.sizes, "seed": seed, "hours": hours,
              "engines": list(engines), "min_words": min_words, "max_words": max_words}
    plan = partial(_plan, langs=langs, sizing=sizing, seed=seed, engines=engines)
    return build(out_dir, params, force, plan, _write, jobs, progress)


def _plan(root: Path, langs: Sequence[str], sizing: Sizing, seed: int, engines: Sequence[str]) -> _CVPlan:
    """Per language: clients (speakers) of each split, each with an age, saying clips of their own."""
    plan = _CVPlan(SynthCorpus(root, "commonvoice"))
    for lang in langs:
        rng = random.Random(f"commonvoice-{lang}-{seed}")
        clip_ids = iter(rng.sample(range(10_000_000, 40_000_000), 100_000))
        pick = voice_picker(rng, lang, engines, held_out=False)
        for split in draw_splits(sizing, SentenceGenerator(lang, seed), set(), pick):
            for s, (voice, texts) in enumerate(zip(split.voices, split.texts)):
                client = hashlib.sha512(f"{seed}-{lang}-{split.name}-{s}".encode()).hexdigest()
                age = rng.choice(_AGES)
                for written in texts:
                    clip = f"common_voice_{lang}_{next(clip_ids)}.mp3"
                    utt = SynthUtterance(split.name, client, clip[:-4], root / lang / "clips" / clip, written, 0,
                                         48000, lang, voice.label)
                    plan.add(utt, written, jitter(rng, voice), "mp3")
                    plan.rows.setdefault(lang, []).append((utt, voice, age))
    return plan


def _write(root: Path, plan: _CVPlan) -> None:
    """Per language the split tsv files, validated.tsv (all of them), empty invalidated/other.tsv, clip lengths."""
    header = "\t".join(CV_COLUMNS) + "\n"
    for lang, rows in plan.rows.items():
        lines: dict[str, list[str]] = {s: [] for s in CV_SPLITS}
        for u, voice, age in rows:
            gender = "female_feminine" if voice.gender == "F" else "male_masculine"
            sid = hashlib.sha256(u.text.encode()).hexdigest()
            lines[u.subset].append("\t".join([u.speaker, u.path.name, sid, u.text, "", "2", "0", age, gender, "", "",
                                              lang, ""]) + "\n")
        for split in CV_SPLITS:
            atomic_write_text(root / lang / f"{split}.tsv", header + "".join(lines[split]))
        atomic_write_text(root / lang / "validated.tsv", header + "".join(sum(lines.values(), [])))
        for extra in ("invalidated", "other"):
            atomic_write_text(root / lang / f"{extra}.tsv", header)
        atomic_write_text(root / lang / "clip_durations.tsv", "clip\tduration[ms]\n" + "".join(
            f"{u.path.name}\t{round(1000 * u.num_samples / u.sample_rate)}\n" for u, _, _ in rows))
