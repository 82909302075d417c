"""The shared loop in-process with the real tiny model: it learns, and it survives NaN losses."""

from __future__ import annotations

import math

import pytest
import torch

from w2v2cli.errors import TrainingError
from w2v2cli.train.logging import read_metrics
from w2v2cli.train.pretrain import pretrain
from w2v2cli.train.resolve import RunOptions, resolve_config
from w2v2cli.train.tasks import PretrainTask
from w2v2cli.train.trainer import train

FAST = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=none",
        "checkpoint.save_interval_updates=1000", "lr.warmup_updates=10"]


def test_overfitting_four_utterances_drives_accuracy_far_above_chance(few, tmp_path):
    # a fast schedule (fast Gumbel temperature decay, light diversity loss; FAST has a short warm-up): the tiny
    # preset's own schedule keeps the codebook healthy over thousands of updates and is slow to start on purpose
    fast_schedule = ["model.latent_temp=[2.0,0.5,0.995]", "task.diversity_weight=0.1"]
    result = pretrain([few], tmp_path / "run", config="tiny", max_updates=100,
                      overrides=FAST + ["logging.log_interval=20"] + fast_schedule)
    records = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    chance_acc = 1 / 21  # 20 distractors in the tiny preset
    first, last = records[0], records[-1]
    assert result.update == 100 and last["update"] == 100
    assert first["accuracy"] < 3 * chance_acc
    assert last["accuracy"] > 4 * chance_acc  # measured: ~0.42 at update 100
    assert last["contrastive"] < math.log(21) - 0.3  # below the chance loss ln(K+1)
    assert (tmp_path / "run" / "checkpoint_last" / "model.safetensors").is_file()


class NaNTask(PretrainTask):
    """The real pretraining task with a fault injected: the loss of chosen updates is NaN."""

    def __init__(self, cfg, bad_updates):
        super().__init__(cfg)
        self.bad = set(bad_updates)
        self.calls = 0

    def compute_loss(self, model, batch, update):
        loss, n, m = super().compute_loss(model, batch, update)
        self.calls += 1
        return (loss * float("nan") if self.calls in self.bad else loss), n, m


def test_nan_loss_skips_the_update_and_repeated_nans_stop_clearly(few, tmp_path):
    cfg = resolve_config("tiny", FAST + ["logging.log_interval=1", "optim.max_nonfinite=3"],
                         RunOptions(train=(few,), max_updates=4)).cfg
    task = NaNTask(cfg, bad_updates={2})
    result = train(cfg, task, tmp_path / "one")
    assert result.update == 4 and result.nonfinite_updates == 1 and task.calls == 5  # 5 batches for 4 updates
    warnings = [r for r in read_metrics(tmp_path / "one") if r.get("event") == "warning"]
    assert any("NaN/inf" in w["message"] for w in warnings)
    from safetensors.torch import load_file

    sd = load_file(str(tmp_path / "one" / "checkpoint_last" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in sd.values())
    with pytest.raises(TrainingError, match="3 updates in a row had a NaN/inf loss"):
        train(cfg, NaNTask(cfg, bad_updates=set(range(1, 100))), tmp_path / "many")


def test_plot_command_renders_png_and_names_missing_matplotlib(tmp_path, monkeypatch):
    import json
    import sys

    from typer.testing import CliRunner

    from w2v2cli.cli.app import app
    from w2v2cli.errors import ToolMissingError

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"split": "train", "update": u, "loss": 3.0 - u / 10, "accuracy": u / 20, "lr": 1e-3} for u in range(1, 9)]
    rows.append({"split": "valid", "update": 8, "loss": 2.5, "accuracy": 0.3})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(app, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    png = run / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    res = CliRunner().invoke(app, ["plot", str(run)])
    assert isinstance(res.exception, ToolMissingError) and res.exception.hint == "pip install matplotlib"


def test_training_batches_get_the_length_quantum_and_validation_batches_do_not(few, tmp_path):
    """`data.length_quantum` rounds training batches only: validation scores every utterance at its own length.
    `data.sorted_epochs` reaches the training sampler."""
    from w2v2cli.train.distributed import DistInfo
    from w2v2cli.train.loaders import build_data

    cfg = resolve_config("tiny", FAST + ["data.length_quantum=4000", "data.sorted_epochs=2"],
                         RunOptions(train=(few,), valid=(few,))).cfg
    task, cpu = PretrainTask(cfg), torch.device("cpu")
    train_ds, sampler, _ = build_data(cfg, task, DistInfo(), [str(few)], None, True, cpu)
    valid_ds, valid_sampler, _ = build_data(cfg, task, DistInfo(), [str(few)], None, False, cpu)
    assert (train_ds.length_quantum, valid_ds.length_quantum) == (4000, 0)
    assert (sampler.sorted_epochs, valid_sampler.shuffle) == (2, False)  # SortaGrad: a training-order option
    batch = train_ds[sampler.spec(0, 0)]
    assert batch.waveforms.shape[1] % 4000 == 0 and batch.waveforms.shape[1] >= 4000
