"""`w2v2 info`: config, parameters per part (numbers checked by hand) and vocabulary tables."""

from __future__ import annotations

import re
import torch
import transformers
from typer.testing import CliRunner

from ckpt_helpers import fairseq_checkpoint, hf_model, run_cli
from w2v2cli.checkpoint import save_checkpoint
from w2v2cli.cli.app import app
from w2v2cli.model import build_model, model_preset
from w2v2cli.vocab import Vocabulary

VOCAB = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C"])


def _row(output: str, label: str) -> str:
    match = re.search(rf"│ {re.escape(label)}\s+│\s+([\d,]+)\s+│", output)
    assert match, f"no row {label!r} in:\n{output}"
    return match.group(1)


def test_info_tiny_ctc_counts_and_vocab(tmp_path):
    cfg = model_preset("tiny", vocab_size=len(VOCAB))
    save_checkpoint(tmp_path / "ck", build_model(cfg, "ctc"), cfg, "ctc", vocab=VOCAB, provenance={"step": 77})
    result = CliRunner().invoke(app, ["info", str(tmp_path / "ck")], terminal_width=150)
    assert result.exit_code == 0, result.output
    out = result.output
    # tiny preset: 7 convs of 128 channels, 4 layers of 192 wide with FFN 768, pos conv 32 taps / 8 groups
    conv = 128 * 10 + 2 * 128 + 4 * 128 * 128 * 3 + 2 * 128 * 128 * 2
    layer = 4 * (192 * 192 + 192) + 2 * 2 * 192 + 192 * 768 + 768 + 768 * 192 + 192
    expected = {
        "feature_extractor": conv, "feature_projection": 2 * 128 + 128 * 192 + 192, "mask_embedding": 192,
        "encoder.pos_conv": 192 * 24 * 32 + 32 + 192, "encoder.norm": 2 * 192, "encoder.layers": 4 * layer,
        "lm_head": 8 * 192 + 8,
    }
    for part, n in expected.items():
        assert _row(out, part) == f"{n:,}", part
    assert _row(out, "total") == f"{sum(expected.values()):,}" == "2,217,960"
    assert "quantizer" not in out
    assert re.search(r"│\s+0 │ <s>\s+│ blank", out) and re.search(r"│\s+4 │ \|\s+│ word separator", out)
    assert "encoder_embed_dim" in out and "192" in out and "step" in out and "77" in out
    # the order of parts follows the model's data flow
    assert out.index("feature_extractor") < out.index("feature_projection") < out.index("encoder.layers") \
        < out.index("lm_head")


def test_info_reads_fairseq_file_directly(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "lv60", seed=21)
    torch.save(fairseq_checkpoint(hf, "lv60", "old", True), tmp_path / "xlsr.pt")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "xlsr.pt")], terminal_width=150)
    assert result.exit_code == 0, result.output
    total = sum(p.numel() for p in hf.parameters())
    assert _row(result.output, "total") == f"{total:,}"
    assert _row(result.output, "quantizer") == f"{16 * 16 + 16 + 16 * 8:,}"  # weight_proj 16x16 + bias + codebook
    assert "layer_norm" in result.output and "fairseq" in result.output


def test_info_errors(tmp_path):
    code, err = run_cli("info", tmp_path / "nothing")
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code, err = run_cli("info", tmp_path / "empty")
    assert code == 1 and "neither a w2v2 checkpoint" in err
