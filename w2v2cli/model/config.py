"""Model configuration and the published presets.

    >>> cfg = model_preset("base")              # wav2vec 2.0 BASE (LibriSpeech 960h)
    >>> cfg = model_preset("xlsr", vocab_size=32)
    >>> cfg = model_preset("xlsr_1b")           # XLS-R 1B: 48 x 1280 (xlsr_2b: 48 x 1920)
    >>> cfg = model_preset("tiny_fbank_rq")     # the tiny log-mel model pretrained with BEST-RQ (model.objective)

Field names follow fairseq's `Wav2Vec2Config` so imported checkpoints map one to one.
Values are from the wav2vec 2.0 paper (Baevski et al. 2020) and fairseq's published configs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from w2v2cli.errors import ConfigError

ConvSpec = tuple[int, int, int]  # (channels, kernel, stride)

OBJECTIVES = ("contrastive", "bestrq")
RQ_TARGETS = ("random", "kmeans")

DEFAULT_CONV: list[ConvSpec] = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def conv_output_length(length, kernel: int, stride: int):
    """Frames a conv layer makes of `length` input frames: floor((L - kernel) / stride) + 1 (ints or tensors)."""
    return (length - kernel) // stride + 1


def receptive_field(conv_layers) -> int:
    """Input samples seen by one output frame of a conv stack of `(channels, kernel, stride)` layers."""
    rf = 1
    for _, kernel, stride in reversed(conv_layers):
        rf = (rf - 1) * stride + kernel
    return rf


@dataclass
class ModelConfig:
    # feature encoder
    # "group_norm" (BASE/LARGE) or "layer_norm" (LV-60k/XLSR) conv stacks on raw audio; "fbank": a log-mel front
    # end, conv_layers[0] = (mel bins, window, hop) and a small conv stack after it (no fairseq/transformers export)
    extractor_mode: str = "group_norm"
    conv_layers: list[ConvSpec] = field(default_factory=lambda: list(DEFAULT_CONV))
    conv_bias: bool = False
    feature_grad_mult: float = 0.1  # 0 = frozen encoder, run without autograd
    # transformer context network
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False  # pre-LN (LV-60k/XLSR) when true, post-LN (BASE/LARGE) when false
    conv_pos: int = 128
    conv_pos_groups: int = 16
    # regularisation
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    layerdrop: float = 0.05
    final_dropout: float = 0.0  # CTC head only
    # time masking (pretraining: targets; fine-tuning: augmentation)
    mask_prob: float = 0.65
    mask_length: int = 10
    mask_min_masks: int = 2
    # fbank front end only: training-time frequency warping (VTLP), factors drawn from [1 - w, 1 + w] per utterance
    fbank_warp: float = 0.0
    # fbank front end only: training-time frequency masks (SpecAugment): this many bands of up to `width` mel bins
    fbank_freq_masks: int = 0
    fbank_freq_mask_width: int = 0
    # channel masking (fine-tuning)
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 10
    # quantizer and contrastive head (pretraining only)
    num_negatives: int = 100
    cross_sample_negatives: int = 0
    latent_vars: int = 320
    latent_groups: int = 2
    latent_dim: int = 0  # 0: final_dim // latent_groups per group (codevector size = final_dim)
    final_dim: int = 256
    logit_temp: float = 0.1
    latent_temp: tuple[float, float, float] = (2.0, 0.5, 0.999995)  # start, end, decay per update
    # pretraining objective: "contrastive" (wav2vec 2.0: Gumbel quantizer, distractors, diversity loss) or "bestrq"
    # (BEST-RQ, Chiu et al. 2022: predict the codes a frozen random-projection quantizer gives the stacked log-mel
    # frames; needs extractor_mode fbank; w2v2cli/model/bestrq.py). A config without the key is contrastive.
    objective: str = "contrastive"
    # BEST-RQ only: codes per codebook, code size, codebooks (each with its own projection, codebook and head)
    rq_codebook_size: int = 8192
    rq_codebook_dim: int = 16
    rq_num_codebooks: int = 1
    # log-mel frames stacked into one target; 0 = one encoder frame's worth (the stride of the conv layers after the
    # fbank layer: 2 frames of 10 ms for tiny_fbank); at most their receptive field (4 for tiny_fbank)
    rq_stack_frames: int = 0
    # seed of the frozen random projection and codebook: the same seed gives the same targets
    rq_seed: int = 1
    # where BEST-RQ's codes come from: "random" (the paper: a frozen random projection onto a frozen random codebook)
    # or "kmeans" (HuBERT's first iteration: the nearest of rq_codebook_size k-means centroids of the stacked,
    # normalised log-mel frames, fitted on the training audio before the first update, seeded by rq_seed)
    rq_targets: str = "random"
    # CTC head: 0 = no head (pretraining / plain encoder)
    vocab_size: int = 0
    # input: layer-norm models were trained on per-utterance normalised audio
    normalize_audio: bool = False

    def __post_init__(self) -> None:
        if self.extractor_mode not in ("group_norm", "layer_norm", "fbank"):
            raise ConfigError(f"model.extractor_mode must be 'group_norm', 'layer_norm' or 'fbank', "
                              f"got {self.extractor_mode!r}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ConfigError(
                f"model.encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by "
                f"model.encoder_attention_heads ({self.encoder_attention_heads})"
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ConfigError("model.encoder_embed_dim must be divisible by model.conv_pos_groups")
        if self.latent_dim == 0 and self.final_dim % self.latent_groups:
            raise ConfigError("model.final_dim must be divisible by model.latent_groups")
        for name in ("dropout", "attention_dropout", "activation_dropout", "dropout_input", "dropout_features",
                     "layerdrop", "final_dropout", "mask_prob", "mask_channel_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.fbank_warp < 0.5:
            raise ConfigError(f"model.fbank_warp must be in [0, 0.5), got {self.fbank_warp}")
        if self.fbank_freq_masks < 0:
            raise ConfigError(f"model.fbank_freq_masks must be >= 0, got {self.fbank_freq_masks}")
        for name in ("fbank_warp", "fbank_freq_masks"):  # the log-mel front end's augmentations
            if getattr(self, name) and self.extractor_mode != "fbank":
                raise ConfigError(f"model.{name} = {getattr(self, name)} needs model.extractor_mode: fbank "
                                  f"(got {self.extractor_mode})")
        self.conv_layers = [tuple(int(v) for v in spec) for spec in self.conv_layers]  # type: ignore[misc]
        if self.fbank_freq_masks:
            n_mels = self.conv_layers[0][0]
            if not 1 <= self.fbank_freq_mask_width < n_mels:
                raise ConfigError(f"model.fbank_freq_mask_width must be in [1, {n_mels}) (the mel bins of "
                                  f"model.conv_layers[0]) with model.fbank_freq_masks > 0, got "
                                  f"{self.fbank_freq_mask_width}")
        self.latent_temp = tuple(float(v) for v in self.latent_temp)  # type: ignore[assignment]
        self._check_objective()

    def _check_objective(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"model.objective must be 'contrastive' or 'bestrq', got {self.objective!r}")
        for name, low in (("rq_codebook_size", 2), ("rq_codebook_dim", 1), ("rq_num_codebooks", 1),
                          ("rq_stack_frames", 0), ("rq_seed", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"model.{name} must be >= {low}, got {getattr(self, name)}")
        if self.rq_seed >= 2**63:
            raise ConfigError(f"model.rq_seed must be < 2**63, got {self.rq_seed}")
        if self.rq_targets not in RQ_TARGETS:
            raise ConfigError(f"model.rq_targets must be 'random' or 'kmeans', got {self.rq_targets!r}")
        if self.rq_targets == "kmeans" and self.rq_num_codebooks != 1:
            raise ConfigError(f"model.rq_targets: kmeans takes one codebook (model.rq_num_codebooks: 1), got "
                              f"{self.rq_num_codebooks}")
        if self.objective != "bestrq":
            return
        if self.extractor_mode != "fbank":
            raise ConfigError(f"model.objective: bestrq needs the log-mel front end (model.extractor_mode: fbank), "
                              f"got extractor_mode {self.extractor_mode}: its targets are quantised log-mel frames",
                              hint="use the presets tiny_fbank_rq or base_fbank_rq, or model.objective: contrastive "
                                   "for a raw-waveform model")
        if len(self.conv_layers) < 2:
            raise ConfigError("model.objective: bestrq needs a learned conv layer after the fbank layer in "
                              f"model.conv_layers, got {self.conv_layers}")
        most = receptive_field(self.conv_layers[1:])
        if self.rq_stack_frames > most:
            raise ConfigError(f"model.rq_stack_frames must be at most {most} (the log-mel frames one encoder frame "
                              f"sees through model.conv_layers[1:]), got {self.rq_stack_frames}")

    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def codevector_dim(self) -> int:
        """Size of one quantized vector (all groups concatenated)."""
        return self.latent_dim * self.latent_groups if self.latent_dim else self.final_dim

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the conv encoder (400 for the published stack)."""
        return receptive_field(self.conv_layers)

    def num_frames(self, num_samples: int) -> int:
        """Output frames of the conv encoder for `num_samples` input samples (0 when shorter than one frame)."""
        n = int(num_samples)
        for _, kernel, stride in self.conv_layers:
            n = max(0, conv_output_length(n, kernel, stride))
        return n

    @property
    def hop(self) -> int:
        """Samples between output frames (320 = 20 ms at 16 kHz for the published stack)."""
        hop = 1
        for _, _, stride in self.conv_layers:
            hop *= stride
        return hop

    @property
    def rq_stride(self) -> int:
        """BEST-RQ: log-mel frames per encoder frame (the stride of the conv layers after the fbank layer)."""
        return math.prod(stride for _, _, stride in self.conv_layers[1:])

    @property
    def rq_stack(self) -> int:
        """BEST-RQ: log-mel frames stacked into one target (`rq_stack_frames`, 0 = `rq_stride`)."""
        return self.rq_stack_frames or self.rq_stride

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


_LARGE = dict(
    encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096, encoder_attention_heads=16,
    final_dim=768, feature_grad_mult=1.0, latent_temp=(2.0, 0.1, 0.999995),
    dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0, layerdrop=0.0,
)

PRESETS: dict[str, dict] = {
    # Small enough to pretrain on 2 CPU cores in minutes; same 320-sample hop and 400-sample receptive field.
    "tiny": dict(
        conv_layers=[(128, 10, 5)] + [(128, 3, 2)] * 4 + [(128, 2, 2)] * 2,
        encoder_layers=4, encoder_embed_dim=192, encoder_ffn_embed_dim=768, encoder_attention_heads=4,
        conv_pos=32, conv_pos_groups=8, final_dim=64, latent_vars=64, num_negatives=20,
        layerdrop=0.0, feature_grad_mult=1.0,
    ),
    "base": dict(),
    "large": dict(_LARGE),
    # LV-60k / XLSR-53 / XLS-R 300M: layer-norm conv with bias, pre-LN transformer, normalised input.
    "xlsr": dict(_LARGE, extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True, normalize_audio=True,
                 dropout=0.1, attention_dropout=0.1, dropout_input=0.1, dropout_features=0.1, layerdrop=0.1),
}
# The tiny transformer behind a log-mel front end (80 mel bins every 10 ms, one 3-frame conv, a stride-2 conv to 50
# frames a second): trains on 1.8-2.3x the audio per second of `tiny` (bf16-fp32; BENCHMARKS.md, 17th search).
PRESETS["tiny_fbank"] = dict(PRESETS["tiny"], extractor_mode="fbank",
                             conv_layers=[(80, 400, 160), (192, 3, 1), (128, 2, 2)])
# BEST-RQ (model.objective: bestrq) on the log-mel models. Chiu et al. 2022 stack 4 frames of 80 mels (one 40 ms
# encoder frame) and quantise them with one codebook of 8,192 codes of size 16; here one target is one 20 ms encoder
# frame (2 stacked mel frames, rq_stack_frames 0). Masks as SpeechBrain's BEST-RQ recipe: spans of 4 frames, each
# frame starting one with probability 0.15, which is mask_prob 0.6 in fairseq's convention that model.mask_prob
# follows (starts = mask_prob x frames / mask_length; about 48 % of frames masked). The tiny model takes 1,024
# codes: its corpora are hours, not thousands of hours, and its head stays small (192 x 1,024).
_RQ = dict(objective="bestrq", rq_codebook_dim=16, rq_num_codebooks=1, rq_targets="random", mask_prob=0.6,
           mask_length=4)
PRESETS["tiny_fbank_rq"] = dict(PRESETS["tiny_fbank"], **_RQ, rq_codebook_size=1024)
# The same with HuBERT's first-iteration targets (model.rq_targets: kmeans): 256 k-means centroids of the stacked,
# normalised log-mel frames, fitted on the training audio (HuBERT: 100 clusters of MFCCs; log-mel frames are wider).
PRESETS["tiny_fbank_km"] = dict(PRESETS["tiny_fbank_rq"], rq_targets="kmeans", rq_codebook_size=256)
# BASE (12 x 768) behind the log-mel front end with a 512-channel conv stack (conv_dim 512 as BASE), 8,192 codes.
# The front end's gradient is not scaled down (feature_grad_mult 1): BASE scales it for the raw-waveform conv stack.
PRESETS["base_fbank_rq"] = dict(PRESETS["base"], **_RQ, rq_codebook_size=8192, extractor_mode="fbank",
                                conv_layers=[(80, 400, 160), (512, 3, 1), (512, 2, 2)], feature_grad_mult=1.0)
# XLS-R 1B and 2B (and MMS 1B): the XLSR family at 48 layers, 1280 / 1920 wide, 1024-dim quantized targets.
PRESETS["xlsr_1b"] = dict(PRESETS["xlsr"], encoder_layers=48, encoder_embed_dim=1280, encoder_ffn_embed_dim=5120,
                          encoder_attention_heads=16, final_dim=1024)
PRESETS["xlsr_2b"] = dict(PRESETS["xlsr"], encoder_layers=48, encoder_embed_dim=1920, encoder_ffn_embed_dim=7680,
                          encoder_attention_heads=16, final_dim=1024)


def model_preset(name: str, **changes) -> ModelConfig:
    """Returns the named preset ('tiny', 'tiny_fbank', 'tiny_fbank_rq', 'base', 'base_fbank_rq', 'large', 'xlsr',
    'xlsr_1b', 'xlsr_2b') with `changes` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'", hint=f"choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **changes})
