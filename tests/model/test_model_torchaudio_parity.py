"""Parity with torchaudio's wav2vec2_model: our weights go to a transformers model through our mapping (checked
by test_model_hf_parity.py), and torchaudio's own converter (`import_huggingface_model`) builds its model."""

from __future__ import annotations

import pytest
import torch
import transformers
from torchaudio.models.wav2vec2.utils import import_huggingface_model

from w2v2cli.checkpoint.hf import config_to_hf, state_dict_to_hf
from w2v2cli.model import build_model

TOL = 1e-4


@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_logits_and_layer_outputs_match_torchaudio(family, tiny_cfg, audio_batch):
    torch.manual_seed(20)
    cfg = tiny_cfg(family, vocab_size=7)
    ours = build_model(cfg, "ctc").eval()
    g = torch.Generator().manual_seed(21)
    with torch.no_grad():  # non-trivial norms and biases so a swapped weight cannot hide
        for name, p in ours.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    hf = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**config_to_hf(cfg, None, "Wav2Vec2ForCTC")))
    hf.load_state_dict(state_dict_to_hf(ours.state_dict(), cfg), strict=True)
    ta = import_huggingface_model(hf.eval()).eval()
    assert len(ta.encoder.transformer.layers) == cfg.encoder_layers
    assert ta.aux.out_features == cfg.vocab_size
    assert all(layer.layer_norm_first == cfg.layer_norm_first for layer in ta.encoder.transformer.layers)

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
