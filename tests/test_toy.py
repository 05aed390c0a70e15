"""Tests for b2b.gan.toy: data, measures checked by hand, determinism of the training loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from b2b.gan import toy
from b2b.gan.step import wgan_gp_iteration


def test_ring_centres_by_hand():
    c = toy.ring_centres(4, radius=3.0)
    expected = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]])
    assert c.shape == (4, 2) and torch.allclose(c, expected, atol=1e-6)
    c8 = toy.ring_centres()
    assert torch.allclose(c8[1], torch.tensor([math.sqrt(2), math.sqrt(2)]), atol=1e-6)


def test_ring_of_gaussians_shape_modes_and_spread():
    g = torch.Generator().manual_seed(0)
    x = toy.ring_of_gaussians(4000, modes=5, radius=1.5, std=0.1, generator=g)
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    d = torch.cdist(x, toy.ring_centres(5, 1.5))
    nearest, which = d.min(dim=1)
    counts = torch.bincount(which, minlength=5).float() / 4000
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.03)
    # distance to the centre of a 2-D Gaussian is Rayleigh: mean std * sqrt(pi / 2)
    assert nearest.mean().item() == pytest.approx(0.1 * math.sqrt(math.pi / 2), rel=0.05)
    exact = toy.ring_of_gaussians(10, modes=3, radius=1.0, std=0.0, generator=g)
    assert torch.cdist(exact, toy.ring_centres(3, 1.0)).min(dim=1).values.max() < 1e-6


def test_ring_of_gaussians_is_reproducible_with_a_generator():
    a = toy.ring_of_gaussians(7, generator=torch.Generator().manual_seed(3))
    b = toy.ring_of_gaussians(7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        toy.ring_of_gaussians(5, std=-1.0)


def test_mode_coverage_on_hand_made_samples():
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [-4.0, 0.0]])
    std = 0.1  # high quality: within 0.3 of the nearest centre
    samples = torch.tensor(
        [[0.0, 0.0]] * 5  # mode 0: 5 good samples
        + [[4.2, 0.0], [4.0, -0.25], [3.9, 0.1]]  # mode 1: 3 good samples
        + [[0.0, 4.5]]  # nearest to mode 2 but 0.5 away: not high quality
        + [[2.0, 2.1]]  # in the middle of nowhere
    )
    # 8 of 10 samples are good; with min_fraction 0.2 a mode needs 2 good samples
    assert toy.mode_coverage(samples, centres, std, min_fraction=0.2) == (2, pytest.approx(0.8))
    # needing 4 good samples only mode 0 counts
    assert toy.mode_coverage(samples, centres, std, min_fraction=0.4) == (1, pytest.approx(0.8))
    # a tiny threshold still needs at least one good sample: mode 2 and 3 stay uncovered
    assert toy.mode_coverage(samples, centres, std, min_fraction=1e-9)[0] == 2
    # just inside 3 std is high quality, just outside is not
    assert toy.mode_coverage(torch.tensor([[4.29, 0.0]]), centres, std, min_fraction=1.0) == (1, 1.0)
    assert toy.mode_coverage(torch.tensor([[4.31, 0.0]]), centres, std, min_fraction=1.0) == (0, 0.0)


def test_mode_coverage_of_real_data_is_complete():
    x = toy.ring_of_gaussians(2000, std=0.02, generator=torch.Generator().manual_seed(1))
    modes, hq = toy.mode_coverage(x, toy.ring_centres(), 0.02)
    assert modes == 8
    assert hq == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(Rayleigh <= 3 std) = 1 - e^{-9/2}


def test_mode_coverage_rejects_mismatched_dims():
    with pytest.raises(ValueError):
        toy.mode_coverage(torch.zeros(3, 3), toy.ring_centres(), 0.02)


def test_wasserstein_1d_by_hand():
    assert toy.wasserstein_1d([0.0, 1.0, 3.0], [8.0, 5.0, 6.0]) == pytest.approx(5.0)  # a shift by 5
    assert toy.wasserstein_1d([3.0, 0.0], [1.0, 1.0]) == pytest.approx(1.5)  # (|0-1| + |3-1|) / 2
    # unequal sizes: half the mass of b moves 2 to reach a point at 0
    assert toy.wasserstein_1d([0.0], [0.0, 2.0]) == pytest.approx(1.0)
    # mass 1/2 at 0 and at 2 all moves to 1
    assert toy.wasserstein_1d(np.array([0.0, 2.0]), torch.tensor([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert toy.wasserstein_1d([2.0, 2.0], [2.0]) == 0.0


def test_wasserstein_1d_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.exponential(2.0, 170)
    assert toy.wasserstein_1d(a, b) == pytest.approx(wasserstein_distance(a, b))
    a2 = rng.normal(0, 1, 170)
    assert toy.wasserstein_1d(a2, b) == pytest.approx(wasserstein_distance(a2, b))


def test_wasserstein_assignment_by_hand():
    a = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    b = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    # crossing costs (5 + sqrt 10) / 2; matching (0,0)-(0,1) and (3,0)-(3,4) costs (1 + 4) / 2
    assert toy.wasserstein_assignment(a, b) == pytest.approx(2.5)
    x = torch.tensor([[0.5], [2.0], [-1.0]])
    y = torch.tensor([[1.0], [0.0], [4.0]])
    assert toy.wasserstein_assignment(x, y) == pytest.approx(toy.wasserstein_1d(x[:, 0], y[:, 0]))
    with pytest.raises(ValueError):
        toy.wasserstein_assignment(a, b[:1])


def test_mlp_builders_shapes_and_norms():
    g = toy.mlp_generator(latent_dim=3, hidden=8, depth=2)
    assert g(torch.zeros(5, 3)).shape == (5, 2)
    for norm, kind in [(None, None), ("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm)]:
        c = toy.mlp_critic(hidden=8, depth=2, norm=norm, dropout=0.5)
        assert c(torch.zeros(5, 2)).shape == (5, 1)
        if kind is not None:
            assert sum(isinstance(m, kind) for m in c) == 2
        assert sum(isinstance(m, torch.nn.Dropout) for m in c) == 2
    with pytest.raises(ValueError):
        toy.mlp_critic(norm="group")


@pytest.mark.parametrize(
    "train",
    [
        lambda: toy.train_gan(toy.ToyConfig(steps=12, every=5, n_eval=64, hidden=16), "minimax"),
        lambda: toy.train_wgan_clip(toy.ToyConfig(steps=6, every=3, n_eval=64, hidden=16), n_critic=2),
        lambda: toy.train_wgan_gp(toy.ToyConfig(steps=6, every=3, n_eval=64, hidden=16, critic_norm="layer"), n_critic=2),
    ],
)
def test_training_is_deterministic_and_leaves_global_rng_alone(train):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = train()
    assert torch.equal(torch.get_rng_state(), state)
    b = train()
    for key, values in a.history.items():
        np.testing.assert_array_equal(values, b.history[key], err_msg=key)
    for p, q in zip(a.generator.parameters(), b.generator.parameters()):
        assert torch.equal(p, q)
    steps = a.history["step"]
    assert steps[0] == 0 and steps[-1] == a.config.steps
    assert set(a.snapshots) == set(steps)
    assert all(len(v) == len(steps) for v in a.history.values())


def test_the_wgans_train_with_the_models_own_step(monkeypatch):
    # one WGAN-GP loop in the package: every generator step of both WGANs is one call of
    # b2b.gan.step.wgan_gp_iteration, with the method's n_critic and lambda_gp (0 for clipping)
    calls = []

    def spy(*args, **kw):
        calls.append((kw["n_critic"], kw["lambda_gp"]))
        return wgan_gp_iteration(*args, **kw)

    monkeypatch.setattr(toy, "wgan_gp_iteration", spy)
    config = toy.ToyConfig(steps=4, every=2, n_eval=32, hidden=8, depth=2)
    gp = toy.train_wgan_gp(config, n_critic=3, lambda_gp=7.0)
    assert calls == [(3, 7.0)] * 4 and gp.config is config
    calls.clear()
    clip = toy.train_wgan_clip(config, n_critic=2, clip=0.05)
    assert calls == [(2, 0.0)] * 4
    assert clip.method == {"kind": "wgan_clip", "n_critic": 2, "clip": 0.05}
    # the losses recorded are the step's own: d_loss is -wasserstein for clipping, a mean over steps
    assert all(math.isfinite(v) for v in gp.history["d_loss"][1:] + clip.history["g_loss"][1:])
    assert all(math.isnan(v) for v in gp.history["g_grad"])       # measured for the GAN only


def test_wgan_gp_equals_wgan_gp_iteration_run_by_hand():
    # the run written out: the same seeds, networks and draws, wgan_gp_iteration called in a loop
    config = toy.ToyConfig(steps=3, every=3, n_eval=16, hidden=8, depth=2, lr=1e-3, std=0.1, seed=5)
    run = toy.train_wgan_gp(config, n_critic=2, betas=(0.0, 0.9))
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)                                       # as the toy runs do
        torch.manual_seed(5)
        g = torch.Generator().manual_seed(6)
        gen, critic = toy.mlp_generator(2, 8, 2), toy.mlp_critic(2, 8, 2)
        o_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.0, 0.9))
        o_d = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.0, 0.9))
        for _ in range(3):
            wgan_gp_iteration(gen, critic, o_g, o_d, lambda: toy.ring_of_gaussians(256, std=0.1, generator=g),
                              lambda: torch.randn(256, 2, generator=g), n_critic=2)
    torch.set_num_threads(threads)
    for p, q in zip(list(run.generator.parameters()) + list(run.critic.parameters()),
                    list(gen.parameters()) + list(critic.parameters())):
        assert torch.equal(p, q)


def test_weight_clipping_keeps_every_critic_weight_in_range():
    run = toy.train_wgan_clip(toy.ToyConfig(steps=3, every=3, n_eval=32, hidden=16), n_critic=2, clip=0.02)
    assert max(p.abs().max().item() for p in run.critic.parameters()) <= 0.02
    # the clamp acts on every critic step: RMSprop's first steps move weights by ~lr, far past 0.02
    loose = toy.train_wgan_clip(toy.ToyConfig(steps=3, every=3, n_eval=32, hidden=16, lr=0.5), n_critic=2, clip=0.02)
    assert max(p.abs().max().item() for p in loose.critic.parameters()) <= 0.02
    assert max(p.abs().max().item() for p in loose.generator.parameters()) > 0.02   # the generator is not clipped


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(steps=-1), "steps >= 0"), (dict(every=0), "every >= 1"), (dict(batch_size=1), "batch_size >= 2"),
        (dict(n_eval=0), "n_eval >= 1"), (dict(lr=0.0), "lr must be > 0"), (dict(critic_norm="group"), "critic_norm"),
        (dict(critic_dropout=1.0), "critic_dropout"),
    ],
)
def test_toy_config_refuses_bad_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        toy.ToyConfig(**bad)


def test_methods_refuse_bad_settings():
    config = toy.ToyConfig(steps=1, n_eval=8, hidden=4)
    with pytest.raises(ValueError, match="n_critic"):
        toy.train_wgan_gp(config, n_critic=0)
    with pytest.raises(ValueError, match="lambda_gp"):
        toy.train_wgan_gp(config, lambda_gp=-1.0)
    with pytest.raises(ValueError, match="clip"):
        toy.train_wgan_clip(config, clip=0.0)
    with pytest.raises(ValueError, match="loss"):
        toy.train_gan(config, "wasserstein")


def test_fit_critic_returns_history():
    shift = torch.tensor([0.5, 0.0])
    critic, h = toy.fit_critic(
        lambda n, g: torch.randn(n, 2, generator=g),
        lambda n, g: torch.randn(n, 2, generator=g) + shift,
        steps=4, every=2, n_eval=64, hidden=16,
    )
    assert h["step"] == [0, 2, 4]
    assert len(h["w_estimate"]) == 3 and critic(torch.zeros(3, 2)).shape == (3, 1)
    clipped, _ = toy.fit_critic(lambda n, g: torch.randn(n, 2, generator=g),
                                lambda n, g: torch.randn(n, 2, generator=g) + shift,
                                method="clip", clip=0.03, lr=0.5, steps=2, every=2, n_eval=16, hidden=8)
    assert max(p.abs().max().item() for p in clipped.parameters()) <= 0.03


def test_train_gan_gives_the_discriminator_its_own_learning_rate():
    # Adam's first step moves every parameter with a non-zero gradient by (almost exactly) the
    # learning rate: m_hat / sqrt(v_hat) = g / |g|. Rebuild the initial weights the run starts from.
    run = toy.train_gan(toy.ToyConfig(steps=1, every=1, n_eval=32, hidden=8, depth=2, lr=1e-3, seed=4), lr_d=1e-5)
    torch.manual_seed(4)
    gen0, critic0 = toy.mlp_generator(2, 8, 2), toy.mlp_critic(2, 8, 2)

    def largest_move(after, before):
        return max((p - q).abs().max().item() for p, q in zip(after.parameters(), before.parameters()))

    assert largest_move(run.critic, critic0) == pytest.approx(1e-5, rel=1e-2)  # float32 weights near 0.3
    assert largest_move(run.generator, gen0) == pytest.approx(1e-3, rel=1e-3)
    assert run.method["lr_d"] == 1e-5
    assert toy.train_gan(toy.ToyConfig(steps=0, n_eval=8, hidden=4, lr=2e-3)).method["lr_d"] == 2e-3  # defaults to lr
    with pytest.raises(ValueError, match="lr_d"):
        toy.train_gan(toy.ToyConfig(steps=1, n_eval=8, hidden=4), lr_d=0.0)
