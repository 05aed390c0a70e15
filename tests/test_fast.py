"""Tests for b2b.model.fast: each faster layer against PyTorch's own, and whole networks sped up."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from b2b.model.fast import LayerNorm2d, PitchConv2d, PitchConvTranspose2d, speed_up
from b2b.gan.losses import critic_loss
from b2b.model.networks import DiscConvNet, build
from b2b.model.presets import CriticConfig, get_preset


@pytest.mark.parametrize("bias", [True, False])
def test_fast_transposed_edge_equals_conv(bias):
    torch.manual_seed(1)
    layer = PitchConvTranspose2d(5, 3, kernel_size=(2, 7), stride=(2, 2), bias=bias).double()
    with torch.no_grad():
        layer.weight.normal_()
        if bias:
            layer.bias.normal_()
    x = torch.randn(4, 5, 6, 1, dtype=torch.double)
    fast = layer(x)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, stride=(2, 2))  # independent reference
    assert fast.shape == ref.shape == (4, 3, 12, 7)
    torch.testing.assert_close(fast, ref)
    # same parameters as nn.ConvTranspose2d
    plain = torch.nn.ConvTranspose2d(5, 3, (2, 7), (2, 2), bias=bias)
    assert {k: v.shape for k, v in plain.state_dict().items()} == \
        {k: v.shape for k, v in layer.state_dict().items()}


def test_fast_conv_edge_equals_conv():
    torch.manual_seed(2)
    layer = PitchConv2d(5, 3, kernel_size=(2, 7), stride=(2, 2)).double()
    x = torch.randn(4, 5, 10, 7, dtype=torch.double)
    fast = layer(x)
    ref = F.conv2d(x, layer.weight, layer.bias, stride=(2, 2))
    assert fast.shape == ref.shape == (4, 3, 5, 1)
    torch.testing.assert_close(fast, ref)
    plain = torch.nn.Conv2d(5, 3, (2, 7), (2, 2))
    plain.load_state_dict(layer.state_dict())  # interchangeable state dicts


def test_edge_requires_stride_equal_kernel_height():
    with pytest.raises(ValueError, match="stride"):
        PitchConv2d(2, 2, kernel_size=(3, 7), stride=(2, 2))
    with pytest.raises(ValueError, match="stride"):
        PitchConvTranspose2d(2, 2, kernel_size=(3, 7), stride=(2, 2))


def _grads(params):
    return [p.grad.detach().clone() for p in params]


@pytest.mark.parametrize("preset", ["seed", "improved", "streams"])
def test_speed_up_keeps_outputs_and_gradients_of_whole_networks(preset):
    """The networks as written and sped up: same windows, scores and gradients (float64)."""
    torch.manual_seed(3)
    p = get_preset("improved").with_overrides({"critic": {"streams": 8}, "generator": {"refiner": 1}}, "streams") \
        if preset == "streams" else preset
    g, d = build(p)
    g, d = g.double(), d.double()
    with torch.no_grad():  # non-trivial attention, refiner and layer-norm affine parameters
        for m in (g, d):
            for q in m.parameters():
                if q.abs().sum() == 0 or (q == 1).all():
                    q.uniform_(0.5, 1.5)
    g.eval(), d.eval()  # dropout off so the two passes see the same network
    fast_g, fast_d = speed_up(copy.deepcopy(g)), speed_up(copy.deepcopy(d))
    assert {type(m) for m in fast_g.modules()} >= {PitchConvTranspose2d}
    assert {type(m) for m in fast_d.modules()} >= {PitchConv2d}
    assert torch.nn.GroupNorm not in {type(m) for m in fast_d.modules()}
    z = torch.randn(5, 128, dtype=torch.double)
    outs, grads = [], []
    for gg, dd in ((g, d), (fast_g, fast_d)):
        fake = gg(z)
        score = dd(fake)
        (score * torch.arange(1.0, 6.0, dtype=torch.double).view(5, 1)).sum().backward()
        outs.append((fake.detach(), score.detach()))
        grads.append(_grads(list(gg.parameters()) + list(dd.parameters())))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_speed_up_keeps_the_penalty_and_its_double_backward():
    torch.manual_seed(4)
    d = DiscConvNet(CriticConfig(norm="layer", dropout=0.0)).double()
    fast = speed_up(copy.deepcopy(d))
    real = (torch.rand(6, 17, 64, 72) > 0.8).double()
    fake = torch.rand(6, 17, 64, 72, dtype=torch.double)
    eps = torch.rand(6, dtype=torch.double)
    results = []
    for net in (d, fast):
        loss, stats = critic_loss(net, real, fake, lambda_gp=10.0, eps=eps)
        loss.backward()  # goes through grad-of-grad of the edge layer and the layer norm
        results.append((loss.detach(), stats["penalty"], _grads(net.parameters())))
    torch.testing.assert_close(results[0], results[1])
    assert results[0][1] > 0


def test_speed_up_swaps_in_place_with_the_same_parameters():
    g, d = build("improved")
    before = {name: q for name, q in list(g.named_parameters()) + list(d.named_parameters())}
    assert speed_up(g) is g and speed_up(d) is d
    after = {name: q for name, q in list(g.named_parameters()) + list(d.named_parameters())}
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)  # same objects
    assert type(g.layers.edge) is PitchConvTranspose2d and type(d.layers.block1[0]) is PitchConv2d
    assert type(d.layers.block2[0]) is torch.nn.Conv2d  # the (2, 1) convolutions stay as they are
    assert type(d.layers.block1[1]) is LayerNorm2d


def test_a_fast_networks_state_dict_computes_the_same_in_the_plain_network():
    """What a checkpoint relies on: the weights a fast-edged run saves, loaded into networks built
    with plain edges (``--plain-edges``), give the same windows and scores, and back again."""
    torch.manual_seed(5)
    g_fast, d_fast = (m.double() for m in build("seed", fast_edges=True))
    with torch.no_grad():  # every parameter and running statistic non-trivial and different
        for m in (g_fast, d_fast):
            for q in list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]:
                q.uniform_(0.5, 1.5)
    g_plain, d_plain = (m.double() for m in build("seed", fast_edges=False))
    g_plain.load_state_dict(g_fast.state_dict())
    d_plain.load_state_dict(d_fast.state_dict())
    assert type(g_plain.layers.edge) is torch.nn.ConvTranspose2d and type(g_fast.layers.edge) is PitchConvTranspose2d
    for m in (g_fast, d_fast, g_plain, d_plain):
        m.eval()  # running statistics, no dropout: one function each
    z = torch.randn(3, 128, dtype=torch.double)
    windows = g_fast(z)
    torch.testing.assert_close(g_plain(z), windows)
    torch.testing.assert_close(d_plain(windows), d_fast(windows))
    g_back = build("seed", fast_edges=True)[0].double().eval()
    g_back.load_state_dict(g_plain.state_dict())
    torch.testing.assert_close(g_back(z), windows)


def test_layer_norm_2d_is_group_norm_with_one_group():
    # the independent method: torch's own GroupNorm(1, C) with the same parameters; values and
    # the double backward the penalty takes agree
    torch.manual_seed(0)
    ours, ref = LayerNorm2d(6), torch.nn.GroupNorm(1, 6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5), ours.bias.uniform_(-0.5, 0.5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 6, 5, 2) * torch.arange(1.0, 4.0).view(3, 1, 1, 1)  # samples of different scale
    grads = []
    for m in (ours, ref):
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((m(xi) * x.flip(0)).square().sum(), xi, create_graph=True)
        m.zero_grad()
        g.norm().backward()
        grads.append((m(x), g, m.weight.grad.clone(), m.bias.grad.clone()))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
