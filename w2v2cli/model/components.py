"""Building blocks of wav2vec 2.0: conv feature encoder, feature projection, positional conv, transformer.

    >>> enc = ConvFeatureEncoder([(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2, mode="group_norm")
    >>> feats, frames = enc(torch.randn(2, 16000), torch.tensor([16000, 8000]))   # [2, 512, 49], [49, 24]

Each module takes explicit numbers, never a config object; shapes are given as `[batch, frames, features]`.
Padding travels with the tensors as `lengths` (valid samples or frames per utterance) or as a key padding
mask (`True` = padding). Variants (group-norm vs layer-norm conv, post-LN vs pre-LN transformer) are flags.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from w2v2cli.errors import W2V2Error
from w2v2cli.model.config import conv_output_length, receptive_field
from w2v2cli.model.cpu_kernels import caches_allowed, linear, weights_key
from w2v2cli.model.masking import uniform


class InputShapeError(W2V2Error, ValueError):
    """Audio or tensors of a shape the model cannot use; the message names the shape received."""


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """`F.dropout` that costs nothing when it would do nothing (p == 0 or eval mode)."""
    return F.dropout(x, p, True) if training and p > 0.0 else x


def padding_mask_from_lengths(lengths: Tensor, max_len: int) -> Tensor:
    """`[B]` valid lengths -> `[B, max_len]` bool, True where the position is padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class _GradMultiply(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` backward (fairseq's feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


def grad_multiply(x: Tensor, scale: float) -> Tensor:
    return x if scale == 1.0 else _GradMultiply.apply(x, scale)


class ConvLayer(nn.Module):
    """Conv1d -> optional norm -> GELU.

    norm: None, "group" (GroupNorm with one group per channel, over time) or "layer" (LayerNorm over channels).
    Input `[B, C_in, T]`, output `[B, C_out, T']` with `T' = (T - kernel) // stride + 1`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool, norm: str | None):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.norm = nn.GroupNorm(out_channels, out_channels, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels, elementwise_affine=True)
        elif norm is None:
            self.norm = None
        else:
            raise ValueError(f"norm must be None, 'group' or 'layer', got {norm!r}")

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Output frames from `lengths` input frames: floor((L - kernel) / stride) + 1."""
        return conv_output_length(lengths, self.kernel, self.stride)

    def _conv(self, x: Tensor) -> Tensor:
        """The convolution. In bf16 on CPUs (bf16 input, or bf16 autocast), layers with several input channels
        run as a channels-last 2-D convolution (`[B, C, 1, T]`, channels innermost): oneDNN computes bf16 in that
        layout, and on plain `[B, C, T]` tensors it reorders every output, which took 38 % of bf16 decoding on an
        AMX Xeon. The result is the same `[B, C_out, T']` tensor, with channels innermost in memory. Layer 0 (one
        input channel) gets the same layout from `_conv_samples`. fp32 keeps `conv1d`: there the channels-last
        path made training steps 10-18 % slower (BENCHMARKS.md)."""
        if not _cpu_bf16(x):
            return self.conv(x)
        if self.conv.in_channels == 1:
            # channels-last group norm is fast forward and slow backward (4x conv1d's whole layer on a Xeon), so
            # layer 0 of group-norm models takes this path only without autograd (decoding, validation)
            if self.norm_kind == "group" and torch.is_grad_enabled():
                return self.conv(x)
            return self._conv_samples(x)
        weight = self.conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, self.conv.bias, stride=(1, self.stride)).squeeze(2)

    def _conv_samples(self, x: Tensor) -> Tensor:
        """Layer 0 in bf16 on CPUs: `[B, 1, T]` samples -> `[B, C, T']` with channels innermost, as one matrix
        product of the `kernel`-sample frames (every `stride` samples, a strided view) with the kernel matrix.
        oneDNN's bf16 convolution with one input channel took 34 ms for 3 x 6 s at 128 channels (this: 1.2 ms),
        most of it reordering its output (BENCHMARKS.md)."""
        frames = x[:, 0].unfold(1, self.kernel, self.stride)  # [B, T', kernel], no copy
        return F.linear(frames, self.conv.weight[:, 0], self.conv.bias).transpose(1, 2)

    def forward(self, x: Tensor, frames: Tensor | None = None) -> Tensor:
        """frames: None, or `[B]` valid output frames per utterance; then a group norm takes its statistics
        over each utterance's valid frames only, so padding does not change the valid frames' values."""
        x = self._conv(x)
        if self.norm_kind == "group":
            if frames is not None:
                x = masked_group_norm(x, frames, self.norm)
            elif _channels_innermost(x):  # the group norm's channels-last kernel
                x = self.norm(x.unsqueeze(2)).squeeze(2)
            else:
                x = self.norm(x)
        elif self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


def _channels_innermost(x: Tensor) -> bool:
    """`x` `[B, C, T]` with several channels stored innermost (what the bf16 CPU conv paths produce)."""
    return x.shape[1] > 1 and x.stride(1) == 1


def _cpu_bf16(x: Tensor) -> bool:
    """True when `x` is on the CPU and an op on it computes in bf16: `x` is bf16, or bf16 autocast is on."""
    return x.device.type == "cpu" and (x.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16))


def masked_group_norm(x: Tensor, frames: Tensor, norm: nn.GroupNorm) -> Tensor:
    """`norm` (one group per channel) over the first `frames[b]` frames of each utterance of `x` `[B, C, T]`.

    The statistics are those of the utterance alone (what `norm` gives it unbatched); frames past its end get
    finite values that mean nothing. Computed in float32 (as autocast runs group norm). `x` may have its channels
    innermost in memory (bf16 layer 0 on CPUs); then the work runs on that layout and the result keeps it.
    """
    b, c, t = x.shape
    if norm.num_groups != c:
        raise ValueError(f"masked_group_norm needs one group per channel, got {norm.num_groups} groups for {c}")
    channels_last = _channels_innermost(x)
    xf = (x.transpose(1, 2) if channels_last else x).float()  # [B, T, C] or [B, C, T], contiguous either way
    time_dim = 1 if channels_last else 2
    per_channel = (1, 1, c) if channels_last else (1, c, 1)
    valid = (torch.arange(t, device=x.device)[None, :] < frames.to(x.device)[:, None]).unsqueeze(3 - time_dim)
    n = frames.to(x.device, torch.float32).view(b, 1, 1)
    mean = xf.masked_fill(~valid, 0.0).sum(time_dim, keepdim=True) / n
    centred = xf - mean
    var = centred.masked_fill(~valid, 0.0).pow(2).sum(time_dim, keepdim=True) / n
    scale = torch.rsqrt(var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight.float().view(per_channel)
    y = centred * scale
    if norm.affine:
        y = y + norm.bias.float().view(per_channel)
    y = y.to(x.dtype)
    return y.transpose(1, 2) if channels_last else y


class ConvFeatureEncoder(nn.Module):
    """The 7-layer conv stack turning raw audio `[B, T]` into features `[B, C, F]`.

    mode "group_norm": GroupNorm on layer 0 only (BASE/LARGE); "layer_norm": LayerNorm after every conv
    (LV-60k/XLSR). `bias` adds conv biases (the layer-norm models have them). `export_mode` (set by
    `wav2vec2.exporting`): the padding-free group norm whenever it is asked for, padded batch or not (for tracing).
    """

    export_mode: bool = False

    def __init__(self, conv_layers: list[tuple[int, int, int]], mode: str = "group_norm", bias: bool = False):
        super().__init__()
        if mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"mode must be 'group_norm' or 'layer_norm', got {mode!r}")
        layers = []
        in_ch = 1
        for i, (out_ch, kernel, stride) in enumerate(conv_layers):
            norm = "layer" if mode == "layer_norm" else ("group" if i == 0 else None)
            layers.append(ConvLayer(in_ch, out_ch, kernel, stride, bias, norm))
            in_ch = out_ch
        self.conv_layers = nn.ModuleList(layers)
        self.receptive_field = receptive_field(conv_layers)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frames produced from `lengths` samples (floor((L - k) / s) + 1 per layer)."""
        for layer in self.conv_layers:
            lengths = layer.output_lengths(lengths)
        return lengths

    def check_input(self, waveforms: Tensor, lengths: Tensor | None) -> None:
        """Raises InputShapeError for input the conv stack cannot turn into at least one frame."""
        if waveforms.dim() != 2:
            raise InputShapeError(f"expected waveforms of shape [batch, samples], got {tuple(waveforms.shape)}")
        if waveforms.shape[0] == 0:
            raise InputShapeError(f"empty batch: waveforms of shape {tuple(waveforms.shape)}")
        if waveforms.shape[1] == 0:
            raise InputShapeError(f"zero-length audio: waveforms of shape {tuple(waveforms.shape)}")
        if waveforms.shape[1] < self.receptive_field:
            raise InputShapeError(
                f"waveforms of shape {tuple(waveforms.shape)} are shorter than the model's receptive field "
                f"({self.receptive_field} samples = one output frame)",
                hint="drop or pad utterances shorter than the receptive field",
            )
        if lengths is not None:
            if lengths.shape != (waveforms.shape[0],):
                raise InputShapeError(
                    f"lengths of shape {tuple(lengths.shape)} do not match waveforms of shape {tuple(waveforms.shape)}"
                )
            too_short = lengths < self.receptive_field
            too_long = lengths > waveforms.shape[1]
            if bool((too_short | too_long).any()):
                i = int(torch.nonzero(too_short | too_long)[0])
                raise InputShapeError(
                    f"utterance {i} has length {int(lengths[i])} samples in a batch of shape {tuple(waveforms.shape)}; "
                    f"lengths must be between the receptive field ({self.receptive_field}) and {waveforms.shape[1]}"
                )

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None,
                exclude_padding_from_norm: bool = False) -> tuple[Tensor, Tensor | None]:
        """`[B, T]` audio (+ `[B]` sample lengths) -> `[B, C, F]` features (+ `[B]` frame lengths).

        exclude_padding_from_norm (with lengths, group-norm mode): layer 0's group norm takes its statistics
        over each utterance's own frames, so every valid frame equals the utterance's unbatched result.
        Without it the zero padding takes part in them, as in fairseq and transformers.
        """
        x = waveforms.unsqueeze(1)
        norm_frames = None
        if exclude_padding_from_norm and lengths is not None:
            first = self.conv_layers[0]
            frames0 = first.output_lengths(lengths)
            if first.norm_kind == "group" and (self.export_mode or
                                               bool((frames0 < first.output_lengths(x.shape[-1])).any())):
                norm_frames = frames0
        for i, layer in enumerate(self.conv_layers):
            x = layer(x, norm_frames) if i == 0 else layer(x)
        return x, (self.output_lengths(lengths) if lengths is not None else None)


class FbankFeatureEncoder(nn.Module):
    """A log-mel front end: raw audio `[B, T]` -> log mel filterbank -> per-utterance mean/variance normalisation
    -> a small learned conv stack -> features `[B, C, F]`, with the conv encoder's interface.

    `conv_layers[0]` = (mel bins, window, hop) in samples: fixed (no parameters), torchaudio's power spectrogram
    (Hann window, FFT of the window's length, no centring) through its HTK mel filterbank (20 Hz to 7.6 kHz at
    16 kHz), log with a 1e-6 floor. The rest are learned `(channels, kernel, stride)` conv layers with GELU and
    no norm. Lengths follow the conv encoder's `floor((L - k) / s) + 1` rule for every layer, so
    `ModelConfig.num_frames`, `hop` and `receptive_field` hold unchanged: `[(80, 400, 160), (192, 3, 1),
    (128, 2, 2)]` gives 25 ms windows every 10 ms and 50 frames a second, the conv stack's rate. This is the
    log-mel input of Zhang et al. 2020 ("Pushing the limits of semi-supervised learning") and w2v-BERT, in
    place of a raw-waveform conv stack, which needs far more audio (and CPU time) to learn a filterbank. The
    normalisation takes each utterance's own valid frames only (training and eval alike): padding never changes
    a valid frame, and a gain change of the audio changes no feature.
    """

    def __init__(self, conv_layers: list[tuple[int, int, int]], bias: bool = False, sample_rate: int = 16000):
        super().__init__()
        (n_mels, win, hop), rest = conv_layers[0], conv_layers[1:]
        if win < hop or n_mels < 1:
            raise ValueError(f"fbank layer (mel bins, window, hop) must have window >= hop, got {conv_layers[0]}")
        self.win, self.hop = int(win), int(hop)
        self.n_mels, self.sample_rate = int(n_mels), sample_rate
        self._warped: dict[tuple, Tensor] = {}  # (warp, device) -> [WARP_STEPS, bins, n_mels] filterbanks
        # derived constants, not weights: kept out of checkpoints (non-persistent buffers)
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        self.register_buffer("mel_fb", self._mel_filterbank(), persistent=False)  # [win / 2 + 1, n_mels]
        layers, in_ch = [], int(n_mels)
        for out_ch, kernel, stride in rest:
            layers.append(ConvLayer(in_ch, out_ch, kernel, stride, bias, None))
            in_ch = out_ch
        self.conv_layers = nn.ModuleList(layers)
        self.receptive_field = receptive_field(conv_layers)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        lengths = conv_output_length(lengths, self.win, self.hop)
        for layer in self.conv_layers:
            lengths = layer.output_lengths(lengths)
        return lengths

    check_input = ConvFeatureEncoder.check_input

    export_mode: bool = False  # set by `wav2vec2.exporting`: the spectrum in real arithmetic (`_power_spectrum_real`)

    def _power_spectrum_real(self, waveforms: Tensor) -> Tensor:
        """`[B, T]` -> `[B, T', win / 2 + 1]`, the power spectrogram `log_mel` takes from torchaudio, as one strided
        convolution with the windowed DFT's cosine and sine rows (built in float64, a constant of the graph). For
        export: ONNX has no complex tensors, and onnxruntime's STFT op was 5e-4 off torch's FFT on the log mel;
        this DFT is as close to float64 as the FFT (3-5e-5 on the log power)."""
        bins = self.win // 2 + 1
        f64 = dict(dtype=torch.float64, device=waveforms.device)
        angle = torch.outer(torch.arange(bins, **f64), torch.arange(self.win, **f64)) * (2 * math.pi / self.win)
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * self.window.double()  # [2 * bins, win]
        kernel = basis.float().unsqueeze(1)
        spec = F.conv1d(waveforms.unsqueeze(1), kernel, stride=self.hop).transpose(1, 2)  # [B, T', 2 * bins]
        return spec[..., :bins].pow(2) + spec[..., bins:].pow(2)

    WARP_STEPS = 21  # warp factors on an even grid over [1 - warp, 1 + warp]

    def warped_filterbanks(self, warp: float, device: torch.device) -> Tensor:
        """`[WARP_STEPS, bins, n_mels]` mel filterbanks whose frequency axis is scaled by each factor of the grid
        over [1 - warp, 1 + warp] (VTLP, Jaitly & Hinton 2013): with factor a, the filter at f Hz reads the
        spectrum at f / a, so formants move by a, as a shorter (a > 1) or longer vocal tract would move them."""
        key = (float(warp), str(device))
        if key not in self._warped:
            import warnings  # noqa: PLC0415

            with warnings.catch_warnings():  # a < 1 leaves the top filters empty (their frames stay 0 after CMVN)
                warnings.simplefilter("ignore")
                banks = [self._mel_filterbank(a) for a in torch.linspace(1.0 - warp, 1.0 + warp,
                                                                         self.WARP_STEPS).tolist()]
            self._warped[key] = torch.stack(banks).to(device)
        return self._warped[key]

    def _mel_filterbank(self, warp_factor: float = 1.0) -> Tensor:
        """`[win / 2 + 1, n_mels]` HTK mel filterbank, 20 Hz to 7.6 kHz, its frequency axis scaled by
        `warp_factor` (the spectrum's bins read as `warp_factor` times their frequency)."""
        import torchaudio.functional as AF  # noqa: PLC0415 (1.4 s to import: only for models with this front end)

        return AF.melscale_fbanks(self.win // 2 + 1, 20.0, min(7600.0, self.sample_rate / 2), self.n_mels,
                                  self.sample_rate * warp_factor, mel_scale="htk")

    def log_mel(self, waveforms: Tensor, lengths: Tensor | None = None, warp: float = 0.0,
                generator: torch.Generator | None = None, freq_masks: int = 0, freq_mask_width: int = 0) -> Tensor:
        """`[B, T]` audio -> `[B, n_mels, T']` normalised log mel frames (float32 whatever the autocast).
        warp > 0: each utterance's frequency axis is scaled by a factor drawn from [1 - warp, 1 + warp]
        (uniformly over `WARP_STEPS` values, from `generator`). freq_masks > 0: that many bands of mel bins
        per utterance, each of a width drawn from 0..freq_mask_width, are set to 0, the utterance's mean after
        the normalisation (SpecAugment's frequency masks, Park et al. 2019)."""
        with torch.autocast(waveforms.device.type, enabled=False):
            import torchaudio.functional as AF  # noqa: PLC0415

            if self.export_mode:
                power = self._power_spectrum_real(waveforms.float())
            else:
                power = AF.spectrogram(waveforms.float(), 0, self.window, self.win, self.hop, self.win, 2.0, False,
                                       center=False).transpose(1, 2)  # [B, T', win / 2 + 1]
            if warp > 0:
                pick = (uniform((power.shape[0],), generator, power.device) * self.WARP_STEPS).long()
                banks = self.warped_filterbanks(warp, power.device)[pick.clamp(max=self.WARP_STEPS - 1)]
                logmel = torch.log(torch.bmm(power, banks) + 1e-6)
            else:
                logmel = torch.log(power @ self.mel_fb + 1e-6)  # [B, T', n_mels]
            t = logmel.shape[1]
            if lengths is None:
                mean = logmel.mean(1, keepdim=True)
                var = (logmel - mean).pow(2).mean(1, keepdim=True)
            else:
                n = conv_output_length(lengths.to(logmel.device), self.win, self.hop).clamp(1, t)
                valid = (torch.arange(t, device=logmel.device)[None, :] < n[:, None]).unsqueeze(-1)
                count = n.to(logmel.dtype).view(-1, 1, 1)
                mean = logmel.masked_fill(~valid, 0.0).sum(1, keepdim=True) / count
                var = (logmel - mean).masked_fill(~valid, 0.0).pow(2).sum(1, keepdim=True) / count
            normed = (logmel - mean) * torch.rsqrt(var + 1e-5)
            if freq_masks > 0:
                normed = normed.masked_fill(self.freq_mask(normed.shape[0], freq_masks, freq_mask_width, generator,
                                                           normed.device)[:, None, :], 0.0)
            return normed.transpose(1, 2)

    def freq_mask(self, batch: int, count: int, max_width: int, generator: torch.Generator | None,
                  device: torch.device) -> Tensor:
        """`[batch, n_mels]` bool: per utterance the union of `count` bands of mel bins, each of a width drawn
        uniformly from 0..max_width and a start uniformly from the positions where it fits (from `generator`)."""
        draws = uniform((batch, count, 2), generator, device)
        width = (draws[..., 0] * (max_width + 1)).long().clamp(max=max_width)
        start = (draws[..., 1] * (self.n_mels - width + 1)).long().clamp(max=self.n_mels - width)
        bins = torch.arange(self.n_mels, device=device)
        inside = (bins >= start[..., None]) & (bins < (start + width)[..., None])  # [batch, count, n_mels]
        return inside.any(1)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, exclude_padding_from_norm: bool = False,
                warp: float = 0.0, generator: torch.Generator | None = None, freq_masks: int = 0,
                freq_mask_width: int = 0) -> tuple[Tensor, Tensor | None]:
        """`[B, T]` audio (+ `[B]` sample lengths) -> `[B, C, F]` features (+ `[B]` frame lengths).
        The normalisation always excludes padding; the flag is accepted for the conv encoder's interface.
        warp, freq_masks, freq_mask_width, generator: augmentation (see `log_mel`); the model passes
        `fbank_warp` and `fbank_freq_masks` in training only."""
        x = self.log_mel(waveforms, lengths, warp, generator, freq_masks, freq_mask_width)
        dtype = torch.get_autocast_dtype("cpu") if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")) \
            else x.dtype
        x = x.to(dtype)
        for layer in self.conv_layers:
            x = layer(x)
        return x, (self.output_lengths(lengths) if lengths is not None else None)


class FeatureProjection(nn.Module):
    """LayerNorm(conv_dim) -> Linear(conv_dim -> embed_dim) -> dropout. Returns (projected, normalised)."""

    def __init__(self, in_features: int, out_features: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.linear = nn.Linear(in_features, out_features)
        self.dropout = dropout

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`[B, F, C]` -> (`[B, F, D]`, `[B, F, C]` layer-normed features for the quantizer)."""
        normed = self.norm(x)
        return dropout(linear(normed, self.linear), self.dropout, self.training), normed


class ConvPositionalEmbedding(nn.Module):
    """Relative positional information from a grouped conv over time (kernel K, weight norm over dim 2), GELU.

    Parameters in fairseq's layout: `weight_g [1, 1, K]`, `weight_v [D, D/groups, K]`, `bias [D]`;
    the conv weight is `weight_g * weight_v / ||weight_v||` with the norm taken per kernel position.
    Input and output `[B, F, D]`; an even kernel drops the last output frame so lengths are kept.
    """

    def __init__(self, embed_dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_v = nn.Parameter(torch.empty(embed_dim, embed_dim // groups, kernel))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(embed_dim))
        nn.init.normal_(self.weight_v, mean=0.0, std=math.sqrt(4.0 / (kernel * embed_dim)))
        with torch.no_grad():
            self.weight_g.copy_(self._norm_v())

        self._cache: tuple[tuple, Tensor] | None = None

    def _norm_v(self) -> Tensor:
        # the L2 norm over dims (0, 1) per kernel position, as a contiguous column reduction of a
        # [D * D/groups, K] view: 3-4x faster than vector_norm over two leading dims (measured, CPU)
        k = self.weight_v.shape[-1]
        return self.weight_v.reshape(-1, k).pow(2).sum(0).sqrt().view(1, 1, k)

    def weight(self) -> Tensor:
        """The effective conv weight `weight_g * weight_v / ||weight_v||`.

        Without autograd (inference) it is computed once and reused until a parameter changes (in-place
        updates bump `_version`; a new tensor changes `data_ptr`): it costs a pass over 4.7M weights per call.
        """
        if (torch.is_grad_enabled() and (self.weight_v.requires_grad or self.weight_g.requires_grad)) or \
                not caches_allowed(self):
            self._cache = None
            return self.weight_v * (self.weight_g / self._norm_v())
        key = weights_key(self.weight_v, self.weight_g)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.weight_v * (self.weight_g / self._norm_v()))
        return self._cache[1]

    def clear_weight_cache(self) -> None:
        """Forget the cached weight (`cpu_kernels.clear_weight_caches`)."""
        self._cache = None

    def _apply(self, fn, *args, **kwargs):
        self._cache = None  # .to() / .half() / .cuda(): drop a weight computed for the old tensors
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv1d(x.transpose(1, 2), self.weight(), self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`. `[B, F, D]` -> `[B, F, D]`."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """attn_mask: None or bool `[B, 1, 1, F]`, True where a key may be attended to."""
        b, f, d = x.shape
        q = linear(x, self.q_proj).view(b, f, self.num_heads, self.head_dim).transpose(1, 2)
        k = linear(x, self.k_proj).view(b, f, self.num_heads, self.head_dim).transpose(1, 2)
        v = linear(x, self.v_proj).view(b, f, self.num_heads, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return linear(y.transpose(1, 2).reshape(b, f, d), self.out_proj)


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear. `[B, F, D]` -> `[B, F, D]`."""

    def __init__(self, embed_dim: int, ffn_dim: int, activation_dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.activation_dropout = activation_dropout

    def forward(self, x: Tensor) -> Tensor:
        return linear(dropout(linear(x, self.fc1, "gelu"), self.activation_dropout, self.training), self.fc2)


class EncoderLayer(nn.Module):
    """One transformer block; `layer_norm_first` picks pre-LN (LV-60k/XLSR) over post-LN (BASE/LARGE)."""

    def __init__(self, embed_dim: int, ffn_dim: int, num_heads: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, layer_norm_first: bool):
        super().__init__()
        self.attention = SelfAttention(embed_dim, num_heads, attention_dropout)
        self.attention_norm = nn.LayerNorm(embed_dim)
        self.ffn = FeedForward(embed_dim, ffn_dim, activation_dropout)
        self.ffn_norm = nn.LayerNorm(embed_dim)
        self.dropout = dropout
        self.layer_norm_first = layer_norm_first

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        p, training = self.dropout, self.training
        if self.layer_norm_first:
            x = x + dropout(self.attention(self.attention_norm(x), attn_mask), p, training)
            return x + dropout(self.ffn(self.ffn_norm(x)), p, training)
        x = self.attention_norm(x + dropout(self.attention(x, attn_mask), p, training))
        return self.ffn_norm(x + dropout(self.ffn(x), p, training))


class TransformerEncoder(nn.Module):
    """Positional conv + a stack of `EncoderLayer`s with layerdrop.

    Post-LN: `x + pos_conv(x)` -> norm -> dropout -> layers. Pre-LN: `x + pos_conv(x)` -> dropout -> layers -> norm.
    """

    def __init__(self, embed_dim: int, ffn_dim: int, num_layers: int, num_heads: int, conv_pos: int,
                 conv_pos_groups: int, dropout: float, attention_dropout: float, activation_dropout: float,
                 layer_norm_first: bool, layerdrop: float):
        super().__init__()
        self.pos_conv = ConvPositionalEmbedding(embed_dim, conv_pos, conv_pos_groups)
        self.norm = nn.LayerNorm(embed_dim)
        self.layers = nn.ModuleList(
            EncoderLayer(embed_dim, ffn_dim, num_heads, dropout, attention_dropout, activation_dropout,
                         layer_norm_first)
            for _ in range(num_layers)
        )
        self.dropout, self.layerdrop, self.layer_norm_first = dropout, layerdrop, layer_norm_first
        # activation checkpointing: in training, every Nth layer (0, N, 2N, ...) keeps only its input and recomputes
        # its activations in the backward pass (dropout masks included: torch restores the RNG state); 0 = off
        self.checkpoint_every = 0
        # layerdrop draws from this generator when set (FSDP: every rank must run the same layers, or their
        # all-gathers would not pair up); None = torch's global generator
        self.layerdrop_generator: torch.Generator | None = None

    def forward(self, x: Tensor, padding_mask: Tensor | None = None,
                output_hidden_states: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """`[B, F, D]` (+ `[B, F]` bool, True = padding) -> (`[B, F, D]`, hidden states or None).

        Hidden states: the input of the first layer, then the output of every layer (pre-LN: before the
        final norm), as transformers reports them. Layers skipped by layerdrop are not repeated.
        """
        attn_mask = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
            attn_mask = (~padding_mask)[:, None, None, :]
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.norm(x)
        x = dropout(x, self.dropout, self.training)
        hidden = [x] if output_hidden_states else None
        every = self.checkpoint_every if self.training and torch.is_grad_enabled() else 0
        for i, layer in enumerate(self.layers):
            # layerdrop: the draw uses torch's CPU generator, so no device sync and reproducible from the seed
            if self.training and self.layerdrop > 0.0 and \
                    float(torch.rand((), generator=self.layerdrop_generator)) < self.layerdrop:
                continue
            if every and i % every == 0:
                x = checkpoint(layer, x, attn_mask, use_reentrant=False)
            else:
                x = layer(x, attn_mask)
            if hidden is not None:
                hidden.append(x)
        if self.layer_norm_first:
            x = self.norm(x)
        return x, hidden
