"""transformers directories: `w2v2 import hf` of save_pretrained models, `w2v2 export hf` loaded back by
transformers' own from_pretrained (model, tokenizer, feature extractor)."""

from __future__ import annotations

import json
import pytest
import torch
import transformers
from typer.testing import CliRunner

from ckpt_helpers import LETTERS, fairseq_checkpoint, hf_ctc_logits, hf_hidden, hf_model, padded_batch, run_cli, write_dict
from w2v2cli.checkpoint import load_checkpoint, save_checkpoint
from w2v2cli.cli.app import app
from w2v2cli.errors import CheckpointError
from w2v2cli.model import build_model, model_preset
from w2v2cli.vocab import Vocabulary

TOL = 1e-4


def _valid_max_diff(a, b, lengths, hop=320):
    return max((a[i, : (int(n) - 400) // hop + 1] - b[i, : (int(n) - 400) // hop + 1]).abs().max().item()
               for i, n in enumerate(lengths))


def _save_hf_vocab(directory):
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{s: i + 4 for i, s in enumerate(LETTERS)}}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    tok = transformers.Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), word_delimiter_token="|")
    tok.save_pretrained(directory)


@pytest.mark.parametrize("arch", ["Wav2Vec2ForPreTraining", "Wav2Vec2Model", "Wav2Vec2ForCTC"])
@pytest.mark.parametrize("family", ["base", "lv60"])
def test_import_save_pretrained(tmp_path, arch, family):
    cls = getattr(transformers, arch)
    hf = hf_model(cls, family, seed=11, vocab_size=32)
    src = tmp_path / "hf"
    hf.save_pretrained(src)
    if arch == "Wav2Vec2ForCTC":
        _save_hf_vocab(src)
    result = CliRunner().invoke(app, ["import", "hf", str(src), str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    loaded = load_checkpoint(tmp_path / "ck")
    kind = {"Wav2Vec2ForPreTraining": "pretrain", "Wav2Vec2Model": "encoder", "Wav2Vec2ForCTC": "ctc"}[arch]
    assert loaded.kind == kind and loaded.provenance["source"] == "transformers"
    assert loaded.cfg.layer_norm_first is (family == "lv60")
    wave, lengths = padded_batch(seed=12)
    with torch.no_grad():
        if kind == "ctc":
            assert loaded.vocab.blank == 0 and loaded.vocab.tokens[4] == "|" and len(loaded.vocab) == 32
            assert loaded.vocab.decode(loaded.vocab.encode("T H E | C A T |")) == "THE CAT"
            ours, theirs = loaded.model(wave, lengths)[0], hf_ctc_logits(hf, wave, lengths)
        else:
            encoder = loaded.model if kind == "encoder" else loaded.model.wav2vec2
            ours = encoder(wave, lengths).x
            theirs = hf_hidden(hf if kind == "encoder" else hf.wav2vec2, wave, lengths)
    assert _valid_max_diff(ours, theirs, lengths) <= TOL


def test_import_pytorch_model_bin(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForCTC, "base", seed=13, vocab_size=32)
    src = tmp_path / "hf"
    hf.save_pretrained(src)
    (src / "model.safetensors").unlink()
    torch.save(hf.state_dict(), src / "pytorch_model.bin")
    _save_hf_vocab(src)
    result = CliRunner().invoke(app, ["import", "hf", str(src), str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    wave, lengths = padded_batch(seed=14)
    with torch.no_grad():
        ours = load_checkpoint(tmp_path / "ck").model(wave, lengths)[0]
    assert _valid_max_diff(ours, hf_ctc_logits(hf, wave, lengths), lengths) <= TOL


def test_import_hf_errors(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForCTC, "base", seed=15, vocab_size=32)
    src = tmp_path / "hf"
    hf.save_pretrained(src)
    code, err = run_cli("import", "hf", src, tmp_path / "ck")
    assert code == 1 and "no vocab.json" in err and not (tmp_path / "ck").exists()
    (src / "vocab.json").write_text(json.dumps({"<pad>": 0, "a": 1}))
    result = CliRunner().invoke(app, ["import", "hf", str(src), str(tmp_path / "ck")])
    assert result.exit_code != 0 and "has 2 tokens but the model has 32 outputs" in str(result.exception)
    (src / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        from w2v2cli.checkpoint.hf_dir import read_hf_dir
        read_hf_dir(src)
    (src / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not readable JSON"):
        read_hf_dir(src)


@pytest.mark.parametrize("family", ["base", "lv60"])
def test_export_ctc_loads_in_transformers(tmp_path, family):
    """fairseq CTC -> w2v2 -> transformers: the model, tokenizer and feature extractor load as they are."""
    hf = hf_model(transformers.Wav2Vec2ForCTC, family, seed=16, vocab_size=32)
    torch.save(fairseq_checkpoint(hf, family, "new", normalize=family == "lv60", finetune={"apply_mask": True}),
               tmp_path / "ft.pt")
    write_dict(tmp_path / "dict.ltr.txt")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "fairseq", str(tmp_path / "ft.pt"), str(tmp_path / "ck")]).exit_code == 0
    result = runner.invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json",
        "tokenizer_config.json", "vocab.json"]

    ours = load_checkpoint(tmp_path / "ck")
    back = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path / "out").eval()
    processor = transformers.Wav2Vec2Processor.from_pretrained(tmp_path / "out")
    wave, lengths = padded_batch(seed=17)
    with torch.no_grad():
        mine = ours.model(wave, lengths)[0]
    assert _valid_max_diff(mine, hf_ctc_logits(back, wave, lengths), lengths) <= TOL

    tok = processor.tokenizer
    assert len(tok) == 32 and tok.pad_token_id == 0 and back.config.pad_token_id == 0
    ids = ours.vocab.encode("A | M A N | S E E S |")
    assert tok.decode(ids, group_tokens=False) == "A MAN SEES" == ours.vocab.decode(ids)
    assert tok("A MAN").input_ids == ours.vocab.encode("A | M A N")
    # CTC-style decoding of frame ids: blanks (0) and repeats collapse the same way
    frames = [0, 7, 7, 0, 4, 17, 0, 7, 9, 9, 0]
    assert tok.decode(frames) == "A MAN"

    fe = processor.feature_extractor
    assert fe.sampling_rate == 16000 and fe.do_normalize is (family == "lv60")
    assert fe.return_attention_mask is (family == "lv60")

    # and back: importing the exported directory gives the same weights and vocabulary
    assert runner.invoke(app, ["import", "hf", str(tmp_path / "out"), str(tmp_path / "ck2")]).exit_code == 0
    again = load_checkpoint(tmp_path / "ck2")
    sd1, sd2 = ours.model.state_dict(), again.model.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert again.vocab.tokens[2:] == ours.vocab.tokens[2:] and again.vocab.blank == 0
    assert again.vocab.decode(ids) == "A MAN SEES"
    assert again.cfg.normalize_audio is ours.cfg.normalize_audio


@pytest.mark.parametrize("kind,cls", [("pretrain", "Wav2Vec2ForPreTraining"), ("encoder", "Wav2Vec2Model")])
def test_export_other_kinds(tmp_path, kind, cls):
    torch.manual_seed(18)
    cfg = model_preset("tiny", encoder_layers=2)
    model = build_model(cfg, kind).eval()
    save_checkpoint(tmp_path / "ck", model, cfg, kind)
    result = CliRunner().invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "vocab.json").exists()
    back = getattr(transformers, cls).from_pretrained(tmp_path / "out").eval()
    wave, lengths = padded_batch(seed=19)
    with torch.no_grad():
        encoder = model if kind == "encoder" else model.wav2vec2
        theirs = hf_hidden(back if kind == "encoder" else back.wav2vec2, wave, lengths)
        assert _valid_max_diff(encoder(wave, lengths).x, theirs, lengths) <= TOL
    if kind == "pretrain":
        assert torch.equal(back.quantizer.codevectors, model.quantizer.codevectors)
        assert torch.equal(back.project_hid.weight, model.final_proj.weight)
    # a second export replaces the first; an unrelated non-empty directory is never replaced
    assert CliRunner().invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "out")]).exit_code == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "mine")])
    assert result.exit_code != 0 and "refusing to replace" in str(result.exception)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_export_spm_vocab_is_refused(tmp_path):
    vocab = Vocabulary.train_spm(["the cat sat on the mat", "a man walked in"] * 5, vocab_size=20)
    cfg = model_preset("tiny", encoder_layers=1, vocab_size=len(vocab))
    save_checkpoint(tmp_path / "ck", build_model(cfg, "ctc"), cfg, "ctc", vocab=vocab)
    assert load_checkpoint(tmp_path / "ck").vocab == vocab  # the spm model travels inside the checkpoint
    result = CliRunner().invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "out")])
    assert result.exit_code != 0 and "SentencePiece" in str(result.exception)
    assert not (tmp_path / "out").exists()
