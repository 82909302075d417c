"""transformers <-> w2v2: model config and state-dict mapping, both ways.

    >>> cfg = config_from_hf(json.loads(Path("hf_dir/config.json").read_text()))
    >>> ours = state_dict_from_hf(safetensors.torch.load_file("hf_dir/model.safetensors"), cfg)
    >>> model = build_model(cfg, hf_kind(ours)); model.load_state_dict(ours)
    >>> hf_sd = state_dict_to_hf(model.state_dict(), cfg)            # for transformers' Wav2Vec2For*
    >>> hf_cfg = config_to_hf(cfg, vocab, "Wav2Vec2ForCTC")

Key names on both sides (transformers `Wav2Vec2Model` keys have no `wav2vec2.` prefix; `...ForCTC` and
`...ForPreTraining` keys do, as ours do):

| transformers | w2v2 |
|---|---|
| `feature_extractor.conv_layers.{i}.layer_norm.*` | `feature_extractor.conv_layers.{i}.norm.*` |
| `feature_projection.layer_norm.*` / `.projection.*` | `feature_projection.norm.*` / `.linear.*` |
| `masked_spec_embed` | `mask_embedding` |
| `encoder.pos_conv_embed.conv.{weight_g, weight_v}` or `...parametrizations.weight.original{0,1}`, `.bias` | `encoder.pos_conv.{weight_g, weight_v, bias}` |
| `encoder.layer_norm.*` | `encoder.norm.*` |
| `encoder.layers.{i}.layer_norm.*` / `.final_layer_norm.*` | `encoder.layers.{i}.attention_norm.*` / `.ffn_norm.*` |
| `encoder.layers.{i}.feed_forward.{intermediate_dense, output_dense}.*` | `encoder.layers.{i}.ffn.{fc1, fc2}.*` |
| `project_hid.*` | `final_proj.*` |
| `quantizer.*`, `project_q.*`, `lm_head.*`, `encoder.layers.{i}.attention.*` | same |
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from w2v2cli.errors import CheckpointError
from w2v2cli.model.config import ModelConfig

ARCHITECTURES = {"Wav2Vec2ForCTC": "ctc", "Wav2Vec2ForPreTraining": "pretrain", "Wav2Vec2Model": "encoder"}

# (transformers name, our name) of every weight; {n} a layer number, {p} weight or bias, {proj} an attention
# projection. Encoder keys are without the `wav2vec2.` prefix; head keys are whole. One table serves both ways.
_ENCODER_PAIRS = [
    ("feature_extractor.conv_layers.{n}.conv.{p}", "feature_extractor.conv_layers.{n}.conv.{p}"),
    ("feature_extractor.conv_layers.{n}.layer_norm.{p}", "feature_extractor.conv_layers.{n}.norm.{p}"),
    ("feature_projection.layer_norm.{p}", "feature_projection.norm.{p}"),
    ("feature_projection.projection.{p}", "feature_projection.linear.{p}"),
    ("masked_spec_embed", "mask_embedding"),
    ("encoder.pos_conv_embed.conv.bias", "encoder.pos_conv.bias"),
    ("encoder.layer_norm.{p}", "encoder.norm.{p}"),
    ("encoder.layers.{n}.attention.{proj}.{p}", "encoder.layers.{n}.attention.{proj}.{p}"),
    ("encoder.layers.{n}.layer_norm.{p}", "encoder.layers.{n}.attention_norm.{p}"),
    ("encoder.layers.{n}.feed_forward.intermediate_dense.{p}", "encoder.layers.{n}.ffn.fc1.{p}"),
    ("encoder.layers.{n}.feed_forward.output_dense.{p}", "encoder.layers.{n}.ffn.fc2.{p}"),
    ("encoder.layers.{n}.final_layer_norm.{p}", "encoder.layers.{n}.ffn_norm.{p}"),
]
# the positional conv's weight norm: ours -> (transformers' legacy name, its current parametrization name)
_POS_CONV = {
    "encoder.pos_conv.weight_g": ("encoder.pos_conv_embed.conv.weight_g",
                                  "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    "encoder.pos_conv.weight_v": ("encoder.pos_conv_embed.conv.weight_v",
                                  "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
}
_HEAD_PAIRS = [
    ("quantizer.codevectors", "quantizer.codevectors"),
    ("quantizer.weight_proj.{p}", "quantizer.weight_proj.{p}"),
    ("project_q.{p}", "project_q.{p}"),
    ("project_hid.{p}", "final_proj.{p}"),
    ("lm_head.{p}", "lm_head.{p}"),
]
_FIELDS = {"n": r"(?P<n>\d+)", "p": r"(?P<p>weight|bias)", "proj": r"(?P<proj>q_proj|k_proj|v_proj|out_proj)"}
_PRETRAIN_HEADS = ("quantizer.", "project_q.", "final_proj.")
_BASE_PREFIX = "wav2vec2."


def _rules(pairs: list[tuple[str, str]], to_hf: bool) -> list[tuple[re.Pattern, str]]:
    """(compiled source pattern, target template) for each pair, from transformers names or to them."""
    rules = []
    for hf, ours in pairs:
        source, target = (ours, hf) if to_hf else (hf, ours)
        pattern = re.escape(source)
        for field, group in _FIELDS.items():
            pattern = pattern.replace(re.escape("{" + field + "}"), group)
        rules.append((re.compile(pattern), target))
    return rules


_FROM_HF = _rules(_ENCODER_PAIRS + [(name, ours) for ours, names in _POS_CONV.items() for name in names], False)
_FROM_HF_HEADS = _rules(_HEAD_PAIRS, False)
_TO_HF = _rules(_ENCODER_PAIRS, True)
_TO_HF_HEADS = _rules(_HEAD_PAIRS, True)


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, target in rules:
        match = pattern.fullmatch(key)
        if match:
            return target.format(**match.groupdict())
    return None


def hf_kind(sd: dict[str, Any]) -> str:
    """The model kind a state dict (ours or transformers') holds: "ctc", "pretrain" or "encoder"."""
    if any(k.startswith("lm_head.") for k in sd):
        return "ctc"
    if any(k.startswith(("quantizer.", "project_hid.", "final_proj.")) for k in sd):
        return "pretrain"
    return "encoder"


def state_dict_from_hf(sd: dict[str, Tensor], cfg: ModelConfig, kind: str | None = None) -> dict[str, Tensor]:
    """transformers keys (Wav2Vec2Model / ForPreTraining / ForCTC; old `weight_g/weight_v` or new
    parametrization names) -> our keys for `kind` (default: the kind the checkpoint holds).

    Converting to a smaller kind drops heads (pretrain -> encoder/ctc drops the quantizer; a ctc target without
    an `lm_head` leaves it missing for the caller to initialise). A model saved without a mask embedding
    (transformers drops it when masking is off) gets a zero one. Unknown keys are a CheckpointError.
    """
    source_kind = hf_kind(sd)
    kind = kind or source_kind
    if kind not in ("ctc", "pretrain", "encoder"):
        raise CheckpointError(f"unknown model kind {kind!r}", hint="choose pretrain, ctc or encoder")
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in sd.items():
        base = key[len(_BASE_PREFIX):] if key.startswith(_BASE_PREFIX) else key
        ours = _rename(base, _FROM_HF)
        if ours is not None:
            out[ours if kind == "encoder" else _BASE_PREFIX + ours] = value
            continue
        ours = _rename(key, _FROM_HF_HEADS)
        if ours is None:
            unknown.append(key)
        elif (kind == "ctc" and ours.startswith("lm_head.")) or (kind == "pretrain" and ours.startswith(_PRETRAIN_HEADS)):
            out[ours] = value
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise CheckpointError(f"transformers checkpoint has keys w2v2 does not know: {shown}",
                              hint="adapters, other model types and task heads other than CTC are not supported")
    prefix = "" if kind == "encoder" else _BASE_PREFIX
    if prefix + "mask_embedding" not in out:
        proj = out.get(prefix + "feature_projection.linear.bias")
        if proj is not None:
            out[prefix + "mask_embedding"] = proj.new_zeros(cfg.encoder_embed_dim)
    _check_shapes(out, cfg, prefix)
    return out


def _check_shapes(sd: dict[str, Tensor], cfg: ModelConfig, prefix: str) -> None:
    expect = {
        prefix + "feature_projection.linear.weight": (cfg.encoder_embed_dim, cfg.conv_dim),
        prefix + "encoder.pos_conv.weight_v": (cfg.encoder_embed_dim, cfg.encoder_embed_dim // cfg.conv_pos_groups,
                                               cfg.conv_pos),
        prefix + "encoder.layers.0.ffn.fc1.weight": (cfg.encoder_ffn_embed_dim, cfg.encoder_embed_dim),
    }
    for key, shape in expect.items():
        if key in sd and tuple(sd[key].shape) != shape:
            raise CheckpointError(f"weight {key} has shape {tuple(sd[key].shape)} but the config implies {shape}",
                                  hint="config.json and the weights do not belong together")


def state_dict_to_hf(sd: dict[str, Tensor], cfg: ModelConfig, legacy_weight_norm: bool = False) -> dict[str, Tensor]:
    """Our keys -> transformers keys (prefix kept: our CTC/pretraining models map to Wav2Vec2ForCTC /
    Wav2Vec2ForPreTraining, our encoder to Wav2Vec2Model). The positional conv uses the parametrization names
    of current transformers, or `weight_g/weight_v` with `legacy_weight_norm`. The mask embedding is left out
    when masking is off (transformers then has no such parameter)."""
    out: dict[str, Tensor] = {}
    masking = cfg.mask_prob > 0 or cfg.mask_channel_prob > 0
    for key, value in sd.items():
        has_prefix = key.startswith(_BASE_PREFIX)
        base = key[len(_BASE_PREFIX):] if has_prefix else key
        hf = _POS_CONV[base][0 if legacy_weight_norm else 1] if base in _POS_CONV else _rename(base, _TO_HF)
        if hf is not None:
            if hf == "masked_spec_embed" and not masking:
                continue
            out[(_BASE_PREFIX if has_prefix else "") + hf] = value
            continue
        hf = _rename(key, _TO_HF_HEADS)
        if hf is None:
            raise CheckpointError(f"w2v2 weight {key} has no transformers counterpart")
        out[hf] = value
    return out


def config_from_hf(hf: dict[str, Any], preprocessor: dict[str, Any] | None = None) -> ModelConfig:
    """A transformers `config.json` dict (+ optional `preprocessor_config.json` dict, for `do_normalize`)
    -> ModelConfig. Features w2v2 does not implement (adapters, other activations) are a CheckpointError."""
    model_type = hf.get("model_type", "wav2vec2")
    if model_type != "wav2vec2":
        raise CheckpointError(f"config.json has model_type {model_type!r}; w2v2 reads wav2vec2 models only")
    for key, ok in (("hidden_act", "gelu"), ("feat_extract_activation", "gelu")):
        if hf.get(key, ok) != ok:
            raise CheckpointError(f"config.json: {key} = {hf[key]!r} is not supported (only {ok!r})")
    if hf.get("add_adapter") or hf.get("adapter_attn_dim") is not None:
        raise CheckpointError("config.json: adapter layers (add_adapter / adapter_attn_dim) are not supported")
    eps = float(hf.get("layer_norm_eps", 1e-5))
    if abs(eps - 1e-5) > 1e-12:
        raise CheckpointError(f"config.json: layer_norm_eps = {eps} is not supported (w2v2 uses 1e-5)")
    try:
        conv_dim, conv_kernel, conv_stride = hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"]
        if not len(conv_dim) == len(conv_kernel) == len(conv_stride):
            raise CheckpointError("config.json: conv_dim, conv_kernel and conv_stride differ in length")
        norm = hf.get("feat_extract_norm", "group")
        if norm not in ("group", "layer"):
            raise CheckpointError(f"config.json: feat_extract_norm = {norm!r} (expected 'group' or 'layer')")
        hidden = int(hf["hidden_size"])
        groups = int(hf.get("num_codevector_groups", 2))
        codevector_dim = int(hf.get("codevector_dim", 256))
        final_dim = int(hf.get("proj_codevector_dim", codevector_dim))
        spec_augment = bool(hf.get("apply_spec_augment", True))
        archs = hf.get("architectures") or []
        is_ctc = "Wav2Vec2ForCTC" in archs
        layer_norm = norm == "layer"
        do_normalize = (preprocessor or {}).get("do_normalize", layer_norm)
        cfg = ModelConfig(
            extractor_mode="layer_norm" if layer_norm else "group_norm",
            conv_layers=[(int(d), int(k), int(s)) for d, k, s in zip(conv_dim, conv_kernel, conv_stride)],
            conv_bias=bool(hf.get("conv_bias", False)),
            feature_grad_mult=1.0 if hidden >= 1024 else 0.1,
            encoder_layers=int(hf["num_hidden_layers"]),
            encoder_embed_dim=hidden,
            encoder_ffn_embed_dim=int(hf["intermediate_size"]),
            encoder_attention_heads=int(hf["num_attention_heads"]),
            layer_norm_first=bool(hf.get("do_stable_layer_norm", False)),
            conv_pos=int(hf.get("num_conv_pos_embeddings", 128)),
            conv_pos_groups=int(hf.get("num_conv_pos_embedding_groups", 16)),
            dropout=float(hf.get("hidden_dropout", 0.1)),
            attention_dropout=float(hf.get("attention_dropout", 0.1)),
            activation_dropout=float(hf.get("activation_dropout", 0.0)),
            dropout_input=float(hf.get("feat_proj_dropout", 0.0)),
            dropout_features=float(hf.get("feat_quantizer_dropout", 0.0)),
            layerdrop=float(hf.get("layerdrop", 0.0)),
            final_dropout=float(hf.get("final_dropout", 0.0)),
            mask_prob=float(hf.get("mask_time_prob", 0.05)) if spec_augment else 0.0,
            mask_length=int(hf.get("mask_time_length", 10)),
            mask_min_masks=int(hf.get("mask_time_min_masks", 2)),
            mask_channel_prob=float(hf.get("mask_feature_prob", 0.0)) if spec_augment else 0.0,
            mask_channel_length=int(hf.get("mask_feature_length", 10)),
            num_negatives=int(hf.get("num_negatives", 100)),
            latent_vars=int(hf.get("num_codevectors_per_group", 320)),
            latent_groups=groups,
            latent_dim=0 if codevector_dim == final_dim else codevector_dim // groups,
            final_dim=final_dim,
            logit_temp=float(hf.get("contrastive_logits_temperature", 0.1)),
            latent_temp=(2.0, 0.1, 0.999995) if hidden >= 1024 else (2.0, 0.5, 0.999995),
            vocab_size=int(hf.get("vocab_size", 0)) if is_ctc else 0,
            normalize_audio=bool(do_normalize),
        )
    except KeyError as e:
        raise CheckpointError(f"config.json lacks the key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"config.json has a value of the wrong type: {e}") from None
    return cfg


FBANK_NO_COUNTERPART = ("the model has the log-mel front end (model.extractor_mode: fbank); transformers' Wav2Vec2 "
                        "reads raw audio through a conv stack and has no counterpart")
FBANK_HINT = "decode it with w2v2; models of the conv presets (tiny, base, large, xlsr) export"
BESTRQ_NO_COUNTERPART = ("a BEST-RQ pretraining checkpoint (model.objective: bestrq): transformers has no BEST-RQ "
                         "pretraining model")
BESTRQ_HINT = ("fine-tune it first (w2v2 finetune --init CKPT) and use the CTC model; its log-mel front end runs in w2v2 "
               "only, transformers' Wav2Vec2 has none")


def config_to_hf(cfg: ModelConfig, vocab: Any | None = None, architecture: str = "Wav2Vec2ForCTC") -> dict[str, Any]:
    """ModelConfig (+ Vocabulary for CTC) -> a transformers `config.json` dict for `architecture`
    (Wav2Vec2ForCTC, Wav2Vec2ForPreTraining or Wav2Vec2Model). The CTC blank becomes `pad_token_id`,
    which transformers' CTC loss and tokenizer treat as the blank."""
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"unknown transformers architecture {architecture!r}",
                              hint=f"choose one of {', '.join(ARCHITECTURES)}")
    vocab_size = len(vocab) if vocab is not None else cfg.vocab_size
    if cfg.objective == "bestrq" and architecture == "Wav2Vec2ForPreTraining":
        raise CheckpointError(BESTRQ_NO_COUNTERPART, hint=BESTRQ_HINT)
    if cfg.extractor_mode == "fbank":
        raise CheckpointError(FBANK_NO_COUNTERPART, hint=FBANK_HINT)
    if architecture == "Wav2Vec2ForCTC" and vocab_size <= 0:
        raise CheckpointError("a Wav2Vec2ForCTC config needs a vocabulary (vocab_size > 0)")
    tokens = list(getattr(vocab, "tokens", []) or [])
    blank = int(getattr(vocab, "blank", 0)) if vocab is not None else 0

    def token_id(tok: str, default: int) -> int:
        return tokens.index(tok) if tok in tokens else default

    conv = [tuple(spec) for spec in cfg.conv_layers]
    return {
        "architectures": [architecture],
        "model_type": "wav2vec2",
        "vocab_size": vocab_size if vocab_size > 0 else 32,
        "pad_token_id": blank,
        "bos_token_id": token_id("<s>", 1),
        "eos_token_id": token_id("</s>", 2),
        "hidden_size": cfg.encoder_embed_dim,
        "num_hidden_layers": cfg.encoder_layers,
        "num_attention_heads": cfg.encoder_attention_heads,
        "intermediate_size": cfg.encoder_ffn_embed_dim,
        "hidden_act": "gelu",
        "hidden_dropout": cfg.dropout,
        "activation_dropout": cfg.activation_dropout,
        "attention_dropout": cfg.attention_dropout,
        "feat_proj_dropout": cfg.dropout_input,
        "feat_quantizer_dropout": cfg.dropout_features,
        "final_dropout": cfg.final_dropout,
        "layerdrop": cfg.layerdrop,
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.02,
        "feat_extract_norm": "layer" if cfg.extractor_mode == "layer_norm" else "group",
        "feat_extract_activation": "gelu",
        "conv_dim": [c for c, _, _ in conv],
        "conv_kernel": [k for _, k, _ in conv],
        "conv_stride": [s for _, _, s in conv],
        "conv_bias": cfg.conv_bias,
        "num_feat_extract_layers": len(conv),
        "num_conv_pos_embeddings": cfg.conv_pos,
        "num_conv_pos_embedding_groups": cfg.conv_pos_groups,
        "do_stable_layer_norm": cfg.layer_norm_first,
        "apply_spec_augment": cfg.mask_prob > 0 or cfg.mask_channel_prob > 0,
        "mask_time_prob": cfg.mask_prob,
        "mask_time_length": cfg.mask_length,
        "mask_time_min_masks": cfg.mask_min_masks,
        "mask_feature_prob": cfg.mask_channel_prob,
        "mask_feature_length": cfg.mask_channel_length,
        "mask_feature_min_masks": 0,
        "num_codevectors_per_group": cfg.latent_vars,
        "num_codevector_groups": cfg.latent_groups,
        "codevector_dim": cfg.codevector_dim,
        "proj_codevector_dim": cfg.final_dim,
        "contrastive_logits_temperature": cfg.logit_temp,
        "num_negatives": cfg.num_negatives,
        "diversity_loss_weight": 0.1,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": True,
        "use_weighted_layer_sum": False,
        "add_adapter": False,
        "adapter_attn_dim": None,
    }
