"""Our checkpoint directory: exact round trip, kind checks, clear errors, atomic saves, no unpickling."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from w2v2cli.checkpoint import load_checkpoint, load_model_any, parameter_counts, save_checkpoint
from w2v2cli.errors import CheckpointError
from w2v2cli.model import build_model, model_preset
from w2v2cli.vocab import Vocabulary

VOCAB = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C"])


def _tiny(kind, seed=0, **changes):
    torch.manual_seed(seed)
    cfg = model_preset("tiny", encoder_layers=2, vocab_size=len(VOCAB) if kind == "ctc" else 0, **changes)
    return build_model(cfg, kind).eval(), cfg


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_is_exact_and_outputs_match(tmp_path):
    model, cfg = _tiny("ctc")
    save_checkpoint(tmp_path / "ck", model, cfg, "ctc", vocab=VOCAB, provenance={"step": 12},
                    train_config={"optim": {"lr": 5e-5}}, extra_files={"notes.txt": b"hello"})
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # no temp dirs left behind
    assert sorted(os.listdir(tmp_path / "ck")) == ["config.yaml", "model.safetensors", "notes.txt"]
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.kind == "ctc" and loaded.cfg == cfg and loaded.vocab == VOCAB
    assert loaded.provenance == {"step": 12} and loaded.train_config == {"optim": {"lr": 5e-5}}
    assert not loaded.model.training and _same_weights(model, loaded.model)
    wave = torch.randn(2, 6000)
    assert torch.equal(model(wave)[0], loaded.model(wave)[0])
    # the model file or the directory both work, and load_model_any recognises our format
    assert load_checkpoint(tmp_path / "ck" / "model.safetensors").kind == "ctc"
    assert load_model_any(tmp_path / "ck").vocab == VOCAB


def test_kind_conversion_rules(tmp_path):
    model, cfg = _tiny("pretrain")
    save_checkpoint(tmp_path / "pt", model, cfg, "pretrain")
    enc = load_checkpoint(tmp_path / "pt", kind="encoder").model
    assert type(enc).__name__ == "Wav2Vec2Model"
    assert all(torch.equal(v, model.state_dict()["wav2vec2." + k]) for k, v in enc.state_dict().items())
    with pytest.raises(CheckpointError, match="not a CTC") as info:
        load_checkpoint(tmp_path / "pt", kind="ctc")
    assert "fine-tune it first" in info.value.hint
    ctc, ccfg = _tiny("ctc")
    save_checkpoint(tmp_path / "ctc", ctc, ccfg, "ctc", vocab=VOCAB)
    with pytest.raises(CheckpointError, match="pretraining heads"):
        load_checkpoint(tmp_path / "ctc", kind="pretrain")


def test_vocab_size_mismatch_refused(tmp_path):
    model, cfg = _tiny("ctc")
    with pytest.raises(CheckpointError, match="vocabulary has 3 tokens but the model has 8"):
        save_checkpoint(tmp_path / "ck", model, cfg, "ctc", vocab=Vocabulary(["<s>", "a", "b"]))
    assert not (tmp_path / "ck").exists()


def test_corrupted_and_partial_checkpoints_give_clear_errors(tmp_path):
    model, cfg = _tiny("encoder")
    ck = tmp_path / "ck"
    save_checkpoint(ck, model, cfg, "encoder")
    weights = (ck / "model.safetensors").read_bytes()

    (ck / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    with pytest.raises(CheckpointError, match=r"cannot read weights .*model.safetensors \(truncated or corrupted"):
        load_checkpoint(ck)

    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors: incomplete checkpoint"):
        load_checkpoint(ck)

    (ck / "model.safetensors").write_bytes(weights)
    meta = yaml.safe_load((ck / "config.yaml").read_text())
    (ck / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(CheckpointError, match="config.yaml is not valid YAML"):
        load_checkpoint(ck)

    bad = dict(meta, model=dict(meta["model"], encoder_layers=3))  # config no longer fits the weights
    (ck / "config.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(CheckpointError, match=r"missing 1[0-9] weights \(encoder.layers.2"):
        load_checkpoint(ck)

    bad = dict(meta, model=dict(meta["model"], encoder_ffn_embed_dim=100))
    (ck / "config.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(CheckpointError, match=r"shape mismatch \(encoder.layers.0.ffn.fc1.weight: \(768, 192\) vs"):
        load_checkpoint(ck)

    bad = dict(meta, model=dict(meta["model"], encoder_layerz=3))
    (ck / "config.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(CheckpointError, match="unknown key 'encoder_layerz'"):
        load_checkpoint(ck)

    (ck / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match="has no config.yaml"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, cfg = _tiny("ctc")
    save_checkpoint(tmp_path / "ck", model, cfg, "ctc", vocab=VOCAB)

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling during checkpoint load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert _same_weights(load_checkpoint(tmp_path / "ck").model, model)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    old, cfg = _tiny("encoder", seed=1)
    save_checkpoint(tmp_path / "ck", old, cfg, "encoder", provenance={"v": 1})
    new, _ = _tiny("encoder", seed=2)
    import w2v2cli.checkpoint.io as ckio

    real = ckio.save_weights

    def half_then_fail(state, path):
        real(state, path)
        Path(path).write_bytes(Path(path).read_bytes()[:1000])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckio, "save_weights", half_then_fail)
    with pytest.raises(CheckpointError, match="cannot write .*ck: No space left on device") as err:
        save_checkpoint(tmp_path / "ck", new, cfg, "encoder", provenance={"v": 2})
    assert "\n" not in err.value.message and "previous one is intact" in err.value.message  # one line
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # the temp dir was cleaned up
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.provenance == {"v": 1} and _same_weights(loaded.model, old)


def test_killed_save_keeps_previous_checkpoint(tmp_path):
    """A process SIGKILLed in the middle of writing the new checkpoint leaves the old one loadable."""
    old, cfg = _tiny("encoder", seed=1)
    save_checkpoint(tmp_path / "ck", old, cfg, "encoder", provenance={"v": 1})
    script = textwrap.dedent(f"""
        import os, signal, torch
        import w2v2cli.checkpoint.io as ckio
        from w2v2cli.model import build_model, model_preset
        real = ckio.save_weights
        def die_midway(state, path):
            real(state, path)  # weights written, config.yaml not yet: the worst moment
            os.kill(os.getpid(), signal.SIGKILL)
        ckio.save_weights = die_midway
        torch.manual_seed(2)
        cfg = model_preset("tiny", encoder_layers=2)
        ckio.save_checkpoint({str(tmp_path / 'ck')!r}, build_model(cfg, "encoder"), cfg, "encoder", provenance={{"v": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    leftovers = [p for p in os.listdir(tmp_path) if p != "ck"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".ck.tmp-")  # the half-written new one, aside
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.provenance == {"v": 1} and _same_weights(loaded.model, old)
    # saving again works and replaces the old checkpoint
    new, _ = _tiny("encoder", seed=3)
    save_checkpoint(tmp_path / "ck", new, cfg, "encoder", provenance={"v": 3})
    assert load_checkpoint(tmp_path / "ck").provenance == {"v": 3}


def test_parameter_counts_per_part_base():
    model = build_model(model_preset("base"), "pretrain")
    counts = parameter_counts(model)
    # conv: 512*1*10 + GroupNorm 2*512 + 4 * 512*512*3 + 2 * 512*512*2
    assert counts["feature_extractor"] == 5120 + 1024 + 4 * 786432 + 2 * 524288 == 4200448
    assert counts["feature_projection"] == 2 * 512 + 512 * 768 + 768 == 395008
    assert counts["mask_embedding"] == 768
    # weight_v [768, 48, 128] + weight_g [1, 1, 128] + bias 768
    assert counts["encoder.pos_conv"] == 768 * 48 * 128 + 128 + 768 == 4719488
    assert counts["encoder.norm"] == 1536
    per_layer = 4 * (768 * 768 + 768) + 2 * 1536 + 768 * 3072 + 3072 + 3072 * 768 + 768
    assert counts["encoder.layers"] == 12 * per_layer == 85054464
    assert counts["quantizer"] == 640 * 512 + 640 + 640 * 128 == 410240
    assert counts["project_q"] == 256 * 256 + 256 and counts["final_proj"] == 768 * 256 + 256
    assert sum(counts.values()) == 95044608  # REFERENCE.md, BASE pretraining model
