"""Parity with torchaudio.models.wav2vec2_model: same hyperparameters, weights copied by a mapping written here."""

from __future__ import annotations

import re

import pytest
import torch
import torchaudio

from w2v2cli.model import build_model

TOL = 1e-4

# torchaudio key -> our key (CTC model)
_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(\w+)", r"wav2vec2.feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(\w+)", r"wav2vec2.feature_extractor.conv_layers.\1.norm.\2"),
    (r"encoder\.feature_projection\.layer_norm\.(\w+)", r"wav2vec2.feature_projection.norm.\1"),
    (r"encoder\.feature_projection\.projection\.(\w+)", r"wav2vec2.feature_projection.linear.\1"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0",
     r"wav2vec2.encoder.pos_conv.weight_g"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1",
     r"wav2vec2.encoder.pos_conv.weight_v"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.bias", r"wav2vec2.encoder.pos_conv.bias"),
    (r"encoder\.transformer\.layer_norm\.(\w+)", r"wav2vec2.encoder.norm.\1"),
    (r"encoder\.transformer\.layers\.(\d+)\.attention\.(\w+)\.(\w+)", r"wav2vec2.encoder.layers.\1.attention.\2.\3"),
    (r"encoder\.transformer\.layers\.(\d+)\.layer_norm\.(\w+)", r"wav2vec2.encoder.layers.\1.attention_norm.\2"),
    (r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(\w+)",
     r"wav2vec2.encoder.layers.\1.ffn.fc1.\2"),
    (r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.(\w+)", r"wav2vec2.encoder.layers.\1.ffn.fc2.\2"),
    (r"encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.(\w+)", r"wav2vec2.encoder.layers.\1.ffn_norm.\2"),
    (r"aux\.(\w+)", r"lm_head.\1"),
]


def _ours_key(key: str) -> str:
    for pattern, repl in _RULES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    raise AssertionError(f"unmapped torchaudio key {key}")


@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_logits_and_layer_outputs_match_torchaudio(family, tiny_cfg, audio_batch):
    torch.manual_seed(20)
    cfg = tiny_cfg(family, vocab_size=7)
    ta = torchaudio.models.wav2vec2_model(
        extractor_mode=cfg.extractor_mode, extractor_conv_layer_config=cfg.conv_layers,
        extractor_conv_bias=cfg.conv_bias, encoder_embed_dim=cfg.encoder_embed_dim, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=cfg.conv_pos, encoder_pos_conv_groups=cfg.conv_pos_groups,
        encoder_num_layers=cfg.encoder_layers, encoder_num_heads=cfg.encoder_attention_heads,
        encoder_attention_dropout=0.0, encoder_ff_interm_features=cfg.encoder_ffn_embed_dim,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=cfg.layer_norm_first,
        encoder_layer_drop=0.0, aux_num_out=cfg.vocab_size,
    ).eval()
    g = torch.Generator().manual_seed(21)
    with torch.no_grad():  # non-trivial norms and biases so a swapped weight cannot hide
        for name, p in ta.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    ours = build_model(cfg, "ctc").eval()
    mapped = {_ours_key(k): v for k, v in ta.state_dict().items()}
    missing, unexpected = ours.load_state_dict(mapped, strict=False)
    assert missing == ["wav2vec2.mask_embedding"] and not unexpected  # torchaudio's inference model has none

    w, lengths = audio_batch
    with torch.no_grad():
        logits, frames = ours(w, lengths)
        enc = ours.wav2vec2(w, lengths, output_hidden_states=True)
        _, ta_frames = ta(w, lengths)
        assert torch.equal(frames, ta_frames)
        # each utterance as torchaudio computes it alone (a padded group-norm batch in torchaudio lets the
        # padding into layer 0's norm statistics; ours gives every utterance its unbatched result)
        for i, n in enumerate(lengths.tolist()):
            f = int(frames[i])
            ta_logits, _ = ta(w[i:i + 1, :n])
            ta_layers, _ = ta.extract_features(w[i:i + 1, :n])
            assert ta_logits.shape[1] == f
            assert (logits[i, :f] - ta_logits[0]).abs().max() <= TOL
            assert len(ta_layers) == cfg.encoder_layers == len(enc.hidden_states) - 1
            for ta_h, h in zip(ta_layers, enc.hidden_states[1:]):
                assert (ta_h[0] - h[i, :f]).abs().max() <= TOL
    assert logits.abs().max() > 0.1
