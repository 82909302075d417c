"""BEST-RQ (model.objective: bestrq): the frozen random-projection quantizer, the stacking of log-mel frames, the
loss and its metrics, the config rules, checkpoints and the export refusal, each checked against numbers computed
by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from w2v2cli.config import from_dict, to_dict
from w2v2cli.errors import CheckpointError, ConfigError
from w2v2cli.model import (
    BestRQOutput,
    ModelConfig,
    RandomProjectionQuantizer,
    Wav2Vec2ForBestRQ,
    Wav2Vec2ForPreTraining,
    build_model,
    model_preset,
    stack_frames,
)
from w2v2cli.model.losses import bestrq_loss

# the tiny log-mel model, smaller still: 2 layers of 48, 64 codes of size 8 (so that numbers are checked quickly)
SMALL = dict(encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96, encoder_attention_heads=4,
             conv_pos=16, conv_pos_groups=4, conv_layers=[(80, 400, 160), (32, 3, 1), (32, 2, 2)],
             rq_codebook_size=64, rq_codebook_dim=8)


def small_cfg(**changes) -> ModelConfig:
    return model_preset("tiny_fbank_rq", **{**SMALL, **changes})


def _audio(seed: int = 0, lengths=(16000, 11123)) -> tuple[torch.Tensor, torch.Tensor]:
    """Tones with noise, zero-padded: (waveforms [B, T], lengths [B])."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(max(lengths)) / 16000
    rows = []
    for i, n in enumerate(lengths):
        f = 200.0 + 300.0 * i + 800.0 * float(torch.rand((), generator=g))
        x = torch.sin(2 * math.pi * f * t) * (t < 0.4 + 0.2 * i) + 0.3 * torch.randn(t.shape, generator=g)
        x[n:] = 0.0
        rows.append(x)
    return torch.stack(rows), torch.tensor(lengths)


def _codes_by_hand(x: np.ndarray, projection: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """argmax_v cos(x @ P[n], C[n, v]) for each codebook n, in float64 numpy: [..., N]."""
    out = []
    for p, c in zip(projection, codebook):
        proj = x.astype(np.float64) @ p.astype(np.float64)
        proj /= np.linalg.norm(proj, axis=-1, keepdims=True)
        unit = c.astype(np.float64) / np.linalg.norm(c.astype(np.float64), axis=-1, keepdims=True)
        out.append((proj @ unit.T).argmax(-1))
    return np.stack(out, -1)


# ---------------------------------------------------------------------------------------------- quantizer
def test_quantizer_codes_are_the_argmax_cosine_computed_by_hand():
    q = RandomProjectionQuantizer(in_features=24, codebook_size=50, codebook_dim=6, num_codebooks=3, seed=7)
    x = torch.randn(5, 40, 24, generator=torch.Generator().manual_seed(0)) * 3.0 + 1.0
    codes = q(x)
    assert codes.shape == (5, 40, 3) and codes.dtype == torch.long
    expect = _codes_by_hand(x.numpy(), q.projection.numpy(), q.codebook.numpy())
    assert np.array_equal(codes.numpy(), expect)
    # the code ignores the input's scale (cosine), and each codebook gives its own codes
    assert torch.equal(q(x * 7.5), codes)
    assert not torch.equal(codes[..., 0], codes[..., 1])
    # Xavier uniform projection, l2-normalised standard-normal codebook
    bound = math.sqrt(6.0 / (24 + 6))
    assert q.projection.abs().max() <= bound and q.projection.abs().max() > 0.9 * bound
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(3, 50))
    with pytest.raises(ValueError, match=r"\[\.\.\., 24\].*\(5, 23\)"):
        q(torch.randn(5, 23))


def test_quantizer_is_deterministic_from_its_seed_and_ignores_autocast():
    a = RandomProjectionQuantizer(16, 32, 4, 2, seed=3)
    b = RandomProjectionQuantizer(16, 32, 4, 2, seed=3)
    c = RandomProjectionQuantizer(16, 32, 4, 2, seed=4)
    assert torch.equal(a.projection, b.projection) and torch.equal(a.codebook, b.codebook)
    assert not torch.equal(a.projection, c.projection) and not torch.equal(a.codebook, c.codebook)
    torch.manual_seed(123)  # the global generator plays no part
    d = RandomProjectionQuantizer(16, 32, 4, 2, seed=3)
    assert torch.equal(a.projection, d.projection)
    x = torch.randn(100, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(a(x), a(x.float()))
    assert torch.equal(a(x), torch.as_tensor(_codes_by_hand(x.numpy(), a.projection.numpy(), a.codebook.numpy())))


# ---------------------------------------------------------------------------------------------- stacking
@pytest.mark.parametrize("t, frames, stack, stride, offset", [(9, 4, 2, 2, 1), (10, 4, 2, 2, 1), (7, 3, 2, 2, 0),
                                                               (11, 4, 4, 2, 0), (5, 5, 1, 1, 0)])
def test_stack_frames_concatenates_each_window_in_time_order(t, frames, stack, stride, offset):
    x = torch.arange(2 * t * 3, dtype=torch.float32).view(2, t, 3)
    out = stack_frames(x, frames, stack, stride, offset)
    assert out.shape == (2, frames, stack * 3)
    for j in range(frames):
        start = j * stride + offset
        assert torch.equal(out[:, j], x[:, start:start + stack].reshape(2, stack * 3))


def test_stack_frames_refuses_too_few_frames_naming_the_shape():
    with pytest.raises(ValueError, match=r"need 10 frames.*\(1, 9, 3\)"):
        stack_frames(torch.zeros(1, 9, 3), 4, 2, 2, 2)
    assert stack_frames(torch.zeros(1, 9, 3), 0, 2, 2, 1).shape == (1, 0, 6)


def test_one_target_per_encoder_frame_centred_in_its_log_mel_frames():
    cfg = small_cfg()
    model = build_model(cfg, "pretrain")
    assert isinstance(model, Wav2Vec2ForBestRQ)
    # 10 ms mel frames, conv strides 1 x 2: 2 stacked frames per 20 ms encoder frame, centred in the 4 it sees
    assert (cfg.rq_stride, cfg.rq_stack, model.offset) == (2, 2, 1)
    assert model.rq_quantizer.projection.shape == (1, 80 * 2, 8)
    for n in (16000, 16159, 16160, 16321, 8080):  # odd and even mel frame counts
        w, lengths = _audio(1, (n,))
        codes, frames = model.targets(w, lengths)
        mel = model.wav2vec2.feature_extractor.log_mel(w, lengths)[0].T.numpy()  # [T', 80]
        t = mel.shape[0]
        f = int(frames[0])
        assert f == (t - 4) // 2 + 1 == cfg.num_frames(n)
        stacked = np.stack([mel[2 * j + 1: 2 * j + 3].reshape(-1) for j in range(f)])  # mel 2j+1, 2j+2
        expect = _codes_by_hand(stacked, model.rq_quantizer.projection.numpy(), model.rq_quantizer.codebook.numpy())
        assert codes.shape == (1, f, 1) and np.array_equal(codes[0].numpy(), expect)


def test_padding_does_not_change_an_utterances_targets():
    model = build_model(small_cfg(rq_num_codebooks=2), "pretrain")
    w, lengths = _audio(2, (16000, 11123, 9999))
    codes, frames = model.targets(w, lengths)
    assert frames.tolist() == [48, 33, 29] and codes.shape == (3, 48, 2)
    for b, n in enumerate(lengths.tolist()):
        alone, f = model.targets(w[b:b + 1, :n])
        assert int(f[0]) == int(frames[b])
        assert torch.equal(codes[b, :f[0]], alone[0])


# ---------------------------------------------------------------------------------------------- frozen
def test_projection_and_codebook_are_frozen_buffers_saved_with_the_model():
    from w2v2cli.train.config import OptimConfig
    from w2v2cli.train.optim import build_optimizer

    model = build_model(small_cfg(), "pretrain").train()
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith("rq_quantizer.") for n in names) and "rq_head.weight" in names
    sd = model.state_dict()
    assert {"rq_quantizer.projection", "rq_quantizer.codebook"} <= set(sd)  # persistent buffers
    assert not model.rq_quantizer.projection.requires_grad and not model.rq_quantizer.codebook.requires_grad
    opt = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.1))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.rq_quantizer.projection) not in in_opt and id(model.rq_quantizer.codebook) not in in_opt
    before = {k: v.clone() for k, v in sd.items()}
    w, lengths = _audio(3)
    loss, n, _ = bestrq_loss(model(w, lengths))
    (loss / n).backward()
    opt.step()
    after = model.state_dict()
    assert torch.equal(after["rq_quantizer.projection"], before["rq_quantizer.projection"])
    assert torch.equal(after["rq_quantizer.codebook"], before["rq_quantizer.codebook"])
    assert not torch.equal(after["rq_head.weight"], before["rq_head.weight"])  # the head trains


def test_same_seed_same_buffers_other_seed_other_buffers():
    a, b = build_model(small_cfg(), "pretrain"), build_model(small_cfg(), "pretrain")
    c = build_model(small_cfg(rq_seed=2), "pretrain")
    for key in ("projection", "codebook"):
        assert torch.equal(getattr(a.rq_quantizer, key), getattr(b.rq_quantizer, key))
        assert not torch.equal(getattr(a.rq_quantizer, key), getattr(c.rq_quantizer, key))
    w, lengths = _audio(4)
    assert torch.equal(a.targets(w, lengths)[0], b.targets(w, lengths)[0])
    assert not torch.equal(a.targets(w, lengths)[0], c.targets(w, lengths)[0])


# ---------------------------------------------------------------------------------------------- loss
def test_loss_and_metrics_equal_the_cross_entropy_over_masked_frames_by_hand():
    g = torch.Generator().manual_seed(5)
    m, n, v = 37, 2, 11
    logits = torch.randn(m, n, v, generator=g) * 2
    targets = torch.randint(0, 6, (m, n), generator=g)  # codes 0..5 of 11 in use
    loss, size, metrics = bestrq_loss(BestRQOutput(logits, targets, m))
    by_hand = sum(-F.log_softmax(logits[i, k].double(), -1)[targets[i, k]] for i in range(m) for k in range(n)) / n
    assert size == m and loss.item() == pytest.approx(float(by_hand), rel=1e-6)
    assert metrics["loss"] == pytest.approx(float(by_hand) / m, rel=1e-6)
    correct = sum(int(logits[i, k].argmax() == targets[i, k]) for i in range(m) for k in range(n))
    assert metrics["accuracy"] == pytest.approx(correct / (m * n))
    usage, ppl = [], []
    for k in range(n):
        counts = np.bincount(targets[:, k].numpy(), minlength=v)
        p = counts[counts > 0] / m
        usage.append((counts > 0).sum() / v)
        ppl.append(math.exp(-(p * np.log(p)).sum()))
    assert metrics["code_usage"] == pytest.approx(np.mean(usage))
    assert metrics["code_perplexity"] == pytest.approx(np.mean(ppl), rel=1e-5)
    assert metrics["num_masked"] == m


def test_a_head_one_hot_on_the_targets_scores_accuracy_one():
    g = torch.Generator().manual_seed(6)
    targets = torch.randint(0, 32, (50, 2), generator=g)
    logits = F.one_hot(targets, 32).float() * 30.0
    loss, _, metrics = bestrq_loss(BestRQOutput(logits, targets, 50))
    assert metrics["accuracy"] == 1.0 and metrics["loss"] < 1e-9
    assert bestrq_loss(BestRQOutput(-logits, targets, 50))[2]["accuracy"] == 0.0


def test_model_forward_scores_the_masked_frames_against_their_targets():
    model = build_model(small_cfg(rq_num_codebooks=2), "pretrain").eval()  # no dropout: two passes agree
    w, lengths = _audio(7)
    codes, frames = model.targets(w, lengths)
    mask = torch.zeros(2, int(frames.max()), dtype=torch.bool)
    mask[0, 3:9] = True
    mask[1, 20:24] = True
    mask[1, 40:] = True  # past the second utterance's end (33 frames): padding is never scored
    out = model(w, lengths, mask_time=mask)
    used = mask & (torch.arange(mask.shape[1])[None] < frames[:, None])
    assert out.num_masked == int(used.sum()) == 10 and out.logits.shape == (10, 2, 64)
    assert torch.equal(out.targets, codes[used])
    enc = model.wav2vec2(w, lengths, mask_time=mask)
    expect = model.rq_head(enc.x[used]).view(10, 2, 64)
    assert torch.allclose(out.logits, expect, atol=1e-6)
    loss, size, _ = bestrq_loss(out)
    by_hand = F.cross_entropy(expect.reshape(20, 64), codes[used].reshape(20), reduction="sum") / 2
    assert size == 10 and loss.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_drawn_masks_follow_the_presets_span_settings():
    cfg = model_preset("tiny_fbank_rq")
    assert (cfg.mask_prob, cfg.mask_length, cfg.rq_codebook_size, cfg.rq_codebook_dim) == (0.6, 4, 1024, 16)
    model = build_model(small_cfg(), "pretrain").train()
    w, lengths = _audio(8, (48000, 48000))
    out = model(w, lengths, generator=torch.Generator().manual_seed(0))
    share = out.num_masked / (2 * cfg.num_frames(48000))
    assert 0.3 < share < 0.65  # about 48 % of frames in masked spans of 4


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, key", [
    (dict(objective="hubert"), "model.objective"),
    (dict(rq_codebook_size=1), "model.rq_codebook_size"),
    (dict(rq_codebook_dim=0), "model.rq_codebook_dim"),
    (dict(rq_num_codebooks=0), "model.rq_num_codebooks"),
    (dict(rq_stack_frames=-1), "model.rq_stack_frames"),
    (dict(rq_stack_frames=5), "model.rq_stack_frames"),  # more than the 4 mel frames an encoder frame sees
    (dict(rq_seed=-3), "model.rq_seed"),
    (dict(conv_layers=[(80, 400, 160)]), "model.conv_layers"),
])
def test_bad_bestrq_values_are_config_errors_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        small_cfg(**changes)
    assert key in err.value.message


def test_a_waveform_model_with_bestrq_is_refused_naming_model_objective():
    with pytest.raises(ConfigError) as err:
        model_preset("tiny", objective="bestrq")
    assert "model.objective" in err.value.message and "extractor_mode: fbank" in err.value.message
    assert "tiny_fbank_rq" in err.value.hint
    with pytest.raises(ConfigError, match="model.objective"):
        from_dict(ModelConfig, {"objective": "bestrq"})  # group_norm by default


def test_a_config_without_objective_is_contrastive_and_builds_the_same_model():
    old = to_dict(model_preset("tiny_fbank"))
    for key in [k for k in old if k == "objective" or k.startswith("rq_")]:
        del old[key]  # a checkpoint written before BEST-RQ
    cfg = from_dict(ModelConfig, old)
    assert cfg.objective == "contrastive" and cfg == model_preset("tiny_fbank")
    torch.manual_seed(0)
    model = build_model(cfg, "pretrain")
    assert type(model) is Wav2Vec2ForPreTraining
    assert not any(k.startswith("rq_") for k in model.state_dict())
    # the rq fields' defaults are valid, and unused, in a contrastive model
    assert build_model(model_preset("tiny", rq_stack_frames=9), "encoder") is not None


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_gives_identical_targets(tmp_path):
    from w2v2cli.checkpoint.io import load_checkpoint, save_checkpoint

    cfg = small_cfg(rq_seed=11, rq_num_codebooks=2)
    model = build_model(cfg, "pretrain")
    save_checkpoint(tmp_path / "ck", model, cfg, "pretrain")
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.kind == "pretrain" and loaded.cfg.objective == "bestrq" and loaded.cfg.rq_seed == 11
    assert isinstance(loaded.model, Wav2Vec2ForBestRQ)
    w, lengths = _audio(9)
    assert torch.equal(loaded.model.targets(w, lengths)[0], model.targets(w, lengths)[0])
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    # the buffers come from the file: a checkpoint whose codebook differs from the seed's keeps its own
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "ck" / "model.safetensors"))
    sd["rq_quantizer.codebook"] = sd["rq_quantizer.codebook"].flip(1)
    save_file(sd, str(tmp_path / "ck" / "model.safetensors"))
    again = load_checkpoint(tmp_path / "ck").model
    assert torch.equal(again.rq_quantizer.codebook, model.rq_quantizer.codebook.flip(1))
    # an encoder from it: the transformer weights, no quantizer or head
    enc = load_checkpoint(tmp_path / "ck", kind="encoder").model
    assert not any(k.startswith("rq_") for k in enc.state_dict())
    assert torch.equal(enc.state_dict()["encoder.layers.0.ffn.fc1.weight"],
                       model.state_dict()["wav2vec2.encoder.layers.0.ffn.fc1.weight"])


def test_export_to_transformers_refuses_a_bestrq_pretraining_checkpoint(tmp_path):
    from w2v2cli.checkpoint.hf import config_to_hf
    from w2v2cli.checkpoint.hf_dir import export_hf
    from w2v2cli.checkpoint.io import save_checkpoint

    cfg = small_cfg()
    save_checkpoint(tmp_path / "ck", build_model(cfg, "pretrain"), cfg, "pretrain")
    with pytest.raises(CheckpointError) as err:
        export_hf(tmp_path / "ck", tmp_path / "hf")
    assert "transformers has no BEST-RQ pretraining model" in err.value.message
    assert "\n" not in err.value.message and "w2v2 finetune --init" in err.value.hint
    assert not (tmp_path / "hf").exists()
    with pytest.raises(CheckpointError, match="no BEST-RQ pretraining model"):
        config_to_hf(cfg, None, "Wav2Vec2ForPreTraining")
    # a CTC model fine-tuned from it is a log-mel CTC model: refused as every fbank model is, for the front end
    from w2v2cli.vocab import Vocabulary

    vocab = Vocabulary(["<pad>", "|", "A", "B"])
    ctc_cfg = cfg.replace(vocab_size=4)
    save_checkpoint(tmp_path / "ctc", build_model(ctc_cfg, "ctc"), ctc_cfg, "ctc", vocab=vocab)
    with pytest.raises(CheckpointError) as err:
        export_hf(tmp_path / "ctc", tmp_path / "hf")
    assert "log-mel front end" in err.value.message and "BEST-RQ" not in err.value.message
