"""The packed oneDNN linear path (CPU inference) computes what F.linear (+ F.gelu) computes, follows weight
updates, stays out of autograd, and falls back to the plain ops when its kernels fail."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from w2v2cli.model import build_model, cpu_kernels, model_preset  # noqa: F401 (cpu_kernels: module)


def test_the_packed_path_is_available_in_this_torch():
    assert cpu_kernels.ENABLED  # otherwise the CPU inference speed in BENCHMARKS.md is not what users get


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_packed_bf16_linear_matches_f_linear_in_bf16(activation):
    """bf16 weights and input (`decode --dtype bf16`): the packed bf16 kernel, within bf16 rounding of F.linear."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 256).to(torch.bfloat16)
    x = torch.randn(2, 100, 64).to(torch.bfloat16)
    with torch.inference_mode():
        y = cpu_kernels.linear(x, lin, activation)
        ref = F.linear(x, lin.weight, lin.bias)
        ref = F.gelu(ref) if activation == "gelu" else ref
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert lin in cpu_kernels._CACHE  # the packed path ran (its weight was packed)
    assert float((y.float() - ref.float()).abs().max()) <= 0.02 * float(ref.float().abs().max())
    with torch.inference_mode():  # fp32 input with bf16 weights: the plain op (which refuses mixed dtypes)
        with pytest.raises(RuntimeError):
            cpu_kernels.linear(x.float(), lin, activation)


@pytest.mark.parametrize("shape,out", [((3, 37, 48), 96), ((5, 96), 48), ((1, 499, 64), 256)])
@pytest.mark.parametrize("activation", [None, "gelu"])
def test_packed_linear_matches_f_linear(shape, out, activation):
    torch.manual_seed(0)
    lin = torch.nn.Linear(shape[-1], out)
    x = torch.randn(*shape)
    with torch.inference_mode():
        y = cpu_kernels.linear(x, lin, activation)
        ref = F.linear(x, lin.weight, lin.bias)
        ref = F.gelu(ref) if activation == "gelu" else ref
    assert y.shape == ref.shape == (*shape[:-1], out)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert ref.abs().max() > 0.5


def test_packed_weight_follows_in_place_updates_and_new_tensors():
    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 16)
    x = torch.randn(4, 32)
    with torch.no_grad():
        first = cpu_kernels.linear(x, lin)
        lin.weight.mul_(-2.0)  # as an optimizer step or load_state_dict does: same storage, new _version
        second = cpu_kernels.linear(x, lin)
        lin.weight = torch.nn.Parameter(torch.zeros(16, 32))  # a new tensor: new data_ptr
        third = cpu_kernels.linear(x, lin)
    expected = (first - lin.bias) * -2.0 + lin.bias
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(third, lin.bias.expand(4, 16), rtol=0, atol=0)


def test_autograd_gets_the_plain_ops():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    y = cpu_kernels.linear(x, lin, "gelu")
    assert y.requires_grad and not cpu_kernels.usable(x)
    y.sum().backward()
    assert x.grad is not None and lin.weight.grad is not None


def test_models_copy_and_pickle_after_packed_inference():
    torch.manual_seed(0)
    model = build_model(model_preset("tiny", vocab_size=12), "ctc").eval()
    x = torch.randn(1, 8000)
    with torch.inference_mode():
        before, _ = model(x)
    clone = copy.deepcopy(model)
    again = pickle.loads(pickle.dumps(model))
    with torch.inference_mode():
        torch.testing.assert_close(clone(x)[0], before, rtol=0, atol=0)
        torch.testing.assert_close(again(x)[0], before, rtol=0, atol=0)


def test_a_failing_kernel_switches_the_path_off(monkeypatch):
    def broken(module):
        raise RuntimeError("no oneDNN here")

    monkeypatch.setattr(cpu_kernels, "_packed", broken)
    monkeypatch.setattr(cpu_kernels, "ENABLED", True)
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with torch.no_grad():
        y = cpu_kernels.linear(x, lin, "gelu")
    assert cpu_kernels.ENABLED is False
    torch.testing.assert_close(y, F.gelu(lin(x)), rtol=0, atol=0)


def test_bf16_conv_layers_run_channels_last_and_match_conv1d():
    """In bf16 the conv encoder's multi-channel layers run as channels-last conv2d (no oneDNN output reorder);
    the values are conv1d's up to bf16 rounding, and fp32 keeps conv1d exactly."""
    from w2v2cli.model.components import ConvLayer

    torch.manual_seed(0)
    layer = ConvLayer(16, 24, kernel=3, stride=2, bias=True, norm=None)
    x = torch.randn(2, 16, 101)
    ref = F.conv1d(x, layer.conv.weight, layer.conv.bias, stride=2)
    assert torch.equal(layer._conv(x), ref)  # fp32: unchanged path
    xb = x.bfloat16()
    out = copy.deepcopy(layer).bfloat16()._conv(xb)
    assert out.shape == (2, 24, 50) and out.dtype == torch.bfloat16
    assert out.stride(1) == 1  # channels innermost
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training under autocast takes the same path
        out_ac = layer._conv(xb)
    assert out_ac.stride(1) == 1 and torch.allclose(out_ac.float(), ref, atol=0.1, rtol=0.02)


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_bf16_first_conv_layer_is_one_matrix_product_with_channels_last_output(norm):
    """Layer 0 (one input channel) in bf16 without autograd runs as frames x kernel matrix with channels innermost:
    the whole layer (conv, norm, GELU) gives conv1d's values up to bf16 rounding. With autograd, group-norm
    models keep conv1d (the channels-last group norm's backward is slow); layer-norm models take the new path."""
    from w2v2cli.model.components import ConvLayer

    torch.manual_seed(0)
    layer = ConvLayer(1, 24, kernel=10, stride=5, bias=norm == "layer", norm=norm)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 1, 1003)
    ref = layer(x)  # fp32, conv1d
    assert ref.shape == (2, 24, 199)
    with torch.no_grad():
        out = copy.deepcopy(layer).bfloat16()(x.bfloat16())
        conv = copy.deepcopy(layer).bfloat16()._conv(x.bfloat16())
    assert conv.stride(1) == 1 and out.stride(1) == 1 and out.dtype == torch.bfloat16
    torch.testing.assert_close(conv.float(), F.conv1d(x, layer.conv.weight, layer.conv.bias, stride=5),
                               atol=0.05, rtol=0.02)
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = layer._conv(x)  # autograd on
    assert (trained.stride(1) == 1) == (norm == "layer")


def test_masked_group_norm_on_channels_last_input_matches_contiguous():
    """masked_group_norm gives the same values whether the channels are innermost in memory or not, and keeps
    the layout; every utterance's valid frames equal the group norm of that utterance alone."""
    from w2v2cli.model.components import masked_group_norm

    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(8, 8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 8, 40) * 3 + 1
    frames = torch.tensor([40, 25, 7])
    x_cl = x.transpose(1, 2).contiguous().transpose(1, 2)
    with torch.no_grad():
        plain, cl = masked_group_norm(x, frames, norm), masked_group_norm(x_cl, frames, norm)
        assert cl.stride(1) == 1 and plain.is_contiguous()
        torch.testing.assert_close(cl, plain, atol=1e-5, rtol=1e-5)
        for b, n in enumerate(frames.tolist()):
            torch.testing.assert_close(cl[b:b + 1, :, :n], norm(x[b:b + 1, :, :n]), atol=1e-5, rtol=1e-5)


def test_weight_caches_are_cleared_after_updates_that_do_not_bump_the_version():
    """PyTorch's fused AdamW writes parameters without bumping `_version`, so the packed linear weights and the
    positional conv's cached weight would go stale (it made validation during training score old weights);
    `clear_weight_caches`, which validation calls first, gives the updated model's output again."""
    torch.manual_seed(0)
    model = build_model(model_preset("tiny", vocab_size=12), "ctc")
    x = torch.randn(1, 8000)
    model.eval()
    with torch.no_grad():
        before = model(x)[0]  # fills the caches
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    versions = [p._version for p in model.parameters()]
    model(x)[0].logsumexp(-1).sum().backward()
    opt.step()
    assert [p._version for p in model.parameters()] == versions  # the step is invisible to weights_key
    fresh = copy.deepcopy(model).eval()  # a copy carries no caches
    model.eval()
    with torch.no_grad():
        stale = model(x)[0]
        cpu_kernels.clear_weight_caches(model)
        cleared = model(x)[0]
        expected = fresh(x)[0]
    assert not torch.allclose(expected, before, atol=1e-3)  # the step changed the output
    if cpu_kernels.ENABLED:
        assert not torch.allclose(stale, expected, atol=1e-3)  # what the stale caches gave
    torch.testing.assert_close(cleared, expected, rtol=1e-5, atol=1e-5)
