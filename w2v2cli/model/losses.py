"""wav2vec 2.0 objectives as plain functions: the pretraining losses (contrastive, BEST-RQ) and the CTC loss.

    >>> out = model(waveforms, lengths, temperature=2.0)          # a Wav2Vec2ForPreTraining
    >>> loss_sum, sample_size, metrics = pretraining_loss(out)    # loss_sum / sample_size: loss per masked frame
    >>> loss_sum, sample_size, metrics = bestrq_loss(rq_model(waveforms, lengths))   # a Wav2Vec2ForBestRQ

Following fairseq, the diversity and feature-penalty terms are multiplied by the sample size (the number of
masked frames) so that every term of `loss_sum` is a sum over frames and a trainer can divide by the global
sample size (summed over workers) once.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from w2v2cli.model.bestrq import BestRQOutput
from w2v2cli.model.wav2vec2 import PretrainOutput


def contrastive_loss(logits: Tensor, reduction: str = "sum") -> Tensor:
    """InfoNCE: cross-entropy of `[M, 1 + K]` logits with the positive at index 0 (in nats)."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target, reduction=reduction)


def diversity_loss(prob_perplexity: Tensor, num_vars: int) -> Tensor:
    """(G*V - perplexity) / (G*V): 0 when every codebook entry is used equally, ~1 when one is used."""
    return (num_vars - prob_perplexity) / num_vars


def pretraining_loss(out: PretrainOutput, diversity_weight: float = 0.1,
                     feature_penalty_weight: float = 10.0) -> tuple[Tensor, int, dict[str, float]]:
    """(loss_sum, sample_size, metrics). Metrics are per frame (loss, contrastive, diversity) or batch values;
    accuracy counts frames whose positive has the strictly highest logit (a row of all-equal logits counts as
    wrong, as in fairseq)."""
    sample_size = int(out.num_masked)
    contrastive = contrastive_loss(out.logits, reduction="sum")
    diversity = diversity_loss(out.prob_perplexity, out.num_vars)
    loss = contrastive
    if diversity_weight:
        loss = loss + diversity_weight * diversity * sample_size
    if feature_penalty_weight:
        loss = loss + feature_penalty_weight * out.features_pen * sample_size
    with torch.no_grad():
        if sample_size:
            correct = (out.logits.argmax(dim=1) == 0).sum()
            # argmax == argmin == 0 only when every logit of the row is equal: no real prediction
            both = (out.logits.argmax(dim=1) == 0) & (out.logits.argmin(dim=1) == 0)
            correct = correct - both.sum()
        stats = torch.stack([
            loss.detach().float(), contrastive.detach().float(), diversity.detach().float(),
            (correct if sample_size else torch.zeros((), device=loss.device)).float(),
            out.code_perplexity.detach().float(), out.prob_perplexity.detach().float(),
        ]).cpu().tolist()
    denom = max(sample_size, 1)
    metrics = {
        "loss": stats[0] / denom,
        "contrastive": stats[1] / denom,
        "diversity": stats[2],
        "accuracy": stats[3] / denom,
        "code_perplexity": stats[4],
        "prob_perplexity": stats[5],
        "temperature": float(out.temperature),
        "num_masked": float(sample_size),
    }
    return loss, sample_size, metrics


def bestrq_loss(out: BestRQOutput) -> tuple[Tensor, int, dict[str, float]]:
    """(loss_sum, sample_size, metrics) of BEST-RQ: cross-entropy of the head's logits against the quantizer's codes
    over the masked frames only, summed over frames and averaged over codebooks (sample_size = masked frames; chance
    is ln V per frame). Metrics (means over codebooks): loss and accuracy per masked frame, code_usage = distinct
    target codes in the batch / V, code_perplexity = exp(entropy) of the batch's target codes, num_masked."""
    m, n, v = out.logits.shape
    if out.targets.shape != (m, n):
        raise ValueError(f"targets of shape {tuple(out.targets.shape)} do not match logits of shape {(m, n, v)}")
    loss = F.cross_entropy(out.logits.float().reshape(m * n, v), out.targets.reshape(m * n), reduction="sum") / n
    with torch.no_grad():
        correct = (out.logits.argmax(-1) == out.targets).sum().float() / n
        offsets = torch.arange(n, device=out.targets.device) * v
        counts = torch.bincount((out.targets + offsets).reshape(-1), minlength=n * v).view(n, v).float()
        probs = counts / max(m, 1)
        usage = (counts > 0).float().sum(1).mean() / v
        perplexity = torch.exp(-torch.xlogy(probs, probs).sum(1)).mean()
        stats = torch.stack([loss.detach().float(), correct, usage, perplexity]).cpu().tolist()
    denom = max(m, 1)
    metrics = {
        "loss": stats[0] / denom,
        "accuracy": stats[1] / denom,
        "code_usage": stats[2],
        "code_perplexity": stats[3] if m else 0.0,
        "num_masked": float(m),
    }
    return loss, m, metrics


def bits(nats: float) -> float:
    """fairseq logs losses in bits: chance level with K distractors is log2(K + 1)."""
    return nats / math.log(2)


def ctc_loss(logits: Tensor, frames: Tensor, targets: Tensor, target_lengths: Tensor, blank: int = 0,
             zero_infinity: bool = False) -> tuple[Tensor, Tensor]:
    """(CTC loss summed over the batch, fp32 log-probabilities `[B, T, V]`) of `logits [B, T, V]` with `frames [B]`
    valid frames against `targets [B, U]` (padded with -1 beyond `target_lengths [B]`)."""
    lprobs = F.log_softmax(logits.float(), dim=-1)
    targets = targets.clamp(min=0)  # -1 padding lies beyond target_lengths and is never read
    loss = F.ctc_loss(lprobs.transpose(0, 1), targets, frames, target_lengths, blank=blank, reduction="sum",
                      zero_infinity=zero_infinity)
    return loss, lprobs


def min_ctc_frames(ids: Sequence[int]) -> int:
    """Fewest frames a CTC path for `ids` needs: one per token plus a blank between repeated tokens."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)
