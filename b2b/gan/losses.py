"""Wasserstein GAN losses with the gradient penalty (Gulrajani et al. 2017).

The critic ``D`` maps a batch ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``. The critic loss is
built as **one scalar** (Wasserstein terms plus ``lambda_gp`` times the penalty, the penalty's
gradient taken with ``create_graph=True``) so that a single ``backward()`` trains the critic; this
is what DistributedDataParallel needs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


def _at_least_float32(t: Tensor) -> Tensor:
    """``t`` in float32, or kept in float64 (half precision is promoted, double is not cut)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def interpolate(real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """Random points on the lines between paired real and fake samples.

    Parameters
    ----------
    real, fake : Tensor
        Batches of the same shape ``(B, ...)``.
    eps : Tensor, optional
        Mixing weights ``(B,)`` in [0, 1], one per sample (drawn from U[0, 1] when omitted).

    Returns
    -------
    Tensor
        ``eps * real + (1 - eps) * fake``, shape ``(B, ...)``, detached from both inputs.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    if eps.shape != (real.shape[0],):
        raise ValueError(f"eps must have shape ({real.shape[0]},), got {tuple(eps.shape)}")
    eps = eps.view(-1, *([1] * (real.dim() - 1))).to(device=real.device, dtype=real.dtype)
    return (eps * real.detach() + (1 - eps) * fake.detach())


def gradient_norms(critic: Critic, x: Tensor, create_graph: bool = True) -> Tensor:
    """L2 norm of the critic's gradient with respect to each input sample.

    Parameters
    ----------
    critic : callable
        Maps ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
    x : Tensor
        Points ``(B, ...)`` at which to take the gradient.
    create_graph : bool
        Keep the graph so the norms can be differentiated again (needed to train on the penalty).

    Returns
    -------
    Tensor
        ``(B,)`` norms ``||grad_x D(x_i)||_2``, computed in float32 (float64 for float64 input).

    Raises
    ------
    ValueError
        If the critic does not return one score per sample (a batch-level score would mix the
        samples' gradients).
    """
    x = x.detach().requires_grad_(True)
    scores = critic(x)
    if scores.dim() == 0 or scores.shape[0] != x.shape[0] or scores.numel() != x.shape[0]:
        raise ValueError(
            f"critic must return one score per sample, shape ({x.shape[0]},) or ({x.shape[0]}, 1); "
            f"got {tuple(scores.shape)}"
        )
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=create_graph)
    return _at_least_float32(grad).flatten(1).norm(2, dim=1)


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The two-sided gradient penalty ``mean_i (||grad D(x_i)||_2 - 1)^2``, without lambda.

    ``x_i`` lies on the line between ``real[i]`` and ``fake[i]`` (see :func:`interpolate`).
    Differentiable with respect to the critic's parameters.

    Parameters
    ----------
    critic : callable
        Maps ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
    real, fake : Tensor
        Batches ``(B, ...)`` of the same shape.
    eps : Tensor, optional
        Mixing weights ``(B,)``; drawn from U[0, 1] per sample when omitted.

    Returns
    -------
    penalty : Tensor
        A scalar (float32, or float64 for float64 input).
    norms : Tensor
        ``(B,)`` the gradient norms ``||grad D(x_i)||_2`` it is made of (differentiable too).
    """
    norms = gradient_norms(critic, interpolate(real, fake, eps))
    return ((norms - 1) ** 2).mean(), norms


def critic_scores(critic: Critic, real: Tensor, fake: Tensor, joint: bool = False) -> tuple[Tensor, Tensor]:
    """The critic's mean scores ``(mean D(real), mean D(fake))``, scalars in at least float32.

    ``fake`` is detached (the generator is not trained here). ``joint`` scores both batches in
    one forward pass of ``(2B, ...)``: the same scores with a third fewer calls into the critic,
    a speed-up and nothing else. It is valid only where one pass gives the same scores as two:
    never with batch norm, which normalizes over the whole batch; with a minibatch standard
    deviation, only when none of its groups straddles the two halves (see
    :meth:`b2b.model.networks.DiscConvNet.scores_apart`).
    """
    if joint:
        scores = _at_least_float32(critic(torch.cat([real, fake.detach()])))  # (2B,) or (2B, 1)
        return scores[:len(real)].mean(), scores[len(real):].mean()
    return _at_least_float32(critic(real)).mean(), _at_least_float32(critic(fake.detach())).mean()


def critic_loss(
    critic: Critic, real: Tensor, fake: Tensor, lambda_gp: float = 10.0, eps: Tensor | None = None,
    joint: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """WGAN-GP critic loss ``mean D(fake) - mean D(real) + lambda_gp * penalty`` as one scalar.

    :func:`critic_scores` and :func:`gradient_penalty` in one call, for the chapters and the toy
    critics; :func:`b2b.gan.step.wgan_gp_iteration` writes the same sum out, term by term.

    Parameters
    ----------
    critic : callable
        Maps ``(B, ...)`` to scores ``(B,)`` or ``(B, 1)``.
    real, fake : Tensor
        Batches of the same shape; ``fake`` is detached (the generator is not trained here).
    lambda_gp : float
        Weight of the gradient penalty (10 in WGAN-GP). 0 gives the plain WGAN critic loss.
    eps : Tensor, optional
        Interpolation weights ``(B,)`` for the penalty; U[0, 1] per sample when omitted.
    joint : bool
        Score ``real`` and ``fake`` in one forward pass of ``(2B, ...)``: the same loss with a
        third fewer calls into the critic, valid only where one pass gives the same scores as two
        (as for :func:`critic_scores`; see :meth:`b2b.model.networks.DiscConvNet.scores_apart`).

    Returns
    -------
    loss : Tensor
        Scalar to minimise with a single ``backward()``.
    stats : dict of str to Tensor
        Detached scalars: ``wasserstein`` (mean D(real) - mean D(fake), the critic's estimate of
        the Wasserstein-1 distance), ``penalty``, ``grad_norm`` (mean gradient norm on the
        interpolates), ``critic_real``, ``critic_fake``.
    """
    d_real, d_fake = critic_scores(critic, real, fake, joint=joint)
    wasserstein = d_real - d_fake
    loss = -wasserstein
    if lambda_gp:
        penalty, norms = gradient_penalty(critic, real, fake, eps)
        loss = loss + lambda_gp * penalty
        grad_norm = norms.mean()
    else:
        penalty = grad_norm = torch.zeros((), device=real.device, dtype=d_real.dtype)
    stats = {
        "wasserstein": wasserstein.detach(),
        "penalty": penalty.detach(),
        "grad_norm": grad_norm.detach(),
        "critic_real": d_real.detach(),
        "critic_fake": d_fake.detach(),
    }
    return loss, stats


def generator_loss(critic: Critic, fake: Tensor) -> Tensor:
    """WGAN generator loss ``-mean D(fake)`` (a scalar, at least float32); gradients flow into ``fake``."""
    return -_at_least_float32(critic(fake)).mean()
