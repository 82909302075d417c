"""BEST-RQ: self-supervised learning with a random-projection quantizer (Chiu et al. 2022, arXiv 2202.01855).

    >>> cfg = model_preset("tiny_fbank_rq")                       # model.objective: bestrq
    >>> model = build_model(cfg, "pretrain").train()                # a Wav2Vec2ForBestRQ
    >>> out = model(torch.randn(2, 32000), torch.tensor([32000, 24000]))
    >>> loss_sum, sample_size, metrics = bestrq_loss(out)          # from w2v2cli.model.losses

The encoder is wav2vec 2.0's (`Wav2Vec2Model`) behind the log-mel front end (`FbankFeatureEncoder`). Its targets
come from a quantizer that is never trained: the normalised log-mel frames of one encoder frame, stacked, go
through a frozen random projection (Xavier uniform) and pick the nearest entry of a frozen random codebook
(standard normal, l2-normalised) by cosine; a linear head predicts that code from the transformer output at the
masked frames, with cross-entropy over the masked frames only (no distractors, no diversity loss). With
`rq_num_codebooks` N > 1 each codebook has its own projection, codebook and head, and the loss of a frame is the
mean over the N codebooks (so chance stays ln V and the learning rate does not depend on N).

Targets from k-means (`model.rq_targets: kmeans`, `KMeansQuantizer`): the nearest of `rq_codebook_size` centroids
(Euclidean) of the same stacked frames, fitted on training audio before the first update (`fit_targets`): the
targets of HuBERT's first iteration (Hsu et al. 2021: k-means of MFCCs), kept frozen as BEST-RQ's are.

Where the targets come from: `FbankFeatureEncoder.log_mel` of the same audio, without the training-time warping
and frequency masks, so inputs and targets see the same features (the same filterbank and the same per-utterance
mean/variance normalisation over the utterance's valid frames). The front end makes a mel frame every 10 ms and
its conv layers subsample by `rq_stride` (2 for the fbank presets: 20 ms encoder frames), so target j stacks
`rq_stack` frames (default: `rq_stride`, i.e. one encoder frame's worth) centred in the frames encoder frame j sees
(its receptive field in mel frames: 4 for the fbank presets): for 2 of 4, mel frames 2j + 1 and 2j + 2, whose
centre is the centre of encoder frame j. A raw-waveform (conv) model is refused (ConfigError naming
`model.objective`): BEST-RQ is made for log-mel input, and a waveform model would need a second front end whose
frames line up with its 400-sample receptive field; the contrastive objective serves those models.

Departures from the paper, and why:
- Masking: the paper replaces the masked stretches of the log-mel input with noise (N(0, 0.1)), each frame
  starting a 400 ms span with probability 0.01. Here the masks are wav2vec 2.0's: spans drawn by
  `masking.compute_span_mask` over encoder frames, the projected features replaced by the learned mask embedding
  after the feature projection. One masking path serves both objectives (and fine-tuning's augmentation), and
  the front end never sees noise in place of speech (with input masking, its conv layers would mix noise and
  speech at every span edge). The price: the front end's receptive field (4 mel frames) is wider than its stride
  (2), so the unmasked frame just before or after a span saw one of the 2 stacked mel frames of the span's first
  or last frame. The presets mask as SpeechBrain's BEST-RQ recipe does (spans of 4 frames, mask_prob 0.6 in
  fairseq's convention: about 48 % of frames masked).
- One target per encoder frame: the paper stacks 4 frames of 10 ms for its 40 ms Conformer frames; our encoder
  frames are 20 ms, so the presets stack 2 (`rq_stack_frames` may stack more, up to the receptive field).
- Encoder: wav2vec 2.0's post-LN transformer with a convolutional positional embedding, not a Conformer.
- The projection and codebook are drawn from a CPU generator seeded with `model.rq_seed` (stored in the config),
  so two builds with the same seed give the same targets; they are buffers saved with the checkpoint anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from w2v2cli.errors import ConfigError
from w2v2cli.model.components import InputShapeError
from w2v2cli.model.config import ModelConfig, receptive_field
from w2v2cli.model.wav2vec2 import Wav2Vec2Model


def stack_frames(feats: Tensor, frames: int, stack: int, stride: int, offset: int = 0) -> Tensor:
    """`[B, T, C]` frames -> `[B, frames, stack * C]`: row j is frames `j * stride + offset` up to
    `j * stride + offset + stack - 1` concatenated in time order. Raises ValueError when `T` is too short."""
    if feats.dim() != 3:
        raise ValueError(f"expected frames of shape [batch, frames, features], got {tuple(feats.shape)}")
    b, t, c = feats.shape
    if frames <= 0:
        return feats.new_zeros(b, 0, stack * c)
    need = (frames - 1) * stride + offset + stack
    if need > t:
        raise ValueError(f"{frames} stacks of {stack} frames every {stride} from frame {offset} need {need} frames, "
                         f"got frames of shape {tuple(feats.shape)}")
    windows = feats[:, offset:need].unfold(1, stack, stride)  # [B, frames, C, stack], no copy
    return windows.transpose(2, 3).reshape(b, frames, stack * c)


class RandomProjectionQuantizer(nn.Module):
    """BEST-RQ's frozen quantizer: `[..., in_features]` -> codes `[..., num_codebooks]` (long).

    Buffers (persistent, never trained): `projection [N, in_features, dim]` (Xavier uniform: U(-a, a) with
    a = sqrt(6 / (in_features + dim))) and `codebook [N, codebook_size, dim]` (standard normal, each entry
    l2-normalised). The code of x in codebook n is argmax_v cos(x @ projection[n], codebook[n, v]), the entry
    nearest to the l2-normalised projection. Both are drawn from a CPU generator seeded with `seed`, projections
    first, so the same arguments give the same buffers on every machine. Computed in float32 without autocast.
    """

    def __init__(self, in_features: int, codebook_size: int, codebook_dim: int, num_codebooks: int = 1,
                 seed: int = 1):
        super().__init__()
        self.in_features, self.codebook_size = in_features, codebook_size
        self.codebook_dim, self.num_codebooks = codebook_dim, num_codebooks
        g = torch.Generator().manual_seed(seed)
        bound = math.sqrt(6.0 / (in_features + codebook_dim))
        projection = (torch.rand(num_codebooks, in_features, codebook_dim, generator=g) * 2.0 - 1.0) * bound
        codebook = F.normalize(torch.randn(num_codebooks, codebook_size, codebook_dim, generator=g), dim=-1)
        self.register_buffer("projection", projection)
        self.register_buffer("codebook", codebook)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected [..., {self.in_features}] features, got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        with torch.autocast(x.device.type, enabled=False):
            flat = x.reshape(-1, self.in_features).float()
            proj = F.normalize(torch.einsum("ti,nid->ntd", flat, self.projection.float()), dim=-1)  # [N, T, d]
            codes = torch.bmm(proj, self.codebook.float().transpose(1, 2)).argmax(-1)  # [N, T]
        return codes.transpose(0, 1).reshape(*lead, self.num_codebooks)


@dataclass
class KMeansFit:
    """What fitting k-means targets did: frames used, Lloyd iterations run, mean squared distance to the nearest
    centroid (inertia per frame), and the number of frames in the smallest and largest cluster."""

    frames: int
    iterations: int
    inertia: float
    smallest: int
    largest: int


class KMeansQuantizer(nn.Module):
    """HuBERT-style frozen targets (Hsu et al. 2021, first iteration): `[..., in_features]` -> codes `[..., 1]`
    (long), the index of the nearest centroid (Euclidean) of `centroids [1, codebook_size, in_features]`.

    The centroids are a persistent buffer, zero until `fit` (k-means++ seeding drawn from a CPU generator seeded with
    `seed`, then Lloyd iterations, on the CPU in float32) and saved with the checkpoint; `fitted` (a buffer too)
    says whether they were. Codes of an unfitted quantizer are refused (RuntimeError): the trainer fits it before
    the first update (`PretrainTask.prepare_model`). Computed in float32 without autocast.
    """

    def __init__(self, in_features: int, codebook_size: int, seed: int = 1):
        super().__init__()
        self.in_features, self.codebook_size, self.seed = in_features, codebook_size, seed
        self.num_codebooks = 1
        self.register_buffer("centroids", torch.zeros(1, codebook_size, in_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected [..., {self.in_features}] features, got shape {tuple(x.shape)}")
        if not bool(self.fitted):
            raise RuntimeError("k-means targets asked of a quantizer that was never fitted (KMeansQuantizer.fit)")
        lead = x.shape[:-1]
        with torch.autocast(x.device.type, enabled=False):
            codes = nearest(x.reshape(-1, self.in_features).float(), self.centroids[0].float())
        return codes.reshape(*lead, 1)

    @torch.no_grad()
    def fit(self, feats: Tensor, iterations: int = 50) -> KMeansFit:
        """k-means of `feats [T, in_features]` (T >= codebook_size) into the centroids; returns a `KMeansFit`."""
        if feats.dim() != 2 or feats.shape[1] != self.in_features:
            raise ValueError(f"expected frames of shape [T, {self.in_features}], got {tuple(feats.shape)}")
        if feats.shape[0] < self.codebook_size:
            raise ValueError(f"k-means of {self.codebook_size} centroids needs at least as many frames, got "
                             f"{feats.shape[0]}")
        x = feats.detach().float().cpu()
        centroids = kmeans_plus_plus(x, self.codebook_size, torch.Generator().manual_seed(self.seed))
        codes, done = nearest(x, centroids), 0
        for done in range(1, iterations + 1):
            centroids = _lloyd_means(x, codes, centroids)
            new = nearest(x, centroids)
            if torch.equal(new, codes):
                break
            codes = new
        counts = torch.bincount(codes, minlength=self.codebook_size)
        inertia = float(((x - centroids[codes]) ** 2).sum(1).mean())
        self.centroids.copy_(centroids.unsqueeze(0).to(self.centroids))
        self.fitted.fill_(True)
        return KMeansFit(x.shape[0], done, inertia, int(counts.min()), int(counts.max()))


def nearest(x: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """Index of the nearest row of `centroids [K, D]` (Euclidean) for each row of `x [T, D]`, in chunks of rows."""
    c2 = (centroids * centroids).sum(1)
    out = [(c2 - 2.0 * part @ centroids.T).argmin(1) for part in x.split(chunk)]  # ||x||^2 is the same for all K
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): `k` rows of `x [T, D]`, each drawn with probability
    proportional to its squared distance to the nearest row drawn so far."""
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    chosen = [first]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        pick = int(torch.multinomial(d2 / total, 1, generator=generator)) if total > 0 else \
            int(torch.randint(x.shape[0], (1,), generator=generator))
        chosen.append(pick)
        d2 = torch.minimum(d2, ((x - x[pick]) ** 2).sum(1))
    return x[chosen].clone()


def _lloyd_means(x: Tensor, codes: Tensor, centroids: Tensor) -> Tensor:
    """One Lloyd update: each centroid moves to the mean of its frames; an empty one takes the frame farthest from
    its own centroid (so no centroid is wasted)."""
    k = centroids.shape[0]
    sums = torch.zeros_like(centroids).index_add_(0, codes, x)
    counts = torch.bincount(codes, minlength=k)
    new = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None].to(x.dtype), centroids)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        far = ((x - new[codes]) ** 2).sum(1).topk(len(empty)).indices
        new[empty] = x[far]
    return new


@dataclass
class BestRQOutput:
    """logits `[M, N, V]` of the head at the M masked frames of the batch (in the row-major order of the mask),
    N codebooks of V codes; targets `[M, N]` the quantizer's codes there; num_masked = M."""

    logits: Tensor
    targets: Tensor
    num_masked: int


class Wav2Vec2ForBestRQ(nn.Module):
    """Encoder + frozen random-projection quantizer + linear head. Keys: `wav2vec2.*`,
    `rq_quantizer.{projection, codebook}` (buffers), `rq_head.*` (N x V outputs, codebook-major)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.objective != "bestrq":
            raise ConfigError(f"Wav2Vec2ForBestRQ needs model.objective: bestrq, got {cfg.objective!r}")
        self.cfg = cfg
        self.wav2vec2 = Wav2Vec2Model(cfg)
        n_mels = cfg.conv_layers[0][0]
        self.stack, self.stride = cfg.rq_stack, cfg.rq_stride
        # the stacked frames sit in the middle of the mel frames one encoder frame sees
        self.offset = (receptive_field(cfg.conv_layers[1:]) - self.stack) // 2
        self.rq_quantizer: RandomProjectionQuantizer | KMeansQuantizer
        if cfg.rq_targets == "kmeans":
            self.rq_quantizer = KMeansQuantizer(n_mels * self.stack, cfg.rq_codebook_size, cfg.rq_seed)
        else:
            self.rq_quantizer = RandomProjectionQuantizer(n_mels * self.stack, cfg.rq_codebook_size,
                                                          cfg.rq_codebook_dim, cfg.rq_num_codebooks, cfg.rq_seed)
        self.rq_head = nn.Linear(cfg.encoder_embed_dim, cfg.rq_num_codebooks * cfg.rq_codebook_size)

    def stacked_log_mel(self, waveforms: Tensor, lengths: Tensor | None, frames: int) -> Tensor:
        """`[B, frames, rq_stack * n_mels]`: the normalised log-mel frames of each encoder frame, stacked (no
        frequency warping or masks: the targets never see augmentation)."""
        mel = self.wav2vec2.feature_extractor.log_mel(waveforms, lengths)  # [B, n_mels, T'] float32
        return stack_frames(mel.transpose(1, 2), frames, self.stack, self.stride, self.offset)

    @torch.no_grad()
    def fit_targets(self, utterances: Iterable[Tensor], iterations: int = 50) -> KMeansFit:
        """k-means targets (`model.rq_targets: kmeans`): fits the centroids on the stacked log-mel frames of
        `utterances` (1-D waveforms, each normalised on its own as in training)."""
        if not isinstance(self.rq_quantizer, KMeansQuantizer):
            raise ConfigError("fit_targets needs model.rq_targets: kmeans (random targets are drawn, not fitted)")
        frames = []
        for wav in utterances:
            wav = wav.reshape(1, -1).to(self.rq_quantizer.centroids.device)
            f = int(self.wav2vec2.output_lengths(torch.tensor(wav.shape[1])))
            if f > 0:
                frames.append(self.stacked_log_mel(wav, None, f)[0].float().cpu())
        if not frames:
            raise ValueError("fit_targets: no utterance long enough for one encoder frame")
        return self.rq_quantizer.fit(torch.cat(frames), iterations)

    @torch.no_grad()
    def targets(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(codes `[B, F, N]` of every frame, valid frames `[B]`); codes past an utterance's end mean nothing."""
        self.wav2vec2.feature_extractor.check_input(waveforms, lengths)
        lengths = lengths.long() if lengths is not None else \
            torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        frames = self.wav2vec2.output_lengths(lengths)
        f = int(self.wav2vec2.output_lengths(torch.tensor(waveforms.shape[1])))
        return self.rq_quantizer(self.stacked_log_mel(waveforms, lengths, f)), frames

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, mask_time: Tensor | None = None,
                generator: torch.Generator | None = None) -> BestRQOutput:
        """waveforms `[B, T]`, lengths `[B]` valid samples (None = all valid); mask_time `[B, F]` bool (drawn
        from `generator` when None)."""
        enc = self.wav2vec2(waveforms, lengths, mask_time=mask_time, apply_mask=True, generator=generator)
        mask = enc.mask_time
        if mask is None:
            raise InputShapeError(f"no frame was masked in a batch of shape {tuple(waveforms.shape)}",
                                  hint="pretraining needs mask_prob > 0 or an explicit mask_time")
        with torch.no_grad():
            stacked = self.stacked_log_mel(waveforms, lengths.long() if lengths is not None else None,
                                           enc.x.shape[1])
            targets = self.rq_quantizer(stacked[mask.to(stacked.device)])  # [M, N], only where it is needed
        m = targets.shape[0]
        logits = self.rq_head(enc.x[mask]).view(m, self.cfg.rq_num_codebooks, self.cfg.rq_codebook_size)
        return BestRQOutput(logits=logits, targets=targets.to(logits.device), num_masked=m)
