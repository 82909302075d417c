"""Pretraining forward vs transformers' Wav2Vec2ForPreTraining: same weights, same mask, same negatives."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
import transformers

from w2v2cli.checkpoint.hf import config_from_hf, state_dict_from_hf
from w2v2cli.model import build_model, compute_span_mask, sample_negatives
from w2v2cli.model.losses import contrastive_loss


def hf_pretrain_config(family: str) -> transformers.Wav2Vec2Config:
    layer = family == "xlsr"
    return transformers.Wav2Vec2Config(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        conv_bias=layer, feat_extract_norm="layer" if layer else "group", do_stable_layer_norm=layer,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        # a 3 x 3 codebook: distractors that quantize like their positive are certain, so the -inf rule is tested
        num_codevectors_per_group=3, num_codevector_groups=2, codevector_dim=24, proj_codevector_dim=16,
        num_negatives=8, mask_time_prob=0.5, mask_time_length=4,
    )


@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_contrastive_logits_match_transformers(family, tmp_path):
    torch.manual_seed(10)
    hf = transformers.Wav2Vec2ForPreTraining(hf_pretrain_config(family)).eval()
    hf.save_pretrained(tmp_path)
    cfg = config_from_hf(json.loads((tmp_path / "config.json").read_text()))
    assert cfg.codevector_dim == 24 and cfg.final_dim == 16 and cfg.latent_dim == 12
    ours = build_model(cfg, "pretrain")
    ours.load_state_dict(state_dict_from_hf(safetensors.torch.load_file(str(tmp_path / "model.safetensors")), cfg))
    ours.eval()
    # transformers' batch semantics: the zero padding of utterance 2 takes part in the group norm's statistics
    ours.wav2vec2.padding_free_norm = False

    g = torch.Generator().manual_seed(5)
    w = torch.randn(2, 8000, generator=g)
    lengths = torch.tensor([8000, 5500])  # 24 and 17 frames
    w[1, 5500:] = 0
    f = 24
    frame_lengths = ours.wav2vec2.output_lengths(lengths)
    mask = compute_span_mask(frame_lengths, f, 0.5, 4, 2, generator=g)
    neg = sample_negatives(mask, 8, generator=g)  # [M, 8] into the masked frames
    m = int(mask.sum())
    # the same choices in transformers' layout: [B, F, K] indices into the flattened B*F frames
    where = mask.nonzero()  # [M, 2] (utterance, frame)
    flat = where[:, 0] * f + where[:, 1]
    hf_neg = (torch.arange(2 * f).view(2, f, 1).expand(2, f, 8)).clone()
    hf_neg[where[:, 0], where[:, 1]] = flat[neg]

    attn = (torch.arange(8000)[None] < lengths[:, None]).long()
    with torch.no_grad():
        hf_out = hf(w, attention_mask=attn, mask_time_indices=mask, sampled_negative_indices=hf_neg)
        out = ours(w, lengths, mask_time=mask, negative_indices=neg)
        # transformers' logits for every frame, built by its own code from its projected states
        pq = hf_out.projected_quantized_states
        negs = pq.reshape(-1, pq.shape[-1])[hf_neg.view(-1)].view(2, f, 8, -1).permute(2, 0, 1, 3)
        hf_logits = hf.compute_contrastive_logits(pq[None], negs, hf_out.projected_states, 0.1)
        same = (pq == negs).all(-1)
        hf_logits[1:][same] = float("-inf")
        hf_logits = hf_logits.permute(1, 2, 0)[mask]  # [M, 1 + K] on masked frames, row-major like ours

    assert out.logits.shape == (m, 9) and out.num_masked == m
    finite = torch.isfinite(hf_logits)
    assert torch.equal(finite, torch.isfinite(out.logits))  # -inf exactly where transformers puts it
    assert (~finite).any(), "the tiny codebook should make some distractor equal its positive"
    assert (out.logits[finite] - hf_logits[finite]).abs().max() <= 1e-4
    assert out.logits[:, 0].abs().max() > 0.5
    # the summed InfoNCE and the (eval: hard) code perplexity over masked frames agree as well
    assert abs(float(contrastive_loss(out.logits)) - float(hf_out.contrastive_loss)) <= 1e-3
    assert abs(float(out.code_perplexity) - float(hf_out.codevector_perplexity)) <= 1e-4


def test_negatives_that_equal_the_positive_get_minus_inf():
    from w2v2cli.model import contrastive_logits

    pred = torch.randn(4, 8)
    targets = torch.randn(4, 8)
    codes = torch.tensor([[0, 1], [0, 1], [2, 1], [0, 2]])
    neg = torch.tensor([[1, 2], [0, 3], [0, 1], [2, 1]])
    logits = contrastive_logits(pred, targets, neg, codes, 0.1)
    expect_inf = torch.tensor([[True, False], [True, False], [False, False], [False, False]])
    assert torch.equal(torch.isinf(logits[:, 1:]), expect_inf)
    assert torch.allclose(logits[2, 1], torch.nn.functional.cosine_similarity(pred[2], targets[0], dim=0) / 0.1,
                          atol=1e-5)
    assert torch.allclose(logits[:, 0], torch.nn.functional.cosine_similarity(pred, targets, dim=-1) / 0.1, atol=1e-5)
    assert torch.allclose(logits[2, 2], torch.nn.functional.cosine_similarity(pred[2], targets[1], dim=0) / 0.1,
                          atol=1e-5)
