"""Word start/end times and confidences from CTC frames, and forced alignment of known transcripts.

    >>> spans = frame_spans(log_probs.argmax(-1).tolist(), log_probs.max(-1).values.tolist(), blank=0)
    >>> words = word_segments(spans, vocab)                 # [WordSegment("CAT", 0.04, 0.18, 0.93), ...]
    >>> words = forced_align_words(log_probs, "THE CAT", vocab)

A wav2vec 2.0 frame is 20 ms (the conv encoder's hop of 320 samples at 16 kHz), so frame `f` covers
`[f * 0.02, (f + 1) * 0.02)` seconds. A token's span is a run of frames carrying it (blank frames are not
part of any token); a word runs from the first frame of its first token to the end of the last frame of
its last token. A word's confidence is the mean posterior probability of its own tokens over the frames
they occupy (1.0: the model was certain at every frame of the word).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from w2v2cli.errors import DataError

SAMPLE_RATE = 16000
FRAME_HOP = 320  # samples per encoder frame
FRAME_SHIFT = FRAME_HOP / SAMPLE_RATE  # 0.02 s
SPM_WORD_START = "\u2581"  # SentencePiece's word-boundary marker


@dataclass
class TokenSpan:
    """A run of frames `[start, end)` carrying one token; `logp_sum` sums the token's log-probabilities."""

    token: int
    start: int
    end: int
    prob_sum: float  # sum over the span's frames of the token's posterior probability

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class WordSegment:
    """One word with its time span in seconds and its confidence in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float


def frame_spans(frame_tokens: Sequence[int], frame_logp: Sequence[float] | None, blank: int) -> list[TokenSpan]:
    """Merges a frame-level CTC path into token spans: runs of one non-blank token become one span.

    `frame_logp[f]` is the log-probability of `frame_tokens[f]` at frame f (None: probabilities of 1).
    A token repeated with a blank between is two spans, as CTC reads it.
    """
    spans: list[TokenSpan] = []
    prev = None
    for f, tok in enumerate(frame_tokens):
        tok = int(tok)
        p = math.exp(frame_logp[f]) if frame_logp is not None else 1.0
        if tok == blank:
            prev = None
            continue
        if tok == prev:
            spans[-1].end = f + 1
            spans[-1].prob_sum += p
        else:
            spans.append(TokenSpan(tok, f, f + 1, p))
        prev = tok
    return spans


def word_segments(spans: Sequence[TokenSpan], vocab, frame_shift: float = FRAME_SHIFT) -> list[WordSegment]:
    """Groups token spans into words. Letters: the word separator (`|`) ends a word; SentencePiece: a piece
    starting with `▁` begins one. Control symbols (`<s>`, `<pad>`, `</s>`, the blank) are skipped."""
    silent = {vocab.blank} | {vocab.index[t] for t in ("<s>", "<pad>", "</s>") if t in vocab.index}
    sep = vocab.index.get(vocab.word_sep) if vocab.word_sep else None
    spm = getattr(vocab, "kind", "letters") == "spm"
    words: list[WordSegment] = []
    current: list[TokenSpan] = []

    def flush() -> None:
        if not current:
            return
        text = "".join(vocab.tokens[s.token] for s in current)
        if spm:
            text = text.replace(SPM_WORD_START, "")
        if text:
            frames = sum(s.frames for s in current)
            conf = sum(s.prob_sum for s in current) / frames
            words.append(WordSegment(text, current[0].start * frame_shift, current[-1].end * frame_shift, conf))
        current.clear()

    for span in spans:
        if span.token == sep:
            flush()
            continue
        if span.token in silent:
            continue
        if spm and vocab.tokens[span.token].startswith(SPM_WORD_START):
            flush()
        current.append(span)
    flush()
    return words


def alignment_targets(text: str, vocab) -> list[int]:
    """Token ids to force-align for a transcript: letters with the separator between words (none at the
    ends), or the SentencePiece pieces. ValueError names a letter the vocabulary lacks."""
    words = text.split()
    if getattr(vocab, "kind", "letters") == "spm":
        return vocab.encode(" ".join(words))
    # Multi-character symbols (`<unk>`) are matched first, so a greedy output that contains one re-spells.
    multi = sorted((t for t in vocab.tokens if len(t) > 1 and t != vocab.word_sep), key=len, reverse=True)
    ids: list[int] = []
    for k, word in enumerate(words):
        if k and vocab.word_sep:
            ids.append(vocab.index[vocab.word_sep])
        pos = 0
        while pos < len(word):
            token = next((t for t in multi if word.startswith(t, pos)), word[pos])
            idx = vocab.index.get(token)
            if idx is None:
                raise ValueError(f"letter {token!r} of word {word!r} is not in the vocabulary")
            ids.append(idx)
            pos += len(token)
    return ids


def forced_align_words(log_probs: torch.Tensor, text: str, vocab, frame_shift: float = FRAME_SHIFT,
                       utt_id: str | None = None) -> list[WordSegment]:
    """Aligns a known transcript to one utterance's emissions `[frames, vocab]` (log-probabilities) with
    `torchaudio.functional.forced_align`, and returns its words with times and confidences.

    DataError (naming `utt_id`) when a letter is not in the vocabulary or the audio has too few frames for
    the transcript (CTC needs one frame per token plus one between repeated tokens)."""
    import torchaudio.functional as AF

    where = f"utterance {utt_id}: " if utt_id else ""
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [frames, vocab], got shape {tuple(log_probs.shape)}")
    try:
        targets = alignment_targets(text, vocab)
    except ValueError as err:
        raise DataError(f"{where}{err}") from None
    if not targets:
        return []
    frames = log_probs.shape[0]
    repeats = sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    if frames < len(targets) + repeats:
        raise DataError(f"{where}{frames} frames cannot hold the {len(targets)} tokens of the transcript "
                        f"({len(targets) + repeats} frames needed)", hint="is the transcript for this audio?")
    lp = log_probs.detach().float().cpu().unsqueeze(0)
    tgt = torch.tensor([targets], dtype=torch.int32)
    path, scores = AF.forced_align(lp, tgt, blank=vocab.blank)
    return word_segments(frame_spans(path[0].tolist(), scores[0].tolist(), vocab.blank), vocab, frame_shift)
