"""One WGAN-GP training iteration, on one screen (chapter 6 prints and explains it).

:func:`wgan_gp_iteration` is the whole algorithm of Gulrajani et al. (2017, Algorithm 1):
``n_critic`` critic updates on real batches and fresh noise, each minimising
``D(fake) - D(real) + lambda * (||grad D(x_hat)|| - 1)^2``, then one generator update
minimising ``-D(G(z))``, by the gradient with respect to the generator's parameters alone (the
critic passes gradients on and computes none of its own). :class:`b2b.training.trainer.Trainer` is
the bookkeeping around it (data on the device, the schedule, checkpoints, history, averaging over
DDP ranks); :mod:`b2b.gan.toy` trains chapter 3's toy WGANs with it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from b2b.gan.losses import critic_scores, generator_loss, gradient_penalty

__all__ = ["wgan_gp_iteration", "STATS"]

#: What :func:`wgan_gp_iteration` returns, in order.
STATS = ("loss_d", "loss_g", "wasserstein", "penalty", "grad_norm")


def _plain(m: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return getattr(m, "module", m)


def wgan_gp_iteration(
    G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
    next_real: Callable[[], Tensor], noise: Callable[[], Tensor], *, n_critic: int = 5,
    lambda_gp: float = 10.0, autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    joint: bool = False,
) -> Tensor:
    """One generator iteration: ``n_critic`` critic updates, then one generator update.

    Parameters
    ----------
    G, D : nn.Module
        Generator ``(B, latent) -> (B, 17, 64, 72)`` and critic ``(B, 17, 64, 72) -> (B, 1)``,
        in train mode; either may be wrapped in DistributedDataParallel.
    opt_g, opt_d : torch.optim.Optimizer
        Their optimizers.
    next_real : callable
        Returns the next real batch ``(B, 17, 64, 72)`` (float, on the device).
    noise : callable
        Returns a noise batch ``(B, latent)``.
    n_critic, lambda_gp : int, float
        Critic updates per generator update; gradient-penalty weight.
    autocast : callable
        A context manager factory for mixed precision (e.g. bf16 autocast on CUDA).
    joint : bool
        Score real and fake batches in one critic pass (:func:`b2b.gan.losses.critic_scores`; a
        speed-up for critics that score each window on its own, same numbers).

    Returns
    -------
    Tensor
        ``(5,)`` float32 on the device, named by :data:`STATS`: the critic's loss, Wasserstein
        estimate, penalty and gradient norm averaged over its updates, and the generator's loss.
    """
    generator, critic = _plain(G), _plain(D)
    acc = None
    for _ in range(n_critic):                                   # 1. train the critic
        real, z = next_real(), noise()
        with autocast():
            with torch.no_grad():
                fake = generator(z)                             # (B, 17, 64, 72), no graph into G
            d_real, d_fake = critic_scores(D, real, fake, joint=joint)  # mean D(real), mean D(fake)
            wasserstein = d_real - d_fake                       # the critic's estimate of W1
            if lambda_gp:                                       # mean (||grad D(x_hat)|| - 1)^2 on interpolates
                penalty, norms = gradient_penalty(D, real, fake)
                loss_d = -wasserstein + lambda_gp * penalty
            else:
                penalty = norms = torch.zeros((), device=real.device, dtype=d_real.dtype)
                loss_d = -wasserstein
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()                                       # through the penalty's double backward
        opt_d.step()
        s = torch.stack([loss_d.detach().float(), wasserstein.detach(), penalty.detach(), norms.mean().detach()])
        acc = s if acc is None else acc + s
    z = noise()                                                 # 2. train the generator
    with autocast():
        loss_g = generator_loss(critic, G(z))                   # -mean D(G(z))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward(inputs=[p for p in G.parameters() if p.requires_grad])  # grad w.r.t. G's parameters only
    opt_g.step()
    acc = acc / n_critic
    return torch.stack([acc[0], loss_g.detach().float(), acc[1], acc[2], acc[3]])
