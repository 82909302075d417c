"""The log-mel front end (`model.extractor_mode: fbank`): frame counts, normalisation, padding and gain
invariance, frequency warping (VTLP), training through it, and export refusal."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from w2v2cli.checkpoint import load_checkpoint, save_checkpoint
from w2v2cli.cli.app import app
from w2v2cli.errors import ConfigError
from w2v2cli.model import Wav2Vec2ForCTC, Wav2Vec2ForPreTraining, build_model, model_preset
from w2v2cli.model.losses import pretraining_loss
from w2v2cli.vocab import Vocabulary

FBANK = dict(extractor_mode="fbank", conv_layers=[(40, 400, 160), (48, 3, 1), (32, 2, 2)],
             encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96, encoder_attention_heads=4,
             conv_pos=16, conv_pos_groups=4, final_dim=24, latent_vars=16, num_negatives=10)


def _cfg(**changes):
    return model_preset("tiny", **{**FBANK, **changes})


def _tone(hz: float, seconds: float = 0.5, amp: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(16000 * seconds)) / 16000
    return amp * torch.sin(2 * math.pi * hz * t)


def _mel_centre_hz(k: int, n_mels: int) -> float:
    """Centre of mel filter k of n_mels between 20 Hz and 7.6 kHz (HTK scale)."""
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    lo, hi = mel(20.0), mel(7600.0)
    m = lo + (hi - lo) * (k + 1) / (n_mels + 1)
    return 700 * (10 ** (m / 2595) - 1)


def test_frames_hop_and_receptive_field_follow_the_layer_rule():
    cfg = _cfg()
    assert cfg.hop == 320 and cfg.receptive_field == 400 + 160 * 2 + 160  # (3 - 1) + (2 - 1) mel frames more
    model = Wav2Vec2ForCTC(cfg.replace(vocab_size=8)).eval()
    for n in (880, 881, 1199, 1200, 16000, 23456):
        logits, frames = model(torch.randn(1, n))
        mel_frames = (n - 400) // 160 + 1
        assert logits.shape[1] == int(frames) == cfg.num_frames(n) == ((mel_frames - 2) - 2) // 2 + 1
    with pytest.raises(Exception, match="receptive field"):
        model(torch.randn(1, 879))


def test_log_mel_is_normalised_over_each_utterances_own_frames():
    enc = Wav2Vec2ForCTC(_cfg(vocab_size=8)).wav2vec2.feature_extractor
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 8000, generator=g) * torch.tensor([[1.0], [0.05]])
    lengths = torch.tensor([8000, 5000])
    wav[1, 5000:] = 0.0
    mel = enc.log_mel(wav, lengths)  # [2, 40, 48]
    valid = [(8000 - 400) // 160 + 1, (5000 - 400) // 160 + 1]
    for b, n in enumerate(valid):
        own = mel[b, :, :n]
        assert own.mean(1).abs().max() < 1e-4
        assert (own.var(1, unbiased=False) - 1).abs().max() < 1e-3
    # the padded utterance's valid frames equal its unbatched ones; a gain change changes nothing
    alone = enc.log_mel(wav[1:2, :5000], lengths[1:])
    torch.testing.assert_close(mel[1:2, :, :valid[1]], alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(enc.log_mel(wav[1:2, :5000] * 20.0), alone, atol=1e-3, rtol=0)


def test_a_tone_lands_in_its_mel_filter_and_warping_moves_it():
    enc = Wav2Vec2ForCTC(_cfg(vocab_size=8)).wav2vec2.feature_extractor
    import torchaudio.functional as AF

    power = AF.spectrogram(_tone(1500.0)[None], 0, enc.window, 400, 160, 400, 2.0, False, center=False)
    spectrum = power.mean(-1)[0]  # [201]
    peak = int((spectrum @ enc.mel_fb).argmax())
    assert abs(_mel_centre_hz(peak, 40) - 1500.0) < 100.0
    banks = enc.warped_filterbanks(0.1, torch.device("cpu"))  # factors 0.90, 0.91, ..., 1.10
    assert banks.shape == (21, 201, 40)
    torch.testing.assert_close(banks[10], enc.mel_fb)
    for index, factor in ((0, 0.9), (20, 1.1)):
        moved = _mel_centre_hz(int((spectrum @ banks[index]).argmax()), 40)
        assert abs(moved - 1500.0 * factor) < 100.0, (factor, moved)


def test_warping_is_drawn_per_utterance_in_training_only():
    quiet = dict(dropout=0.0, attention_dropout=0.0, dropout_input=0.0, mask_prob=0.0, vocab_size=8)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(_cfg(fbank_warp=0.1, **quiet))
    wav = torch.randn(4, 8000)

    def run(seed):
        return model(wav, generator=torch.Generator().manual_seed(seed))[0]

    model.eval()
    plain = model(wav)[0]  # eval: no warping
    model.train()
    a = run(1)
    torch.testing.assert_close(a, run(1))  # the generator decides the factors
    assert not torch.allclose(a, run(2))
    assert not torch.allclose(a, plain)
    model.wav2vec2.cfg = model.wav2vec2.cfg.replace(fbank_warp=0.0)
    torch.testing.assert_close(model(wav)[0], plain)  # training without warping (nor dropout or masks) = eval
    # each utterance draws its own factor: the same audio in two rows is warped differently (20 of 21 draws)
    twice = Wav2Vec2ForCTC(_cfg(fbank_warp=0.1, **quiet)).train()
    out = twice(wav[:1].repeat(2, 1), generator=torch.Generator().manual_seed(3))[0]
    assert not torch.allclose(out[0], out[1])


def test_frequency_masks_zero_bands_of_mel_bins_drawn_per_utterance():
    enc = Wav2Vec2ForCTC(_cfg(vocab_size=8)).wav2vec2.feature_extractor
    wav = torch.randn(64, 4000, generator=torch.Generator().manual_seed(0))
    plain = enc.log_mel(wav)
    masked = enc.log_mel(wav, freq_masks=2, freq_mask_width=10, generator=torch.Generator().manual_seed(5))
    mask = enc.freq_mask(64, 2, 10, torch.Generator().manual_seed(5), torch.device("cpu"))
    # the masked bins hold 0 (the normalised mean) in every frame, the others are untouched
    assert torch.equal(masked, plain.masked_fill(mask[:, :, None], 0.0))
    widths = mask.sum(1)
    assert int(widths.max()) <= 20 and int(widths.min()) >= 0
    assert 4.0 < widths.float().mean() < 16.0  # two bands of 0..10 bins, union: ~9 bins on average
    for row in mask[:8]:  # at most two contiguous bands per utterance
        edges = int((row[1:] != row[:-1]).sum()) + int(row[0]) + int(row[-1])
        assert edges <= 4
    assert len({tuple(row.tolist()) for row in mask}) > 32  # drawn per utterance
    # the model applies them in training only, from the generator; a width of up to 39 bins fits 40 bins
    quiet = dict(dropout=0.0, attention_dropout=0.0, dropout_input=0.0, mask_prob=0.0, vocab_size=8)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(_cfg(fbank_freq_masks=2, fbank_freq_mask_width=39, **quiet))
    x = torch.randn(3, 8000)
    plain_out = model.eval()(x)[0]
    model.train()
    a = model(x, generator=torch.Generator().manual_seed(1))[0]
    torch.testing.assert_close(a, model(x, generator=torch.Generator().manual_seed(1))[0])
    assert not torch.allclose(a, plain_out)
    model.wav2vec2.cfg = model.wav2vec2.cfg.replace(fbank_freq_masks=0)
    torch.testing.assert_close(model(x)[0], plain_out)


def test_frequency_mask_settings_are_checked():
    with pytest.raises(ConfigError, match="fbank_freq_masks.*extractor_mode: fbank"):
        model_preset("tiny", fbank_freq_masks=2, fbank_freq_mask_width=10)
    with pytest.raises(ConfigError, match=r"fbank_freq_mask_width must be in \[1, 40\)"):
        _cfg(fbank_freq_masks=2, fbank_freq_mask_width=40)
    with pytest.raises(ConfigError, match="fbank_freq_masks must be >= 0"):
        _cfg(fbank_freq_masks=-1)
    assert _cfg(fbank_freq_mask_width=99).fbank_freq_masks == 0  # a width alone does nothing and is allowed


def test_fbank_warp_needs_the_fbank_front_end():
    with pytest.raises(ConfigError, match="fbank_warp.*extractor_mode: fbank"):
        model_preset("tiny", fbank_warp=0.1)
    with pytest.raises(ConfigError, match="fbank_warp must be in"):
        _cfg(fbank_warp=0.6)
    with pytest.raises(ConfigError, match="extractor_mode"):
        model_preset("tiny", extractor_mode="mel")


def test_pretraining_and_ctc_learn_through_the_front_end():
    torch.manual_seed(0)
    cfg = _cfg(mask_prob=0.3, mask_length=2)
    model = Wav2Vec2ForPreTraining(cfg).train()
    wav = torch.randn(2, 16000)
    out = model(wav, generator=torch.Generator().manual_seed(0))
    loss, _, _ = pretraining_loss(out)
    loss.backward()
    conv = model.wav2vec2.feature_extractor.conv_layers[0].conv.weight
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    # a CTC model fits one utterance's labels through the front end
    ctc = Wav2Vec2ForCTC(_cfg(vocab_size=6, mask_prob=0.0)).train()
    opt = torch.optim.Adam(ctc.parameters(), lr=3e-3)
    target = torch.tensor([[1, 2, 3, 4, 5, 2, 3]])
    for _ in range(60):
        logits, frames = ctc(wav[:1])
        nll = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), target, frames,
                                           torch.tensor([7]))
        opt.zero_grad()
        nll.backward()
        opt.step()
    assert nll.item() < 0.5
    path = ctc.eval()(wav[:1])[0][0].argmax(-1).unique_consecutive()
    assert path[path != 0].tolist() == target[0].tolist()  # greedy decoding gives the labels back


def test_checkpoints_hold_weights_only_and_export_is_refused(tmp_path):
    cfg = _cfg(vocab_size=5)
    model = build_model(cfg, "ctc")
    assert not any("window" in k or "mel_fb" in k for k in model.state_dict())  # derived, not saved
    vocab = Vocabulary(["<blank>", "|", "A", "B", "<unk>"])
    save_checkpoint(tmp_path / "ck", model, cfg, "ctc", vocab=vocab)
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.cfg.extractor_mode == "fbank"
    wav = torch.randn(1, 4000)
    torch.testing.assert_close(loaded.model.eval()(wav)[0], model.eval()(wav)[0])
    result = CliRunner().invoke(app, ["export", "hf", str(tmp_path / "ck"), str(tmp_path / "out")])
    assert result.exit_code != 0 and "log-mel front end" in str(result.exception)
    assert not (tmp_path / "out").exists()
