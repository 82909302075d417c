"""BEST-RQ through the task and the shared trainer: `PretrainTask` with `model.objective: bestrq` (loss, validation
sums and metrics, health checks), `--init` of a CTC model from a BEST-RQ checkpoint, and a short real training
that learns and resumes bit for bit."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from w2v2cli.data.collate import collate
from w2v2cli.model import Wav2Vec2ForBestRQ, Wav2Vec2ForCTC, build_model
from w2v2cli.train.config import training_preset
from w2v2cli.train.tasks import RQ_CHANCE_FACTOR, RQ_USAGE_SHARE, PretrainTask

FAST = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=none",
        "logging.tensorboard=false", "logging.log_interval=1", "lr.warmup_updates=10"]
FREQS = (220, 330, 440, 660, 880, 1320)


def _tones(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Structured audio: 80-240 ms segments, each a tone with its octave (6 pitches), white noise or silence."""
    parts, total = [], 0
    while total < samples:
        n = int(rng.integers(1300, 3900))
        t = np.arange(n) / 16000
        kind = int(rng.integers(0, 8))
        if kind < len(FREQS):
            f = FREQS[kind]
            parts.append(0.5 * np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t))
        else:
            parts.append(0.4 * rng.standard_normal(n) if kind == 6 else np.zeros(n))
        total += n
    return (np.concatenate(parts)[:samples] + 0.01 * rng.standard_normal(samples)).astype(np.float32)


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """A manifest of 8 utterances of 2 s of tones, noise and silence (16 kHz wav); `valid.tsv` beside it holds 2
    more."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    rows = [str(root)]
    for u in range(10):
        sf.write(root / f"u{u}.wav", _tones(rng, 32000), 16000)
        rows.append(f"u{u}.wav\t32000")
    (root / "train.tsv").write_text("\n".join(rows[:9]) + "\n")
    (root / "valid.tsv").write_text("\n".join(rows[:1] + rows[9:]) + "\n")
    return root / "train.tsv"


def _cfg(**changes):
    return training_preset("tiny_fbank_rq", **changes)


def _batch(seed: int = 0, lengths=(32000, 27001)):
    rng = np.random.default_rng(seed)
    return collate([_tones(rng, n) for n in lengths], pad=True)


# ---------------------------------------------------------------------------------------------- the task
def test_the_task_builds_the_bestrq_model_and_scores_it_without_temperature():
    cfg = _cfg()
    task = PretrainTask(cfg)
    model = task.build_model(cfg).train()
    assert isinstance(model, Wav2Vec2ForBestRQ) and task.kind == "pretrain"
    assert task.chance == pytest.approx(math.log(1024))
    assert task.log_metrics(0) == {} and task.log_metrics(10**6) == {}  # no Gumbel temperature
    torch.manual_seed(0)
    loss, n, metrics = task.compute_loss(model, _batch(), update=0)
    assert set(metrics) == {"loss", "accuracy", "code_usage", "code_perplexity", "num_masked"}
    assert n == metrics["num_masked"] > 0 and loss.item() / n == pytest.approx(metrics["loss"])
    assert abs(metrics["loss"] - math.log(1024)) < 1.5  # a fresh head is near chance
    loss.backward()
    assert model.rq_head.weight.grad is not None and model.rq_quantizer.projection.grad is None
    # the contrastive task is unchanged: Gumbel temperature in the log, its own model
    contrastive = PretrainTask(training_preset("tiny_fbank"))
    assert set(contrastive.log_metrics(0)) == {"temperature"}
    assert contrastive.chance == pytest.approx(math.log(21))


def test_validation_sums_give_the_code_usage_and_perplexity_over_all_batches():
    cfg = _cfg()
    task = PretrainTask(cfg)
    model = task.build_model(cfg).eval()
    batches = [_batch(1), _batch(2, (30000, 30000))]
    sums: dict[str, float] = {}
    targets = []
    for i, batch in enumerate(batches):
        torch.manual_seed(i)
        part = task.valid_step(model, batch)
        torch.manual_seed(i)
        targets.append(model(batch.waveforms, batch.lengths).targets[:, 0])  # the same masks again
        for key, value in part.items():
            sums[key] = sums.get(key, 0.0) + value
    metrics = task.valid_metrics(sums)
    codes = torch.cat(targets).numpy()
    counts = np.bincount(codes, minlength=1024)
    p = counts[counts > 0] / len(codes)
    assert metrics["num_masked"] == len(codes)
    assert metrics["code_usage"] == pytest.approx((counts > 0).sum() / 1024)  # distinct over the union
    assert metrics["code_perplexity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0
    assert set(metrics) == {"loss", "accuracy", "code_usage", "code_perplexity", "num_masked"}


def test_health_reports_chance_accuracy_only_after_warm_up():
    task = PretrainTask(_cfg())  # 1,024 codes, 300 warm-up updates
    stuck = {"loss": 6.93, "accuracy": 1 / 1024, "code_perplexity": 40.0}
    assert task.health(stuck, 600) == []  # still within 2 x warm-up
    (key, text), = task.health(stuck, 601)
    assert key == "chance" and "1/1024" in text and "ln(1024) = 6.931" in text
    assert task.health({**stuck, "accuracy": RQ_CHANCE_FACTOR / 1024 * 1.01}, 601) == []
    assert task.health({"loss": 2.5, "accuracy": 0.3, "code_perplexity": 40.0}, 5000) == []
    # no codebook-collapse warning: the targets cannot collapse, they are frozen
    assert task.health({"loss": 2.5, "accuracy": 0.3, "code_perplexity": 1.0}, 5000) == []


def test_valid_health_reports_tiny_code_usage_relative_to_what_the_frames_could_use():
    task = PretrainTask(_cfg())
    few_codes = {"code_usage": 20 / 1024, "num_masked": 5000.0, "code_perplexity": 3.2}
    (key, text), = task.valid_health(few_codes, 100)
    assert key == "code_usage" and "20 of 1024 codes" in text and "rq_seed" in text
    assert task.valid_health({**few_codes, "code_usage": 60 / 1024}, 100) == []  # >= 5 % of 1,024
    # 100 masked frames can use at most 100 codes: 10 of them is 10 %, not collapse
    assert task.valid_health({**few_codes, "num_masked": 100.0, "code_usage": 10 / 1024}, 100) == []
    assert task.valid_health({**few_codes, "num_masked": 100.0, "code_usage": 4 / 1024}, 100) != []
    assert RQ_USAGE_SHARE == 0.05
    assert PretrainTask(training_preset("tiny_fbank")).valid_health(few_codes, 100) == []


def test_config_show_prints_the_bestrq_presets():
    import yaml
    from typer.testing import CliRunner

    from w2v2cli.cli.app import app

    for name, codes in (("tiny_fbank_rq", 1024), ("base_fbank_rq", 8192)):
        res = CliRunner().invoke(app, ["config", "show", name])
        assert res.exit_code == 0, res.output
        model = yaml.safe_load(res.output)["model"]
        assert model["objective"] == "bestrq" and model["extractor_mode"] == "fbank"
        assert (model["rq_codebook_size"], model["rq_codebook_dim"], model["mask_prob"], model["mask_length"]) == \
            (codes, 16, 0.6, 4)
    res = CliRunner().invoke(app, ["config", "show", "tiny_fbank_rq", "--set", "model.objective=hubert"])
    assert res.exit_code != 0 and "model.objective" in res.exception.message


# ---------------------------------------------------------------------------------------------- --init
def test_init_of_a_ctc_model_takes_the_encoder_and_drops_the_rq_parts(tmp_path):
    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.train.ctc_task import CTCTask, load_init
    from w2v2cli.train.finetune import finetune_model_config
    from w2v2cli.vocab import Vocabulary

    pre_cfg = _cfg().model
    pretrained = build_model(pre_cfg, "pretrain")
    save_checkpoint(tmp_path / "pt", pretrained, pre_cfg, "pretrain")
    init = load_init(tmp_path / "pt")
    assert init.kind == "pretrain" and init.head_state is None
    assert not any(k.startswith(("rq_", "wav2vec2.")) for k in init.encoder_state)
    vocab = Vocabulary(["<pad>", "<s>", "</s>", "<unk>", "|", "A", "B", "C"])
    cfg = training_preset("tiny_fbank_ctc", **{"task.reinit_layers": 0})
    cfg = replace(cfg, model=finetune_model_config(init.cfg, cfg.model, len(vocab)))
    model = CTCTask(cfg, vocab, init=init).build_model(cfg)
    assert isinstance(model, Wav2Vec2ForCTC)
    sd = model.state_dict()
    assert not any("rq_" in k for k in sd) and "lm_head.weight" in sd
    for key, value in pretrained.wav2vec2.state_dict().items():
        assert torch.equal(sd["wav2vec2." + key], value), key
    # a fine-tuned model from a BEST-RQ init is a CTC model of the log-mel architecture
    assert cfg.model.extractor_mode == "fbank" and cfg.model.vocab_size == len(vocab)


# ---------------------------------------------------------------------------------------------- training
def test_short_training_learns_and_resumes_bit_for_bit(tones, tmp_path):
    """50 updates of tiny_fbank_rq on 16 s of structured tones (about 6 s on one core): the loss falls far below
    chance, validation reports the code statistics, the frozen buffers leave the trainer unchanged, and a run
    resumed from its update-40 checkpoint repeats updates 41-50 bit for bit."""
    from safetensors.torch import load_file

    from w2v2cli.train.logging import read_metrics
    from w2v2cli.train.pretrain import pretrain

    torch.set_num_threads(1)
    run = tmp_path / "run"
    sets = FAST + ["checkpoint.save_interval_updates=40", "checkpoint.validate_interval_updates=40",
                   "checkpoint.keep_last=2"]
    valid = [tones.with_name("valid.tsv")]
    result = pretrain([tones], run, config="tiny_fbank_rq", overrides=sets, valid=valid, max_updates=50)
    records = read_metrics(run)
    train = {r["update"]: r for r in records if r.get("split") == "train"}
    assert sorted(train) == list(range(1, 51)) and "temperature" not in train[50]
    first, last5 = train[1]["loss"], [train[u] for u in range(46, 51)]
    assert first == pytest.approx(math.log(1024), abs=0.7)
    last_loss = sum(r["loss"] for r in last5) / 5
    assert last_loss < 0.6 * first  # measured: 7.03 -> ~2.9 (below the targets' entropy, ln 18 = 2.9)
    assert sum(r["accuracy"] for r in last5) / 5 > 0.15  # chance is 1/1024; measured ~0.37
    scores = [r for r in records if r.get("split") == "valid"][-1]
    assert {"loss", "accuracy", "code_usage", "code_perplexity", "num_masked"} <= set(scores)
    assert 0 < scores["code_usage"] <= 1 and scores["code_perplexity"] > 1
    warnings = [r["message"] for r in records if r.get("event") == "warning"]
    assert not any("BEST-RQ" in w for w in warnings), warnings
    # the quantizer's buffers are in the checkpoint, exactly as a fresh build with the seed makes them
    sd = load_file(str(result.last_checkpoint / "model.safetensors"))
    fresh = build_model(_cfg().model, "pretrain").state_dict()
    for key in ("rq_quantizer.projection", "rq_quantizer.codebook"):
        assert torch.equal(sd[key], fresh[key])
    assert not torch.equal(sd["rq_head.weight"], fresh["rq_head.weight"])
    # resume from update 40 (the update-50 checkpoint removed, as if the run had died after 40)
    shutil.rmtree(run / "checkpoints" / "update_00000050")
    (run / "checkpoint_last").unlink(missing_ok=True)
    pretrain([tones], run, config="tiny_fbank_rq", overrides=sets, valid=valid, max_updates=50, resume="auto")
    again = {r["update"]: r["loss"] for r in read_metrics(run) if r.get("split") == "train"}
    assert sorted(again) == list(range(1, 51))
    assert all(again[u] == train[u]["loss"] for u in range(41, 51))


def test_kmeans_targets_are_fitted_before_the_first_update_and_restored_on_resume(tones, tmp_path):
    """tiny_fbank_km for 30 updates on the tones: the trainer fits the centroids on the training audio before the
    first update (the loss starts near ln 256 and falls), they stay frozen, and a resumed run takes them from its
    checkpoint rather than fitting again (centroids permuted in the update-20 checkpoint stay permuted)."""
    from safetensors.torch import load_file, save_file

    from w2v2cli.train.logging import read_metrics
    from w2v2cli.train.pretrain import pretrain

    torch.set_num_threads(1)
    run = tmp_path / "run"
    sets = FAST + ["checkpoint.save_interval_updates=20", "checkpoint.keep_last=2", "model.rq_codebook_size=32"]
    result = pretrain([tones], run, config="tiny_fbank_km", overrides=sets, max_updates=30)
    train = {r["update"]: r for r in read_metrics(run) if r.get("split") == "train"}
    assert train[1]["loss"] == pytest.approx(math.log(32), abs=0.7)
    assert sum(train[u]["accuracy"] for u in range(26, 31)) / 5 > 8 / 32  # chance 1/32; measured ~0.5
    at20 = load_file(str(run / "checkpoints" / "update_00000020" / "model.safetensors"))
    at30 = load_file(str(result.last_checkpoint / "model.safetensors"))
    assert bool(at30["rq_quantizer.fitted"]) and at30["rq_quantizer.centroids"].abs().sum() > 0
    assert torch.equal(at20["rq_quantizer.centroids"], at30["rq_quantizer.centroids"])
    # resume from update 20 with the centroids' order reversed: the resumed run keeps the checkpoint's
    shutil.rmtree(run / "checkpoints" / "update_00000030")
    (run / "checkpoint_last").unlink(missing_ok=True)
    path = run / "checkpoints" / "update_00000020" / "model.safetensors"
    at20["rq_quantizer.centroids"] = at20["rq_quantizer.centroids"].flip(1).contiguous()
    save_file(at20, str(path))
    (path.parent / "model.safetensors.sha256").unlink(missing_ok=True)
    again = pretrain([tones], run, config="tiny_fbank_km", overrides=sets, max_updates=30, resume="auto")
    final = load_file(str(again.last_checkpoint / "model.safetensors"))
    assert torch.equal(final["rq_quantizer.centroids"], at20["rq_quantizer.centroids"])
