"""Units of fine-tuning: labels, vocabularies, config resolution, the CTC loss and validation counts."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from w2v2cli.data.collate import collate
from w2v2cli.errors import ConfigError, DataError, ManifestError
from w2v2cli.model import build_model, model_preset
from w2v2cli.train.config import training_preset
from w2v2cli.data.labels import build_vocab, encode_labels, read_label_lines
from w2v2cli.model.losses import min_ctc_frames
from w2v2cli.train.config import LoggingConfig
from w2v2cli.train.ctc_task import CTCTask
from w2v2cli.train.finetune import finetune_config_name, finetune_model_config
from w2v2cli.train.logging import RunLogger
from w2v2cli.vocab import Vocabulary

from ft_helpers import copy_subset


def _task(vocab: Vocabulary, **changes) -> CTCTask:
    cfg = training_preset("tiny_ctc", **{"model.vocab_size": len(vocab), **changes})
    return CTCTask(cfg, vocab)


# ---------------------------------------------------------------------------------------------- labels
def test_labels_pair_with_manifest_rows(four):
    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    ids = encode_labels(four, vocab, "ltr")
    words = four.with_suffix(".wrd").read_text().splitlines()
    assert len(ids) == 4 == len(words)
    assert [vocab.decode(t) for t in ids] == words  # line i of the labels is entry i of the manifest
    # .wrd labels give the same letter targets as .ltr
    assert encode_labels(four, vocab, "wrd") == ids


def test_the_other_label_file_is_used_when_the_configured_one_is_missing(four, tmp_path):
    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    only_wrd = copy_subset(four, tmp_path / "w.tsv", [0, 1, 2, 3])
    only_wrd.with_suffix(".ltr").unlink()
    assert encode_labels(only_wrd, vocab, "ltr") == encode_labels(four, vocab, "ltr")
    only_wrd.with_suffix(".wrd").unlink()
    with pytest.raises(ManifestError, match=r"w\.ltr: no label file beside"):
        encode_labels(only_wrd, vocab, "ltr")


def test_label_count_mismatch_names_the_line(four, tmp_path):
    short = copy_subset(four, tmp_path / "short.tsv", [0, 1, 2, 3])
    ltr = short.with_suffix(".ltr")
    ltr.write_text("\n".join(ltr.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(ManifestError) as err:
        read_label_lines(short, "ltr")
    msg = err.value.message
    assert "has 3 lines" in msg and "4 entries" in msg
    assert "manifest entry 4" in msg and f"{short} line 5" in msg and "label line 4" in msg

    long = copy_subset(four, tmp_path / "long.tsv", [0, 1, 2, 3])
    ltr = long.with_suffix(".ltr")
    ltr.write_text(ltr.read_text() + "E X T R A |\n")
    with pytest.raises(ManifestError, match=r"long\.ltr line 5 has no manifest entry"):
        read_label_lines(long, "ltr")


def test_unknown_symbol_names_file_and_line(four, tmp_path):
    bad = copy_subset(four, tmp_path / "bad.tsv", [0, 1, 2, 3])
    ltr = bad.with_suffix(".ltr")
    lines = ltr.read_text().splitlines()
    lines[1] = lines[1].replace(" ", " 7 ", 1)
    ltr.write_text("\n".join(lines) + "\n")
    vocab = Vocabulary.from_fairseq_dict(bad.parent / "dict.ltr.txt")
    with pytest.raises(DataError) as err:
        encode_labels(bad, vocab, "ltr")
    assert f"{ltr}:2:" in err.value.message and "'7'" in err.value.message


# ---------------------------------------------------------------------------------------------- vocabulary
def test_letters_from_dict_or_from_labels(four, tmp_path):
    vocab, source = build_vocab([four])
    assert source.endswith("dict.ltr.txt") and vocab == Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")

    nodict = copy_subset(four, tmp_path / "nodict" / "train.tsv", [0, 1, 2, 3], with_dict=False)
    vocab, source = build_vocab([nodict])
    assert source == "the training labels"
    symbols = [s for line in nodict.with_suffix(".ltr").read_text().splitlines() for s in line.split()]
    counts = {s: symbols.count(s) for s in set(symbols)}
    assert vocab.tokens[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and vocab.blank == 0
    assert set(vocab.tokens[4:]) == set(counts)
    assert [counts[t] for t in vocab.tokens[4:]] == sorted(counts.values(), reverse=True)  # most frequent first
    assert vocab.tokens[4] == "|"  # one per word: the most frequent symbol

    # with no dict.ltr.txt, a letter vocabulary of the --init model wins over counting
    init_vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    assert build_vocab([nodict], init_vocab=init_vocab) == (init_vocab, "the --init model's vocabulary")


def test_letter_dict_lies_beside_a_manifest_and_inside_a_shard_directory(tmp_path):
    # the one rule for the vocabulary and for a fairseq --init's letters (train/finetune._read_init)
    from w2v2cli.data.labels import letter_dict_path
    from w2v2cli.data.shards import INDEX

    assert letter_dict_path(tmp_path / "data" / "train.tsv") == tmp_path / "data" / "dict.ltr.txt"
    shards = tmp_path / "data" / "train.shards"
    assert letter_dict_path(shards) == tmp_path / "data" / "dict.ltr.txt"  # not (yet) a shard directory
    shards.mkdir(parents=True)
    (shards / INDEX).write_text("{}")
    assert letter_dict_path(shards) == shards / "dict.ltr.txt"


@pytest.mark.parametrize("spm_type", ["unigram", "bpe"])
def test_spm_vocab_from_transcripts(four, spm_type):
    vocab, source = build_vocab([four], kind="spm", labels="wrd", vocab_size=40, spm_type=spm_type)
    assert vocab.kind == "spm" and vocab.blank == 0 and 28 <= len(vocab) <= 40
    assert spm_type in source
    for line in four.with_suffix(".wrd").read_text().splitlines():
        ids = vocab.encode(line)
        assert 0 not in ids and vocab.decode(ids) == line
    # the same vocabulary from .ltr labels (converted back to words)
    assert build_vocab([four], kind="spm", labels="ltr", vocab_size=40, spm_type=spm_type)[0] == vocab
    with pytest.raises(ConfigError, match="--vocab-size"):
        build_vocab([four], kind="spm", labels="wrd", vocab_size=0)
    with pytest.raises(DataError, match="SentencePiece") as err:  # fewer pieces than characters
        build_vocab([four], kind="spm", labels="wrd", vocab_size=8, spm_type=spm_type)
    assert "at least" in err.value.hint


# ---------------------------------------------------------------------------------------------- config
def test_config_names():
    assert finetune_config_name("tiny") == "tiny_ctc"
    assert finetune_config_name("base_10m") == "base_10m"
    with pytest.raises(ConfigError, match="no single fine-tuning counterpart"):
        finetune_config_name("base")


def test_model_config_takes_architecture_from_init_and_regularisation_from_preset():
    init = model_preset("tiny", encoder_layers=3, dropout=0.1, mask_prob=0.65, feature_grad_mult=1.0)
    preset = training_preset("base_10m").model
    cfg = finetune_model_config(init, preset, vocab_size=32)
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.conv_layers) == (3, 192, init.conv_layers)
    assert (cfg.feature_grad_mult, cfg.mask_prob, cfg.mask_channel_prob, cfg.mask_channel_length) == \
        (0.0, 0.65, 0.25, 64)
    assert (cfg.layerdrop, cfg.dropout, cfg.vocab_size) == (0.1, 0.0, 32)


def test_frame_counts_match_the_model():
    cfg = model_preset("tiny")
    model = build_model(cfg, "encoder")
    sizes = torch.tensor([400, 401, 16000, 33679, 160000])
    assert [cfg.num_frames(int(n)) for n in sizes] == model.output_lengths(sizes).tolist()
    assert [cfg.num_frames(400), cfg.num_frames(16000)] == [1, 49]
    assert min_ctc_frames([5, 5, 6, 5]) == 5  # a blank must separate the repeated 5


# ---------------------------------------------------------------------------------------------- the task
def test_freezing_toggles_the_encoder_only():
    vocab = Vocabulary(["<s>", "<pad>", "</s>", "<unk>", "|", "A"])
    task = _task(vocab, **{"task.freeze_finetune_updates": 3})
    model = task.build_model(task.cfg)
    task.begin_update(model, 0)
    assert not any(p.requires_grad for p in model.wav2vec2.parameters())
    assert all(p.requires_grad for p in model.lm_head.parameters())
    task.begin_update(model, 2)
    assert not any(p.requires_grad for p in model.wav2vec2.parameters())
    task.begin_update(model, 3)
    assert all(p.requires_grad for p in model.parameters())


def test_ctc_loss_sums_unpadded_utterances(four):
    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    task = _task(vocab)
    torch.manual_seed(0)
    model = task.build_model(task.cfg).eval()
    targets = [vocab.encode("A | M A N |"), vocab.encode("H I |")]
    batch = collate([torch.randn(16000).numpy(), torch.randn(9000).numpy()], ids=[0, 1], targets=targets, pad=True)
    loss, ntokens, metrics = task.compute_loss(model, batch, update=0)
    assert ntokens == 9 and metrics["ntokens"] == 9 and metrics["nsentences"] == 2
    with torch.no_grad():
        logits, frames = model(batch.waveforms, batch.lengths)
    assert frames.tolist() == [49, 27]
    expected = 0.0
    for b, t in enumerate(targets):
        lp = F.log_softmax(logits[b, : frames[b]].float(), -1)
        expected += float(F.ctc_loss(lp, torch.tensor(t), torch.tensor(int(frames[b])), torch.tensor(len(t)),
                                     blank=0, reduction="sum"))
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert 0.0 <= metrics["blank_frac"] <= 1.0


class FixedEmissions(nn.Module):
    """Stands in for the acoustic model: returns given logits (the task's counting is what is tested)."""

    def __init__(self, logits: torch.Tensor, frames: torch.Tensor):
        super().__init__()
        self.logits, self.frames = logits, frames

    def forward(self, waveforms, lengths=None):
        return self.logits, self.frames


def _emissions(vocab: Vocabulary, rows: list[list[str]], frames: int) -> torch.Tensor:
    """One-hot-ish logits spelling each row's tokens with blanks between them, blank-padded to `frames`."""
    out = torch.full((len(rows), frames, len(vocab)), -10.0)
    out[:, :, vocab.blank] = 10.0
    for b, tokens in enumerate(rows):
        for i, tok in enumerate(tokens):
            out[b, 2 * i + 1, vocab.blank] = -10.0
            out[b, 2 * i + 1, vocab.index[tok]] = 10.0
    return out


def test_validation_counts_words_and_characters(four):
    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    task = _task(vocab)
    refs = ["A | M A N |", "T H E | D O G |"]
    hyps = [["A", "|", "M", "E", "N", "|"], ["T", "H", "E", "|"]]  # 1 sub of 2 words; 1 deletion of 2 words
    logits = _emissions(vocab, hyps, 20)
    batch = collate([torch.zeros(8000).numpy()] * 2, ids=[0, 1], targets=[vocab.encode(r) for r in refs])
    sums = task.valid_step(FixedEmissions(logits, torch.tensor([20, 20])), batch)
    assert (sums["word_errors"], sums["words"]) == (2, 4)
    assert (sums["char_errors"], sums["chars"]) == (1 + 3, 4 + 6)  # MEN: 1 sub; DOG: 3 deletions
    assert sums["empty"] == 0 and sums["frames"] == 40 and sums["nsentences"] == 2
    assert sums["blank_frames"] == 40 - 6 - 4
    m = task.valid_metrics(sums)
    assert m["wer"] == pytest.approx(0.5) and m["cer"] == pytest.approx(0.4)
    assert m["blank_frac"] == pytest.approx(30 / 40) and m["empty_frac"] == 0.0
    assert task.valid_health(m, 0) == []


def test_all_blank_validation_is_reported(four, tmp_path):
    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    task = _task(vocab, **{"task.freeze_finetune_updates": 50})
    model = task.build_model(task.cfg)
    task.begin_update(model, 19)  # the validation after 20 updates, still frozen
    logits = _emissions(vocab, [[], []], 20)
    batch = collate([torch.zeros(8000).numpy()] * 2, ids=[0, 1], targets=[vocab.encode("A |"), vocab.encode("B |")])
    m = task.valid_metrics(task.valid_step(FixedEmissions(logits, torch.tensor([20, 20])), batch))
    assert m["empty_frac"] == 1.0 and m["wer"] == 1.0 and m["blank_prob"] > 0.99
    warnings = task.valid_health(m, 20)  # the trainer passes the updates done and logs what comes back
    assert len(warnings) == 1
    text = warnings[0][1]
    log = RunLogger(tmp_path, LoggingConfig(progress="none"), 100)
    log.warn(20, text)
    log.close()
    assert "only blanks" in text and "update 20" in text
    for cause in ("still frozen", "task.freeze_finetune_updates 50", "too few updates", "optim.lr",
                  "vocabulary mismatch", "normalisation mismatch"):
        assert cause in text
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"event": "warning", "update": 20, "message": text}]


def test_init_none_trains_the_whole_model_unless_told_otherwise(four, pretrain_ckpt, tmp_path):
    from w2v2cli.train.finetune import resolve_finetune

    # a fine-tuning config that freezes, as the published BASE/LARGE presets do
    frozen = tmp_path / "frozen.yaml"
    frozen.write_text("preset: tiny_ctc\nmodel: {feature_grad_mult: 0.0}\ntask: {freeze_finetune_updates: 50}\n")
    preset = training_preset("base_10h")
    assert preset.model.feature_grad_mult == 0.0 and preset.task.freeze_finetune_updates > 0
    # from scratch: a frozen random feature encoder / transformer would make a meaningless baseline
    cfg, _ = resolve_finetune([four], tmp_path / "a", init="none", config=str(frozen))
    assert cfg.model.feature_grad_mult == 1.0 and cfg.task.freeze_finetune_updates == 0
    # explicit values win
    cfg, _ = resolve_finetune([four], tmp_path / "b", init="none", config=str(frozen),
                              overrides=["model.feature_grad_mult=0.0", "task.freeze_finetune_updates=7"])
    assert cfg.model.feature_grad_mult == 0.0 and cfg.task.freeze_finetune_updates == 7
    # from a pretrained model the preset's freezing stays
    cfg, _ = resolve_finetune([four], tmp_path / "c", init=str(pretrain_ckpt), config=str(frozen))
    assert cfg.model.feature_grad_mult == 0.0
    assert cfg.task.freeze_finetune_updates == 50


def test_finetune_config_is_built_once_typed_with_the_options_on_top(four):
    from w2v2cli.train.config import SourceConfig
    from w2v2cli.train.finetune import finetune_config
    from w2v2cli.train.resolve import RunOptions

    sets = ["task.vocab=letters", "task.vocab_size=9", "optim.lr=2e-3"]
    options = RunOptions(train=(four,), valid=(four,), max_updates=7, seed=3, vocab="spm", vocab_size=40,
                         precision="bf16")
    resolved = finetune_config("tiny", sets, options)
    cfg = resolved.cfg
    assert (cfg.task.name, cfg.task.vocab, cfg.task.vocab_size) == ("ctc", "spm", 40)  # the typed options win
    assert (cfg.optim.lr, cfg.optim.max_updates, cfg.seed, cfg.optim.precision) == (2e-3, 7, 3, "bf16")
    assert cfg.data.train == [SourceConfig(path=str(four))] and cfg.data.valid == [str(four)]
    assert sets == ["task.vocab=letters", "task.vocab_size=9", "optim.lr=2e-3"]  # no --set strings added
    # what the user set, by --set or an option, travels with the config: nothing parses --set again
    assert resolved.explicit == {"task.vocab", "task.vocab_size", "optim.lr", "data.train", "data.valid",
                                 "optim.max_updates", "seed", "optim.precision"}
    budget = finetune_config("tiny", [], RunOptions(train=(four,), max_minutes=2.5))
    # a budget without --max-updates: no cap (0), and max_updates is not a key the user set
    assert (budget.cfg.optim.max_minutes, budget.cfg.optim.max_updates) == (2.5, 0)
    assert budget.explicit == {"data.train", "optim.max_minutes"}
    capped = finetune_config("tiny", [], RunOptions(train=(four,), max_minutes=2.5, max_updates=40)).cfg
    assert (capped.optim.max_minutes, capped.optim.max_updates) == (2.5, 40)
    with pytest.raises(ConfigError, match="task.vocab must be 'letters' or 'spm', got 'words'"):
        finetune_config("tiny", options=RunOptions(train=(four,), vocab="words"))
    with pytest.raises(ConfigError, match="optim.max_updates must be >= 1"):
        finetune_config("tiny", options=RunOptions(train=(four,), max_updates=0))
    with pytest.raises(ConfigError, match="optim.precision must be auto, fp32, bf16 or fp16, got 'fp8'"):
        finetune_config("tiny", options=RunOptions(train=(four,), precision="fp8"))
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
        finetune_config("tiny", ["optim.lrr=1"], RunOptions(train=(four,)))


def test_targets_use_the_manifest_the_trainer_read(four):
    from dataclasses import replace

    from w2v2cli.data.manifest import read_manifest

    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    parsed = read_manifest(four)
    assert _task(vocab).targets(four, parsed) == _task(vocab).targets(four) == encode_labels(four, vocab, "ltr")
    task = _task(vocab)
    assert not task.data_warnings()
    # The frames check reads the entries handed over, not the file: one sample per entry leaves no frame.
    short = replace(parsed, entries=[replace(e, num_samples=1) for e in parsed.entries])
    task.targets(four, short)
    assert task.infeasible == {str(four): 4} and "4 of 4 utterances" in task.data_warnings()[0]


def test_reinit_layers_resets_the_top_layers_of_a_pretrained_init_only(four, pretrain_ckpt, tmp_path):
    from w2v2cli.train.finetune import resolve_finetune

    cfg, task = resolve_finetune([four], tmp_path / "a", init=str(pretrain_ckpt), config="tiny",
                                 overrides=["task.reinit_layers=2"])
    assert cfg.model.encoder_layers == 4 and task.reinit_prefixes(cfg) == ("encoder.layers.2.", "encoder.layers.3.")
    torch.manual_seed(0)
    state = task.build_model(cfg).wav2vec2.state_dict()
    torch.manual_seed(0)
    fresh = build_model(cfg.model, "ctc").wav2vec2.state_dict()
    pretrained = task.init.encoder_state
    assert state.keys() == pretrained.keys()
    top = [k for k in state if k.startswith(("encoder.layers.2.", "encoder.layers.3."))]
    assert len(top) == 32  # 16 tensors per layer
    for key in state:
        want = fresh[key] if key in top else pretrained[key]
        assert torch.equal(state[key], want), key
    assert not torch.equal(state["encoder.layers.3.ffn.fc1.weight"], pretrained["encoder.layers.3.ffn.fc1.weight"])
    # more layers than the model has: one clear error naming the key
    with pytest.raises(ConfigError, match="task.reinit_layers = 5 is more than the model's 4"):
        resolve_finetune([four], tmp_path / "b", init=str(pretrain_ckpt), config="tiny",
                         overrides=["task.reinit_layers=5"])
    # a fine-tuned (CTC) init keeps every layer
    from w2v2cli.checkpoint.io import save_checkpoint

    ctc = save_checkpoint(tmp_path / "ctc", task.build_model(cfg), cfg.model, "ctc", vocab=task.vocab)
    cfg2, task2 = resolve_finetune([four], tmp_path / "c", init=str(ctc), config="tiny",
                                   overrides=["task.reinit_layers=2"])
    assert task2.reinit_prefixes(cfg2) == ()


def test_pretrained_lr_scale_slows_the_init_weights_only(four, pretrain_ckpt, tmp_path):
    from w2v2cli.train.finetune import resolve_finetune
    from w2v2cli.train.optim import build_optimizer, set_lr

    cfg, task = resolve_finetune([four], tmp_path / "a", init=str(pretrain_ckpt), config="tiny",
                                 overrides=["task.reinit_layers=2", "task.pretrained_lr_scale=0.25"])
    model = task.build_model(cfg)
    scales = task.lr_scales(model)
    assert set(scales.values()) == {0.25}
    assert "wav2vec2.feature_extractor.conv_layers.0.conv.weight" in scales
    assert "wav2vec2.encoder.layers.1.ffn.fc1.weight" in scales
    assert not any(n.startswith(("lm_head.", "wav2vec2.encoder.layers.2.", "wav2vec2.encoder.layers.3."))
                   for n in scales)
    opt = build_optimizer(model, cfg.optim, scales)
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 0.25]
    set_lr(opt, 1e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.25e-3]
    # Adam's first step moves every weight by about lr (m / sqrt(v) = 1 for a constant gradient), no decay here
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    moved = {n: float((before[n] - p.detach()).abs().max()) for n, p in model.named_parameters()}
    assert moved["lm_head.weight"] == pytest.approx(1e-3, rel=1e-3)
    assert moved["wav2vec2.encoder.layers.3.ffn.fc1.weight"] == pytest.approx(1e-3, rel=1e-3)
    assert moved["wav2vec2.encoder.layers.1.ffn.fc1.weight"] == pytest.approx(0.25e-3, rel=1e-3)
    assert moved["wav2vec2.feature_extractor.conv_layers.0.conv.weight"] == pytest.approx(0.25e-3, rel=1e-3)
    # from scratch there is nothing pretrained: one group at the full lr
    cfg0, task0 = resolve_finetune([four], tmp_path / "b", init="none", config="tiny",
                                   overrides=["task.pretrained_lr_scale=0.25"])
    assert task0.lr_scales(task0.build_model(cfg0)) == {}
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="task.pretrained_lr_scale must be in"):
            resolve_finetune([four], tmp_path / "c", init=str(pretrain_ckpt), config="tiny",
                             overrides=[f"task.pretrained_lr_scale={bad}"])


# ---------------------------------------------------------------------------------------------- output bias
def test_label_prior_bias_is_the_log_share_of_frames_by_hand():
    from w2v2cli.train.ctc_task import UNSEEN_SHARE, label_prior_bias

    bias = label_prior_bias([[1, 2, 2], [2, 3]], frames=20, vocab_size=5, blank=0)
    share = bias.exp()
    # tokens: 1 once, 2 three times, 3 once in 20 frames; the blank the 15 left; 4 never seen
    want = torch.tensor([15 / 20, 1 / 20, 3 / 20, 1 / 20, UNSEEN_SHARE])
    assert torch.allclose(share, want / want.sum(), atol=1e-6) and share.sum() == pytest.approx(1.0, abs=1e-6)


def test_output_bias_prior_sets_a_fresh_head_and_lowers_the_first_loss(four):
    from w2v2cli.data.dataset import AudioDataset
    from w2v2cli.data.sampler import BatchSpec
    from w2v2cli.model.losses import ctc_loss

    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    targets = encode_labels(four, vocab, "ltr")
    ds = AudioDataset.from_manifests([four], targets=targets)
    losses = {}
    for mode in ("zero", "prior"):
        task = _task(vocab, **{"task.output_bias": mode})
        torch.manual_seed(0)
        model = task.build_model(task.cfg).eval()
        notes = task.prepare_model(model, ds)
        assert (notes != []) == (mode == "prior")
        batch = ds.load(BatchSpec(0, 0, (0, 1, 2, 3)))
        with torch.no_grad():
            logits, lengths = model(batch.waveforms, batch.lengths)
        losses[mode] = float(ctc_loss(logits, lengths, batch.targets, batch.target_lengths, vocab.blank)[0]) / \
            float(batch.target_lengths.sum())
    frames = int(model.wav2vec2.output_lengths(torch.as_tensor(ds.sizes)).sum())
    assert "label prior over %d training frames" % frames in notes[0]
    assert losses["prior"] < 0.8 * losses["zero"], losses
    with pytest.raises(ConfigError, match="task.output_bias"):
        training_preset("tiny_ctc", **{"task.output_bias": "uniform"})
