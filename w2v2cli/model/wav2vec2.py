"""wav2vec 2.0: the encoder, the pretraining model and the CTC model.

    >>> cfg = model_preset("tiny")
    >>> model = Wav2Vec2ForPreTraining(cfg).train()
    >>> out = model(torch.randn(2, 32000), torch.tensor([32000, 24000]), temperature=2.0)
    >>> loss_sum, sample_size, metrics = pretraining_loss(out)        # from w2v2cli.model.losses
    >>> ctc = Wav2Vec2ForCTC(model_preset("tiny", vocab_size=32)).eval()
    >>> logits, frames = ctc(torch.randn(1, 16000))                   # [1, 49, 32], [49]

Parameter names are our exchange format (see w2v2cli/checkpoint/hf.py for the transformers mapping).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from w2v2cli.errors import ConfigError
from w2v2cli.model.components import (
    ConvFeatureEncoder,
    FbankFeatureEncoder,
    FeatureProjection,
    InputShapeError,
    TransformerEncoder,
    dropout,
    grad_multiply,
    padding_mask_from_lengths,
)
from w2v2cli.model.config import ModelConfig
from w2v2cli.model.cpu_kernels import disable_weight_caches
from w2v2cli.model.masking import compute_channel_mask, compute_span_mask, sample_negatives
from w2v2cli.model.quantizer import GumbelVectorQuantizer


@dataclass
class EncoderOutput:
    """x `[B, F, D]` transformer output; lengths `[B]` valid frames; features `[B, F, C]` conv features after
    the feature layer norm (the quantizer's input); mask_time `[B, F]` bool frames replaced by the mask
    embedding (None when none were); hidden_states: input of the first transformer layer then each layer's
    output (when asked); padding_mask `[B, F]` bool, True = padding (None when the batch has none);
    features_pen: mean squared conv feature over valid frames (fairseq's feature penalty)."""

    x: Tensor
    lengths: Tensor
    features: Tensor
    mask_time: Tensor | None = None
    hidden_states: list[Tensor] | None = None
    padding_mask: Tensor | None = None
    features_pen: Tensor | None = None


@dataclass
class PretrainOutput:
    """logits `[M, 1 + K]` (positive at 0, -inf where a distractor equals the positive) over the M masked frames
    of the batch; features_pen, code_perplexity, prob_perplexity: scalars; num_vars = G * V; temperature used;
    num_masked = M."""

    logits: Tensor
    features_pen: Tensor
    code_perplexity: Tensor
    prob_perplexity: Tensor
    num_vars: int
    temperature: float
    num_masked: int


class Wav2Vec2Model(nn.Module):
    """Conv feature encoder -> feature projection -> (masking) -> transformer encoder.

    In eval mode a padded batch gives every utterance its unbatched result (valid frames, up to float
    rounding): padded keys are masked out of attention and, in group-norm models, layer 0's norm takes its
    statistics over the utterance's own frames. On the CPU such a batch runs one utterance at a time at its
    own length (`unbatch_on_cpu`): a 10 s utterance already fills the GEMMs, so this only removes the padding's
    work. Training mode keeps the batch together and, as fairseq and transformers, lets the zero padding into
    the group norm's statistics. `padding_free_norm = False` (with `unbatch_on_cpu = False`) gives eval mode
    fairseq's and transformers' batch semantics as well. `export_mode` (set by `exporting`) takes the plain batched
    path for every input, for tracing: no per-utterance loop, no branch on the values of `lengths`.
    """

    unbatch_on_cpu: bool = True
    padding_free_norm: bool = True
    export_mode: bool = False

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.extractor_mode == "fbank":
            self.feature_extractor = FbankFeatureEncoder(cfg.conv_layers, cfg.conv_bias)
        else:
            self.feature_extractor = ConvFeatureEncoder(cfg.conv_layers, cfg.extractor_mode, cfg.conv_bias)
        self.feature_projection = FeatureProjection(cfg.conv_dim, cfg.encoder_embed_dim, cfg.dropout_input)
        self.mask_embedding = nn.Parameter(torch.empty(cfg.encoder_embed_dim).uniform_())
        self.encoder = TransformerEncoder(
            cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads,
            cfg.conv_pos, cfg.conv_pos_groups, cfg.dropout, cfg.attention_dropout, cfg.activation_dropout,
            cfg.layer_norm_first, cfg.layerdrop,
        )
        # gradient scale of the conv encoder; 0 runs it without autograd (frozen). The trainer may change it.
        self.feature_grad_mult = cfg.feature_grad_mult
        _init_conv(self.feature_extractor)
        _init_transformer(self.encoder)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frames the model produces from `lengths` samples."""
        return self.feature_extractor.output_lengths(lengths)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, mask_time: Tensor | None = None,
                apply_mask: bool = False, generator: torch.Generator | None = None,
                output_hidden_states: bool = False) -> EncoderOutput:
        """waveforms `[B, T]`, lengths `[B]` valid samples (None = all valid).

        mask_time `[B, F]` bool: frames to replace with the mask embedding. apply_mask=True draws a time mask
        (when mask_time is None and mask_prob > 0) and a channel mask (mask_channel_prob > 0) from `generator`.
        """
        # export mode: the checks of shapes only (a trace keeps no check of the values of lengths)
        self.feature_extractor.check_input(waveforms, None if self.export_mode else lengths)
        if (self.unbatch_on_cpu and not self.export_mode and not self.training and lengths is not None
                and waveforms.device.type == "cpu" and waveforms.shape[0] > 1 and mask_time is None and not apply_mask
                and bool((lengths < waveforms.shape[1]).any())):
            return self._forward_each(waveforms, lengths, output_hidden_states)
        if lengths is not None:
            lengths = lengths.long()
        exclude = self.padding_free_norm and not self.training and lengths is not None
        extra = {}
        if self.training and (self.cfg.fbank_warp > 0 or self.cfg.fbank_freq_masks > 0):
            extra = {"warp": self.cfg.fbank_warp, "generator": generator, "freq_masks": self.cfg.fbank_freq_masks,
                     "freq_mask_width": self.cfg.fbank_freq_mask_width}
        if self.feature_grad_mult > 0:
            feats, conv_frames = self.feature_extractor(waveforms, lengths, exclude_padding_from_norm=exclude, **extra)
            feats = grad_multiply(feats, self.feature_grad_mult)
        else:
            with torch.no_grad():
                feats, conv_frames = self.feature_extractor(waveforms, lengths, exclude_padding_from_norm=exclude,
                                                            **extra)
        feats = feats.transpose(1, 2)  # [B, F, C]
        b, f, _ = feats.shape
        if lengths is None:
            frame_lengths = torch.full((b,), f, dtype=torch.long, device=feats.device)
            padding_mask = None
        else:
            # lengths usually live on the CPU: deciding "padded or not" there costs no device sync
            frame_lengths = conv_frames.clamp(max=f)
            padded = self.export_mode or bool((frame_lengths < f).any())
            frame_lengths = frame_lengths.to(feats.device)
            # nothing padded: take the mask-free fast paths (SDPA without a mask)
            padding_mask = padding_mask_from_lengths(frame_lengths, f) if padded else None
        if padding_mask is None:
            features_pen = feats.float().pow(2).mean()
        else:
            valid = (~padding_mask).unsqueeze(-1)
            features_pen = (feats.float().pow(2) * valid).sum() / (valid.sum() * feats.shape[-1])

        x, normed = self.feature_projection(feats)
        if apply_mask and mask_time is None and self.cfg.mask_prob > 0:
            mask_time = compute_span_mask(frame_lengths, f, self.cfg.mask_prob, self.cfg.mask_length,
                                          self.cfg.mask_min_masks, generator)
        if mask_time is not None:
            if mask_time.shape != (b, f):
                raise InputShapeError(f"mask_time of shape {tuple(mask_time.shape)} does not match {b} x {f} frames")
            mask_time = mask_time.to(x.device, torch.bool)
            if padding_mask is not None:
                mask_time = mask_time & ~padding_mask
            x = torch.where(mask_time.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        if apply_mask and self.cfg.mask_channel_prob > 0:
            channels = compute_channel_mask(b, x.shape[-1], self.cfg.mask_channel_prob, self.cfg.mask_channel_length,
                                            generator, x.device)
            x = x.masked_fill(channels.unsqueeze(1), 0.0)
        x, hidden = self.encoder(x, padding_mask, output_hidden_states)
        return EncoderOutput(x=x, lengths=frame_lengths, features=normed, mask_time=mask_time,
                             hidden_states=hidden, padding_mask=padding_mask, features_pen=features_pen)

    def _forward_each(self, waveforms: Tensor, lengths: Tensor, output_hidden_states: bool) -> EncoderOutput:
        """The padded batch one utterance at a time, each cut to its length; outputs padded back with zeros."""
        b = waveforms.shape[0]
        f = int(self.output_lengths(torch.tensor([waveforms.shape[1]])))
        outs = [self.forward(waveforms[i:i + 1, :n], lengths[i:i + 1], output_hidden_states=output_hidden_states)
                for i, n in enumerate(lengths.tolist())]
        frames = [o.x.shape[1] for o in outs]

        def pad(parts: list[Tensor]) -> Tensor:
            out = parts[0].new_zeros((b, f) + tuple(parts[0].shape[2:]))
            for i, part in enumerate(parts):
                out[i, :part.shape[1]] = part[0]
            return out

        frame_lengths = torch.tensor(frames, dtype=torch.long, device=waveforms.device)
        hidden = None
        if output_hidden_states:
            hidden = [pad([o.hidden_states[k] for o in outs]) for k in range(len(outs[0].hidden_states))]
        # the batch's feature penalty: the mean over all valid frames, i.e. weighted by each utterance's frames
        pen = sum(o.features_pen.float() * n for o, n in zip(outs, frames)) / sum(frames)
        return EncoderOutput(x=pad([o.x for o in outs]), lengths=frame_lengths,
                             features=pad([o.features for o in outs]), mask_time=None, hidden_states=hidden,
                             padding_mask=padding_mask_from_lengths(frame_lengths, f) if min(frames) < f else None,
                             features_pen=pen)


class Wav2Vec2ForPreTraining(nn.Module):
    """Encoder + quantizer + contrastive head. Keys: `wav2vec2.*`, `quantizer.*`, `project_q.*`, `final_proj.*`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2Model(cfg)
        self.quantizer = GumbelVectorQuantizer(cfg.conv_dim, cfg.latent_groups, cfg.latent_vars, cfg.codevector_dim)
        self.project_q = nn.Linear(cfg.codevector_dim, cfg.final_dim)
        self.final_proj = nn.Linear(cfg.encoder_embed_dim, cfg.final_dim)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, mask_time: Tensor | None = None,
                negative_indices: Tensor | None = None, temperature: float | None = None,
                generator: torch.Generator | None = None) -> PretrainOutput:
        """waveforms `[B, T]`, lengths `[B]`. mask_time `[B, F]` bool (drawn when None); negative_indices
        `[M, K]` long into the masked frames in row-major order (drawn when None); temperature: Gumbel
        temperature (default: the schedule's start value, `cfg.latent_temp[0]`)."""
        cfg = self.cfg
        temperature = cfg.latent_temp[0] if temperature is None else temperature
        enc = self.wav2vec2(waveforms, lengths, mask_time=mask_time, apply_mask=True, generator=generator)
        mask = enc.mask_time
        if mask is None:
            raise InputShapeError(f"no frame was masked in a batch of shape {tuple(waveforms.shape)}",
                                  hint="pretraining needs mask_prob > 0 or an explicit mask_time")
        # only the masked frames are predicted, quantized and contrasted
        pred = self.final_proj(enc.x[mask])  # [M, P]
        targets_in = dropout(enc.features[mask], cfg.dropout_features, self.training)
        q = self.quantizer(targets_in, temperature)
        targets = self.project_q(q.quantized)  # [M, P]
        m = pred.shape[0]
        if negative_indices is None:
            negative_indices = sample_negatives(mask, cfg.num_negatives, cfg.cross_sample_negatives, generator)
        elif negative_indices.dim() != 2 or negative_indices.shape[0] != m:
            raise InputShapeError(
                f"negative_indices of shape {tuple(negative_indices.shape)} do not match the {m} masked frames"
            )
        logits = contrastive_logits(pred, targets, negative_indices.to(pred.device), q.codes, cfg.logit_temp)
        return PretrainOutput(logits=logits, features_pen=enc.features_pen, code_perplexity=q.code_perplexity,
                              prob_perplexity=q.prob_perplexity, num_vars=self.quantizer.num_codevectors,
                              temperature=q.temperature, num_masked=m)


def contrastive_logits(pred: Tensor, targets: Tensor, negatives: Tensor, codes: Tensor | None,
                       logit_temp: float, chunk_elements: int = 1 << 24) -> Tensor:
    """Cosine similarities / logit_temp: `[M, 1 + K]`, the own target at 0, `targets[negatives]` after it.

    Computed as matmuls of unit vectors (one `[rows, M]` block at a time) then a gather, instead of
    materialising `[M, K, P]` copies of the distractors. A distractor with the same codes as the positive
    (the same quantized vector) gets -inf, as fairseq and transformers do.
    """
    pred_n = F.normalize(pred.float(), dim=-1)
    targ_n = F.normalize(targets.float(), dim=-1)
    m = pred_n.shape[0]
    pos = (pred_n * targ_n).sum(-1, keepdim=True)
    rows = max(1, chunk_elements // max(m, 1))
    blocks = []
    for start in range(0, m, rows):
        sim = pred_n[start:start + rows] @ targ_n.T  # [rows, M]
        blocks.append(sim.gather(1, negatives[start:start + rows]))
    neg = torch.cat(blocks, 0) if blocks else pred_n.new_zeros(0, negatives.shape[1])
    logits = torch.cat([pos, neg], dim=1) / logit_temp
    if codes is not None and negatives.shape[1] > 0:
        same = (codes[negatives] == codes.unsqueeze(1)).all(-1)  # [M, K]
    else:
        same = negatives == torch.arange(m, device=negatives.device)[:, None]
    return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)


class Wav2Vec2ForCTC(nn.Module):
    """Encoder + final dropout + linear head (`lm_head`), with time/channel masking in training mode."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ConfigError(f"a CTC model needs model.vocab_size > 0, got {cfg.vocab_size}",
                              hint="it is set from the vocabulary")
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2Model(cfg)
        self.lm_head = nn.Linear(cfg.encoder_embed_dim, cfg.vocab_size)
        nn.init.xavier_uniform_(self.lm_head.weight)
        nn.init.zeros_(self.lm_head.bias)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """waveforms `[B, T]`, lengths `[B]` -> (logits `[B, F, V]`, frame lengths `[B]`)."""
        enc = self.wav2vec2(waveforms, lengths, apply_mask=self.training, generator=generator)
        x = dropout(enc.x, self.cfg.final_dropout, self.training)
        return self.lm_head(x), enc.lengths


@contextmanager
def exporting(model: nn.Module) -> Iterator[nn.Module]:
    """Tracing `model` for export (`torch.onnx.export`, `torch.export`): the plain batched ops for every input.

        >>> with exporting(ctc):
        ...     torch.onnx.export(ctc, (waveforms, lengths), "model.onnx", dynamo=False)

    Sets `export_mode` on the modules that have it (the encoder: no per-utterance loop on CPUs, always the padding
    mask; the conv stack: always the padding-free group norm), so the graph does not depend on the example's
    lengths, and turns off the CPU fast paths a trace cannot hold (oneDNN packed weights, the positional conv's
    cached weight: `cpu_kernels.disable_weight_caches`). Everything is restored on exit.
    """
    modules = list(model.modules())
    saved = [(m, m.__dict__.get("export_mode"), m.__dict__.get("w2v2_no_weight_cache")) for m in modules]
    try:
        for module in modules:
            if hasattr(module, "export_mode"):
                module.export_mode = True
        disable_weight_caches(model)
        yield model
    finally:
        for module, mode, no_cache in saved:
            for name, value in (("export_mode", mode), ("w2v2_no_weight_cache", no_cache)):
                if value is None:
                    module.__dict__.pop(name, None)
                else:
                    setattr(module, name, value)


def _init_transformer(encoder: TransformerEncoder) -> None:
    """BERT-style init of the transformer's linear layers (normal, std 0.02; zero bias), as fairseq does."""
    for layer in encoder.layers:
        for lin in (layer.attention.q_proj, layer.attention.k_proj, layer.attention.v_proj,
                    layer.attention.out_proj, layer.ffn.fc1, layer.ffn.fc2):
            nn.init.normal_(lin.weight, mean=0.0, std=0.02)
            nn.init.zeros_(lin.bias)


def _init_conv(extractor: ConvFeatureEncoder | FbankFeatureEncoder) -> None:
    for layer in extractor.conv_layers:
        nn.init.kaiming_normal_(layer.conv.weight)
        if layer.conv.bias is not None:
            bound = 1.0 / math.sqrt(layer.conv.in_channels * layer.conv.kernel_size[0])
            nn.init.uniform_(layer.conv.bias, -bound, bound)


def build_model(cfg: ModelConfig, kind: str) -> nn.Module:
    """kind "pretrain" -> Wav2Vec2ForPreTraining (model.objective contrastive) or Wav2Vec2ForBestRQ (bestrq),
    "ctc" -> Wav2Vec2ForCTC (needs vocab_size > 0), "encoder" -> Wav2Vec2Model."""
    if kind == "pretrain" and cfg.objective == "bestrq":
        from w2v2cli.model.bestrq import Wav2Vec2ForBestRQ  # noqa: PLC0415 (bestrq.py builds on this module)

        model = Wav2Vec2ForBestRQ(cfg)
    elif kind == "pretrain":
        model = Wav2Vec2ForPreTraining(cfg)
    elif kind == "ctc":
        if cfg.vocab_size <= 0:
            raise ConfigError("model.vocab_size must be > 0 for a CTC model", hint="it is set from the vocabulary")
        model = Wav2Vec2ForCTC(cfg)
    elif kind == "encoder":
        model = Wav2Vec2Model(cfg)
    else:
        raise ConfigError(f"unknown model kind {kind!r}", hint="choose pretrain, ctc or encoder")
    return model
