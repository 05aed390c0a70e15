"""Tests for b2b.gan.losses against critics whose input gradient is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from b2b.gan import losses


class Linear(nn.Module):
    """D(x) = w . flatten(x) + b: the input gradient is w everywhere."""

    def __init__(self, w: list[float], b: float = 0.5) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


class Quadratic(nn.Module):
    """D(x) = x^T A x: the input gradient is (A + A^T) x."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,ij,bj->b", x, self.a, x).unsqueeze(1)  # (B, 1)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()


REAL = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0], [4.0, 0.0, 1.0]], dtype=torch.float64)
FAKE = torch.tensor([[3.0, 0.0, 2.0], [-1.0, 1.0, 0.0], [0.0, 2.5, -2.0]], dtype=torch.float64)
EPS = torch.tensor([0.5, 0.25, 0.9], dtype=torch.float64)


def test_interpolate_endpoints_values_and_detached():
    real = REAL.clone().requires_grad_(True)
    x = losses.interpolate(real, FAKE, EPS)
    assert not x.requires_grad
    # by hand, first sample: 0.5 * (1, 2, -1) + 0.5 * (3, 0, 2) = (2, 1, 0.5)
    assert torch.allclose(x[0], torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64))
    ones, zeros = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    assert torch.equal(losses.interpolate(REAL, FAKE, ones), REAL)
    assert torch.equal(losses.interpolate(REAL, FAKE, zeros), FAKE)
    # random eps: each point lies on its own segment, per sample
    x = losses.interpolate(REAL, FAKE)
    eps = (x - FAKE)[:, 0] / (REAL - FAKE)[:, 0]
    assert torch.allclose(x, eps[:, None] * REAL + (1 - eps[:, None]) * FAKE)
    assert ((eps >= 0) & (eps <= 1)).all()


def test_interpolate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.interpolate(REAL, FAKE[:2])
    with pytest.raises(ValueError, match="eps"):
        losses.interpolate(REAL, FAKE, EPS[:2])


def test_interpolate_multidimensional_broadcasts_eps_per_sample():
    real = torch.arange(2 * 2 * 3, dtype=torch.float32).view(2, 2, 3)
    fake = torch.zeros_like(real)
    x = losses.interpolate(real, fake, torch.tensor([0.25, 1.0]))
    assert torch.equal(x[0], 0.25 * real[0]) and torch.equal(x[1], real[1])


def test_penalty_of_linear_critic_is_norm_of_w_minus_one_squared():
    critic = Linear([3.0, -4.0, 12.0])  # ||w|| = 13
    penalty, norms = losses.gradient_penalty(critic, REAL, FAKE, EPS)
    assert penalty.item() == pytest.approx((13 - 1) ** 2)
    assert torch.allclose(norms, torch.full((3,), 13.0, dtype=torch.float64))
    assert losses.gradient_penalty(critic, REAL, FAKE)[0].item() == pytest.approx(144.0)
    norms = losses.gradient_norms(critic, REAL)
    assert norms.shape == (3,)
    assert norms.dtype == torch.float64
    assert torch.allclose(norms, torch.full((3,), 13.0, dtype=torch.float64))


def test_penalty_of_linear_critic_on_image_shaped_input():
    critic = Linear([0.0, 0.6, 0.0, -0.8, 0.0, 0.0])  # ||w|| = 1: no penalty
    real, fake = REAL[:, :2].repeat(1, 3).view(3, 2, 3), FAKE.repeat(1, 2).view(3, 2, 3)
    assert losses.gradient_penalty(critic, real, fake)[0].item() == pytest.approx(0.0, abs=1e-12)


def test_penalty_gradient_wrt_linear_critic_weights():
    critic = Linear([3.0, -4.0, 0.0])  # ||w|| = 5
    losses.gradient_penalty(critic, REAL, FAKE, EPS)[0].backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (3, -4, 0) / 5
    assert torch.allclose(critic.w.grad, torch.tensor([4.8, -6.4, 0.0], dtype=torch.float64))
    assert critic.b.grad is None or critic.b.grad.item() == 0.0


def test_penalty_of_half_squared_norm_by_hand():
    critic = lambda x: 0.5 * (x**2).sum(dim=1)  # gradient = x
    real = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    fake = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    # x_hat = 0.5 (1, 2) + 0.5 (3, 0) = (2, 1); ||grad|| = sqrt(5)
    p, _ = losses.gradient_penalty(critic, real, fake, torch.tensor([0.5], dtype=torch.float64))
    assert p.item() == pytest.approx((math.sqrt(5) - 1) ** 2)


def test_penalty_of_quadratic_form_matches_closed_form():
    a = torch.tensor([[1.0, 2.0, 0.0], [-1.0, 0.5, 0.3], [0.0, 1.0, -2.0]], dtype=torch.float64)
    critic = Quadratic(a)
    x_hat = EPS[:, None] * REAL + (1 - EPS[:, None]) * FAKE
    grads = x_hat @ (a + a.T).T  # (A + A^T) x for each row
    expected_norms = grads.norm(dim=1)
    assert torch.allclose(losses.gradient_norms(critic, x_hat), expected_norms)
    expected = ((expected_norms - 1) ** 2).mean()
    assert losses.gradient_penalty(critic, REAL, FAKE, EPS)[0].item() == pytest.approx(expected.item())


def test_penalty_is_mean_of_per_sample_penalties_and_samples_are_independent():
    critic = mlp(1)
    batch, _ = losses.gradient_penalty(critic, REAL, FAKE, EPS)
    singles = [losses.gradient_penalty(critic, REAL[i : i + 1], FAKE[i : i + 1], EPS[i : i + 1])[0] for i in range(3)]
    assert batch.item() == pytest.approx(torch.stack(singles).mean().item())
    x = losses.interpolate(REAL, FAKE, EPS)
    before = losses.gradient_norms(critic, x)
    x2 = x.clone()
    x2[2] = torch.tensor([10.0, -7.0, 3.0], dtype=torch.float64)  # change sample 2 only
    after = losses.gradient_norms(critic, x2)
    assert torch.equal(before[:2], after[:2])
    assert before[2] != after[2]


def test_gradient_norms_accepts_flat_and_column_scores():
    critic = mlp(2)
    flat = lambda x: critic(x).squeeze(1)
    assert torch.allclose(losses.gradient_norms(critic, REAL), losses.gradient_norms(flat, REAL))


def test_gradient_norms_rejects_critic_that_mixes_samples():
    critic = lambda x: x.sum().reshape(1)  # one score for the whole batch
    with pytest.raises(ValueError, match="one score per sample"):
        losses.gradient_norms(critic, REAL)


def test_critic_loss_value_by_hand():
    critic = Linear([3.0, -4.0, 0.0], b=0.5)  # ||w|| = 5
    loss, stats = losses.critic_loss(critic, REAL, FAKE, lambda_gp=10.0, eps=EPS)
    # D(real) = (1*3 - 2*4, 0.5*3 + 3*4, 4*3) + 0.5 = (-4.5, 14, 12.5) -> mean 22/3
    # D(fake) = (3*3, -1*3 - 4, -2.5*4) + 0.5 = (9.5, -6.5, -9.5) -> mean -6.5/3
    d_real, d_fake = 22 / 3, -6.5 / 3
    assert stats["critic_real"].item() == pytest.approx(d_real)
    assert stats["critic_fake"].item() == pytest.approx(d_fake)
    assert stats["wasserstein"].item() == pytest.approx(d_real - d_fake)
    assert stats["penalty"].item() == pytest.approx(16.0)
    assert stats["grad_norm"].item() == pytest.approx(5.0)
    assert loss.item() == pytest.approx(d_fake - d_real + 10 * 16, rel=1e-6)
    loss0, stats0 = losses.critic_loss(critic, REAL, FAKE, lambda_gp=0.0)
    assert loss0.item() == pytest.approx(d_fake - d_real, rel=1e-6)
    assert stats0["penalty"].item() == 0.0
    assert all(not v.requires_grad for v in stats.values())


def test_one_backward_equals_sum_of_parts():
    critic = mlp(3)
    lam = 7.0
    params = list(critic.parameters())
    loss, _ = losses.critic_loss(critic, REAL, FAKE, lambda_gp=lam, eps=EPS)
    loss.backward()
    combined = [p.grad.clone() for p in params]
    w_part = critic(FAKE).mean() - critic(REAL).mean()
    g_w = torch.autograd.grad(w_part, params)
    # the penalty computed independently, with torch.func-free autograd
    x = (EPS[:, None] * REAL + (1 - EPS[:, None]) * FAKE).requires_grad_(True)
    (gx,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    penalty = ((gx.norm(dim=1) - 1) ** 2).mean()
    g_p = torch.autograd.grad(penalty, params, allow_unused=True)  # the last bias has no input gradient
    g_p = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_p)]
    for c, a, b in zip(combined, g_w, g_p):
        assert torch.allclose(c, a + lam * b)
    assert any(b.abs().max() > 0 for b in g_p)  # the penalty does reach the weights


def test_critic_loss_is_the_wasserstein_terms_plus_lambda_times_gradient_penalty():
    # one home for the penalty: critic_loss adds gradient_penalty's value, and its gradient is
    # bit for bit that of the sum written with gradient_penalty
    lam = 7.0
    grads = []
    for written_out in (False, True):
        critic = mlp(3)
        if written_out:
            wasserstein = critic(REAL).mean() - critic(FAKE).mean()
            penalty, norms = losses.gradient_penalty(critic, REAL, FAKE, EPS)
            loss = -wasserstein + lam * penalty
        else:
            loss, stats = losses.critic_loss(critic, REAL, FAKE, lambda_gp=lam, eps=EPS)
        loss.backward()
        grads.append((loss.detach(), [p.grad for p in critic.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = grads
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert torch.equal(stats["penalty"], penalty.detach()) and torch.equal(stats["grad_norm"], norms.detach().mean())


def test_critic_loss_detaches_fake():
    torch.manual_seed(0)
    gen = nn.Linear(2, 3).double()
    fake = gen(torch.randn(3, 2, dtype=torch.float64))
    critic = mlp(4)
    loss, _ = losses.critic_loss(critic, REAL, fake, eps=EPS)
    loss.backward()
    assert all(p.grad is None for p in gen.parameters())
    assert all(p.grad is not None for p in critic.parameters())


def test_generator_loss_value_and_gradient_reaches_generator():
    torch.manual_seed(0)
    gen = nn.Linear(2, 3).double()
    critic = Linear([3.0, -4.0, 0.0], b=0.5)
    z = torch.randn(4, 2, dtype=torch.float64)
    fake = gen(z)
    loss = losses.generator_loss(critic, fake)
    assert loss.item() == pytest.approx(-(fake.detach() @ critic.w.detach() + 0.5).mean().item())
    loss.backward()
    # d/dW of -mean(w . (W z + c)) = -w outer mean(z); d/dc = -w
    assert torch.allclose(gen.bias.grad, -critic.w.detach())
    assert torch.allclose(gen.weight.grad, -torch.outer(critic.w.detach(), z.mean(0)))
