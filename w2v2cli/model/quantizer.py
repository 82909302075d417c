"""Gumbel-softmax product quantizer (G codebooks x V entries) of wav2vec 2.0.

    >>> q = GumbelVectorQuantizer(in_features=512, num_groups=2, num_vars=320, codevector_dim=256)
    >>> out = q(torch.randn(100, 512), temperature=2.0)      # out.quantized [100, 256], out.codes [100, 2]

Training: a hard one-hot sample of each group's logits with straight-through Gumbel-softmax gradients at the
given temperature. Eval: the argmax entry. The selected entries of the G codebooks are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """quantized `[N, codevector_dim]`; codes `[N, G]` chosen entries; code_perplexity: perplexity of the
    batch-averaged hard choices (summed over groups); prob_perplexity: same for the averaged softmax
    (the diversity loss's input, differentiable); temperature: the one used."""

    quantized: Tensor
    codes: Tensor
    code_perplexity: Tensor
    prob_perplexity: Tensor
    temperature: float


def gumbel_temperature(latent_temp: tuple[float, float, float], update: int) -> float:
    """fairseq's schedule: max(start * decay ** update, end)."""
    start, end, decay = latent_temp
    return max(start * decay ** update, end)


def _perplexity(probs: Tensor) -> Tensor:
    """probs `[G, V]` (rows sum to 1) -> sum over groups of exp(entropy)."""
    return torch.exp(-torch.xlogy(probs, probs).sum(dim=-1)).sum()


class GumbelVectorQuantizer(nn.Module):
    """Input `[N, in_features]` -> `QuantizerOutput`. Parameters: `codevectors [1, G*V, codevector_dim/G]`,
    `weight_proj` Linear(in_features -> G*V)."""

    def __init__(self, in_features: int, num_groups: int, num_vars: int, codevector_dim: int):
        super().__init__()
        if codevector_dim % num_groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not divisible by num_groups {num_groups}")
        self.num_groups, self.num_vars = num_groups, num_vars
        self.codevectors = nn.Parameter(torch.empty(1, num_groups * num_vars, codevector_dim // num_groups))
        self.weight_proj = nn.Linear(in_features, num_groups * num_vars)
        nn.init.uniform_(self.codevectors)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)

    @property
    def num_codevectors(self) -> int:
        return self.num_groups * self.num_vars

    def forward(self, x: Tensor, temperature: float = 2.0) -> QuantizerOutput:
        n = x.shape[0]
        g, v = self.num_groups, self.num_vars
        logits = self.weight_proj(x).float().view(n, g, v)
        codes = logits.argmax(dim=-1)  # [N, G]
        hard = F.one_hot(codes, v).to(logits.dtype)  # [N, G, V]
        denom = max(n, 1)
        code_ppl = _perplexity(hard.sum(0) / denom)
        soft = logits.softmax(dim=-1)
        prob_ppl = _perplexity(soft.sum(0) / denom)
        if self.training:
            # straight-through Gumbel-softmax: the hard one-hot of (logits + gumbel noise) forward,
            # the soft sample's gradient backward
            sample = F.gumbel_softmax(logits, tau=temperature, hard=True, dim=-1)
            codes = sample.argmax(dim=-1)
            onehot = sample
        else:
            onehot = hard
        onehot = onehot.to(self.codevectors.dtype)
        # [G, N, V] @ [G, V, d] -> [G, N, d] -> [N, G*d]
        books = self.codevectors.view(g, v, -1)
        quantized = torch.bmm(onehot.transpose(0, 1), books).transpose(0, 1).reshape(n, -1)
        return QuantizerOutput(quantized, codes, code_ppl, prob_ppl, float(temperature))
