"""An exponential moving average of the generator's weights (the "EMA generator").

GAN generators oscillate around a good solution; the average of their recent weights is usually
a better and steadier generator than the last one (Yazıcı et al. 2019; StyleGAN, BigGAN). After
every generator update at step ``t`` (1, 2, ...), each floating-point parameter ``p`` of the
average moves toward the trained one::

    beta_t = min(decay, (1 + t) / (10 + t))      # warm-up: early steps average over fewer steps
    ema    = beta_t * ema + (1 - beta_t) * p

and buffers (batch-norm statistics) are copied. The average is never trained; it is what
checkpoints export, sample and play when the preset's ``TrainingConfig.ema`` is above 0.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ema_decay", "EMA"]


def ema_decay(decay: float, step: int) -> float:
    """The averaging weight after generator step ``step`` (1, 2, ...): ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    """The moving average of a network's weights.

    Parameters
    ----------
    model : nn.Module
        The trained network (plain, not DDP-wrapped); the average starts as its copy.
    decay : float
        In (0, 1): how much of the average each step keeps (0.999: about the last 1,000 steps).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average toward ``model``'s weights after generator step ``step`` (1, 2, ...)."""
        w = 1.0 - ema_decay(self.decay, step)
        for a, p in zip(self.model.parameters(), model.parameters()):
            a.lerp_(p, w)
        for b, src in zip(self.model.buffers(), model.buffers()):
            b.copy_(src)
