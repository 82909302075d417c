"""Test helpers: tiny random transformers models, and fairseq-format checkpoints built from them.

The transformers -> fairseq key mapping below is written independently of w2v2cli's fairseq importer
(which maps fairseq -> w2v2), so importing a file made here and comparing with the transformers model
checks the importer against a third party's naming, not against itself.
"""

from __future__ import annotations

import argparse
import re

import torch
import transformers

LETTERS = "| E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()
CONV = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2
CONV_SPEC = "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2"  # as fairseq writes it


def hf_config(family: str, vocab_size: int | None = None, **changes) -> transformers.Wav2Vec2Config:
    """family 'base': group-norm conv, post-LN; 'lv60': layer-norm conv with bias, pre-LN (XLSR shape)."""
    layer = family == "lv60"
    kwargs = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        conv_dim=[c for c, _, _ in CONV], conv_kernel=[k for _, k, _ in CONV], conv_stride=[s for _, _, s in CONV],
        conv_bias=layer, feat_extract_norm="layer" if layer else "group", do_stable_layer_norm=layer,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_codevectors_per_group=8, num_codevector_groups=2, codevector_dim=16, proj_codevector_dim=12,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        feat_quantizer_dropout=0.0, final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.05,
        vocab_size=vocab_size or 32, pad_token_id=0,
    )
    kwargs.update(changes)
    return transformers.Wav2Vec2Config(**kwargs)


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (norm gains around 1), so a misplaced weight changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif "original0" in name or name.endswith("weight_g"):
                p.copy_(1.0 + 0.1 * noise.abs())
            else:
                p.copy_(noise * (0.5 / max(1, p.shape[-1]) ** 0.5 if p.dim() > 1 else 0.1))
    return model.eval()


def hf_model(cls, family: str, seed: int = 0, vocab_size: int | None = None, **changes):
    torch.manual_seed(seed)
    return randomize_(cls(hf_config(family, vocab_size, **changes)), seed)


def _encoder_to_fairseq(key: str, family: str) -> str:
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", key)
    if m:
        return f"feature_extractor.conv_layers.{m[1]}.0.{m[2]}"
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", key)
    if m:  # group norm: Sequential(conv, dropout, GroupNorm, GELU); layer norm: ..., Sequential(T, LN, T), ...
        return f"feature_extractor.conv_layers.{m[1]}.2.{m[2]}" if family == "base" else \
            f"feature_extractor.conv_layers.{m[1]}.2.1.{m[2]}"
    simple = {
        "feature_projection.layer_norm.weight": "layer_norm.weight",
        "feature_projection.layer_norm.bias": "layer_norm.bias",
        "feature_projection.projection.weight": "post_extract_proj.weight",
        "feature_projection.projection.bias": "post_extract_proj.bias",
        "masked_spec_embed": "mask_emb",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v",
        "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv.0.weight_v",
        "encoder.pos_conv_embed.conv.bias": "encoder.pos_conv.0.bias",
        "encoder.layer_norm.weight": "encoder.layer_norm.weight",
        "encoder.layer_norm.bias": "encoder.layer_norm.bias",
    }
    if key in simple:
        return simple[key]
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key)
    if m:
        rest = m[2]
        for hf_part, fs_part in (("attention.", "self_attn."), ("layer_norm.", "self_attn_layer_norm."),
                                 ("feed_forward.intermediate_dense.", "fc1."),
                                 ("feed_forward.output_dense.", "fc2."), ("final_layer_norm.", "final_layer_norm.")):
            if rest.startswith(hf_part):
                return f"encoder.layers.{m[1]}.{fs_part}{rest[len(hf_part):]}"
    raise KeyError(f"no fairseq name for transformers key {key}")


def hf_to_fairseq_state(hf_sd: dict, family: str, ctc: bool) -> dict:
    """transformers Wav2Vec2ForPreTraining / Wav2Vec2ForCTC state dict -> fairseq's key names."""
    out = {}
    for key, value in hf_sd.items():
        value = value.detach().clone()
        if key.startswith("wav2vec2."):
            name = _encoder_to_fairseq(key[len("wav2vec2."):], family)
            out[("w2v_encoder.w2v_model." if ctc else "") + name] = value
        elif key.startswith("lm_head."):
            out["w2v_encoder.proj." + key.split(".")[-1]] = value
        elif key == "quantizer.codevectors":
            out["quantizer.vars"] = value
        elif key.startswith(("quantizer.weight_proj.", "project_q.")):
            out[key] = value
        elif key.startswith("project_hid."):
            out["final_proj." + key.split(".")[-1]] = value
        else:
            raise KeyError(f"no fairseq name for transformers key {key}")
    return out


def fairseq_model_fields(config: transformers.Wav2Vec2Config) -> dict:
    """fairseq Wav2Vec2Config fields describing `config` (with training values that must carry over)."""
    layer = config.feat_extract_norm == "layer"
    return dict(
        extractor_mode="layer_norm" if layer else "default", conv_feature_layers=CONV_SPEC, conv_bias=layer,
        encoder_layers=config.num_hidden_layers, encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size, encoder_attention_heads=config.num_attention_heads,
        activation_fn="gelu", layer_norm_first=config.do_stable_layer_norm, conv_pos=config.num_conv_pos_embeddings,
        conv_pos_groups=config.num_conv_pos_embedding_groups, final_dim=config.proj_codevector_dim,
        latent_vars=config.num_codevectors_per_group, latent_groups=config.num_codevector_groups,
        latent_dim=config.codevector_dim // config.num_codevector_groups, latent_temp="(2,0.5,0.999995)",
        quantize_targets=True, quantize_input=False, same_quantizer=False, target_glu=False,
        dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, encoder_layerdrop=0.05, dropout_input=0.1,
        dropout_features=0.1, feature_grad_mult=0.1, logit_temp=0.1, num_negatives=100, cross_sample_negatives=0,
        codebook_negatives=0, negatives_from_everywhere=False, mask_prob=0.65, mask_length=10,
        mask_selection="static", mask_other=0, no_mask_overlap=False, mask_channel_prob=0.0, mask_channel_length=10,
    )


def fairseq_checkpoint(hf, family: str, style: str, normalize: bool, finetune: dict | None = None) -> dict:
    """A dict shaped like fairseq's checkpoint files: `args` Namespace (style 'old') or `cfg` dicts ('new')."""
    ctc = isinstance(hf, transformers.Wav2Vec2ForCTC)
    fields = fairseq_model_fields(hf.config)
    task = {"_name": "audio_pretraining", "normalize": normalize, "sample_rate": 16000, "max_sample_size": 250000}
    noise = {"optimizer": "adam", "lr": [0.0005], "criterion": "wav2vec", "data": "/data/manifests", "seed": 1}
    if style == "old":
        pre_args = argparse.Namespace(arch="wav2vec2", task="audio_pretraining", **fields,
                                      **{k: v for k, v in task.items() if k != "_name"}, **noise)
        if ctc:
            args = argparse.Namespace(arch="wav2vec_ctc", task="audio_pretraining", w2v_path="/x/wav2vec_small.pt",
                                      w2v_args=pre_args, normalize=normalize, labels="ltr", **finetune, **noise)
        else:
            args = pre_args
        state = {"args": args}
    else:
        pre_cfg = {"common": {"fp16": True, "log_interval": 200}, "model": {"_name": "wav2vec2", **fields},
                   "task": task, "criterion": {"_name": "wav2vec", "infonce": True, "loss_weights": [0.1, 10.0]},
                   "optimization": {"max_update": 400000, "lr": [0.0005]}}
        if ctc:
            model = {"_name": "wav2vec_ctc", "w2v_path": "/x/wav2vec_small.pt", "w2v_args": pre_cfg, **finetune}
            cfg = {"common": {"fp16": True}, "model": model,
                   "task": {"_name": "audio_finetuning", "normalize": normalize, "labels": "ltr"},
                   "criterion": {"_name": "ctc", "zero_infinity": True}}
        else:
            cfg = pre_cfg
        state = {"args": None, "cfg": cfg}
    state.update({
        "model": hf_to_fairseq_state(hf.state_dict(), family, ctc),
        "optimizer_history": [{"criterion_name": "CtcCriterion" if ctc else "Wav2vecCriterion",
                               "optimizer_name": "Adam", "lr_scheduler_state": {"best": 2.5}, "num_updates": 1234}],
        "extra_state": {"epoch": 3, "train_iterator": {"epoch": 3, "iterations_in_epoch": 10, "shuffle": True},
                        "val_loss": 2.5},
        "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]},
    })
    return state


def write_dict(path, letters=LETTERS) -> None:
    path.write_text("".join(f"{sym} {100 - i}\n" for i, sym in enumerate(letters)))


def padded_batch(seed: int = 0, lengths=(16000, 11000)):
    """Random audio padded with zeros to the longest, and its lengths."""
    gen = torch.Generator().manual_seed(seed)
    wave = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wave[i, :n] = torch.randn(n, generator=gen)
    return wave, torch.tensor(lengths)


def _each_alone(fn, wave, lengths):
    """fn run on each utterance alone at its own length, the outputs zero-padded back into one batch: the
    reference for our eval mode, which gives every utterance of a padded batch its unbatched result."""
    with torch.no_grad():
        outs = [fn(wave[i:i + 1, :n])[0] for i, n in enumerate(lengths.tolist())]
    batch = outs[0].new_zeros((len(outs), max(o.shape[0] for o in outs)) + tuple(outs[0].shape[1:]))
    for i, o in enumerate(outs):
        batch[i, :o.shape[0]] = o
    return batch


def hf_hidden(hf_encoder, wave, lengths):
    return _each_alone(lambda w: hf_encoder(w).last_hidden_state, wave, lengths)


def hf_ctc_logits(hf_ctc, wave, lengths):
    return _each_alone(lambda w: hf_ctc(w).logits, wave, lengths)


def run_cli(*args) -> tuple[int, str]:
    """Runs `python -m w2v2cli ARGS` (the real entry point with its error formatting); (exit code, stderr with
    whitespace collapsed, since rich wraps long messages)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "w2v2cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, " ".join(proc.stderr.split())
