"""Typed YAML config: strict keys, suggestions, overrides, presets."""

from dataclasses import dataclass, field

import pytest
import yaml

from w2v2cli.config import apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from w2v2cli.errors import ConfigError
from w2v2cli.model.config import ModelConfig, model_preset


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class Run:
    optim: Optim = field(default_factory=Optim)
    name: str = "x"
    max_updates: int = 10
    manifests: list[str] = field(default_factory=list)


def test_from_dict_nested_and_yaml_float_strings():
    cfg = from_dict(Run, {"optim": {"lr": "5e-4", "betas": [0.9, 0.999]}, "max_updates": 3})
    assert cfg.optim.lr == pytest.approx(5e-4)
    assert cfg.optim.betas == (0.9, 0.999)
    assert cfg.max_updates == 3 and cfg.name == "x"


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        from_dict(Run, {"optim": {"lrr": 1.0}}, source="run.yaml")
    assert "run.yaml" in err.value.message and "optim.lrr" in err.value.message
    assert "lr" in err.value.hint


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="max_updates"):
        from_dict(Run, {"max_updates": "many"})
    with pytest.raises(ConfigError, match="betas"):
        from_dict(Run, {"optim": {"betas": [0.9]}})


def test_overrides_and_roundtrip(tmp_path):
    cfg = apply_overrides(Run(), ["optim.lr=2e-4", "name=demo", "manifests=[a.tsv, b.tsv]"])
    assert cfg.optim.lr == pytest.approx(2e-4) and cfg.name == "demo" and cfg.manifests == ["a.tsv", "b.tsv"]
    with pytest.raises(ConfigError, match="optim.lx"):
        apply_overrides(Run(), ["optim.lx=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(Run(), ["optim.lr"])
    save_yaml(to_dict(cfg), tmp_path / "c.yaml")
    assert from_dict(Run, load_yaml(tmp_path / "c.yaml")) == cfg


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_yaml(tmp_path / "missing.yaml")


def test_model_presets_geometry():
    base = model_preset("base")
    assert base.receptive_field == 400 and base.hop == 320
    tiny = model_preset("tiny")
    assert tiny.receptive_field == 400 and tiny.hop == 320
    xlsr = model_preset("xlsr")
    assert xlsr.layer_norm_first and xlsr.extractor_mode == "layer_norm" and xlsr.conv_bias
    assert xlsr.encoder_layers == 24 and xlsr.final_dim == 768
    roundtrip = from_dict(ModelConfig, yaml.safe_load(yaml.safe_dump(to_dict(xlsr))))
    assert roundtrip == xlsr
    with pytest.raises(ConfigError, match="preset"):
        model_preset("huge")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(encoder_embed_dim=100, encoder_attention_heads=12)
