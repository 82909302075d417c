"""Model configuration and the published presets.

    >>> cfg = model_preset("base")              # wav2vec 2.0 BASE (LibriSpeech 960h)
    >>> cfg = model_preset("xlsr", vocab_size=32)
    >>> cfg = model_preset("xlsr_1b")           # XLS-R 1B: 48 x 1280 (xlsr_2b: 48 x 1920)

Field names follow fairseq's `Wav2Vec2Config` so imported checkpoints map one to one.
Values are from the wav2vec 2.0 paper (Baevski et al. 2020) and fairseq's published configs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from w2v2cli.errors import ConfigError

ConvSpec = tuple[int, int, int]  # (channels, kernel, stride)

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
# XLS-R 1B and 2B (and MMS 1B): the XLSR family at 48 layers, 1280 / 1920 wide, 1024-dim quantized targets.
PRESETS["xlsr_1b"] = dict(PRESETS["xlsr"], encoder_layers=48, encoder_embed_dim=1280, encoder_ffn_embed_dim=5120,
                          encoder_attention_heads=16, final_dim=1024)
PRESETS["xlsr_2b"] = dict(PRESETS["xlsr"], encoder_layers=48, encoder_embed_dim=1920, encoder_ffn_embed_dim=7680,
                          encoder_attention_heads=16, final_dim=1024)


def model_preset(name: str, **changes) -> ModelConfig:
    """Returns the named preset ('tiny', 'tiny_fbank', 'base', 'large', 'xlsr', 'xlsr_1b', 'xlsr_2b') with
    `changes` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'", hint=f"choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **changes})
