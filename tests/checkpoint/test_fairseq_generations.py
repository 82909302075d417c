"""Every fairseq checkpoint generation imports: argparse `args` (2020), a pickled OmegaConf `cfg` (hydra era)
and plain-dict `cfg` (2021+), with and without mask_emb / quantizer / final_proj, and the XLS-R 1B / 2B shapes.

The CTC references are torchaudio's own `wav2vec2_model` with random weights, written into fairseq's key names by
this file (independently of w2v2's importer); the pretraining references are transformers models (ckpt_helpers).
The OmegaConf files are pickled by the real omegaconf (a test-only dependency; w2v2 never imports it).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys

import pytest
import torch
import transformers

from ckpt_helpers import (
    CONV, fairseq_checkpoint, fairseq_model_fields, hf_config, hf_hidden, hf_model, padded_batch, randomize_,
    run_cli, write_dict,
)
from w2v2cli.checkpoint import load_model_any
from w2v2cli.checkpoint.fairseq import model_config_from_fairseq, read_fairseq
from w2v2cli.checkpoint.safe_pickle import load_pickled
from w2v2cli.errors import CheckpointError
from w2v2cli.model import build_model, model_preset

omegaconf = pytest.importorskip("omegaconf")
OmegaConf = omegaconf.OmegaConf

TOL = 1e-4
GENERATIONS = ["args", "omegaconf", "dict"]
FINETUNE = dict(apply_mask=True, mask_prob=0.5, mask_channel_prob=0.25, mask_channel_length=64, layerdrop=0.1,
                final_dropout=0.0, dropout=0.0, attention_dropout=0.0, activation_dropout=0.1, dropout_input=0.0,
                feature_grad_mult=0.0, freeze_finetune_updates=10000)


# ---------------------------------------------------------------------------------------------- references
def torchaudio_ctc(family: str, seed: int, vocab_size: int = 32):
    """torchaudio's wav2vec2_model in the shape of ckpt_helpers.hf_config(family), random weights, eval mode."""
    from torchaudio.models import wav2vec2_model

    layer = family == "lv60"
    torch.manual_seed(seed)
    model = wav2vec2_model(
        extractor_mode="layer_norm" if layer else "group_norm", extractor_conv_layer_config=CONV,
        extractor_conv_bias=layer, encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4, encoder_attention_dropout=0.0,
        encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
        encoder_layer_norm_first=layer, encoder_layer_drop=0.0, aux_num_out=vocab_size,
    )
    return randomize_(model, seed)


_TA_LAYER = [("attention.", "self_attn."), ("layer_norm.", "self_attn_layer_norm."),
             ("feed_forward.intermediate_dense.", "fc1."), ("feed_forward.output_dense.", "fc2."),
             ("final_layer_norm.", "final_layer_norm.")]


def torchaudio_to_fairseq(sd: dict, family: str, weight_norm_names: str) -> dict:
    """torchaudio key names -> a fairseq CTC model's (`w2v_encoder.w2v_model.` + encoder, `w2v_encoder.proj`)."""
    out = {}
    for key, value in sd.items():
        value = value.detach().clone()
        if key.startswith("aux."):
            out["w2v_encoder.proj." + key[4:]] = value
            continue
        if m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.conv\.(\w+)", key):
            name = f"feature_extractor.conv_layers.{m[1]}.0.{m[2]}"
        elif m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(\w+)", key):
            name = f"feature_extractor.conv_layers.{m[1]}.2.{m[2]}" if family == "base" else \
                f"feature_extractor.conv_layers.{m[1]}.2.1.{m[2]}"
        elif key.startswith("encoder.feature_projection.layer_norm."):
            name = "layer_norm." + key.rsplit(".", 1)[1]
        elif key.startswith("encoder.feature_projection.projection."):
            name = "post_extract_proj." + key.rsplit(".", 1)[1]
        elif key.startswith("encoder.transformer.pos_conv_embed.conv."):
            rest = key[len("encoder.transformer.pos_conv_embed.conv."):]
            if weight_norm_names == "g_v":
                rest = {"parametrizations.weight.original0": "weight_g",
                        "parametrizations.weight.original1": "weight_v"}.get(rest, rest)
            name = "encoder.pos_conv.0." + rest
        elif key.startswith("encoder.transformer.layer_norm."):
            name = "encoder.layer_norm." + key.rsplit(".", 1)[1]
        elif m := re.fullmatch(r"encoder\.transformer\.layers\.(\d+)\.(.+)", key):
            name = next(f"encoder.layers.{m[1]}.{dst}{m[2][len(src):]}" for src, dst in _TA_LAYER
                        if m[2].startswith(src))
        else:
            raise KeyError(key)
        out["w2v_encoder.w2v_model." + name] = value
    return out


def fairseq_ctc_file(ta, family: str, generation: str, mask_emb: bool = True, heads: bool = False) -> dict:
    """A fairseq CTC checkpoint of `generation` around torchaudio model `ta`."""
    fields = fairseq_model_fields(hf_config(family))
    normalize = family == "lv60"
    weights = torchaudio_to_fairseq(ta.state_dict(), family, "g_v" if generation == "args" else "param")
    gen = torch.Generator().manual_seed(5)
    if mask_emb:
        weights["w2v_encoder.w2v_model.mask_emb"] = torch.rand(32, generator=gen)
    if heads:  # an older fine-tune that kept its (unused) pretraining heads
        weights["w2v_encoder.w2v_model.quantizer.vars"] = torch.randn(1, 16, 8, generator=gen)
        weights["w2v_encoder.w2v_model.quantizer.weight_proj.weight"] = torch.randn(16, 16, generator=gen)
        weights["w2v_encoder.w2v_model.quantizer.weight_proj.bias"] = torch.randn(16, generator=gen)
        weights["w2v_encoder.w2v_model.project_q.weight"] = torch.randn(12, 16, generator=gen)
        weights["w2v_encoder.w2v_model.final_proj.weight"] = torch.randn(12, 32, generator=gen)
    task = {"_name": "audio_pretraining", "normalize": normalize, "sample_rate": 16000}
    if generation == "args":
        pre = argparse.Namespace(arch="wav2vec2", **fields, normalize=normalize, sample_rate=16000)
        state = {"args": argparse.Namespace(arch="wav2vec_ctc", w2v_args=pre, normalize=normalize, **FINETUNE)}
    else:
        pre_cfg = {"common": {"fp16": True}, "model": {"_name": "wav2vec2", **fields}, "task": task}
        # hydra-era fine-tuning configs point `normalize` at the task with an interpolation
        model = {"_name": "wav2vec_ctc", "w2v_path": "/x/xlsr_53_56k.pt", "w2v_args": pre_cfg,
                 "normalize": "${task.normalize}", **FINETUNE}
        cfg = {"common": {"fp16": True}, "model": model, "task": {"_name": "audio_finetuning", "normalize": normalize,
                                                                   "labels": "ltr"}}
        if generation == "dict":
            model["normalize"] = normalize  # OmegaConf.to_container(cfg, resolve=True) resolved it
        state = {"args": None, "cfg": OmegaConf.create(cfg) if generation == "omegaconf" else cfg}
    state.update({"model": weights, "optimizer_history": [{"num_updates": 77}], "extra_state": {"epoch": 1}})
    return state


def worst_frame_diff(ours: torch.Tensor, ref_fn, wave: torch.Tensor, lengths: torch.Tensor) -> float:
    """Largest |ours - reference| over the valid frames, each utterance run alone through the reference."""
    worst = 0.0
    with torch.no_grad():
        for i, n in enumerate(lengths.tolist()):
            ref = ref_fn(wave[i:i + 1, :n])[0]
            worst = max(worst, (ours[i, :ref.shape[0]] - ref).abs().max().item())
    return worst


# ---------------------------------------------------------------------------------------------- CTC, all generations
@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("family", ["base", "lv60"])
def test_ctc_generation_matches_torchaudio(tmp_path, family, generation):
    ta = torchaudio_ctc(family, seed=11)
    path = tmp_path / "checkpoint_best.pt"
    # files of 2020 were written by torch < 1.6 in the legacy (non-zip) format; both formats occur in the hydra era
    legacy = generation == "args" or (generation == "omegaconf" and family == "base")
    torch.save(fairseq_ctc_file(ta, family, generation), path, _use_new_zipfile_serialization=not legacy)
    write_dict(tmp_path / "dict.ltr.txt")

    loaded = load_model_any(path)
    assert loaded.kind == "ctc" and len(loaded.vocab) == 32
    assert loaded.cfg.normalize_audio is (family == "lv60")
    assert (loaded.cfg.mask_prob, loaded.cfg.layerdrop, loaded.cfg.mask_channel_length) == (0.5, 0.1, 64)
    assert loaded.cfg.extractor_mode == ("layer_norm" if family == "lv60" else "group_norm")
    wave, lengths = padded_batch(seed=12)
    with torch.no_grad():
        logits, _ = loaded.model(wave, lengths)
    worst = worst_frame_diff(logits, lambda w: ta(w)[0], wave, lengths)
    print(f"parity ctc {family} {generation}: {worst:.3g}")
    assert worst <= TOL, worst


def test_ctc_without_mask_emb_and_with_old_heads(tmp_path):
    ta = torchaudio_ctc("lv60", seed=13)
    for k, (mask_emb, heads) in enumerate([(False, False), (True, True)]):
        path = tmp_path / f"m{k}.pt"
        torch.save(fairseq_ctc_file(ta, "lv60", "omegaconf", mask_emb=mask_emb, heads=heads), path)
        write_dict(tmp_path / "dict.ltr.txt")
        imported = read_fairseq(path)
        assert ("mask_embedding" in imported.provenance) is (not mask_emb)
        loaded = load_model_any(path)
        wave, lengths = padded_batch(seed=14)
        with torch.no_grad():
            logits, _ = loaded.model(wave, lengths)
        assert worst_frame_diff(logits, lambda w: ta(w)[0], wave, lengths) <= TOL


# ---------------------------------------------------------------------------------------------- pretraining
@pytest.mark.parametrize("family", ["base", "lv60"])
def test_pretraining_omegaconf_matches_transformers(tmp_path, family):
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, family, seed=21)
    state = fairseq_checkpoint(hf, family, "new", normalize=family == "lv60")
    state["cfg"] = OmegaConf.create(state["cfg"])
    path = tmp_path / "xlsr_53_56k.pt"
    torch.save(state, path)

    loaded = load_model_any(path)
    assert loaded.kind == "pretrain" and loaded.cfg.final_dim == 12 and loaded.cfg.latent_vars == 8
    assert loaded.cfg.normalize_audio is (family == "lv60")
    wave, lengths = padded_batch(seed=22)
    with torch.no_grad():
        ours = loaded.model.wav2vec2(wave, lengths).x
    ref = hf_hidden(hf.wav2vec2, wave, lengths)
    frames = [(int(n) - 400) // 320 + 1 for n in lengths]
    worst = max((ours[i, :f] - ref[i, :f]).abs().max().item() for i, f in enumerate(frames))
    print(f"parity pretrain {family} omegaconf: {worst:.3g}")
    assert worst <= TOL, worst


def test_encoder_without_pretraining_heads_imports_as_encoder(tmp_path):
    """A wav2vec2 file with quantizer, project_q, final_proj and mask_emb stripped is an 'encoder' checkpoint."""
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "lv60", seed=23)
    state = fairseq_checkpoint(hf, "lv60", "new", normalize=True)
    for key in list(state["model"]):
        if key.startswith(("quantizer.", "project_q.", "final_proj.")) or key == "mask_emb":
            del state["model"][key]
    state["cfg"] = OmegaConf.create(state["cfg"])
    torch.save(state, tmp_path / "enc.pt")
    loaded = load_model_any(tmp_path / "enc.pt")
    assert loaded.kind == "encoder"
    wave, lengths = padded_batch(seed=24)
    with torch.no_grad():
        ours = loaded.model(wave, lengths).x
    ref = hf_hidden(hf.wav2vec2, wave, lengths)
    frames = [(int(n) - 400) // 320 + 1 for n in lengths]
    assert max((ours[i, :f] - ref[i, :f]).abs().max().item() for i, f in enumerate(frames)) <= TOL

    state = fairseq_checkpoint(hf, "lv60", "new", normalize=True)
    del state["model"]["final_proj.weight"], state["model"]["final_proj.bias"]
    torch.save(state, tmp_path / "half.pt")
    with pytest.raises(CheckpointError, match="pretraining heads are incomplete: final_proj missing"):
        read_fairseq(tmp_path / "half.pt")


# ---------------------------------------------------------------------------------------------- safety
class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["value", "metadata"])
def test_payload_inside_dictconfig_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / "pwned"
    cfg = OmegaConf.create({"model": {"_name": "wav2vec2", "encoder_layers": 2}, "task": {"normalize": False}})
    node = cfg.model._get_node("encoder_layers")
    if where == "value":
        node.__dict__["_val"] = _Payload(marker)  # bypasses omegaconf's validation, as a forged file would
    else:
        node._metadata.__dict__["ref_type"] = _Payload(marker)
    path = tmp_path / "evil.pt"
    torch.save({"cfg": cfg, "model": {}}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*posix\.system.*could run code"):
        load_pickled(path)
    assert not marker.exists()
    code, err = run_cli("import", "fairseq", path, tmp_path / "out")
    assert code == 1 and "posix.system" in err and not marker.exists() and not (tmp_path / "out").exists()


def test_fairseq_classes_and_non_pickles_are_named(tmp_path):
    # an object of a fairseq class (e.g. a structured config dataclass) pickled by reference to its class
    module = type(sys)("fairseq.dataclass.configs")
    fake = type("FairseqConfig", (), {"__module__": module.__name__})
    module.FairseqConfig = fake
    path = tmp_path / "structured.pt"
    fakes = {"fairseq": type(sys)("fairseq"), "fairseq.dataclass": type(sys)("fairseq.dataclass"),
             module.__name__: module}
    assert not set(fakes) & set(sys.modules)
    sys.modules.update(fakes)
    try:
        torch.save({"cfg": fake(), "model": {}}, path)
    finally:
        for name in fakes:
            del sys.modules[name]
    with pytest.raises(CheckpointError, match=r"objects of fairseq's own classes "
                                              r"\(fairseq.dataclass.configs.FairseqConfig\)") as info:
        load_pickled(path)
    assert "OmegaConf.to_container" in info.value.hint

    (tmp_path / "page.pt").write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(CheckpointError, match="is not a torch checkpoint: neither a zip archive nor a pickle") as info:
        load_pickled(tmp_path / "page.pt")
    assert "could run code" not in info.value.message
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "model.pt"))
    with pytest.raises(CheckpointError, match="is a safetensors file"):
        load_pickled(tmp_path / "model.pt")


def _pretrain_state(**changes):
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "lv60", seed=31)
    state = fairseq_checkpoint(hf, "lv60", "new", normalize=True)
    state["cfg"]["model"].update(changes)
    return state


def test_unsupported_variants_are_named(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(_pretrain_state(layer_type="conformer", pos_enc_type="rel_pos"), path)
    with pytest.raises(CheckpointError, match=r"conformer layers \(layer_type=conformer.*pos_enc_type=rel_pos"):
        read_fairseq(path)
    torch.save(_pretrain_state(_name="wav2vec2_conformer"), path)
    with pytest.raises(CheckpointError, match="'wav2vec2_conformer' is not supported .a wav2vec2-conformer model"):
        read_fairseq(path)
    torch.save(_pretrain_state(layer_type="trf_adp", adp_num=102), path)
    with pytest.raises(CheckpointError, match=r"adapter layers \(layer_type=trf_adp, adp_num=102: MMS-style"):
        read_fairseq(path)
    state = _pretrain_state()
    for name in ("W_a", "W_b", "b_a", "b_b", "ln_W", "ln_b"):
        state["model"][f"encoder.layers.0.adapter_layer.{name}"] = torch.zeros(2, 2)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"6 adapter weights \(encoder.layers.0.adapter_layer.W_a.*not supported"):
        read_fairseq(path)
    torch.save(_pretrain_state(_name="hubert"), path)
    with pytest.raises(CheckpointError, match="'hubert' is not supported .a HuBERT model"):
        read_fairseq(path)


# ---------------------------------------------------------------------------------------------- XLS-R 1B / 2B
XLSR_COUNTS = {  # (pretraining model, encoder + 32-token CTC head); equal to transformers' count of the same shape
    "xlsr_1b": (965_514_752, 962_538_400),
    "xlsr_2b": (2_162_932_352, 2_159_321_120),
}


@pytest.mark.parametrize("preset,width", [("xlsr_1b", 1280), ("xlsr_2b", 1920)])
def test_xlsr_big_presets_count_and_import_from_cfg(preset, width):
    cfg = model_preset(preset)
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.final_dim) == \
        (48, width, 4 * width, 1024)
    with torch.device("meta"):  # counts without allocating 4-9 GB
        ours = [sum(p.numel() for p in build_model(c, k).parameters())
                for c, k in ((cfg, "pretrain"), (cfg.replace(vocab_size=32), "ctc"))]
        hf_cfg = transformers.Wav2Vec2Config(
            hidden_size=width, num_hidden_layers=48, num_attention_heads=16, intermediate_size=4 * width,
            feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True, proj_codevector_dim=1024,
            codevector_dim=1024, vocab_size=32)
        theirs = [sum(p.numel() for p in cls(hf_cfg).parameters())
                  for cls in (transformers.Wav2Vec2ForPreTraining, transformers.Wav2Vec2ForCTC)]
    assert ours == theirs == list(XLSR_COUNTS[preset])

    # the fairseq config of the published file gives the same shape
    fields = dict(fairseq_model_fields(hf_config("lv60")), encoder_layers=48, encoder_embed_dim=width,
                  encoder_ffn_embed_dim=4 * width, encoder_attention_heads=16, final_dim=1024, latent_vars=320,
                  latent_dim=0, conv_pos=128, conv_pos_groups=16,
                  conv_feature_layers="[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2")
    imported = model_config_from_fairseq(copy.deepcopy(fields), {"normalize": True}, "xls_r_1b.pt")
    for name in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads",
                 "final_dim", "latent_vars", "latent_groups", "conv_layers", "conv_pos", "conv_pos_groups",
                 "extractor_mode", "conv_bias", "layer_norm_first", "normalize_audio"):
        assert getattr(imported, name) == getattr(cfg, name), name


def test_mms_style_config_fields_without_adapters_import(tmp_path):
    """MMS pretrained files carry the adapter fields switched off; they import as a plain wav2vec2 model."""
    path = tmp_path / "mms1b_fl102.pt"
    torch.save(_pretrain_state(layer_type="transformer", adp_num=-1, adp_dim=64, adp_act_fn="relu",
                               adp_trf_idx="all", checkpoint_activations=True, required_seq_len_multiple=2), path)
    assert read_fairseq(path).kind == "pretrain"


def test_omegaconf_file_loads_without_omegaconf_installed(tmp_path):
    """The product never imports omegaconf: a hydra-era file loads in a process where it cannot be imported."""
    ta = torchaudio_ctc("lv60", seed=41)
    path = tmp_path / "ft.pt"
    torch.save(fairseq_ctc_file(ta, "lv60", "omegaconf"), path)
    write_dict(tmp_path / "dict.ltr.txt")
    code = ("import sys; sys.modules['omegaconf'] = None\n"
            "from w2v2cli.checkpoint import load_model_any\n"
            f"loaded = load_model_any({str(path)!r})\n"
            "assert 'omegaconf' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
            "print(loaded.kind, loaded.cfg.normalize_audio)")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ctc", "True"]
