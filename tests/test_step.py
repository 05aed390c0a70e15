"""Tests of b2b.gan.step.wgan_gp_iteration: the algorithm written out by hand gives the same update,
and on a toy problem with a known answer a short run of it learns that answer."""

from __future__ import annotations

import torch
from torch import nn

from b2b.gan.step import STATS, wgan_gp_iteration


def _nets(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    g = nn.Linear(2, 3)                                                # latent 2 -> "windows" of 3 numbers
    d = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    return g, d


def test_equals_the_algorithm_written_out():
    data = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 0.0, -1.0], [1.5, 1.0, 0.0]])
    lam, n_critic = 10.0, 3

    g1, d1 = _nets()
    o_g1, o_d1 = torch.optim.Adam(g1.parameters(), 1e-2), torch.optim.Adam(d1.parameters(), 1e-2)
    batches = iter([data[:2], data[2:], data[1:3]])
    torch.manual_seed(5)
    stats = wgan_gp_iteration(g1, d1, o_g1, o_d1, lambda: next(batches), lambda: torch.randn(2, 2),
                              n_critic=n_critic, lambda_gp=lam)

    g2, d2 = _nets()
    o_g2, o_d2 = torch.optim.Adam(g2.parameters(), 1e-2), torch.optim.Adam(d2.parameters(), 1e-2)
    torch.manual_seed(5)
    w_sum = 0.0
    for real in (data[:2], data[2:], data[1:3]):                       # Gulrajani et al., Algorithm 1
        z = torch.randn(2, 2)
        fake = g2(z).detach()
        eps = torch.rand(2)
        x_hat = (eps[:, None] * real + (1 - eps[:, None]) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d2(x_hat).sum(), x_hat, create_graph=True)
        w = d2(real).mean() - d2(fake).mean()
        loss = -w + lam * ((grad.norm(dim=1) - 1) ** 2).mean()
        o_d2.zero_grad()
        loss.backward()
        o_d2.step()
        w_sum += float(w.detach())
    critic_grads = [p.grad.clone() for p in d2.parameters()]           # those of the last critic update
    z = torch.randn(2, 2)
    loss_g = -d2(g2(z)).mean()
    o_g2.zero_grad()
    loss_g.backward()
    o_g2.step()

    for a, b in zip(list(g1.parameters()) + list(d1.parameters()), list(g2.parameters()) + list(d2.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    named = dict(zip(STATS, stats.tolist()))
    assert list(named) == ["loss_d", "loss_g", "wasserstein", "penalty", "grad_norm"] and len(stats) == 5
    assert abs(named["wasserstein"] - w_sum / n_critic) < 1e-5
    assert abs(named["loss_g"] - float(loss_g.detach())) < 1e-5
    # the generator update takes the gradient w.r.t. the generator's parameters only: the critic's
    # gradients are those of its last update, and its parameters stay trainable
    for a, b in zip(d1.parameters(), critic_grads):
        torch.testing.assert_close(a.grad, b, rtol=1e-5, atol=1e-6)
    assert all(p.requires_grad for p in d1.parameters())


def test_a_short_run_learns_a_known_answer():
    # real data: points near (3, -1, 2); the generator starts near the origin. WGAN-GP must move
    # its outputs to the data (the Wasserstein-1 optimum is the data itself).
    target = torch.tensor([3.0, -1.0, 2.0])
    g, d = _nets(1)
    o_g = torch.optim.Adam(g.parameters(), 2e-2, betas=(0.0, 0.9))
    o_d = torch.optim.Adam(d.parameters(), 2e-2, betas=(0.0, 0.9))
    gen = torch.Generator().manual_seed(0)
    real = lambda: target + 0.1 * torch.randn(16, 3, generator=gen)  # noqa: E731
    noise = lambda: torch.randn(16, 2, generator=gen)  # noqa: E731
    start = float((g(torch.zeros(1, 2)).detach() - target).norm())
    ws = []
    for _ in range(300):
        ws.append(float(wgan_gp_iteration(g, d, o_g, o_d, real, noise, n_critic=5)[2]))
    with torch.no_grad():
        end = float((g(torch.randn(256, 2, generator=gen)).mean(0) - target).norm())
    assert start > 3.0 and end < 0.3 * start
    # the critic's Wasserstein estimate falls as the generator closes in
    assert sum(ws[-20:]) / 20 < 0.5 * max(ws[:50])


def test_scoring_real_and_fake_together_changes_nothing_for_a_per_sample_critic():
    # joint: one critic pass over (2B, ...) instead of two; for a layer-norm critic with minibatch
    # std in aligned groups the loss and every gradient are those of the two separate passes
    from b2b.gan.losses import critic_loss
    from b2b.model.networks import build

    torch.manual_seed(0)
    _, d = build("improved")
    real = (torch.rand(8, 17, 64, 72) < 0.05).float()
    fake, eps = torch.rand(8, 17, 64, 72), torch.rand(8)
    out = []
    for joint in (False, True):
        d.zero_grad()
        loss, st = critic_loss(d, real, fake, eps=eps, joint=joint)
        loss.backward()
        out.append((loss.detach(), st["wasserstein"], [p.grad.clone() for p in d.parameters()]))
    (l0, w0, g0), (l1, w1, g1) = out
    assert torch.allclose(l0, l1, rtol=1e-5) and torch.allclose(w0, w1, rtol=1e-5, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(g0, g1))
    assert d.scores_apart(8) and not d.scores_apart(6)           # groups of 4 would straddle the halves
    _, seed_critic = build("seed")
    assert not seed_critic.scores_apart(64)                        # batch norm couples the samples
