"""`w2v2 export onnx`: tiny random CTC models of each front-end family exported, run by onnxruntime and compared
with our PyTorch logits on batches of other sizes and lengths than the export saw; metadata, int8, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from w2v2cli.checkpoint import load_model_any
from w2v2cli.checkpoint.io import load_checkpoint, save_checkpoint
from w2v2cli.checkpoint.onnx import TOLERANCE, export_onnx, front_end_matmuls, load_onnx
from w2v2cli.cli.app import app
from w2v2cli.errors import CheckpointError
from w2v2cli.model import build_model, cpu_kernels, model_preset
from w2v2cli.model.wav2vec2 import exporting
from w2v2cli.vocab import Vocabulary

VOCAB = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|"] + list("ETAOINSHRDLUCMFWYPVBGKQJXZ'"))
SMALL = dict(encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96, encoder_attention_heads=4,
             conv_pos=16, conv_pos_groups=4, final_dim=24, latent_vars=16, vocab_size=len(VOCAB))
CONV = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
FAMILIES = {
    "group_norm": dict(conv_layers=CONV),  # BASE / LARGE: group-norm conv, post-LN
    "layer_norm": dict(conv_layers=CONV, extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True,
                       normalize_audio=True),  # LV-60k / XLSR: layer-norm conv with bias, pre-LN
    "fbank": dict(extractor_mode="fbank", conv_layers=[(40, 400, 160), (32, 3, 1), (32, 2, 2)]),  # log mel
}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict:
    """family -> a saved tiny CTC checkpoint with random weights (norm gains and biases random too)."""
    root = tmp_path_factory.mktemp("onnx-ckpts")
    out = {}
    for k, (family, changes) in enumerate(FAMILIES.items()):
        cfg = model_preset("tiny", **SMALL, **changes)
        torch.manual_seed(k)
        model = build_model(cfg, "ctc")
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn(p.shape))
        out[family] = save_checkpoint(root / family, model, cfg, "ctc", vocab=VOCAB, provenance={"step": 7})
    return out


@pytest.fixture(scope="module")
def exported(ckpts, tmp_path_factory) -> dict:
    """family -> the fp32 .onnx file; the group-norm model goes through `w2v2 export onnx --int8` (the command's
    output under the key "cli"), the others through `export_onnx`."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for family, path in ckpts.items():
        if family == "group_norm":
            result = CliRunner().invoke(app, ["export", "onnx", str(path), str(root / f"{family}.onnx"), "--int8"])
            assert result.exit_code == 0, result.output
            out["cli"] = result.output
        else:
            report = export_onnx(path, root / f"{family}.onnx")
            assert report.max_abs_diff <= TOLERANCE and report.int8_path is None and report.int8_max_abs_diff is None
        out[family] = root / f"{family}.onnx"
    return out


def _batch(lengths, seed):
    gen = torch.Generator().manual_seed(seed)
    waves = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        waves[i, :n] = torch.randn(n, generator=gen) * 0.1
    return waves, torch.tensor(lengths)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_export_mode_is_the_plain_batched_path_and_is_restored(family, ckpts):
    """`exporting`: no per-utterance loop (the padded batch runs as one, with masks), no oneDNN packed weights,
    the log-mel spectrum as a real DFT, and still every utterance's unbatched result; all of it undone after."""
    model = load_checkpoint(ckpts[family]).model
    waves, lens = _batch([9000, 6000, 3000], 5)
    with torch.inference_mode():
        ref, ref_frames = model(waves, lens)
    calls = []
    hook = model.wav2vec2.encoder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    with exporting(model), torch.inference_mode():
        assert model.wav2vec2.export_mode and model.wav2vec2.feature_extractor.export_mode
        assert not cpu_kernels.caches_allowed(model.lm_head)
        got, frames = model(waves, lens)
    hook.remove()
    assert calls == [3]  # one batched pass, not three utterances
    assert frames.tolist() == ref_frames.tolist()
    for i, n in enumerate(frames.tolist()):
        assert torch.allclose(got[i, :n], ref[i, :n], atol=TOLERANCE, rtol=0), (family, i)
    assert "export_mode" not in vars(model.wav2vec2) and not model.wav2vec2.export_mode
    assert all(cpu_kernels.caches_allowed(m) for m in model.modules())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnxruntime_logits_match_pytorch_on_other_batches(family, ckpts, exported):
    model = load_checkpoint(ckpts[family]).model
    onnx_model = load_onnx(exported[family], threads=1)
    assert onnx_model.precision == "fp32"
    rf = onnx_model.cfg.receptive_field
    # other batch sizes and lengths than the export traced (2 x 16000) and checked (3 x 24000): one utterance of
    # exactly one frame, five of mixed lengths padded to an odd length, one long one
    for lengths, seed in (([rf], 1), ([20011, 13000, 5000, rf + 7, 20011], 2), ([41000], 3)):
        waves, lens = _batch(lengths, seed)
        logits, frames = onnx_model.run(waves.numpy(), lens.numpy())
        with torch.inference_mode():
            ref, ref_frames = model(waves, lens)
        assert frames.dtype == np.int64 and frames.tolist() == ref_frames.tolist()
        assert logits.shape == (len(lengths), int(ref_frames.max()), len(VOCAB))
        diff = max(float(np.abs(logits[i, :n] - ref[i, :n].numpy()).max()) for i, n in enumerate(frames.tolist()))
        assert diff <= TOLERANCE, (family, lengths, diff)


def test_metadata_makes_the_file_self_contained(ckpts, exported):
    cfg = load_checkpoint(ckpts["layer_norm"]).cfg
    path = exported["layer_norm"]
    # read with the onnx package, not our reader: what any other program sees
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["w2v2.format"] == "w2v2-onnx" and props["w2v2.precision"] == "fp32"
    assert props["w2v2.sample_rate"] == "16000" and props["w2v2.normalize_audio"] == "true"
    assert props["w2v2.frame_stride"] == "320" and props["w2v2.receptive_field"] == "400"
    assert props["w2v2.blank_id"] == "0"
    assert json.loads(props["w2v2.vocab"])["tokens"] == VOCAB.tokens
    assert json.loads(props["w2v2.source"])["step"] == 7
    # and back through our reader: the same config and vocabulary as the checkpoint
    onnx_model = load_onnx(path)
    assert onnx_model.cfg == cfg and onnx_model.vocab == VOCAB and onnx_model.precision == "fp32"
    fbank = load_onnx(exported["fbank"])
    assert fbank.metadata["frame_stride"] == "320" and fbank.metadata["receptive_field"] == "880"
    assert fbank.metadata["normalize_audio"] == "false"


def test_cli_int8_export_beside_the_fp32_one_runs_and_stays_close(ckpts, exported):
    fp32_path = exported["group_norm"]
    out = fp32_path.with_name("group_norm.int8.onnx")
    printed = dict(re.findall(r"max \|diff\| (fp32|int8) vs PyTorch\s*│ ([0-9.e+-]+) ", exported["cli"]))
    assert float(printed["fp32"]) <= TOLERANCE and float(printed["int8"]) > 1e-4, exported["cli"]
    assert "int8 model" in exported["cli"] and "fp32 model" in exported["cli"]
    assert sorted(p.name for p in fp32_path.parent.glob("group_norm*")) == ["group_norm.int8.onnx", "group_norm.onnx"]
    assert not list(fp32_path.parent.glob(".*"))  # no temporary files left
    graph = onnx.load(str(out)).graph
    weights = {init.name for init in graph.initializer}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {node.op_type for node in graph.node}
    # every product with a weight matrix is quantised; attention's products of two activations stay MatMul
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and weights & set(n.input)]
    assert out.stat().st_size < 0.85 * fp32_path.stat().st_size
    onnx_model = load_onnx(out, threads=1)
    assert onnx_model.precision == "int8" and onnx_model.vocab == VOCAB and onnx_model.metadata["blank_id"] == "0"
    waves, lens = _batch([30000, 17000], 4)
    logits, frames = onnx_model.run(waves.numpy(), lens.numpy())
    model = load_checkpoint(ckpts["group_norm"]).model
    with torch.inference_mode():
        ref, _ = model(waves, lens)
    diff = np.concatenate([np.abs(logits[i, :n] - ref[i, :n].numpy()).ravel() for i, n in enumerate(frames)])
    spread = float(ref[0].std())
    # quantisation error: far above fp32's 1e-5, far below the logits' own spread (measured: 0.05 max vs 1.2)
    assert 1e-4 < diff.max() < 0.2 * spread and diff.mean() < 0.02 * spread, (diff.max(), diff.mean(), spread)


def test_int8_keeps_the_log_mel_filterbank_in_fp32(ckpts, tmp_path):
    """The mel filterbank multiplies a power spectrum spanning many orders of magnitude: quantised per call to 8 bits
    it zeroes the quiet bins (on the demo's log-mel model every transcript went wrong, logits 7.1 off). Only the
    weights after the front end are quantised; the int8 model then stays as close as the conv models' do."""
    report = export_onnx(ckpts["fbank"], tmp_path / "fbank.onnx", int8=True)
    graph = onnx.load(str(report.int8_path)).graph
    mel = [n for n in graph.node if "wav2vec2.feature_extractor.mel_fb" in n.input]
    assert [n.op_type for n in mel] == ["MatMul"]  # still a float MatMul on the fp32 filterbank
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in graph.node}
    fp32 = onnx.load(str(tmp_path / "fbank.onnx"))
    assert front_end_matmuls(fp32) == [n.name for n in fp32.graph.node if "wav2vec2.feature_extractor.mel_fb" in n.input]
    waves, lens = _batch([30000, 17000], 5)
    logits, frames = load_onnx(report.int8_path, threads=1).run(waves.numpy(), lens.numpy())
    model = load_checkpoint(ckpts["fbank"]).model
    with torch.inference_mode():
        ref, _ = model(waves, lens)
    diff = np.concatenate([np.abs(logits[i, :n] - ref[i, :n].numpy()).ravel() for i, n in enumerate(frames)])
    assert diff.max() < 0.2 * float(ref[0].std()), (diff.max(), float(ref[0].std()))


def test_refuses_pretraining_checkpoints_missing_files_and_foreign_onnx(tmp_path):
    cfg = model_preset("tiny", **{**SMALL, "vocab_size": 0}, conv_layers=CONV)
    save_checkpoint(tmp_path / "pt", build_model(cfg, "pretrain"), cfg, "pretrain")
    with pytest.raises(CheckpointError, match="is a pretrain checkpoint; ONNX export needs a fine-tuned CTC") as err:
        export_onnx(tmp_path / "pt", tmp_path / "pt.onnx")
    assert "w2v2 finetune" in err.value.hint and not (tmp_path / "pt.onnx").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        export_onnx(tmp_path / "nothing", tmp_path / "x.onnx")
    with pytest.raises(CheckpointError, match="ONNX model .*missing.onnx does not exist"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="onnxruntime cannot load"):
        load_onnx(tmp_path / "junk.onnx")
    # a valid ONNX model that w2v2 did not write: no vocabulary, no audio settings
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), tmp_path / "id.onnx")
    with pytest.raises(CheckpointError, match="no w2v2 metadata") as err:
        load_onnx(tmp_path / "id.onnx")
    assert "w2v2 export onnx" in err.value.hint
    # commands that need a checkpoint (info, --init) name what an .onnx file is instead of failing to unpickle it
    with pytest.raises(CheckpointError, match="is an ONNX export .w2v2 export onnx., not a checkpoint"):
        load_model_any(tmp_path / "id.onnx")


def test_export_fails_beyond_the_tolerance_and_writes_nothing(ckpts, tmp_path):
    result = CliRunner().invoke(app, ["export", "onnx", str(ckpts["fbank"]), str(tmp_path / "m.onnx"),
                                      "--tolerance", "0"])
    assert isinstance(result.exception, CheckpointError), result.output
    assert "off PyTorch's logits on a check batch of shape (3, 24000) (allowed: 0)" in result.exception.message
    assert list(tmp_path.iterdir()) == []
