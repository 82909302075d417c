"""Where the logits come from: PyTorch (a checkpoint) or onnxruntime (a file of `w2v2 export onnx`).

    >>> backend = open_backend("exp/ft/model.onnx", DecodeOptions())           # .onnx: onnxruntime (--backend auto)
    >>> backend = open_backend("exp/ft/best", DecodeOptions(dtype="bf16"))     # a checkpoint: PyTorch
    >>> logits, frames = backend.logits(waveforms, lengths)                    # [B, F, V] float32, [B] (CPU)

A backend maps a padded batch (waveforms `[B, T]` float32 and lengths `[B]` valid samples, on the CPU) to logits
`[B, F, V]` float32 and frame lengths `[B]` on the CPU, and says which model config and vocabulary it has (an
ONNX file carries both in its metadata). Everything else, batching, windows of long files, greedy or beam search,
timestamps and alignment, is the same code for both (`run.EmissionModel`, `run.compute_emissions`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from w2v2cli.checkpoint.io import LoadedCheckpoint
from w2v2cli.decode.options import DecodeOptions
from w2v2cli.errors import ConfigError
from w2v2cli.model.config import ModelConfig
from w2v2cli.vocab import Vocabulary

ONNX_SUFFIX = ".onnx"


class EmissionBackend:
    """The interface: `name`, `cfg`, `vocab`, `dtype` (the precision the model runs in) and why, and `logits`."""

    name: str
    cfg: ModelConfig
    vocab: Vocabulary
    dtype: str
    dtype_reason: str

    def logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveforms `[B, T]` float32 (zero-padded), lengths `[B]` -> (logits `[B, F, V]` float32, frames `[B]`)."""
        raise NotImplementedError


class TorchBackend(EmissionBackend):
    """Our model in PyTorch, in eval mode on `device`. dtype "bf16" (or "auto" where it resolves to bf16) casts
    `loaded.model` to bf16 in place, once (`cast_for_inference`)."""

    name = "torch"

    def __init__(self, loaded: LoadedCheckpoint, device: str = "cpu", dtype: str = "fp32"):
        from w2v2cli.runtime import resolve_dtype  # noqa: PLC0415

        _check_ctc(loaded)
        try:
            self.device = torch.device(device)
            self.model = loaded.model.to(self.device).eval()
        except (RuntimeError, AssertionError) as err:
            raise ConfigError(f"cannot use device {device!r}: {err}") from None
        self.cfg, self.vocab = loaded.cfg, loaded.vocab
        self.dtype, self.dtype_reason = resolve_dtype(dtype, str(self.device), training=False)
        self.input_dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float32
        cast_for_inference(self.model, self.dtype)

    @torch.inference_mode()
    def logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = waveforms.to(self.device, self.input_dtype)
        # one utterance has no padding: no lengths, so the model takes its mask-free path
        logits, frames = self.model(batch, lengths.to(self.device) if len(lengths) > 1 else None)
        return logits.float().cpu(), frames.cpu()


class OnnxBackend(EmissionBackend):
    """An exported model run by onnxruntime (`checkpoint.onnx.load_onnx`), in the precision it was exported in
    (fp32, or int8 MatMul weights)."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: str = "cpu", dtype: str = "fp32", threads: int | None = None):
        from w2v2cli.checkpoint.onnx import load_onnx  # noqa: PLC0415 (onnxruntime: only for ONNX files)

        if dtype == "bf16":
            raise ConfigError("--dtype bf16 casts a PyTorch model; an ONNX model runs in the precision it was "
                              "exported in", hint="decode the checkpoint with --dtype bf16, or export a cheaper "
                                                  "model with w2v2 export onnx --int8")
        self.onnx = load_onnx(path, threads=threads, device=device)
        self.cfg, self.vocab = self.onnx.cfg, self.onnx.vocab
        self.dtype = self.onnx.precision
        self.dtype_reason = f"onnxruntime, {Path(path).name} as exported"

    def logits(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, frames = self.onnx.run(waveforms.numpy(), lengths.numpy())
        return torch.from_numpy(logits), torch.from_numpy(frames)


def cast_for_inference(model: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """Casts the weights once (in place) to `dtype` ("bf16" or "fp32") for inference: every op then runs in that
    precision, the conv encoder included, with no per-call weight casts as autocast does. Normalisations keep
    fp32 statistics (the group norm computes in fp32; LayerNorm and softmax accumulate in fp32)."""
    return model.to(torch.bfloat16 if dtype == "bf16" else torch.float32)


def _check_ctc(loaded: LoadedCheckpoint) -> None:
    if loaded.kind != "ctc" or loaded.vocab is None:
        raise ConfigError(f"{loaded.path}: decoding needs a fine-tuned CTC checkpoint with a vocabulary "
                          f"(this one is '{loaded.kind}')", hint="fine-tune it first: w2v2 finetune")


def backend_name(spec: str | os.PathLike | None, backend: str, loaded: LoadedCheckpoint | None = None) -> str:
    """"torch" or "onnxruntime" for `--backend` (auto: onnxruntime for a `.onnx` file); ConfigError where the
    model and the backend do not fit together."""
    is_onnx = loaded is None and spec is not None and Path(spec).suffix.lower() == ONNX_SUFFIX
    if backend == "auto":
        return "onnxruntime" if is_onnx else "torch"
    if backend == "onnxruntime" and not is_onnx:
        raise ConfigError(f"--backend onnxruntime runs an exported .onnx file; {spec} is a checkpoint",
                          hint=f"export it first: w2v2 export onnx {spec} OUT.onnx")
    if backend == "torch" and is_onnx:
        raise ConfigError(f"--backend torch runs a checkpoint; {spec} is an ONNX file",
                          hint="run it with --backend onnxruntime (or auto)")
    return backend


def open_backend(spec: str | os.PathLike | None, options: DecodeOptions, loaded: LoadedCheckpoint | None = None,
                 dict_path: str | os.PathLike | None = None) -> EmissionBackend:
    """The backend for model `spec` (a checkpoint any format `load_model_any` reads, or a `.onnx` file) or an
    already `loaded` checkpoint, as `options.backend`, `device`, `dtype` and `threads` ask."""
    if backend_name(spec, options.backend, loaded) == "onnxruntime":
        if dict_path is not None:  # never silently ignored: the file's own vocabulary would be used instead
            raise ConfigError(f"--dict {dict_path}: {spec} is an exported ONNX file and carries its own vocabulary "
                              "in its metadata", hint="leave --dict out (it is for fairseq CTC .pt files)")
        return OnnxBackend(spec, options.device, options.dtype, options.threads)
    if loaded is None:
        from w2v2cli.checkpoint.formats import load_model_any  # noqa: PLC0415

        loaded = load_model_any(spec, device="cpu", dict_path=dict_path)
    return TorchBackend(loaded, options.device, options.dtype)
