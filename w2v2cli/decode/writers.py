"""Decoding outputs, in manifest order: `hyp.wrd`, `hyp.trn`, `ref.trn` and `hyp.jsonl`; CTM and subtitles.

    >>> ids = utterance_ids(manifest_relpaths)                 # "1089/134686/1089-134686-0000.flac" -> "1089-134686-0000"
    >>> write_outputs("exp/decode", ids, hyps, refs)           # refs: list[str] or None

`hyp.wrd` is one transcript per line; `hyp.trn` / `ref.trn` are sclite `trn` lines `words (utt-id)`, so
`w2v2 score ref.trn hyp.trn` and `sclite -r ref.trn trn -h hyp.trn trn -i rm` read them; `hyp.jsonl` holds
one JSON object per utterance: `{"id", "text", "words": [{"word", "start", "end", "confidence"}], ...}`.
Every file is written to a temporary name and renamed, so a crash never leaves a half-written output.

`ctm_text` gives NIST CTM lines (`utt-id 1 start duration word confidence`); `subtitle_cues` groups a
hypothesis's timed words into cues that `srt_text` / `vtt_text` format as SubRip / WebVTT.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Sequence

from w2v2cli.decode.ctc import Hypothesis
from w2v2cli.textio import atomic_write_text

_BAD_ID_CHARS = re.compile(r"[\s()]+")


def utterance_ids(paths: Sequence[str]) -> list[str]:
    """Utterance ids for manifest paths: the file stem (LibriSpeech ids), or, when stems repeat, the relative
    path without its extension with '/' -> '_'. Whitespace and parentheses (trn syntax) become '_'."""
    stems = [PurePosixPath(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        stems = [str(PurePosixPath(p).with_suffix("")).replace("/", "_") for p in paths]
    ids = [_BAD_ID_CHARS.sub("_", s) or f"utt{k:06d}" for k, s in enumerate(stems)]
    if len(set(ids)) != len(ids):  # still clashing after cleaning: make them unique by position
        ids = [f"{s}_{k:06d}" for k, s in enumerate(ids)]
    return ids


def trn_line(text: str, utt_id: str) -> str:
    return f"{' '.join(text.split())} ({utt_id})\n"


def hypothesis_record(utt_id: str, hyp: Hypothesis, ref: str | None = None, extra: dict | None = None) -> dict:
    """The `hyp.jsonl` object of one utterance."""
    words = []
    for k, w in enumerate(hyp.words):
        item = {"word": w}
        if k < len(hyp.word_times):
            item["start"] = round(hyp.word_times[k][0], 3)
            item["end"] = round(hyp.word_times[k][1], 3)
        if k < len(hyp.word_conf):
            item["confidence"] = round(float(hyp.word_conf[k]), 4)
        words.append(item)
    record = {"id": utt_id, "text": hyp.text, "words": words}
    if hyp.score is not None:
        record["score"] = float(hyp.score)
    if ref is not None:
        record["ref"] = ref
    if extra:
        record.update(extra)
    return record


def write_outputs(out_dir: str | Path, ids: Sequence[str], hyps: Sequence[Hypothesis],
                  refs: Sequence[str] | None = None, extras: Sequence[dict] | None = None) -> dict[str, Path]:
    """Writes `hyp.wrd`, `hyp.trn`, `hyp.jsonl` and (with `refs`) `ref.trn`; returns name -> path."""
    if len(ids) != len(hyps) or (refs is not None and len(refs) != len(hyps)):
        raise ValueError(f"{len(ids)} ids, {len(hyps)} hypotheses and "
                         f"{'no' if refs is None else len(refs)} references do not line up")
    if len(set(ids)) != len(ids):
        raise ValueError("utterance ids must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "hyp.wrd": "".join(" ".join(h.text.split()) + "\n" for h in hyps),
        "hyp.trn": "".join(trn_line(h.text, i) for i, h in zip(ids, hyps)),
        "hyp.jsonl": "".join(
            json.dumps(hypothesis_record(i, h, None if refs is None else refs[k],
                                         None if extras is None else extras[k]), ensure_ascii=False) + "\n"
            for k, (i, h) in enumerate(zip(ids, hyps))),
    }
    if refs is not None:
        files["ref.trn"] = "".join(trn_line(r, i) for i, r in zip(ids, refs))
    paths = {}
    for name, text in files.items():
        atomic_write_text(out / name, text)
        paths[name] = out / name
    return paths


def write_alignments(out_dir: str | Path, ids: Sequence[str], hyps: Sequence[Hypothesis]) -> dict[str, Path]:
    """Writes `align.jsonl` (as hyp.jsonl) and `align.ctm` (`utt-id 1 start duration word confidence`,
    NIST CTM, readable by sclite's `ctm` mode); returns name -> path."""
    if len(ids) != len(hyps):
        raise ValueError(f"{len(ids)} ids but {len(hyps)} alignments")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = "".join(json.dumps(hypothesis_record(i, h), ensure_ascii=False) + "\n" for i, h in zip(ids, hyps))
    ctm = ctm_text(ids, hyps)
    paths = {}
    for name, text in (("align.jsonl", jsonl), ("align.ctm", ctm)):
        atomic_write_text(out / name, text)
        paths[name] = out / name
    return paths


def ctm_text(ids: Sequence[str], hyps: Sequence[Hypothesis]) -> str:
    """NIST CTM lines, one per timed word: `utt-id 1 start duration word confidence` (sclite's `ctm` mode)."""
    return "".join(f"{i} 1 {s:.2f} {e - s:.2f} {w} {c:.4f}\n"
                   for i, h in zip(ids, hyps) for w, (s, e), c in zip(h.words, h.word_times, h.word_conf))


def subtitle_cues(hyp: Hypothesis, duration: float, max_words: int = 12, max_seconds: float = 6.0,
                  max_gap: float = 1.0) -> list[tuple[float, float, str]]:
    """Groups timed words into cues `(start_s, end_s, text)`: a new cue starts after `max_words` words, when a
    cue would last longer than `max_seconds`, or at a pause longer than `max_gap`. Times are clamped to
    `[0, duration]`, so cues are in order, never overlap and lie inside the audio. Without word times (beam
    search with timestamps off) the whole text is one cue over the whole file."""
    if not hyp.words:
        return []
    if len(hyp.word_times) != len(hyp.words):
        return [(0.0, duration, hyp.text)]
    cues: list[tuple[float, float, str]] = []
    words: list[str] = []
    start = end = 0.0
    for word, (w0, w1) in zip(hyp.words, hyp.word_times):
        w0, w1 = min(max(w0, end if words or cues else 0.0), duration), min(w1, duration)
        if words and (len(words) >= max_words or w1 - start > max_seconds or w0 - end > max_gap):
            cues.append((start, end, " ".join(words)))
            words = []
        if not words:
            start = w0
        words.append(word)
        end = max(w1, start)
    cues.append((start, end, " ".join(words)))
    return cues


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_text(cues: Sequence[tuple[float, float, str]]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    return "".join(f"{k}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n\n"
                   for k, (a, b, text) in enumerate(cues, 1))


def vtt_text(cues: Sequence[tuple[float, float, str]]) -> str:
    """WebVTT: the `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    return "WEBVTT\n\n" + "".join(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{text}\n\n" for a, b, text in cues)
