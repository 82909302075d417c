"""fairseq wav2vec 2.0 checkpoints (`.pt`) -> our config and state dict.

    >>> imported = read_fairseq("wav2vec_small.pt")                       # pretraining model (kind "pretrain")
    >>> imported = read_fairseq("wav2vec_small_960h.pt", dict_path="dict.ltr.txt")   # CTC (kind "ctc")

A fairseq checkpoint is a pickled dict: `model` (the state dict), `args` (an argparse.Namespace, in files
written before fairseq's 2021 move to hydra) or `cfg` (plain nested dicts: `model`, `task`, ...), plus
`optimizer_history`, `extra_state` and optimizer state, which we ignore. It is read with the restricted
unpickler of `safe_pickle`. Both published families are covered: BASE/LARGE (group-norm conv, post-LN) and
LV-60k/XLSR/XLS-R (layer-norm conv with bias, pre-LN). CTC fine-tuned files keep the pretraining config in
`w2v_args` and the weights under `w2v_encoder.w2v_model.`, with the output layer `w2v_encoder.proj`; their
letters are in `dict.ltr.txt` (beside the file unless given).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from pathlib import Path
from typing import Any

import torch

from w2v2cli.checkpoint.io import ENCODER_PREFIX, ImportedModel
from w2v2cli.checkpoint.safe_pickle import load_pickled
from w2v2cli.errors import CheckpointError, ConfigError
from w2v2cli.model.config import ModelConfig
from w2v2cli.vocab import Vocabulary

PRETRAIN_ARCHS = {"wav2vec2"}
CTC_ARCHS = {"wav2vec_ctc", "wav2vec2_ctc"}
CTC_PREFIX = "w2v_encoder.w2v_model."
# other fairseq speech models users meet beside wav2vec 2.0, so an error can say what the file is
_OTHER_ARCHS = {
    "conformer": "a wav2vec2-conformer model: conformer layers are not implemented",
    "hubert": "a HuBERT model: other targets and heads than wav2vec 2.0",
    "data2vec": "a data2vec model: other layers and targets than wav2vec 2.0",
    "seq2seq": "an encoder-decoder model: w2v2 decodes with CTC only",
    "wav2vec2_laser": "a LASER sentence-embedding model",
    "wav2vec": "wav2vec 1.0: a different, convolutional model",
}

# fairseq Wav2Vec2Config field -> ModelConfig field (same meaning, same units)
_SAME_FIELDS = [
    "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first",
    "conv_pos", "conv_pos_groups", "conv_bias", "dropout", "attention_dropout", "activation_dropout",
    "dropout_input", "dropout_features", "feature_grad_mult", "mask_prob", "mask_length", "mask_channel_prob",
    "mask_channel_length", "num_negatives", "cross_sample_negatives", "latent_vars", "latent_groups",
    "latent_dim", "logit_temp",
]
# fairseq's Wav2Vec2Config defaults for fields a config may leave out
_FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "activation_fn": "gelu", "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0, "dropout_features": 0.0,
    "final_dim": 0, "layer_norm_first": False, "conv_bias": False, "logit_temp": 0.1, "quantize_targets": False,
    "quantize_input": False, "target_glu": False, "feature_grad_mult": 1.0, "latent_vars": 320, "latent_groups": 2,
    "latent_dim": 0, "mask_length": 10, "mask_prob": 0.65, "mask_channel_length": 10, "mask_channel_prob": 0.0,
    "num_negatives": 100, "negatives_from_everywhere": False, "cross_sample_negatives": 0, "codebook_negatives": 0,
    "conv_pos": 128, "conv_pos_groups": 16, "latent_temp": (2.0, 0.5, 0.999995), "pos_conv_depth": 1,
}
# Wav2Vec2AsrConfig fields that fairseq copies onto the pretrained model when fine-tuning
_CTC_OVERRIDES = {
    "dropout": "dropout", "activation_dropout": "activation_dropout", "dropout_input": "dropout_input",
    "attention_dropout": "attention_dropout", "mask_length": "mask_length", "mask_prob": "mask_prob",
    "mask_channel_length": "mask_channel_length", "mask_channel_prob": "mask_channel_prob",
    "layerdrop": "layerdrop", "feature_grad_mult": "feature_grad_mult", "final_dropout": "final_dropout",
}


# ---------------------------------------------------------------------------------------------- config
def parse_conv_layers(text: Any, where: str = "conv_feature_layers") -> list[tuple[int, int, int]]:
    """fairseq's conv spec string, e.g. "[(512, 10, 5)] + [(512, 3, 2)] * 4", evaluated without `eval`."""
    if isinstance(text, (list, tuple)):
        value = text
    else:
        try:
            value = _literal_arith(ast.parse(str(text), mode="eval").body)
        except (SyntaxError, ValueError) as err:
            raise CheckpointError(f"{where}: cannot read conv layer spec {text!r}: {err}") from None
    try:
        layers = [tuple(int(v) for v in spec) for spec in value]
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: conv layer spec {text!r} is not a list of (dim, kernel, stride)") from None
    if not layers or any(len(spec) != 3 for spec in layers):
        raise CheckpointError(f"{where}: conv layer spec {text!r} is not a list of (dim, kernel, stride)")
    return layers  # type: ignore[return-value]


def _literal_arith(node: ast.AST) -> Any:
    """Literals combined with list `+` and `*` (all that fairseq's conv specs use)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal_arith(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal_arith(node.left), _literal_arith(node.right)
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, list):
            left, right = right, left
        if isinstance(node.op, ast.Mult) and not (isinstance(left, list) and isinstance(right, int)):
            raise ValueError("only list * int is allowed")
        if isinstance(node.op, ast.Add) and not (isinstance(left, list) and isinstance(right, list)):
            raise ValueError("only list + list is allowed")
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")


def _parse_temp(value: Any, where: str) -> tuple[float, float, float]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (SyntaxError, ValueError):
            raise CheckpointError(f"{where}: latent_temp {value!r} is not a tuple of 3 numbers") from None
    try:
        start, end, decay = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: latent_temp {value!r} is not a tuple of 3 numbers") from None
    return start, end, decay


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, argparse.Namespace):
        return dict(vars(obj))
    if isinstance(obj, dict):
        return dict(obj)
    raise CheckpointError(f"unexpected config object of type {type(obj).__name__} in fairseq checkpoint")


def _split_config(state: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, task config) as flat dicts from `cfg` (new style) or `args` (old style)."""
    cfg = state.get("cfg")
    if cfg is not None:
        cfg = _as_dict(cfg)
        model = _as_dict(cfg.get("model"))
        if model is None:
            raise CheckpointError(f"{where}: 'cfg' has no 'model' section")
        return model, _as_dict(cfg.get("task")) or {}
    args = _as_dict(state.get("args"))
    if args is None:
        raise CheckpointError(f"{where}: neither 'cfg' nor 'args' in the checkpoint (not a fairseq training checkpoint?)")
    return args, args  # old style: one flat namespace for model and task


def _arch(model_cfg: dict[str, Any]) -> str | None:
    return model_cfg.get("_name") or model_cfg.get("arch")


def _unsupported_layers(cfg: dict[str, Any]) -> list[str]:
    """Transformer-layer variants of later fairseq versions that w2v2's model does not implement, by name."""
    found = []
    layer_type = cfg.get("layer_type") or "transformer"
    if layer_type == "conformer":
        found.append("conformer layers (layer_type=conformer: the wav2vec2-conformer model)")
    elif layer_type == "trf_adp" or int(cfg.get("adp_num") or -1) > 0:
        found.append(f"adapter layers (layer_type={layer_type}, adp_num={cfg.get('adp_num')}: MMS-style "
                     "per-language adapters)")
    elif layer_type != "transformer":
        found.append(f"layer_type={layer_type}")
    if (cfg.get("pos_enc_type") or "abs") != "abs":
        found.append(f"pos_enc_type={cfg.get('pos_enc_type')} (relative/rotary position encoding)")
    return found


def _flag(value: Any) -> bool:
    """A boolean config value; strings (an unresolved `${task.normalize}`) are read as written, not as True."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def model_config_from_fairseq(
    pre: dict[str, Any], task: dict[str, Any], where: str, finetune: dict[str, Any] | None = None,
    vocab_size: int = 0,
) -> ModelConfig:
    """Our ModelConfig from fairseq's pretraining config (+ the fine-tuning overrides of a CTC model)."""
    get = lambda key: pre.get(key, _FAIRSEQ_DEFAULTS.get(key))  # noqa: E731
    unsupported = []
    if get("activation_fn") not in ("gelu", None):
        unsupported.append(f"activation_fn={get('activation_fn')}")
    if not get("quantize_targets") and finetune is None:
        unsupported.append("quantize_targets=False")
    for flag in ("quantize_input", "target_glu", "negatives_from_everywhere"):
        if get(flag):
            unsupported.append(f"{flag}=True")
    if get("codebook_negatives"):
        unsupported.append(f"codebook_negatives={get('codebook_negatives')}")
    if int(get("pos_conv_depth") or 1) != 1:
        unsupported.append(f"pos_conv_depth={get('pos_conv_depth')}")
    unsupported += _unsupported_layers(pre) + (_unsupported_layers(finetune) if finetune else [])
    if unsupported:
        raise CheckpointError(
            f"{where}: this wav2vec 2.0 variant is not supported ({', '.join(unsupported)})",
            hint="w2v2 models the published wav2vec 2.0 architecture (quantized targets, GELU, one pos-conv layer)",
        )
    mode = get("extractor_mode")
    if mode not in ("default", "layer_norm"):
        raise CheckpointError(f"{where}: unknown extractor_mode {mode!r}")
    values: dict[str, Any] = {name: get(name) for name in _SAME_FIELDS}
    values["extractor_mode"] = "group_norm" if mode == "default" else "layer_norm"
    values["conv_layers"] = parse_conv_layers(get("conv_feature_layers") or "", f"{where}: conv_feature_layers")
    values["layerdrop"] = get("encoder_layerdrop")
    values["final_dim"] = int(get("final_dim")) or int(get("encoder_embed_dim"))
    values["latent_temp"] = _parse_temp(get("latent_temp"), where)
    values["normalize_audio"] = _flag(task.get("normalize", False))
    values["vocab_size"] = vocab_size
    if finetune is not None:
        for src, dst in _CTC_OVERRIDES.items():
            if finetune.get(src) is not None:
                values[dst] = finetune[src]
        if finetune.get("apply_mask") is not None and not _flag(finetune["apply_mask"]):  # fairseq then never masks during fine-tuning
            values["mask_prob"] = 0.0
            values["mask_channel_prob"] = 0.0
        if "normalize" in finetune and finetune.get("normalize") is not None:
            values["normalize_audio"] = _flag(finetune["normalize"])
    values = {k: v for k, v in values.items() if v is not None}
    try:
        return ModelConfig(**values)
    except (ConfigError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: config cannot be used: {err}") from None


# ---------------------------------------------------------------------------------------------- weights
_LAYER_RULES = [  # fairseq (inside encoder.layers.N.) -> ours
    ("self_attn.q_proj.", "attention.q_proj."),
    ("self_attn.k_proj.", "attention.k_proj."),
    ("self_attn.v_proj.", "attention.v_proj."),
    ("self_attn.out_proj.", "attention.out_proj."),
    ("self_attn_layer_norm.", "attention_norm."),
    ("fc1.", "ffn.fc1."),
    ("fc2.", "ffn.fc2."),
    ("final_layer_norm.", "ffn_norm."),
]
_POS_CONV = {
    "encoder.pos_conv.0.weight_g": "encoder.pos_conv.weight_g",
    "encoder.pos_conv.0.weight_v": "encoder.pos_conv.weight_v",
    "encoder.pos_conv.0.parametrizations.weight.original0": "encoder.pos_conv.weight_g",
    "encoder.pos_conv.0.parametrizations.weight.original1": "encoder.pos_conv.weight_v",
    "encoder.pos_conv.0.bias": "encoder.pos_conv.bias",
}
_HEADS = {"quantizer.vars": "quantizer.codevectors"}  # others keep their names
_HEAD_PREFIXES = ("quantizer.weight_proj.", "project_q.", "final_proj.")


def _encoder_key(name: str, cfg: ModelConfig) -> str | None:
    """fairseq encoder-model key -> our Wav2Vec2Model key (None: not an encoder key)."""
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.(\d+)\.(?:(\d+)\.)?(weight|bias)", name)
    if m:
        layer, sub, inner, param = int(m[1]), int(m[2]), m[3], m[4]
        if sub == 0 and inner is None:
            return f"feature_extractor.conv_layers.{layer}.conv.{param}"
        layer_norm = cfg.extractor_mode == "layer_norm" and sub == 2 and inner == "1"
        group_norm = cfg.extractor_mode == "group_norm" and sub == 2 and inner is None and layer == 0
        return f"feature_extractor.conv_layers.{layer}.norm.{param}" if (layer_norm or group_norm) else None
    if name.startswith("layer_norm."):
        return "feature_projection.norm." + name[len("layer_norm."):]
    if name.startswith("post_extract_proj."):
        return "feature_projection.linear." + name[len("post_extract_proj."):]
    if name == "mask_emb":
        return "mask_embedding"
    if name in _POS_CONV:
        return _POS_CONV[name]
    if name.startswith("encoder.layer_norm."):
        return "encoder.norm." + name[len("encoder.layer_norm."):]
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", name)
    if m:
        for src, dst in _LAYER_RULES:
            if m[2].startswith(src):
                return f"encoder.layers.{m[1]}.{dst}{m[2][len(src):]}"
    return None


def state_dict_from_fairseq(sd: dict[str, torch.Tensor], cfg: ModelConfig, kind: str, where: str) -> dict[str, torch.Tensor]:
    """fairseq model state dict -> ours for `kind` ('pretrain' or 'ctc'); unknown keys are an error."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: model entry {name!r} is a {type(value).__name__}, not a tensor")
        if name.endswith("_float_tensor") or name.endswith(".version"):
            continue  # fairseq bookkeeping buffers
        inner = name
        if kind == "ctc":
            if name.startswith("w2v_encoder.proj."):
                out["lm_head." + name[len("w2v_encoder.proj."):]] = value
                continue
            if not name.startswith(CTC_PREFIX):
                unknown.append(name)
                continue
            inner = name[len(CTC_PREFIX):]
        key = _encoder_key(inner, cfg)
        if key is not None:
            out[ENCODER_PREFIX + key] = value
        elif inner in _HEADS or inner.startswith(_HEAD_PREFIXES):
            if kind == "pretrain":  # a fine-tuned model that kept its pretraining heads: they are not used
                out[_HEADS.get(inner, inner)] = value
        else:
            unknown.append(name)
    adapters = [n for n in unknown if "adapter" in n]
    if adapters:
        raise CheckpointError(
            f"{where}: {len(adapters)} adapter weights ({', '.join(adapters[:3])}{', ...' if len(adapters) > 3 else ''})"
            ": adapter layers (MMS-style per-language adapters) are not supported",
            hint="import the base model the adapters were trained on (a checkpoint without adapter weights)",
        )
    if unknown:
        raise CheckpointError(
            f"{where}: {len(unknown)} weights have no counterpart in w2v2's model: "
            f"{', '.join(unknown[:6])}{', ...' if len(unknown) > 6 else ''}",
            hint="this looks like a wav2vec 2.0 variant w2v2 does not implement",
        )
    if ENCODER_PREFIX + "mask_embedding" not in out:
        # fine-tuned files may lack it (fairseq creates it only when masking is on); it is unused at inference
        out[ENCODER_PREFIX + "mask_embedding"] = torch.zeros(cfg.encoder_embed_dim)
    proj = ENCODER_PREFIX + "feature_projection.linear."
    if proj + "weight" not in out and cfg.conv_dim == cfg.encoder_embed_dim:
        # fairseq has no post_extract_proj when the conv and model widths match: use the identity
        out[proj + "weight"] = torch.eye(cfg.encoder_embed_dim)
        out[proj + "bias"] = torch.zeros(cfg.encoder_embed_dim)
    return out


# ---------------------------------------------------------------------------------------------- entry point
def read_fairseq(path: str | os.PathLike, dict_path: str | os.PathLike | None = None) -> ImportedModel:
    """Reads a fairseq wav2vec 2.0 pretraining or CTC checkpoint into our names (no model is built)."""
    path = Path(path)
    where = str(path)
    state = load_pickled(path, what="fairseq checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{where}: not a fairseq checkpoint (expected a dict with a 'model' state dict)")
    weights = state["model"]
    model_cfg, task_cfg = _split_config(state, where)
    arch = _arch(model_cfg)
    is_ctc = arch in CTC_ARCHS or any(k.startswith("w2v_encoder.") for k in weights)
    if arch is not None and arch not in PRETRAIN_ARCHS | CTC_ARCHS:
        what = _OTHER_ARCHS.get(arch) or next(
            (v for k, v in _OTHER_ARCHS.items() if k in arch and k != "wav2vec"), None)
        raise CheckpointError(
            f"{where}: fairseq model '{arch}' is not supported" + (f" ({what})" if what else ""),
            hint="w2v2 imports wav2vec2 pretraining checkpoints and wav2vec_ctc fine-tuned ones",
        )
    vocab = None
    if is_ctc:
        if "w2v_encoder.proj.weight" not in weights:
            raise CheckpointError(f"{where}: CTC checkpoint without its output layer w2v_encoder.proj")
        vocab_size = int(weights["w2v_encoder.proj.weight"].shape[0])
        w2v = _as_dict(model_cfg.get("w2v_args"))
        if w2v is None:
            raise CheckpointError(
                f"{where}: the fine-tuned checkpoint does not contain its pretraining config (w2v_args)",
                hint="fairseq would read it from the w2v_path file; re-save the model with fairseq first",
            )
        if "model" in w2v and isinstance(w2v["model"], (dict, argparse.Namespace)):  # new style: a full cfg
            pre, pre_task = _as_dict(w2v["model"]), _as_dict(w2v.get("task")) or {}
        else:
            pre, pre_task = w2v, w2v
        finetune = dict(model_cfg)
        if "normalize" in task_cfg and "normalize" not in finetune:
            finetune["normalize"] = task_cfg["normalize"]
        cfg = model_config_from_fairseq(pre, pre_task, where, finetune=finetune, vocab_size=vocab_size)
        vocab = _find_dict(path, dict_path, vocab_size)
        kind = "ctc"
    else:
        cfg = model_config_from_fairseq(model_cfg, task_cfg, where)
        kind = "pretrain"
    has_mask_emb = any(k.endswith("mask_emb") for k in weights)
    sd = state_dict_from_fairseq(weights, cfg, kind, where)
    provenance: dict[str, Any] = {"source": "fairseq", "path": str(path.resolve()), "arch": arch or kind}
    if not has_mask_emb:
        provenance["mask_embedding"] = "not in the fairseq file; set to zeros"
    if kind == "pretrain":
        kind, sd = _pretrain_or_encoder(sd, where)
    history = state.get("optimizer_history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        if isinstance(history[-1].get("num_updates"), int):
            provenance["num_updates"] = history[-1]["num_updates"]
    return ImportedModel(cfg=cfg, kind=kind, state_dict=sd, vocab=vocab, provenance=provenance)


def _pretrain_or_encoder(sd: dict[str, torch.Tensor], where: str) -> tuple[str, dict[str, torch.Tensor]]:
    """A pretraining file with all of its heads stays 'pretrain'; one without any (quantizer, project_q,
    final_proj stripped, as in some published encoders) is an 'encoder' checkpoint; half of them is an error."""
    heads = {"quantizer": "quantizer.", "project_q": "project_q.", "final_proj": "final_proj."}
    present = {name for name, prefix in heads.items() if any(k.startswith(prefix) for k in sd)}
    if len(present) == len(heads):
        return "pretrain", sd
    if present:
        missing = sorted(set(heads) - present)
        raise CheckpointError(f"{where}: the pretraining heads are incomplete: {', '.join(missing)} missing",
                              hint="a pretraining checkpoint needs quantizer, project_q and final_proj")
    return "encoder", {k[len(ENCODER_PREFIX):]: v for k, v in sd.items() if k.startswith(ENCODER_PREFIX)}


def _find_dict(path: Path, dict_path: str | os.PathLike | None, vocab_size: int) -> Vocabulary:
    candidate = Path(dict_path) if dict_path is not None else path.parent / "dict.ltr.txt"
    if not candidate.is_file():
        raise CheckpointError(
            f"{path}: a CTC checkpoint needs its letter dictionary; {candidate} does not exist",
            hint="pass it with --dict dict.ltr.txt",
        )
    vocab = Vocabulary.from_fairseq_dict(candidate)
    if len(vocab) != vocab_size:
        raise CheckpointError(
            f"{candidate} gives {len(vocab)} outputs (4 specials + {len(vocab) - 4} symbols) but {path} has "
            f"{vocab_size}",
            hint="use the dict.ltr.txt the model was fine-tuned with",
        )
    return vocab
