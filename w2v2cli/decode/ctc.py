"""CTC decoding of emissions: greedy (best path) and beam search with a lexicon and KenLM.

    >>> hyps = greedy_decode(log_probs, lengths, vocab)                     # log_probs [B, F, V]
    >>> hyps[0].text, hyps[0].words, hyps[0].word_times, hyps[0].word_conf
    >>> beam = BeamSearchDecoder(vocab, DecodeOptions(lexicon="exp/lm/lexicon.txt", lm="exp/lm/lm.bin"))
    >>> hyps = beam(log_probs, lengths)

Beam search is torchaudio's `ctc_decoder` (flashlight-text). Our vocabulary becomes its token list as is
(index i of the emissions is token i), with the vocabulary's blank as `blank_token` and its word
separator (`|`) as `sil_token`. With a lexicon (`WORD<TAB>W O R D |` per line, see `w2v2cli.lm`) only
lexicon words are produced and the KenLM model scores words; without one the search is lexicon-free and a
language model, if given, must be over tokens. Times and confidences of a beam hypothesis come from
force-aligning its words to the emissions (`timestamps.forced_align_words`), so greedy and beam outputs
carry the same kind of word timing. The search's options and their defaults are `DecodeOptions`' (options.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from w2v2cli.decode.options import DecodeOptions
from w2v2cli.decode.timestamps import FRAME_SHIFT, WordSegment, forced_align_words, frame_spans, word_segments
from w2v2cli.errors import ConfigError, DataError


@dataclass
class Hypothesis:
    """One decoded utterance: words with `(start_s, end_s)` times and per-word confidences in [0, 1]."""

    words: list[str]
    word_times: list[tuple[float, float]]
    word_conf: list[float]
    text: str
    score: float | None = None  # beam search score (acoustic + LM); None for greedy

    @classmethod
    def from_segments(cls, segments: list[WordSegment], score: float | None = None) -> "Hypothesis":
        return cls(words=[s.word for s in segments], word_times=[(s.start, s.end) for s in segments],
                   word_conf=[s.confidence for s in segments], text=" ".join(s.word for s in segments),
                   score=score)


def _check_emissions(log_probs: torch.Tensor, lengths: torch.Tensor | None, vocab) -> torch.Tensor:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be [batch, frames, vocab], got shape {tuple(log_probs.shape)}")
    if log_probs.shape[-1] != len(vocab):
        raise ValueError(f"emissions have {log_probs.shape[-1]} outputs but the vocabulary has {len(vocab)} tokens")
    batch, frames = log_probs.shape[:2]
    if lengths is None:
        return torch.full((batch,), frames, dtype=torch.long)
    lengths = lengths.detach().to("cpu", torch.long)
    if lengths.shape != (batch,) or bool((lengths < 0).any()) or bool((lengths > frames).any()):
        raise ValueError(f"lengths must be [batch] within [0, {frames}], got {lengths.tolist()}")
    return lengths


@torch.inference_mode()
def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None, vocab,
                  frame_shift: float = FRAME_SHIFT) -> list[Hypothesis]:
    """Best-path decoding: the most probable token per frame, repeats merged, blanks removed.

    `log_probs [B, F, V]` are log-softmax outputs (logits work too for the text; confidences then are not
    probabilities), `lengths [B]` the valid frames of each row (None: all). Word times come from the frames
    of each word's tokens; confidence is the mean probability of those tokens over their frames.
    """
    lengths = _check_emissions(log_probs, lengths, vocab)
    best, ids = log_probs.detach().float().max(dim=-1)
    best, ids = best.cpu(), ids.cpu()
    hyps = []
    for b in range(log_probs.shape[0]):
        n = int(lengths[b])
        spans = frame_spans(ids[b, :n].tolist(), best[b, :n].tolist(), vocab.blank)
        hyps.append(Hypothesis.from_segments(word_segments(spans, vocab, frame_shift)))
    return hyps


BeamConfig = DecodeOptions  # the former name of the beam search's options (the beam fields of DecodeOptions)


def check_lexicon(path: str | Path, vocab) -> int:
    """Validates a lexicon against the vocabulary; returns its number of words. DataError names the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such lexicon") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8") from None
    count = 0
    for no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{path}:{no}: a lexicon line is 'WORD W O R D |', got {line.strip()!r}")
        unknown = [t for t in parts[1:] if t not in vocab.index]
        if unknown:
            raise DataError(f"{path}:{no}: token {unknown[0]!r} of word {parts[0]!r} is not in the model's "
                            f"vocabulary", hint="build the lexicon with the model's letters and case (w2v2 lm build --vocab)")
        count += 1
    if count == 0:
        raise DataError(f"{path}: the lexicon is empty")
    return count


class BeamSearchDecoder:
    """torchaudio `ctc_decoder` over our vocabulary; `__call__(log_probs [B, F, V], lengths [B])`. It reads the
    beam search's fields of `config` (lexicon, lm, beam_size ... timestamps); `frame_shift` is the model's seconds
    per emission frame, for word times."""

    def __init__(self, vocab, config: DecodeOptions | None = None, frame_shift: float = FRAME_SHIFT):
        from torchaudio.models.decoder import ctc_decoder

        cfg = config or DecodeOptions()
        if getattr(vocab, "kind", "letters") != "letters" or not vocab.word_sep:
            raise ConfigError("beam search needs a letter vocabulary with a word separator ('|')",
                              hint="use --decoder viterbi for SentencePiece models")
        if cfg.lexicon is not None:
            check_lexicon(cfg.lexicon, vocab)
        if cfg.lm is not None and not Path(cfg.lm).is_file():
            raise DataError(f"{cfg.lm}: no such language model file")
        self.vocab = vocab
        self.config = cfg
        self.frame_shift = frame_shift
        self.lexicon_free = cfg.lexicon is None
        try:
            self.decoder = ctc_decoder(
                lexicon=str(cfg.lexicon) if cfg.lexicon else None,
                tokens=list(vocab.tokens),
                lm=str(cfg.lm) if cfg.lm else None,
                nbest=cfg.nbest,
                beam_size=cfg.beam_size,
                beam_size_token=cfg.beam_size_token,
                beam_threshold=cfg.beam_threshold,
                lm_weight=cfg.lm_weight,
                word_score=cfg.word_score,
                unk_score=cfg.unk_score,
                sil_score=cfg.sil_score,
                blank_token=vocab.tokens[vocab.blank],
                sil_token=vocab.word_sep,
                unk_word=vocab.unk or "<unk>",
            )
        except RuntimeError as err:  # flashlight/KenLM loading errors
            raise DataError(f"cannot build the beam search decoder: {err}",
                            hint="check --lm (KenLM ARPA or binary) and --lexicon") from None

    def _text(self, hyp) -> str:
        if not self.lexicon_free:
            return " ".join(hyp.words)
        ids = [int(t) for t in hyp.tokens]
        return self.vocab.decode(ids)

    @torch.inference_mode()
    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[Hypothesis]:
        lengths = _check_emissions(log_probs, lengths, self.vocab)
        emissions = log_probs.detach().float().cpu().contiguous()
        results = self.decoder(emissions, lengths.to(torch.int32))
        hyps = []
        for b, nbest in enumerate(results):
            if not nbest:
                hyps.append(Hypothesis([], [], [], "", None))
                continue
            best = nbest[0]
            text = self._text(best)
            if self.config.timestamps and text:
                n = int(lengths[b])
                segs = forced_align_words(emissions[b, :n], text, self.vocab, self.frame_shift)
                hyps.append(Hypothesis.from_segments(segs, float(best.score)))
            else:
                words = text.split()
                hyps.append(Hypothesis(words, [], [], text, float(best.score)))
        return hyps
