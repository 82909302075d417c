"""Training config presets and errors, learning-rate schedules, trainer state round trip."""

import math
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import CheckpointError, ConfigError
from w2v2cli.train.config import LRConfig, load_train_config, training_preset
from w2v2cli.train.optim import build_optimizer, lr_at
from w2v2cli.train.state import TrainerState, load_trainer_state, restore_rng, save_trainer_state, trainer_state_bytes


def test_published_presets():
    base = training_preset("base")
    assert (base.optim.lr, tuple(base.optim.betas), base.optim.eps, base.optim.weight_decay) == (5e-4, (0.9, 0.98),
                                                                                                1e-6, 0.01)
    assert (base.lr.warmup_updates, base.optim.max_updates, base.data.max_tokens) == (32_000, 400_000, 1_400_000)
    assert (base.data.max_sample_size, base.data.min_sample_size) == (250_000, 32_000)
    assert (base.task.diversity_weight, base.task.feature_penalty_weight) == (0.1, 10.0)
    assert base.model.encoder_layers == 12 and base.model.latent_temp == (2.0, 0.5, 0.999995)
    large = training_preset("large")
    assert (large.data.max_sample_size, large.data.max_tokens, large.task.feature_penalty_weight) == (320_000,
                                                                                                     1_200_000, 0.0)
    assert large.model.latent_temp[1] == 0.1 and large.model.encoder_layers == 24
    xlsr = training_preset("xlsr")
    assert xlsr.model.extractor_mode == "layer_norm" and xlsr.data.sampling_alpha == 0.5
    ft = training_preset("base_10h")
    assert (ft.task.name, ft.optim.lr, ft.model.mask_channel_prob, ft.task.freeze_finetune_updates) == (
        "ctc", 5e-5, 0.5, 10_000)
    assert ft.lr.scheduler == "tri_stage" and ft.optim.eps == 1e-8


@pytest.mark.parametrize("name, lr, updates, mask, channel, freq", [
    # fairseq examples/wav2vec/config/finetuning/vox_*.yaml and examples/wav2vec/xlsr/config/finetune.yaml
    ("large_10m", 1e-4, 13_000, 0.65, 0.25, 5), ("large_1h", 3e-4, 13_000, 0.75, 0.25, 5),
    ("large_10h", 1e-4, 20_000, 0.75, 0.25, 5), ("large_100h", 3e-5, 80_000, 0.5, 0.5, 5),
    ("large_960h", 3e-5, 320_000, 0.5, 0.25, 1), ("xlsr_cv", 3e-4, 20_000, 0.75, 0.25, 5)])
def test_large_and_xlsr_finetuning_presets(name, lr, updates, mask, channel, freq):
    from w2v2cli.train.finetune import finetune_config_name

    ft = training_preset(name)
    assert (ft.task.name, ft.optim.lr, ft.optim.max_updates, ft.model.mask_prob, ft.model.mask_channel_prob,
            ft.optim.update_freq) == ("ctc", lr, updates, mask, channel, freq)
    assert (ft.model.mask_channel_length, ft.model.layerdrop, ft.model.activation_dropout, ft.model.feature_grad_mult,
            ft.task.freeze_finetune_updates) == (64, 0.1, 0.1, 0.0, 10_000)
    assert (ft.data.max_tokens, ft.optim.eps, ft.lr.scheduler, ft.lr.final_lr_scale) == (1_280_000, 1e-8,
                                                                                        "tri_stage", 0.05)
    # the LV-60k / XLSR family with --init none: 24 pre-LN layers of 1024, normalised input
    assert ft.model.encoder_layers == 24 and ft.model.layer_norm_first and ft.model.normalize_audio
    assert finetune_config_name(name) == name
    listed = CliRunner().invoke(app, ["config", "list"])
    assert listed.exit_code == 0 and f"{name}\tctc\tlr={lr:g}\tupdates={updates}" in listed.output


def test_large_and_xlsr_pretraining_presets_name_their_finetuning_presets():
    from w2v2cli.train.finetune import finetune_config_name

    for name, listed in (("large", "large_10m, large_1h, large_10h, large_100h or large_960h"), ("xlsr", "xlsr_cv")):
        with pytest.raises(ConfigError, match="no single fine-tuning counterpart") as err:
            finetune_config_name(name)
        assert listed in err.value.hint


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'") as err:
        load_train_config("tiny", ["optim.lrr=1"])
    assert "did you mean 'lr'" in err.value.hint
    with pytest.raises(ConfigError, match="optim.max_updates' must be an integer"):
        load_train_config("tiny", ["optim.max_updates=many"])
    with pytest.raises(ConfigError, match="lr.scheduler"):
        load_train_config("tiny", ["lr.scheduler=cosine"])
    f = tmp_path / "run.yaml"
    f.write_text("preset: tiny\noptim:\n  lr: 2e-3\ndata:\n  max_tokkens: 5\n")
    with pytest.raises(ConfigError, match=r"run.yaml: unknown key 'data.max_tokkens'"):
        load_train_config(str(f))
    f.write_text("preset: tiny\noptim:\n  lr: 2e-3\n")
    cfg = load_train_config(str(f), ["optim.update_freq=4"])
    assert cfg.optim.lr == 2e-3 and cfg.optim.update_freq == 4 and cfg.model.encoder_layers == 4
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(str(tmp_path / "nope.yaml"))


def test_polynomial_and_tri_stage_schedules():
    poly = LRConfig(scheduler="polynomial", warmup_updates=10, end_lr=0.0, power=1.0)
    assert lr_at(0, 1.0, poly, 110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, poly, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, poly, 110) == pytest.approx(0.5)
    assert lr_at(110, 1.0, poly, 110) == 0.0
    tri = LRConfig(scheduler="tri_stage", phase_ratio=(0.1, 0.4, 0.5), init_lr_scale=0.01, final_lr_scale=0.05)
    assert lr_at(0, 1.0, tri, 100) == pytest.approx(0.01)
    assert lr_at(5, 1.0, tri, 100) == pytest.approx(0.505)
    assert lr_at(30, 1.0, tri, 100) == 1.0
    assert lr_at(75, 1.0, tri, 100) == pytest.approx(math.sqrt(0.05))  # halfway through the exponential decay
    assert lr_at(100, 1.0, tri, 100) == pytest.approx(0.05)


def test_trainer_state_round_trip_is_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, training_preset("tiny").optim)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.manual_seed(11), np.random.seed(12), random.seed(13)
    data = trainer_state_bytes(TrainerState(update=7, epoch=2, position=14, best_metric=0.5), opt)
    expected = (torch.rand(3), np.random.rand(), random.random())
    save_trainer_state(tmp_path / "trainer_state.pt", data)
    state, payload = load_trainer_state(tmp_path / "trainer_state.pt")
    assert (state.update, state.epoch, state.position, state.best_metric) == (7, 2, 14, 0.5)
    assert torch.equal(payload["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    restore_rng(payload["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.random.rand() == expected[1] and random.random() == expected[2]
    # a pickle with a foreign class is refused (weights_only=True)
    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"version": 1, "x": ValueError("boom")}))
    with pytest.raises(CheckpointError, match="unreadable trainer state"):
        load_trainer_state(tmp_path / "evil.pt")


def test_config_show_command():
    out = CliRunner().invoke(app, ["config", "show", "base", "--set", "optim.update_freq=8"])
    assert out.exit_code == 0, out.output
    assert "update_freq: 8" in out.output and "max_tokens: 1400000" in out.output
    bad = CliRunner().invoke(app, ["config", "show", "bsae"])
    assert bad.exit_code != 0 and "did you mean 'base'" in bad.exception.hint
