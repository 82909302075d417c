"""Synthetic speech corpora laid out exactly like LibriSpeech, Common Voice and MLS.

    >>> from w2v2cli.data.synth import make_librispeech, make_commonvoice, make_mls
    >>> corpus = make_librispeech("corpus/LibriSpeech", n_speakers=4, utts_per_speaker=10, seed=0)
    >>> corpus.utterances[0].path      # corpus/LibriSpeech/train-clean-100/SPK/CHAP/SPK-CHAP-0000.flac
    >>> make_commonvoice("corpus/cv", langs=("en", "de", "fr"), n_speakers=3, utts_per_speaker=5, seed=0)

Speech comes from espeak-ng (every language; voice variants m1..m7 / f1..f5, speaking rate and pitch
per speaker) and flite (English; voices kal, kal16, awb, rms, slt, with duration stretch and mean F0
per speaker); LibriSpeech corpora can add training speakers of a third synthesiser, festival (English diphone
voices kal and ked, HTS voice slt; `make_librispeech(festival_hours=)`). sox converts it to 16 kHz 16-bit mono
FLAC (dither off, so output is bit-exact for a seed); Common Voice clips are 48 kHz MP3 written by `lame`,
whose LAME header carries encoder delay and padding, so decoders (libsndfile/mpg123) return exactly the
samples that went in.

Sentences come from `w2v2cli.data.sentences` (a seeded grammar per language): no sentence repeats
within a corpus, and dev/test subsets draw from hash-held-out pools that training never sees.

Layouts written:

- LibriSpeech: `ROOT/SUBSET/SPK/CHAP/SPK-CHAP-UTT.flac`, `ROOT/SUBSET/SPK/CHAP/SPK-CHAP.trans.txt`
  (`SPK-CHAP-UTT TRANSCRIPT IN CAPITALS`), `ROOT/SPEAKERS.TXT`; speakers are disjoint across subsets.
- Common Voice: `ROOT/LANG/clips/common_voice_LANG_N.mp3`, `ROOT/LANG/{train,dev,test,validated,
  invalidated,other}.tsv` with the Common Voice 17 column header, `ROOT/LANG/clip_durations.tsv`.
- MLS: `ROOT/mls_LANGUAGE/{train,dev,test}/transcripts.txt` (`SPK_BOOK_UTT<TAB>lower-case text`),
  `ROOT/mls_LANGUAGE/{split}/audio/SPK/BOOK/SPK_BOOK_UTT.flac`, `ROOT/mls_LANGUAGE/metainfo.txt`.

Generation is deterministic for a seed, runs `jobs` synthesis pipelines in parallel, and is atomic: the
corpus is built in a temporary sibling directory and renamed into place; a complete corpus made with
the same parameters is reused (no-op), anything else in the way is an error unless `force`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf

from w2v2cli.data.manifest import MLS_LANGS
from w2v2cli.data.sentences import LANGUAGES, OpenVocabulary, SentenceGenerator, pool_for_subset
from w2v2cli.data.text import normalize_text
from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.textio import atomic_write_text

MARKER = ".w2v2-synth.json"
LIBRI_SUBSETS = ("train-clean-100", "dev-clean", "test-clean")
LM_TEXT = "librispeech-lm-norm.txt"  # LibriSpeech's LM corpus name (upper case, one sentence a line)
CV_SPLITS = ("train", "dev", "test")
MLS_SPLITS = ("train", "dev", "test")
MLS_NAMES = {code: name for name, code in MLS_LANGS.items()}  # "de" -> "german" (mls_german/)
#: Common Voice 17 column header of train/dev/test/validated/invalidated/other.tsv
CV_COLUMNS = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment")
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
FESTIVAL_SECONDS_PER_WORD = 0.32  # at duration stretch 1 (see _estimate_seconds)
FESTIVAL_BATCH = 25  # sentences per festival process
FESTIVAL_PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
_TOOLS = {"espeak": "espeak-ng", "flite": "flite", "sox": "sox", "lame": "lame", "festival": "text2wave"}


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: `engine` 'espeak' (speed in words/min, pitch 0-99), 'flite' or 'festival' (speed is
    duration stretch, pitch is mean F0 in Hz; festival's HTS voice has no F0 control and ignores it)."""

    engine: str
    name: str
    speed: float
    pitch: float
    gender: str


@dataclass
class SynthUtterance:
    """One generated utterance; `text` is what the corpus's own transcript files say."""

    subset: str
    speaker: str
    utt_id: str
    path: Path
    text: str
    num_samples: int
    sample_rate: int
    lang: str
    voice: str


@dataclass
class SynthCorpus:
    """What was generated: its `root`, `kind` ('librispeech' | 'commonvoice' | 'mls') and utterances."""

    root: Path
    kind: str
    utterances: list[SynthUtterance] = field(default_factory=list)

    def subset(self, name: str, lang: str | None = None) -> list[SynthUtterance]:
        return [u for u in self.utterances if u.subset == name and (lang is None or u.lang == lang)]

    @property
    def hours(self) -> float:
        return sum(u.num_samples / u.sample_rate for u in self.utterances) / 3600


# --------------------------------------------------------------------------------------------
# synthesis of one utterance


def check_tools(*engines: str) -> None:
    """Raise ToolMissingError if espeak-ng / flite / festival (text2wave and its voices) / sox / lame are missing."""
    for engine in engines:
        exe = _TOOLS[engine]
        if shutil.which(exe) is None:
            raise ToolMissingError(f"'{exe}' is not installed; synthetic corpora need it",
                                   hint=f"apt-get install espeak-ng flite sox libsox-fmt-mp3 lame {FESTIVAL_PACKAGES} "
                                        "(or run: bash tools/install_system_deps.sh)")
        if engine == "festival":
            for name, (select, _, _) in FESTIVAL_VOICES.items():
                proc = subprocess.run(["festival", "-b", f"({select})"], capture_output=True, text=True)
                if proc.returncode != 0 or "not defined" in proc.stderr + proc.stdout:
                    raise ToolMissingError(f"festival voice '{name}' ({select}) is not installed",
                                           hint=f"apt-get install {FESTIVAL_PACKAGES}")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise DataError(f"{what}: '{cmd[0]}' failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")


def synthesize(text: str, voice: Voice, out_path: Path, lang: str, sample_rate: int = 16000,
               fmt: str = "flac") -> None:
    """Speak `text` with `voice` into `out_path`: 16-bit mono FLAC at `sample_rate`, or MP3 via lame."""
    with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        if voice.engine == "espeak":
            _run(["espeak-ng", "-v", voice.name, "-s", str(int(voice.speed)), "-p", str(int(voice.pitch)),
                  "-w", raw, "--", text], f"synthesising {out_path}")
        elif voice.engine == "festival":
            _festival([(text, voice, raw)], tmp, f"synthesising {out_path}")
        else:
            _run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={voice.speed:.3f}",
                  "--setf", f"int_f0_target_mean={voice.pitch:.1f}", "-t", text, "-o", raw],
                 f"synthesising {out_path}")
        _convert(raw, out_path, sample_rate, fmt, tmp)


def _convert(raw: str, out_path: Path, sample_rate: int, fmt: str, tmp: str) -> None:
    """The synthesiser's wave file `raw` -> `out_path`: 16-bit mono FLAC at `sample_rate`, or MP3 via lame."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # -D: no dither, so the output is the same bits every run; vol keeps resampling from clipping
    if fmt == "flac":
        _run(["sox", "-D", "-V1", raw, "-r", str(sample_rate), "-b", "16", "-c", "1", str(out_path),
              "vol", "0.8"], f"converting {out_path}")
    elif fmt == "mp3":
        wav = os.path.join(tmp, "pcm.wav")
        _run(["sox", "-D", "-V1", raw, "-r", str(sample_rate), "-b", "16", "-c", "1", wav, "vol", "0.8"],
             f"converting {out_path}")
        _run(["lame", "--quiet", "-m", "m", "-b", "64", "--resample", f"{sample_rate / 1000:g}", wav,
              str(out_path)], f"encoding {out_path}")
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _festival(items: Sequence[tuple[str, Voice, str]], tmp: str, what: str) -> None:
    """Speak each (text, voice, wave path) with festival, all in one process (starting festival and loading a
    voice takes longer than speaking a sentence)."""
    lines = []
    for text, voice, raw in items:
        select, _, method = FESTIVAL_VOICES[voice.name]
        lines.append(f"({select})")
        if method == "hts":  # the engine's speed rate is the inverse of a duration stretch; no F0 control
            lines.append(f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {1 / voice.speed:.3f}))))")
        else:  # diphone voices: duration stretch, and the target F0 of the linear-regression intonation model
            lines.append(f"(Parameter.set 'Duration_Stretch {voice.speed:.3f})")
            lines.append(f"(set! int_lr_params '((target_f0_mean {voice.pitch:.1f}) (target_f0_std "
                         f"{0.14 * voice.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
        quoted = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{raw}" \'riff)')
    script = os.path.join(tmp, "speak.scm")
    Path(script).write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["festival", "-b", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    missing = sum(not os.path.isfile(raw) for _, _, raw in items)
    if proc.returncode != 0 or missing:  # a Scheme error stops the script
        errors = "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        raise DataError(f"{what}: 'festival' failed ({proc.returncode}; no audio for {missing} of {len(items)} "
                        f"sentences): {errors[-300:]}")


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


def _estimate_seconds(text: str, voice: Voice, by_letters: bool = False) -> float:
    """Expected length of `text` spoken by `voice` (fitted on generated corpora, within a few %). The fit is per
    word of the grammar (4.9 letters on average); `by_letters` counts words of other lengths as letters / 4.9."""
    words = text.split()
    words = sum(len(w) for w in words) / 4.9 if by_letters else len(words)
    if voice.engine == "espeak":
        return words * 0.9 * 60.0 / voice.speed + 0.64
    if voice.engine == "festival":
        return words * FESTIVAL_SECONDS_PER_WORD * voice.speed + 0.5
    return words * 0.245 * voice.speed + 0.55


# --------------------------------------------------------------------------------------------
# planning: who says what, where


@dataclass
class _Job:
    utt: SynthUtterance
    speak: str  # the written sentence (with case and punctuation) that goes to the synthesiser
    voice: Voice
    fmt: str


def _sizes(subsets: Sequence[str] | Mapping[str, tuple[int, int]], n_speakers: int,
           utts_per_speaker: int) -> dict[str, tuple[int, int]]:
    if isinstance(subsets, Mapping):
        return {k: (int(v[0]), int(v[1])) for k, v in subsets.items()}
    out = {}
    for name in subsets:
        if pool_for_subset(name) == "train":
            out[name] = (n_speakers, utts_per_speaker)
        else:
            out[name] = (max(2, math.ceil(n_speakers / 3)), max(2, math.ceil(utts_per_speaker / 2)))
    return out


def _speaker_utts(rng: random.Random, gen: SentenceGenerator | OpenVocabulary, subset: str, voices: list[Voice],
                  utts: int, hours: float | None, seen: set[str], min_words: int, max_words: int,
                  by_letters: bool = False) -> list[list[str]]:
    """Sentences per speaker: `utts` each, or round-robin until the estimated hours are reached."""
    pool = pool_for_subset(subset)
    stream = gen.unique(pool, min_words, max_words, seen)
    per: list[list[str]] = [[] for _ in voices]
    if hours is None:
        for i in range(len(voices)):
            per[i] = [next(stream) for _ in range(utts)]
        return per
    total, i = 0.0, 0
    while total < hours * 3600:
        text = next(stream)
        per[i].append(text)
        total += _estimate_seconds(text, voices[i], by_letters)
        i = (i + 1) % len(voices)
    return per


def _held_out_sizes(sizes: dict[str, tuple[int, int]], hours: float | None, train_utts: int,
                    ) -> dict[str, tuple[int, int]]:
    """With `hours`, dev/test subsets get about 8 % of the training utterances each."""
    if hours is None:
        return sizes
    out = dict(sizes)
    for name, (spk, _) in sizes.items():
        if pool_for_subset(name) != "train":
            out[name] = (spk, max(2, math.ceil(0.08 * train_utts / spk)))
    return out


# --------------------------------------------------------------------------------------------
# running and atomic placement


def _execute(jobs: list[_Job], lang_of: Callable[[_Job], str], n_jobs: int, sample_rate: int,
             progress: bool, label: str) -> None:
    def one(batch: list[_Job]) -> int:
        if batch[0].voice.engine != "festival":
            job = batch[0]
            synthesize(job.speak, job.voice, job.utt.path, lang_of(job), sample_rate, job.fmt)
            return 1
        with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
            raws = [os.path.join(tmp, f"{i}.wav") for i in range(len(batch))]
            _festival([(j.speak, j.voice, raw) for j, raw in zip(batch, raws)], tmp,
                      f"synthesising {batch[0].utt.path.parent}")
            for job, raw in zip(batch, raws):
                _convert(raw, job.utt.path, sample_rate, job.fmt, tmp)
        return len(batch)

    festival = [j for j in jobs if j.voice.engine == "festival"]
    batches = [[j] for j in jobs if j.voice.engine != "festival"]
    batches += [festival[i:i + FESTIVAL_BATCH] for i in range(0, len(festival), FESTIVAL_BATCH)]

    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        task = bar.add_task(label, total=len(jobs))
        for done in pool.map(one, batches):
            bar.advance(task, done)


def _fill_lengths(utts: Iterable[SynthUtterance]) -> None:
    for u in utts:
        u.num_samples = int(sf.info(str(u.path)).frames)


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def _reuse_or_prepare(out_dir: Path, params: dict, force: bool) -> SynthCorpus | None:
    """Return the existing corpus if it was made with `params`; clear the way otherwise."""
    marker = out_dir / MARKER
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("params") == json.loads(_params_key(params)) and not force:
            corpus = SynthCorpus(out_dir, saved["kind"])
            for d in saved["utterances"]:
                d["path"] = out_dir / d["path"]
                corpus.utterances.append(SynthUtterance(**d))
            return corpus
        if not force:
            raise DataError(f"{out_dir}: holds a synthetic corpus made with other settings",
                            hint="pass --force to replace it, or choose another output directory")
        shutil.rmtree(out_dir)
    elif out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        else:
            raise DataError(f"{out_dir}: exists and is not a corpus made by w2v2 synth; refusing to overwrite",
                            hint="choose an empty or new output directory")
    return None


def _finish(tmp_root: Path, out_dir: Path, corpus: SynthCorpus, params: dict) -> SynthCorpus:
    record = {"kind": corpus.kind, "params": json.loads(_params_key(params)), "utterances": []}
    for u in corpus.utterances:
        d = asdict(u)
        d["path"] = str(u.path.relative_to(tmp_root))
        record["utterances"].append(d)
    (tmp_root / MARKER).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp_root, out_dir)
    for u in corpus.utterances:
        u.path = out_dir / u.path.relative_to(tmp_root)
    corpus.root = out_dir
    return corpus


def _build(out_dir: str | os.PathLike, params: dict, force: bool,
           plan: Callable[[Path], tuple[SynthCorpus, list[_Job], Callable[[Path], None]]],
           jobs: int, sample_rate: int, progress: bool) -> SynthCorpus:
    out_dir = Path(out_dir).absolute()
    existing = _reuse_or_prepare(out_dir, params, force)
    if existing is not None:
        return existing
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        corpus, work, write_texts = plan(tmp_root)
        _execute(work, lambda j: j.utt.lang, jobs, sample_rate, progress, f"synthesising {corpus.kind}")
        _fill_lengths(corpus.utterances)
        write_texts(tmp_root)
        return _finish(tmp_root, out_dir, corpus, params)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------
# LibriSpeech


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
    sizes = _sizes(subsets, n_speakers, utts_per_speaker)
    params = {"kind": "librispeech", "sizes": sizes, "seed": seed, "hours": hours, "engines": list(engines),
              "min_words": min_words, "max_words": max_words, "lm_sentences": lm_sentences, "voices": 2}
    if open_vocab_hours:  # only when set, so corpora made before the option are still recognised
        params["open_vocab_hours"] = open_vocab_hours
    if festival_hours:
        params["festival_hours"] = festival_hours

    def plan(root: Path):
        rng = random.Random(f"librispeech-{seed}")
        gen = SentenceGenerator("en", seed)
        ov_rng = random.Random(f"librispeech-open-vocab-{seed}")
        open_vocab = OpenVocabulary(seed) if open_vocab_hours else None
        seen: set[str] = set()
        all_spk = rng.sample(range(14, 9999), sum(s for s, _ in sizes.values()))
        chapters = iter(rng.sample(range(1000, 300000), 2 * len(all_spk)))
        corpus = SynthCorpus(root, "librispeech")
        work: list[_Job] = []
        speakers_txt = []
        order = sorted(sizes, key=lambda n: pool_for_subset(n) != "train")  # train first (sizes dev/test)
        train_utts = 0
        final_sizes = dict(sizes)
        spk_iter = iter(all_spk)

        def add_chapter(name: str, spk: int, voice: Voice, chap: int, texts: list[str],
                        jitter_rng: random.Random) -> None:
            for k, written in enumerate(texts):
                utt_id = f"{spk}-{chap}-{k:04d}"
                path = root / name / str(spk) / str(chap) / f"{utt_id}.flac"
                utt = SynthUtterance(name, str(spk), utt_id, path, normalize_text(written, "en"), 0,
                                     16000, "en", f"{voice.engine}:{voice.name}")
                corpus.utterances.append(utt)
                work.append(_Job(utt, written, _jitter(jitter_rng, voice), "flac"))

        for name in order:
            if pool_for_subset(name) != "train":
                final_sizes = _held_out_sizes(sizes, hours, train_utts)
            n_spk, n_utt = final_sizes[name]
            spk_ids = sorted(next(spk_iter) for _ in range(n_spk))
            voices = [pick_voice(rng, "en", engines, pool_for_subset(name)) for _ in spk_ids]
            sub_hours = hours if (hours is not None and pool_for_subset(name) == "train") else None
            per = _speaker_utts(rng, gen, name, voices, n_utt, sub_hours, seen, min_words, max_words)
            # open-vocabulary sentences use their own random streams: the rest of the corpus stays as it was
            extra = [[] for _ in voices]
            if open_vocab_hours and pool_for_subset(name) == "train":
                extra = _speaker_utts(ov_rng, open_vocab, name, voices, 0, open_vocab_hours, seen,
                                      min_words, max_words, by_letters=True)
            for spk, voice, texts, more in zip(spk_ids, voices, per, extra):
                speakers_txt.append(_speakers_line(spk, voice, name, len(texts) + len(more)))
                if more:
                    add_chapter(name, spk, voice, ov_rng.randrange(300000, 400000), more, ov_rng)  # own range
                n_chap = 2 if len(texts) >= 6 and rng.random() < 0.5 else 1
                chaps = sorted(next(chapters) for _ in range(n_chap))
                cut = math.ceil(len(texts) / n_chap)
                for c, chap in enumerate(chaps):
                    add_chapter(name, spk, voice, chap, texts[c * cut:(c + 1) * cut], rng)
            if pool_for_subset(name) == "train":
                train_utts += sum(len(t) for t in per)
        lm_exclude = set(seen)  # as without festival speakers, so the LM text stays the same

        # festival speakers come last, from random streams of their own: everything above stays as it was
        f_rng = random.Random(f"librispeech-festival-{seed}")
        f_gen = SentenceGenerator("en", seed + 2_000_003)
        free_ids = sorted(set(range(14, 9999)) - set(all_spk))
        for name in (n for n in order if festival_hours and pool_for_subset(n) == "train"):
            n_spk = max(len(FESTIVAL_VOICES), round(festival_hours * 30))
            spk_ids = sorted(f_rng.sample(free_ids, n_spk))
            free_ids = [i for i in free_ids if i not in spk_ids]
            names = [sorted(FESTIVAL_VOICES)[i % len(FESTIVAL_VOICES)] for i in range(n_spk)]
            f_rng.shuffle(names)
            voices = [festival_voice(f_rng, v) for v in names]
            per = _speaker_utts(f_rng, f_gen, name, voices, 0, festival_hours, seen, min_words, max_words)
            for spk, voice, texts in zip(spk_ids, voices, per):
                speakers_txt.append(_speakers_line(spk, voice, name, len(texts)))
                add_chapter(name, spk, voice, f_rng.randrange(400000, 500000), texts, f_rng)  # own range

        def write_texts(root: Path) -> None:
            _write_librispeech_texts(root, corpus, speakers_txt)
            if lm_sentences:
                stream = SentenceGenerator("en", seed + 1_000_003).unique("train", min_words, max_words, lm_exclude)
                atomic_write_text(root / LM_TEXT, "".join(normalize_text(next(stream), "en") + "\n"
                                                          for _ in range(lm_sentences)))

        return corpus, work, write_texts

    return _build(out_dir, params, force, plan, jobs, 16000, progress)


def _speakers_line(spk: int, voice: Voice, subset: str, n_utts: int) -> str:
    """A speaker's line of LibriSpeech's SPEAKERS.TXT (minutes estimated at ~3.6 s an utterance)."""
    return f"{spk:<5}| {voice.gender} | {subset:<16}| {n_utts * 0.06:6.2f} | {voice.engine} {voice.name}"


def _write_librispeech_texts(root: Path, corpus: SynthCorpus, speakers_txt: list[str]) -> None:
    """One `SPK-CHAP.trans.txt` per chapter directory, and `SPEAKERS.TXT`."""
    by_chapter: dict[Path, list[SynthUtterance]] = {}
    for u in corpus.utterances:
        by_chapter.setdefault(u.path.parent, []).append(u)
    for chap_dir, utts in by_chapter.items():
        spk, chap = chap_dir.parent.name, chap_dir.name
        atomic_write_text(chap_dir / f"{spk}-{chap}.trans.txt",
                          "".join(f"{u.utt_id} {u.text}\n" for u in sorted(utts, key=lambda u: u.utt_id)))
    atomic_write_text(root / "SPEAKERS.TXT", "; ID  |SEX| SUBSET          |MINUTES| NAME (synthetic voice)\n"
                      + "".join(line + "\n" for line in speakers_txt))


def _jitter(rng: random.Random, voice: Voice) -> Voice:
    """Per-utterance variation of a speaker's rate and pitch (people never say two things alike)."""
    if voice.engine == "espeak":
        return Voice(voice.engine, voice.name, int(voice.speed * rng.uniform(0.94, 1.06)),
                     min(99, max(0, int(voice.pitch + rng.randint(-5, 5)))), voice.gender)
    return Voice(voice.engine, voice.name, round(voice.speed * rng.uniform(0.95, 1.05), 3),
                 round(voice.pitch * rng.uniform(0.95, 1.05), 1), voice.gender)


def _check_langs(langs: Sequence[str], have: Sequence[str]) -> None:
    if not langs:
        raise DataError("no languages given", hint=f"choose from {', '.join(have)}")
    for lang in langs:
        if lang not in have:
            raise DataError(f"no synthetic sentences for language '{lang}'", hint=f"choose from {', '.join(have)}")


# --------------------------------------------------------------------------------------------
# Common Voice


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
    _check_langs(langs, LANGUAGES)
    sizes = _sizes(CV_SPLITS, n_speakers, utts_per_speaker)
    params = {"kind": "commonvoice", "langs": list(langs), "sizes": sizes, "seed": seed, "hours": hours,
              "engines": list(engines), "min_words": min_words, "max_words": max_words}

    def plan(root: Path):
        corpus = SynthCorpus(root, "commonvoice")
        work: list[_Job] = []
        rows: dict[str, list[tuple[str, SynthUtterance, Voice, str]]] = {}
        for lang in langs:
            rng = random.Random(f"commonvoice-{lang}-{seed}")
            gen = SentenceGenerator(lang, seed)
            seen: set[str] = set()
            clip_ids = iter(rng.sample(range(10_000_000, 40_000_000), 100_000))
            train_utts = 0
            final = dict(sizes)
            for split in CV_SPLITS:
                if split != "train":
                    final = _held_out_sizes(sizes, hours, train_utts)
                n_spk, n_utt = final[split]
                voices = [pick_voice(rng, lang, engines) for _ in range(n_spk)]
                sub_hours = hours if (hours is not None and split == "train") else None
                per = _speaker_utts(rng, gen, split, voices, n_utt, sub_hours, seen, min_words, max_words)
                for s, (voice, texts) in enumerate(zip(voices, per)):
                    client = hashlib.sha512(f"{seed}-{lang}-{split}-{s}".encode()).hexdigest()
                    meta = rng.choice(["", "twenties", "thirties", "fourties", "fifties"])
                    for written in texts:
                        clip = f"common_voice_{lang}_{next(clip_ids)}.mp3"
                        utt = SynthUtterance(split, client, clip[:-4], root / lang / "clips" / clip, written, 0,
                                             48000, lang, f"{voice.engine}:{voice.name}")
                        corpus.utterances.append(utt)
                        work.append(_Job(utt, written, _jitter(rng, voice), "mp3"))
                        rows.setdefault(lang, []).append((split, utt, voice, meta))
                if split == "train":
                    train_utts = sum(len(t) for t in per)

        def write_texts(root: Path) -> None:
            header = "\t".join(CV_COLUMNS) + "\n"
            for lang, lang_rows in rows.items():
                lines: dict[str, list[str]] = {s: [] for s in CV_SPLITS}
                for split, u, voice, age in lang_rows:
                    gender = "female_feminine" if voice.gender == "F" else "male_masculine"
                    sid = hashlib.sha256(u.text.encode()).hexdigest()
                    lines[split].append("\t".join([u.speaker, u.path.name, sid, u.text, "", "2", "0", age,
                                                   gender, "", "", lang, ""]) + "\n")
                for split in CV_SPLITS:
                    atomic_write_text(root / lang / f"{split}.tsv", header + "".join(lines[split]))
                atomic_write_text(root / lang / "validated.tsv", header + "".join(sum(lines.values(), [])))
                for extra in ("invalidated", "other"):
                    atomic_write_text(root / lang / f"{extra}.tsv", header)
                atomic_write_text(root / lang / "clip_durations.tsv", "clip\tduration[ms]\n" + "".join(
                    f"{u.path.name}\t{round(1000 * u.num_samples / u.sample_rate)}\n" for _, u, _, _ in lang_rows))

        return corpus, work, write_texts

    return _build(out_dir, params, force, plan, jobs, 48000, progress)


# --------------------------------------------------------------------------------------------
# Multilingual LibriSpeech


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
    _check_langs(langs, [l for l in LANGUAGES if l in MLS_NAMES])
    sizes = _sizes(MLS_SPLITS, n_speakers, utts_per_speaker)
    params = {"kind": "mls", "langs": list(langs), "sizes": sizes, "seed": seed, "hours": hours,
              "min_words": min_words, "max_words": max_words}

    def plan(root: Path):
        corpus = SynthCorpus(root, "mls")
        work: list[_Job] = []
        meta: list[str] = []
        for lang in langs:
            rng = random.Random(f"mls-{lang}-{seed}")
            gen = SentenceGenerator(lang, seed)
            seen: set[str] = set()
            spk_ids = iter(rng.sample(range(100, 15000), 1000))
            train_utts = 0
            final = dict(sizes)
            for split in MLS_SPLITS:
                if split != "train":
                    final = _held_out_sizes(sizes, hours, train_utts)
                n_spk, n_utt = final[split]
                voices = [pick_voice(rng, lang, ("espeak",)) for _ in range(n_spk)]
                sub_hours = hours if (hours is not None and split == "train") else None
                per = _speaker_utts(rng, gen, split, voices, n_utt, sub_hours, seen, min_words, max_words)
                for voice, texts in zip(voices, per):
                    spk, book = next(spk_ids), rng.randint(1000, 14000)
                    meta.append(f" {spk:<10}|   {voice.gender}   | {split:<10}| {len(texts) * 0.06:8.2f} | {book:<10}| "
                                f"synthetic ({voice.name})")
                    for k, written in enumerate(texts):
                        utt_id = f"{spk}_{book}_{k:06d}"
                        path = root / f"mls_{MLS_NAMES[lang]}" / split / "audio" / str(spk) / str(book) / f"{utt_id}.flac"
                        text = normalize_text(written, lang).lower()
                        utt = SynthUtterance(split, str(spk), utt_id, path, text, 0, 16000, lang,
                                             f"{voice.engine}:{voice.name}")
                        corpus.utterances.append(utt)
                        work.append(_Job(utt, written, _jitter(rng, voice), "flac"))
                if split == "train":
                    train_utts = sum(len(t) for t in per)

        def write_texts(root: Path) -> None:
            for lang in langs:
                base = root / f"mls_{MLS_NAMES[lang]}"
                for split in MLS_SPLITS:
                    utts = [u for u in corpus.utterances if u.lang == lang and u.subset == split]
                    atomic_write_text(base / split / "transcripts.txt", "".join(f"{u.utt_id}\t{u.text}\n" for u in utts))
                atomic_write_text(base / "metainfo.txt",
                             "SPEAKER   |   GENDER   | PARTITION  |  MINUTES   |  BOOK ID   |  TITLE\n"
                             + "".join(line + "\n" for line in meta))

        return corpus, work, write_texts

    return _build(out_dir, params, force, plan, jobs, 16000, progress)
