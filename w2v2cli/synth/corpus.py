"""What every synthetic corpus shares: its record (`SynthCorpus`), the plan a layout makes, and `build`, which
runs a layout's plan and write steps atomically.

    >>> corpus = build("corpus/mine", {"kind": "mine", "seed": 0}, force=False, plan=my_plan, write=my_write,
    ...                jobs=2, progress=False)     # my_plan(root) -> Plan; my_write(root, plan) writes texts

A layout's *plan* step decides, without touching audio, which utterances there are (speaker, text, path, voice)
and returns a `Plan`; `build` synthesises them all (`speech.speak_all`), reads their lengths, and calls the
layout's *write* step for its transcript and metadata files. The corpus is built in a temporary sibling
directory and renamed into place; a complete corpus made with the same `params` is reused (no-op), anything
else in the way is an error unless `force`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf

from w2v2cli.errors import DataError
from w2v2cli.synth.speech import Speech, speak_all
from w2v2cli.synth.voices import Voice

MARKER = ".w2v2-synth.json"


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


@dataclass
class Plan:
    """A layout's plan: the corpus's utterances (lengths still 0) and what to synthesise for each. Layouts
    subclass it for the metadata their write step needs."""

    corpus: SynthCorpus
    speech: list[Speech] = field(default_factory=list)

    def add(self, utt: SynthUtterance, written: str, voice: Voice, fmt: str) -> None:
        """Utterance `utt`, synthesised from the `written` sentence (case, punctuation) by `voice` as `fmt`."""
        self.corpus.utterances.append(utt)
        self.speech.append(Speech(written, voice, utt.path, utt.lang, utt.sample_rate, fmt))


def build(out_dir: str | os.PathLike, params: dict, force: bool, plan: Callable[[Path], Plan],
          write: Callable[[Path, Plan], None], jobs: int, progress: bool) -> SynthCorpus:
    """Make the corpus of `plan(root)` and `write(root, plan)` in `out_dir`, atomically; reuse it if complete."""
    out_dir = Path(out_dir).absolute()
    existing = _reuse_or_prepare(out_dir, params, force)
    if existing is not None:
        return existing
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        made = plan(tmp_root)
        speak_all(made.speech, jobs, progress, f"synthesising {made.corpus.kind}")
        _fill_lengths(made.corpus.utterances)
        write(tmp_root, made)
        return _finish(tmp_root, out_dir, made.corpus, params)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise


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
