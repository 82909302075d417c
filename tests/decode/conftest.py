"""Constructed CTC emissions with known answers, for decoding and alignment tests."""

from __future__ import annotations

import random

import pytest
import torch

from w2v2cli.vocab import Vocabulary

LETTERS = list("ETAOINSHRDLUCMFWYPVBGKQJXZ'")


@pytest.fixture(scope="session")
def vocab() -> Vocabulary:
    """A fairseq-style letter vocabulary: <s> (blank) <pad> </s> <unk> | then letters (32 tokens)."""
    return Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|"] + LETTERS, blank=0, word_sep="|", unk="<unk>")


def frames_for(text: str, vocab: Vocabulary, per_letter: int = 2, lead: int = 3, tail: int = 3):
    """A frame-level CTC path for `text` in fairseq's label form (`|` after every word): each letter
    `per_letter` frames, one blank after each letter, `|` after each word. Returns (tokens, word spans)
    where word spans are the known (first_frame, end_frame) of each word's letters."""
    path = [vocab.blank] * lead
    spans = []
    for word in text.split():
        start = len(path)
        for k, letter in enumerate(word):
            path += [vocab.index[letter]] * per_letter
            end = len(path)
            path.append(vocab.blank)
        spans.append((start, end))
        path += [vocab.index["|"], vocab.blank]
    path += [vocab.blank] * tail
    return path, spans


def emissions(path, vocab_size: int, probs=None, alternatives=None) -> torch.Tensor:
    """Log-probabilities [F, V]: frame f gives `probs[f]` (default 0.9) to `path[f]`; `alternatives[f] =
    (token, p)` moves probability p to another token; the rest is spread evenly over the other tokens."""
    frames = len(path)
    out = torch.empty(frames, vocab_size, dtype=torch.float64)
    for f, tok in enumerate(path):
        p = 0.9 if probs is None else probs[f]
        alt = (alternatives or {}).get(f)
        rest_mass = 1.0 - p - (alt[1] if alt else 0.0)
        n_rest = vocab_size - 1 - (1 if alt else 0)
        out[f] = rest_mass / n_rest
        out[f, tok] = p
        if alt:
            out[f, alt[0]] = alt[1]
    return out.log().float()


CONFUSABLE = {"E": "A", "A": "E", "O": "U", "U": "O", "T": "D", "D": "T", "N": "M", "M": "N", "S": "Z", "I": "Y"}


def noisy_emissions(text: str, vocab: Vocabulary, rng: random.Random, flip: float = 0.25):
    """Emissions of `text` where each confusable letter is, with probability `flip`, more likely its
    confusable partner (0.5 vs 0.4) at every one of its frames: greedy decoding then misspells it."""
    path, _ = frames_for(text, vocab)
    alternatives, probs = {}, [0.9] * len(path)
    f = 0
    while f < len(path):
        tok = path[f]
        letter = vocab.tokens[tok]
        run = 1
        while f + run < len(path) and path[f + run] == tok:
            run += 1
        if letter in CONFUSABLE and rng.random() < flip:
            for g in range(f, f + run):
                probs[g] = 0.4
                alternatives[g] = (vocab.index[CONFUSABLE[letter]], 0.5)
        f += run
    return emissions(path, len(vocab), probs, alternatives)


@pytest.fixture
def make_path():
    return frames_for


@pytest.fixture
def make_emissions():
    return emissions


@pytest.fixture
def make_noisy():
    return noisy_emissions
