"""Synthetic speakers: the voices of espeak-ng, flite and festival, which subsets may use them, how long they talk.

    >>> import random
    >>> from w2v2cli.synth.voices import pick_voice
    >>> pick_voice(random.Random(0), "en", ("espeak", "flite"), pool="test")   # a voice training never hears

espeak-ng speaks every language (accent voices x variants m1..m8 / f1..f5 and named variants, speaking rate and
pitch per speaker); flite speaks English (voices kal, kal16, awb, rms, slt, with duration stretch and mean F0);
festival adds English diphone voices kal and ked and the HTS voice slt, for training speakers only. Held-out
speakers (dev/test) get voices of their own pool (`voice_pool`, `FLITE_POOLS`), so a test voice is never heard
in training.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from w2v2cli.errors import DataError

FLITE_VOICES = {"kal": "M", "kal16": "M", "awb": "M", "rms": "M", "slt": "F"}
#: espeak-ng voice variants that sound like a person (the robotic, whispering and effect variants are left out),
#: with the gender they sound like
ESPEAK_VARIANTS = {**{f"m{i}": "M" for i in range(1, 9)}, **{f"f{i}": "F" for i in range(1, 6)},
                   **dict.fromkeys("""Alex Andy Denis Diogo Gene Hugo Jacky Lee Marco Mario Michael Mike Nguyen
                   adam antonio benjamin boris caleb david ed edward grandpa gustave iven john max michel miguel
                   norbert pablo paul pedro quincy rob robert sandro travis victor zac klatt klatt2""".split(), "M"),
                   **dict.fromkeys("""Alicia Andrea Annie anika aunty belinda grandma linda shelby steph""".split(),
                                   "F")}
ESPEAK_LANG_VOICES = {"en": ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                             "en-029"),
                      "de": ("de",), "fr": ("fr",), "es": ("es",), "it": ("it",), "nl": ("nl",), "pt": ("pt",),
                      "pl": ("pl",)}
#: flite voices by sentence pool, so that dev and test speakers are voices training never hears
FLITE_POOLS = {"train": ("kal", "awb", "slt"), "dev": ("kal16",), "test": ("rms",)}
#: festival's English voices (Debian: festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts), training
#: speakers only: name -> (the Scheme function that selects it, gender, waveform method)
FESTIVAL_VOICES = {"kal": ("voice_kal_diphone", "M", "diphone"), "ked": ("voice_ked_diphone", "M", "diphone"),
                   "slt": ("voice_cmu_us_slt_arctic_hts", "F", "hts")}
FESTIVAL_SECONDS_PER_WORD = 0.32  # at duration stretch 1 (see estimate_seconds)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: `engine` 'espeak' (speed in words/min, pitch 0-99), 'flite' or 'festival' (speed is
    duration stretch, pitch is mean F0 in Hz; festival's HTS voice has no F0 control and ignores it)."""

    engine: str
    name: str
    speed: float
    pitch: float
    gender: str

    @property
    def label(self) -> str:
        """'engine:name', as a corpus records who spoke an utterance."""
        return f"{self.engine}:{self.name}"


def voice_pool(name: str) -> str:
    """'train', 'dev' or 'test': the subsets whose speakers may use espeak-ng variant `name` (a hash, 15 % dev,
    15 % test), so that held-out speakers have voices that training never hears."""
    bucket = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") % 100
    return "dev" if bucket < 15 else "test" if bucket < 30 else "train"


def pick_voice(rng: random.Random, lang: str, engines: Sequence[str], pool: str | None = None) -> Voice:
    """A random speaker for `lang` from the allowed engines (flite speaks English only); with `pool`
    ('train' | 'dev' | 'test') only voices of that pool (`voice_pool`, `FLITE_POOLS`)."""
    usable = [e for e in engines if e == "espeak" or (e == "flite" and lang == "en")]
    if not usable:
        raise DataError(f"no synthesis engine for language '{lang}' among {list(engines)}",
                        hint="flite speaks English only; add espeak")
    engine = rng.choice(usable)
    if engine == "flite":
        name = rng.choice(sorted(FLITE_POOLS[pool] if pool else FLITE_VOICES))
        gender = FLITE_VOICES[name]
        f0 = rng.uniform(170, 220) if gender == "F" else rng.uniform(90, 135)
        return Voice("flite", name, round(rng.uniform(0.85, 1.2), 3), round(f0, 1), gender)
    bases = ESPEAK_LANG_VOICES.get(lang, (lang,))
    combos = [(b, v) for b in bases for v in ESPEAK_VARIANTS if pool is None or voice_pool(f"{b}+{v}") == pool]
    base, variant = rng.choice(combos)
    return Voice("espeak", f"{base}+{variant}", rng.randint(140, 190), rng.randint(25, 75), ESPEAK_VARIANTS[variant])


def festival_voice(rng: random.Random, name: str) -> Voice:
    """A festival speaker of voice `name`: its own duration stretch and, for diphone voices, mean F0."""
    gender = FESTIVAL_VOICES[name][1]
    stretch = round(rng.uniform(0.85, 1.2), 3)
    f0 = 0.0 if FESTIVAL_VOICES[name][2] == "hts" else round(rng.uniform(90, 135), 1)
    return Voice("festival", name, stretch, f0, gender)


def jitter(rng: random.Random, voice: Voice) -> Voice:
    """Per-utterance variation of a speaker's rate and pitch (people never say two things alike)."""
    if voice.engine == "espeak":
        return Voice(voice.engine, voice.name, int(voice.speed * rng.uniform(0.94, 1.06)),
                     min(99, max(0, int(voice.pitch + rng.randint(-5, 5)))), voice.gender)
    return Voice(voice.engine, voice.name, round(voice.speed * rng.uniform(0.95, 1.05), 3),
                 round(voice.pitch * rng.uniform(0.95, 1.05), 1), voice.gender)


def estimate_seconds(text: str, voice: Voice, by_letters: bool = False) -> float:
    """Expected length of `text` spoken by `voice` (fitted on generated corpora, within a few %). The fit is per
    word of the grammar (4.9 letters on average); `by_letters` counts words of other lengths as letters / 4.9."""
    words = text.split()
    words = sum(len(w) for w in words) / 4.9 if by_letters else len(words)
    if voice.engine == "espeak":
        return words * 0.9 * 60.0 / voice.speed + 0.64
    if voice.engine == "festival":
        return words * FESTIVAL_SECONDS_PER_WORD * voice.speed + 0.5
    return words * 0.245 * voice.speed + 0.55
