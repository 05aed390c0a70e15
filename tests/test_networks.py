"""Tests for b2b.model.networks: shapes worked out by hand, parameter counts, presets (the speed-ups: test_fast.py)."""

from __future__ import annotations

import numpy as np

import pytest
import torch

from b2b.model.networks import DiscConvNet, GenConvNet, SelfAttention, build, count_parameters
from b2b.model.presets import PRESETS, CriticConfig, GeneratorConfig, Preset, get_preset


def _walk(layers, x, expected):
    """Run ``x`` through ``layers`` one child at a time; each output has its expected shape, in order."""
    seen = []
    for name, layer in layers.named_children():
        x = layer(x)
        assert tuple(x.shape) == expected[name], name
        seen.append(name)
    assert seen == list(expected)


def test_generator_shapes_after_each_layer():
    torch.manual_seed(0)
    g = GenConvNet()
    x = torch.randn(3, 128).view(3, 128, 1, 1)
    # transposed conv: H_out = (H - 1) * 2 + 2, W_out = (W - 1) * 2 + kw
    expected = {
        "block1": (3, 64, 2, 1), "block2": (3, 64, 4, 1), "block3": (3, 64, 8, 1),
        "block4": (3, 64, 16, 1), "attention": (3, 64, 16, 1), "block5": (3, 64, 32, 1),
        "edge": (3, 17, 64, 72), "output": (3, 17, 64, 72),
    }
    _walk(g.layers, x, expected)
    y = g(torch.randn(3, 128))
    assert y.shape == (3, 17, 64, 72) and 0 <= y.min() and y.max() <= 1


def test_critic_shapes_after_each_layer():
    torch.manual_seed(0)
    d = DiscConvNet()
    x = torch.rand(3, 17, 64, 72)
    # conv: H_out = (H - 2) // 2 + 1; W_out = (72 - 72) // 2 + 1 = 1 then (1 - 1) // 2 + 1 = 1
    expected = {
        "block1": (3, 16, 32, 1), "block2": (3, 16, 16, 1), "block3": (3, 16, 8, 1),
        "attention": (3, 16, 8, 1), "block4": (3, 16, 4, 1), "block5": (3, 16, 2, 1),
        "flatten": (3, 32), "linear": (3, 1),
    }
    _walk(d.layers, x, expected)


def test_parameter_counts_by_hand():
    g, d = build("seed")
    # generator: block1 128*64*2+64, blocks 2-5 4*(64*64*2+64), BN 5*2*64, PReLU 5,
    # attention(64) q,k 2*(64*8+8) + v 64*64+64 + gamma 1, edge 64*17*2*72+17
    g_expected = (128 * 64 * 2 + 64) + 4 * (64 * 64 * 2 + 64) + 5 * 128 + 5 \
        + 2 * (64 * 8 + 8) + 64 * 64 + 64 + 1 + 64 * 17 * 2 * 72 + 17
    assert count_parameters(g) == g_expected == 212_007
    # critic: edge 17*16*2*72+16, 4*(16*16*2+16), norm 5*32, PReLU 5,
    # attention(16) 2*(16*2+2) + 16*16+16 + 1, linear 32+1
    d_expected = (17 * 16 * 144 + 16) + 4 * (16 * 16 * 2 + 16) + 5 * 32 + 5 \
        + 2 * (16 * 2 + 2) + 16 * 16 + 16 + 1 + 33
    assert count_parameters(d) == d_expected == 41_835
    g2, d2 = build("improved")
    assert count_parameters(g2) == g_expected  # the straight-through output has no parameters
    # improved critic: 64 channels, GroupNorm (same affine as BN), a minibatch-std channel before
    # the linear layer: edge 17*64*144+64, 4*(64*64*2+64), norm 5*128, PReLU 5,
    # attention(64) 2*(64*8+8) + 64*64+64 + 1, linear (64+1)*2+1
    d2_expected = (17 * 64 * 144 + 64) + 4 * (64 * 64 * 2 + 64) + 5 * 128 + 5 \
        + 2 * (64 * 8 + 8) + 64 * 64 + 64 + 1 + 65 * 2 + 1
    assert count_parameters(d2) == d2_expected == 195_737
    assert count_parameters(GenConvNet(latent=64)) == g_expected - 64 * 64 * 2


def _batch(n: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)  # windows of different density and scale
    return (torch.rand(n, 17, 64, 72, generator=g) > 0.9).float() * torch.arange(1.0, n + 1).view(n, 1, 1, 1)


def _critic_scores(preset: str, batch: torch.Tensor, part: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training-mode critic of ``preset`` on ``batch`` twice and on its first ``part`` windows alone."""
    torch.manual_seed(6)
    _, d = build(preset)
    d.train()
    with torch.no_grad():
        return d(batch), d(batch), d(batch[:part])


def test_the_improved_critic_scores_each_group_alone_as_the_penalty_needs():
    """WGAN-GP's penalty takes the gradient of the scores with respect to the windows scored: the
    ``improved`` critic (layer norm, no dropout) gives the same scores on every call while
    training, and couples a window only with its group of 4 (the minibatch standard deviation),
    not with the rest of the batch."""
    batch = _batch(8)
    twice, again, first_group = _critic_scores("improved", batch, 4)
    assert twice.shape == (8, 1)
    torch.testing.assert_close(twice, again)
    torch.testing.assert_close(twice[:4], first_group, rtol=1e-5, atol=1e-6)
    torch.manual_seed(6)
    _, d = build(get_preset("improved").with_overrides({"critic": {"minibatch_std": False}}, name="alone"))
    d.train()
    with torch.no_grad():
        torch.testing.assert_close(d(batch)[:1], d(batch[:1]), rtol=1e-5, atol=1e-6)


def test_the_seed_critic_is_the_originals_batch_norm_and_dropout_critic():
    """The ``seed`` preset keeps the original's critic: while training, a window's score depends on
    the rest of its batch (batch norm) and changes from call to call (dropout); in eval mode it is
    one function. Its networks and training settings survive the checkpoint's dict."""
    batch = _batch(4)
    twice, again, _ = _critic_scores("seed", batch, 1)
    assert not torch.allclose(twice, again)
    torch.manual_seed(6)
    _, d = build(get_preset("seed").with_overrides({"critic": {"dropout": 0.0}}, name="no-dropout"))
    d.train()
    with torch.no_grad():
        assert not torch.allclose(d(batch)[:1], d(batch[:1]))  # batch norm: the rest of the batch counts
    torch.manual_seed(6)
    _, d = build("seed")
    d.train()
    with torch.no_grad():
        d(batch)  # running statistics from one batch
    d.eval()
    with torch.no_grad():
        torch.testing.assert_close(d(batch)[:1], d(batch[:1]))
        torch.testing.assert_close(d(batch), d(batch))
    for preset in PRESETS.values():
        assert Preset.from_dict(preset.to_dict()) == preset, preset.name


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*seed.*improved"):
        build("nope")
    with pytest.raises(ValueError):
        get_preset("")


def test_ablation_options():
    g = GenConvNet(GeneratorConfig(attention=None, norm="none", latent=32))
    assert not any(isinstance(m, SelfAttention) for m in g.modules())
    y = g(torch.randn(2, 32))
    assert y.shape == (2, 17, 64, 72) and y.min() >= 0 and y.max() <= 1
    d = DiscConvNet(CriticConfig(attention=5, dropout=0.0, norm="none"))
    names = [n for n, _ in d.layers.named_children()]
    assert names.index("attention") == names.index("block5") + 1
    assert d(torch.rand(2, 17, 64, 72)).shape == (2, 1)
    for bad in (dict(norm="group"), dict(attention=0), dict(attention=6), dict(dropout=1.0)):
        with pytest.raises(ValueError):
            CriticConfig(**bad)
    with pytest.raises(TypeError):
        GeneratorConfig(output="sigmoid")  # the output option is gone: always a sigmoid


def test_bad_inputs():
    g, d = build("seed")
    with pytest.raises(ValueError, match="noise"):
        g(torch.randn(2, 17))
    with pytest.raises(ValueError, match="critic input"):
        d(torch.rand(2, 17, 32, 72))


def test_presets_written_with_the_old_output_option_still_load():
    old = PRESETS["improved"].to_dict()
    old["generator"]["output"] = "sigmoid"                 # what checkpoints before the removal hold
    assert Preset.from_dict(old) == PRESETS["improved"]
    old["generator"]["output"] = "tanh"
    with pytest.raises(ValueError, match="output 'tanh' is no longer supported"):
        Preset.from_dict(old)


def test_overrides_give_a_checked_copy_and_leave_the_preset_alone():
    seed = PRESETS["seed"]
    ab = seed.with_overrides({"critic": {"norm": "layer", "dropout": 0.0}, "training": {"n_critic": 3}}, name="ab")
    assert (ab.name, ab.critic.norm, ab.critic.dropout, ab.training.n_critic) == ("ab", "layer", 0.0, 3)
    assert ab.generator == seed.generator and ab.critic.attention == seed.critic.attention == 3
    assert (ab.training.lr_g, ab.threshold) == (seed.training.lr_g, seed.threshold)
    # the shared preset, and the networks built from it, are untouched
    assert (seed.critic.norm, seed.critic.dropout, seed.training.n_critic) == ("batch", 0.5, 5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build("seed")[1].modules())
    # an override goes through the configs' own checks
    with pytest.raises(ValueError, match="dropout"):
        seed.with_overrides({"critic": {"dropout": 1.0}}, name="bad")
    with pytest.raises(TypeError):
        seed.with_overrides({"critic": {"nope": 1}}, name="bad")


def test_minibatch_std_matches_numpy_by_groups():
    from b2b.model.networks import MinibatchStd

    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 2, 1, generator=g) * torch.arange(1, 9).view(8, 1, 1, 1)  # groups differ in spread
    y = MinibatchStd(group=4)(x)
    assert y.shape == (8, 4, 2, 1)
    assert torch.equal(y[:, :3], x)
    a = x.numpy().reshape(2, 4, 3, 2, 1)
    want = np.sqrt(a.var(axis=1) + 1e-8).mean(axis=(1, 2, 3))  # one number per group of 4
    assert np.allclose(y[:4, 3].numpy(), want[0], atol=1e-6)
    assert np.allclose(y[4:, 3].numpy(), want[1], atol=1e-6)
    assert want[1] > want[0]
    # a batch that is not a multiple of the group is one group
    z = MinibatchStd(group=4)(x[:6])
    assert np.allclose(z[:, 3].numpy(), np.sqrt(x[:6].numpy().var(axis=0) + 1e-8).mean(), atol=1e-6)


def test_critic_with_minibatch_std_sees_identical_batches():
    from b2b.model.networks import DiscConvNet
    from b2b.model.presets import CriticConfig, Preset

    torch.manual_seed(0)
    d = DiscConvNet(CriticConfig(norm="layer", dropout=0.0, minibatch_std=True))
    assert d.layers.linear.in_features == (16 + 1) * 2
    x = (torch.rand(8, 17, 64, 72) < 0.01).float()
    same = x[:1].expand(8, -1, -1, -1)
    # identical windows: the std channel is ~0, so the scores differ from those of a varied batch
    assert not torch.allclose(d(same)[0], d(x)[0])
    # presets written before the option existed load with it off
    old = Preset("x").to_dict()
    del old["critic"]["minibatch_std"]
    assert Preset.from_dict(old).critic.minibatch_std is False


def test_straight_through_binarizes_in_training_with_the_sigmoid_gradient():
    from b2b.model.networks import StraightThrough

    x = torch.tensor([[-2.0, -0.1, 0.0, 0.3, 4.0]], requires_grad=True)
    st = StraightThrough().train()
    y = st(x)
    assert y.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]  # sigmoid(0) = 0.5 is not > 0.5
    y.sum().backward()
    p = 1 / (1 + np.exp(-x.detach().numpy()))
    np.testing.assert_allclose(x.grad.numpy(), p * (1 - p), rtol=1e-6)  # d sigmoid / dx
    st.eval()
    np.testing.assert_allclose(st(x).detach().numpy(), p, rtol=1e-6)


def test_binary_generator_gives_windows_of_zeros_and_ones_only_in_train_mode():
    from b2b.model.presets import GeneratorConfig

    torch.manual_seed(0)
    g = GenConvNet(GeneratorConfig(binary=True))
    z = torch.randn(4, 128)
    out = g.train()(z)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    probs = g.eval()(z)
    assert 0.0 < probs.min() < probs.max() < 1.0
    g2 = GenConvNet(GeneratorConfig())
    g2.load_state_dict(g.state_dict())  # same parameters as the sigmoid generator
    torch.testing.assert_close(g2.eval()(z), probs)
    old = get_preset("seed").to_dict()
    del old["generator"]["binary"]
    assert Preset.from_dict(old).generator.binary is False
