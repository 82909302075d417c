"""ONNX export of a fine-tuned CTC model, checked against PyTorch, and running the file with onnxruntime.

    >>> report = export_onnx("exp/ft/best", "exp/ft/model.onnx")      # fp32; fails if > 1e-4 off PyTorch
    >>> report.max_abs_diff                                           # 6e-06
    >>> export_onnx("exp/ft/best", "exp/ft/model.onnx", int8=True)    # also model.int8.onnx: MatMul weights int8
    >>> onnx_model = load_onnx("exp/ft/model.onnx", threads=4)
    >>> logits, frames = onnx_model.run(waveforms, lengths)               # numpy [B, F, V] float32, [B] int64

The graph maps `waveforms` `[batch, samples]` float32 (16 kHz, zero-padded; normalised per utterance first when
the metadata says `normalize_audio: true`) and `lengths` `[batch]` int64 (valid samples) to `logits`
`[batch, frames, vocab]` float32 (`log_softmax` over the last axis gives CTC log-probabilities; frames past an
utterance's `frame_lengths` are padding) and `frame_lengths` `[batch]` int64. Batch and length axes are dynamic.
Every valid frame is the utterance's unbatched result, as in PyTorch's eval mode.

The exporter is `torch.onnx.export(dynamo=True)` (torch.export, then onnxscript): the default since torch 2.9,
while the TorchScript exporter (`dynamo=False`) is deprecated and cannot export the complex STFT of the log-mel
front end. torch.export also refuses a branch on the values of an input instead of baking the example's branch into
the graph, which is what makes the dynamic axes trustworthy. The model is traced in `model.wav2vec2.exporting`
mode: the plain batched path, without the CPU fast paths (per-utterance loop, oneDNN packed weights).

The file is self-contained: `metadata_props` hold the vocabulary, the model config, the sample rate, the audio
normalisation, the frame stride and receptive field (for timestamps and windowing) and the blank id, all under
`w2v2.` keys (`METADATA_KEYS`). `--int8` also writes `NAME.int8.onnx` (the fp32 file stays: it is the checked
reference and the baseline of a WER comparison): onnxruntime's dynamic quantisation of the MatMul weights (the
linear layers: transformer, projection, CTC head) to int8 per output channel, activations quantised per call; the
convolutions and the log-mel front end's filterbank MatMul stay fp32 (`front_end_matmuls`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2v2cli.checkpoint.formats import load_model_any
from w2v2cli.checkpoint.hf_dir import SAMPLE_RATE
from w2v2cli.checkpoint.io import LoadedCheckpoint
from w2v2cli.config import from_dict, to_dict
from w2v2cli.errors import CheckpointError, ConfigError, ToolMissingError
from w2v2cli.model.components import InputShapeError
from w2v2cli.model.config import ModelConfig
from w2v2cli.vocab import Vocabulary

FORMAT_NAME = "w2v2-onnx"
FORMAT_VERSION = 1
OPSET = 18
INPUTS = ("waveforms", "lengths")
OUTPUTS = ("logits", "frame_lengths")
TOLERANCE = 1e-4  # max |logit difference| to PyTorch on the check batch for an fp32 export
METADATA_KEYS = ("format", "version", "precision", "sample_rate", "normalize_audio", "frame_stride",
                 "receptive_field", "blank_id", "vocab", "model_config", "inputs", "outputs", "source")
_PREFIX = "w2v2."
_CHECK_SECONDS = (1.5, 1.1, 0.6)  # the check batch: another batch size and other lengths than the trace's


@dataclass
class OnnxExport:
    """What `export_onnx` wrote: the fp32 file and, with `int8`, the quantised one beside it; the max |logit
    difference| of each to PyTorch on the check batch, the check batch's shape and the metadata stored."""

    path: Path
    int8_path: Path | None
    max_abs_diff: float
    int8_max_abs_diff: float | None
    check_shape: tuple[int, int]
    metadata: dict[str, str] = field(default_factory=dict)


def int8_path_for(path: str | os.PathLike) -> Path:
    """Where `--int8` writes the quantised model beside `path`: `model.onnx` -> `model.int8.onnx`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def file_size(path: Path) -> int:
    """Bytes of an ONNX model with its external weights file, if it has one (models over 2 GB)."""
    return sum(p.stat().st_size for p in [path, *path.parent.glob(f"{path.name}.data")])


@dataclass
class OnnxModel:
    """An exported model opened with onnxruntime: the session and what its metadata says (`cfg` and `vocab` as a
    checkpoint's, `precision` fp32 or int8, `metadata` the raw `w2v2.` strings)."""

    path: Path
    session: Any  # onnxruntime.InferenceSession
    cfg: ModelConfig
    vocab: Vocabulary
    precision: str
    metadata: dict[str, str]

    def run(self, waveforms: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """waveforms `[B, T]` float32, lengths `[B]` valid samples -> (logits `[B, F, V]`, frame lengths `[B]`)."""
        waveforms = np.ascontiguousarray(waveforms, dtype=np.float32)
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        rf = self.cfg.receptive_field
        if waveforms.ndim != 2 or lengths.shape != (waveforms.shape[0],) or waveforms.shape[0] == 0:
            raise InputShapeError(f"expected waveforms [batch, samples] and lengths [batch], got "
                                  f"{waveforms.shape} and {lengths.shape}")
        if (lengths < rf).any() or (lengths > waveforms.shape[1]).any():
            raise InputShapeError(f"lengths {lengths.tolist()} must be between the receptive field ({rf}) and "
                                  f"{waveforms.shape[1]} samples")
        logits, frames = self.session.run(list(OUTPUTS), {INPUTS[0]: waveforms, INPUTS[1]: lengths})
        return logits, frames


# ---------------------------------------------------------------------------------------------- export
def export_onnx(ckpt: str | os.PathLike, out: str | os.PathLike, int8: bool = False,
                tolerance: float | None = None, loaded: LoadedCheckpoint | None = None) -> OnnxExport:
    """Exports the CTC checkpoint `ckpt` (ours, a transformers directory or a fairseq `.pt`), or an already `loaded`
    one, to `out` (fp32); checks it against PyTorch (CheckpointError beyond `tolerance`, default TOLERANCE); with
    `int8` also writes the quantised model (`int8_path_for(out)`). Files move into place only when all is done (an
    existing one is replaced); a failure leaves nothing behind."""
    _require("onnx", "onnxscript", "onnxruntime")
    tolerance = TOLERANCE if tolerance is None else tolerance
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"the output {out} should end in .onnx", hint="w2v2 decode and transcribe go by it")
    loaded = loaded or load_model_any(ckpt, device="cpu")
    _check_exportable(loaded)
    model = loaded.model.float().eval()
    metadata = onnx_metadata(loaded, "fp32")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _trace(model, loaded.cfg, tmp / out.name, metadata)
        check = check_batch(loaded.cfg)
        diff = max_logit_difference(model, tmp / out.name, *check)
        if not diff <= tolerance:
            off = "gives other frame counts than" if diff == float("inf") else f"is {diff:.2e} off"
            raise CheckpointError(f"the ONNX graph of {loaded.path} {off} PyTorch's logits on a check batch of shape "
                                  f"{tuple(check[0].shape)} (allowed: {tolerance:g}); nothing written",
                                  hint="run with --debug and report it; --tolerance raises the limit")
        int8_diff = None
        if int8:
            quantize_int8(tmp / out.name, tmp / int8_path_for(out).name, {**metadata, _PREFIX + "precision": "int8"})
            int8_diff = max_logit_difference(model, tmp / int8_path_for(out).name, *check)
        for path in tmp.iterdir():  # the models, and their external weights files for models over 2 GB
            os.replace(path, out.parent / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return OnnxExport(out, int8_path_for(out) if int8 else None, diff, int8_diff, tuple(check[0].shape),
                      {k[len(_PREFIX):]: v for k, v in metadata.items()})


def _require(*modules: str) -> None:
    """ToolMissingError naming the first of `modules` that cannot be imported."""
    import importlib.util  # noqa: PLC0415

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ToolMissingError(f"ONNX export and inference need the Python package {name}",
                                   hint="pip install onnx onnxscript onnxruntime")


def _check_exportable(loaded: LoadedCheckpoint) -> None:
    if loaded.kind != "ctc" or loaded.vocab is None:
        raise CheckpointError(f"{loaded.path} is a {loaded.kind} checkpoint; ONNX export needs a fine-tuned CTC "
                              "model with its vocabulary", hint="fine-tune it first: w2v2 finetune --init ...")


def onnx_metadata(loaded: LoadedCheckpoint, precision: str) -> dict[str, str]:
    """The `w2v2.` metadata_props of an export of `loaded` (strings; JSON for the vocabulary and the config)."""
    cfg, vocab = loaded.cfg, loaded.vocab
    values = {
        "format": FORMAT_NAME, "version": str(FORMAT_VERSION), "precision": precision,
        "sample_rate": str(SAMPLE_RATE), "normalize_audio": json.dumps(bool(cfg.normalize_audio)),
        "frame_stride": str(cfg.hop), "receptive_field": str(cfg.receptive_field), "blank_id": str(vocab.blank),
        "vocab": json.dumps(vocab.to_dict(), ensure_ascii=False),
        "model_config": json.dumps(to_dict(cfg), ensure_ascii=False),
        "inputs": f"waveforms [batch, samples] float32 at {SAMPLE_RATE} Hz, zero-padded (each utterance normalised "
                  "to zero mean, unit variance first when normalize_audio is true); lengths [batch] int64 samples",
        "outputs": "logits [batch, frames, vocab] float32 (log_softmax: CTC log-probabilities; frame f covers "
                   "samples [f * frame_stride, f * frame_stride + receptive_field)); frame_lengths [batch] int64",
        "source": json.dumps({"path": str(loaded.path), **to_dict(loaded.provenance or {})}, ensure_ascii=False,
                             default=str),  # YAML may have read a date
    }
    return {_PREFIX + key: values[key] for key in METADATA_KEYS}


def _trace(model: torch.nn.Module, cfg: ModelConfig, path: Path, metadata: dict[str, str]) -> None:
    """torch.onnx.export (dynamo) of `model` in export mode, with dynamic batch and samples, metadata added."""
    from w2v2cli.model.wav2vec2 import exporting  # noqa: PLC0415

    gen = torch.Generator().manual_seed(0)
    samples = max(SAMPLE_RATE, 2 * cfg.receptive_field)
    waves = torch.randn(2, samples, generator=gen) * 0.1
    lengths = torch.tensor([samples, samples * 3 // 4])
    # DYNAMIC: an error if the trace fixes an axis to the example's size; the batch of one and the one-frame length
    # stay allowed (torch's conv shape rules separate them from the others; the ONNX ops do not)
    dynamic = torch.export.Dim.DYNAMIC
    with exporting(model), torch.no_grad(), _quiet():
        try:
            program = torch.onnx.export(
                model, (waves, lengths), dynamo=True, input_names=list(INPUTS), output_names=list(OUTPUTS),
                dynamic_shapes={"waveforms": {0: dynamic, 1: dynamic}, "lengths": {0: dynamic}}, opset_version=OPSET,
                optimize=True, verbose=False)
        except Exception as err:  # torch.export / onnxscript errors have no common base class
            raise CheckpointError(f"torch.onnx.export failed: {type(err).__name__}: {str(err).splitlines()[0]}",
                                  hint="run with --debug for the traceback") from err
    program.model.metadata_props.update(metadata)
    program.model.producer_name = "w2v2"
    program.save(path)


def check_batch(cfg: ModelConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded random batch of 3 utterances of different lengths (another size than the traced example)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([max(int(s * SAMPLE_RATE), cfg.receptive_field) for s in _CHECK_SECONDS])
    waves = torch.zeros(len(lengths), int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        waves[i, :n] = torch.randn(n, generator=gen) * 0.1
    return waves, lengths


def max_logit_difference(model: torch.nn.Module, path: Path, waves: torch.Tensor, lengths: torch.Tensor) -> float:
    """Max |logit difference| between onnxruntime on `path` and `model` (eval mode, as decoding runs it) over the
    valid frames of the batch; inf when the frame counts differ."""
    session = _session(path, threads=None, device="cpu")
    logits, frames = session.run(list(OUTPUTS), {INPUTS[0]: waves.numpy(), INPUTS[1]: lengths.numpy()})
    with torch.inference_mode():
        ref, ref_frames = model(waves, lengths)
    if frames.tolist() != ref_frames.tolist():
        return float("inf")
    return max(float(np.abs(logits[i, :n] - ref[i, :n].numpy()).max()) for i, n in enumerate(frames.tolist()))


def quantize_int8(src: Path, dest: Path, metadata: dict[str, str]) -> None:
    """onnxruntime's dynamic quantisation of `src`'s MatMul weights to int8 (per channel) into `dest`, with
    `metadata` (precision int8) on it."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    large = file_size(src) > 2 ** 31 - 1  # protobuf's limit: the quantised weights go to an external file too
    front_end = front_end_matmuls(onnx.load(str(src), load_external_data=False))
    with _quiet():  # it advises a pre-processing step whose symbolic shape inference fails on dynamic lengths
        quantize_dynamic(src, dest, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8, per_channel=True,
                         use_external_data_format=large, nodes_to_exclude=front_end)
    proto = onnx.load(str(dest), load_external_data=False)
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(dest))


#: initializer-name prefix of the feature encoder's weights: its MatMuls stay fp32 in an int8 export
FRONT_END_PREFIX = "wav2vec2.feature_extractor."


def front_end_matmuls(proto) -> list[str]:
    """Names of the MatMul nodes that multiply by a feature-encoder weight (the log-mel front end's mel filterbank).
    They stay fp32: their input is a power spectrum whose values span many orders of magnitude, and quantising it to
    8 bits per call turns the quiet mel bins into zeros (on the demo's log-mel model: every transcript wrong)."""
    weights = {i.name for i in proto.graph.initializer if i.name.startswith(FRONT_END_PREFIX)}
    return [n.name for n in proto.graph.node if n.op_type == "MatMul" and any(i in weights for i in n.input)]


@contextmanager
def _quiet() -> Iterator[None]:
    """No warnings and no log records below ERROR while the exporter and the quantiser run (torch.onnx logs the
    torchvision ops it skips, onnxruntime's quantiser warns through the root logger)."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


# ---------------------------------------------------------------------------------------------- loading
def _session(path: Path, threads: int | None, device: str):
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per core
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(f"--device {device}: this onnxruntime has no CUDA execution provider",
                              hint="pip install onnxruntime-gpu, or decode with --device cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    elif device != "cpu":
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own pybind11 classes (Fail, InvalidProtobuf, ...)
        raise CheckpointError(f"onnxruntime cannot load {path}: {' '.join(str(err).split())}") from None


def load_onnx(path: str | os.PathLike, threads: int | None = None, device: str = "cpu") -> OnnxModel:
    """Opens an exported model with onnxruntime (CPU, or CUDA where installed); its config and vocabulary come from
    the metadata. CheckpointError for a missing file or one that `w2v2 export onnx` did not write."""
    _require("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model {path} does not exist" if not path.exists() else
                              f"{path} is not a file (an ONNX model is one .onnx file)")
    session = _session(path, threads, device)
    raw = session.get_modelmeta().custom_metadata_map
    meta = {k[len(_PREFIX):]: v for k, v in raw.items() if k.startswith(_PREFIX)}
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} holds no w2v2 metadata (vocabulary, model config): not written by w2v2",
                              hint="export it with: w2v2 export onnx CHECKPOINT OUT.onnx")
    if int(meta.get("version", "0")) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: w2v2 ONNX format version {meta['version']} is newer than this w2v2 reads",
                              hint="upgrade w2v2")
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (list(INPUTS), list(OUTPUTS)):
        raise CheckpointError(f"{path}: inputs {names[0]} and outputs {names[1]}, expected {list(INPUTS)} and "
                              f"{list(OUTPUTS)}")
    try:
        cfg = from_dict(ModelConfig, json.loads(meta["model_config"]), source=f"{path}: model_config")
        vocab = Vocabulary.from_dict(json.loads(meta["vocab"]), source=f"{path}: vocab")
    except (KeyError, json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: unreadable w2v2 metadata ({err})") from None
    return OnnxModel(path, session, cfg, vocab, meta.get("precision", "fp32"), meta)
