"""Speed-ups for the networks: layers with the same parameters that compute the same function faster.

:mod:`b2b.model.networks` writes the generator and the critic with PyTorch's own layers, as the paper
and chapter 5's tables do. Three of those layers have a faster form on this model's shapes, and
:func:`speed_up` swaps them in, keeping every parameter (so state dicts, optimizers and
checkpoints do not change):

- the generator's last layer (``nn.ConvTranspose2d`` with kernel ``(2, 72)`` over the whole pitch
  axis) and the critic's first (``nn.Conv2d`` with kernel ``(2, 72)``): their kernels never
  overlap, so each is exactly one matrix product (:class:`PitchConvTranspose2d`,
  :class:`PitchConv2d`); on 2 CPU cores a whole training step runs several times faster
  (``benchmarks/README.md``);
- ``nn.GroupNorm(1, C)``, per-sample layer normalization: :class:`LayerNorm2d` computes it with
  ``F.layer_norm``, whose double backward (the gradient penalty differentiates the critic twice)
  takes fewer operator calls (``benchmarks/bench_ops.py`` counts them).

The trainer speeds its networks up unless told not to (``TrainerConfig(fast_edges=False)``,
``b2b train --plain-edges``); ``tests/test_fast.py`` checks each swap gives the same outputs and
gradients as the plain layer.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from b2b.music.geometry import N_PITCHES

__all__ = ["PitchConvTranspose2d", "PitchConv2d", "LayerNorm2d", "speed_up"]


class PitchConvTranspose2d(nn.ConvTranspose2d):
    """``ConvTranspose2d(C_in -> C_out, k=(kh, P), s=(kh, s_w))`` on inputs of width 1, as a matmul.

    With stride height equal to kernel height and an input of width 1 the kernels never
    overlap, so output rows ``kh*i + a`` are ``x[:, :, i] @ W[:, :, a, :]``: one product of
    ``(B*H, C_in)`` by ``(C_in, C_out*kh*P)``. Holds the same ``weight`` ``(C_in, C_out, kh, P)``
    and ``bias`` ``(C_out,)`` as ``nn.ConvTranspose2d``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : tuple of int
        ``(kh, P)``: time rows produced per input row and the pitch width produced.
    stride : tuple of int
        ``(kh, s_w)``; ``s_w`` does not matter for inputs of width 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        if self.stride[0] != self.kernel_size[0]:
            raise ValueError(f"stride height must equal kernel height, got {self.stride} and {self.kernel_size}")

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        """``(B, C_in, H, 1)`` -> ``(B, C_out, kh*H, P)``."""
        if output_size is not None or x.dim() != 4 or x.shape[-1] != 1:
            return super().forward(x, output_size)
        b, c, h, _ = x.shape
        kh, p = self.kernel_size
        o = self.out_channels
        rows = x.reshape(b, c, h).transpose(1, 2).reshape(b * h, c)  # (B*H, C_in)
        y = rows @ self.weight.reshape(c, o * kh * p)  # (B*H, C_out*kh*P)
        y = y.reshape(b, h, o, kh, p).permute(0, 2, 1, 3, 4).reshape(b, o, h * kh, p)
        if self.bias is not None:
            y = y + self.bias.view(1, o, 1, 1)
        return y


class PitchConv2d(nn.Conv2d):
    """``Conv2d(C_in -> C_out, k=(kh, P), s=(kh, s_w))`` on inputs of width ``P``, as a matmul.

    Each output row ``i`` sees exactly input rows ``kh*i .. kh*i+kh-1`` over all ``P`` pitches,
    so the layer is ``F.linear`` of ``(B*H/kh, C_in*kh*P)`` patches with the weight flattened to
    ``(C_out, C_in*kh*P)``. Holds the same ``weight`` ``(C_out, C_in, kh, P)`` and ``bias`` as
    ``nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : tuple of int
        ``(kh, P)``: time rows per output row and the pitch width (the whole pitch axis).
    stride : tuple of int
        ``(kh, s_w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        if self.stride[0] != self.kernel_size[0]:
            raise ValueError(f"stride height must equal kernel height, got {self.stride} and {self.kernel_size}")

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, P)`` -> ``(B, C_out, H // kh, 1)``."""
        kh, p = self.kernel_size
        if x.dim() != 4 or x.shape[-1] != p or x.shape[2] % kh:
            return super().forward(x)
        b, c, h, _ = x.shape
        ho = h // kh
        # (B, C, Ho, kh, P) -> (B, Ho, C, kh, P) -> (B*Ho, C*kh*P)
        patches = x.reshape(b, c, ho, kh * p).transpose(1, 2).reshape(b * ho, c * kh * p)
        y = F.linear(patches, self.weight.reshape(self.out_channels, -1), self.bias)  # (B*Ho, C_out)
        return y.reshape(b, ho, self.out_channels).transpose(1, 2).unsqueeze(-1)




class LayerNorm2d(nn.GroupNorm):
    """``GroupNorm(1, C)``: each sample normalized over channels, time and pitch, then a
    per-channel scale and shift; ``(B, C, H, W) -> (B, C, H, W)``.

    Same parameters and state dict as ``nn.GroupNorm(1, C)``, computed with ``F.layer_norm``,
    whose double backward (the gradient penalty differentiates the critic twice) takes fewer
    operator calls than group norm's (``benchmarks/bench_ops.py`` counts them for the whole step).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize each sample of ``x`` ``(B, C, H, W)``; same shape."""
        y = F.layer_norm(x, x.shape[1:], eps=self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _faster(m: nn.Module) -> nn.Module | None:
    """The faster twin of layer ``m`` sharing its parameters, or None if ``m`` has none."""
    if type(m) is nn.ConvTranspose2d and m.kernel_size[1] == N_PITCHES and m.stride[0] == m.kernel_size[0]:
        new = PitchConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, bias=m.bias is not None)
    elif type(m) is nn.Conv2d and m.kernel_size[1] == N_PITCHES and m.stride[0] == m.kernel_size[0]:
        new = PitchConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, bias=m.bias is not None)
    elif type(m) is nn.GroupNorm and m.num_groups == 1 and m.affine:
        new = LayerNorm2d(m.num_channels)
        new.eps = m.eps
    else:
        return None
    new.weight = m.weight  # the same Parameter objects: nothing is copied, nothing changes in a state dict
    if m.bias is not None:
        new.bias = m.bias
    return new.train(m.training)


def speed_up(net: nn.Module) -> nn.Module:
    """Swap the full-pitch-width edge layers and ``GroupNorm(1, C)`` of ``net`` for their faster
    twins in place (same parameters, same function); return ``net``. Call it before creating an
    optimizer or not at all: the parameters are the same objects either way."""
    for name, child in list(net.named_children()):
        new = _faster(child)
        if new is not None:
            setattr(net, name, new)
        else:
            speed_up(child)
    return net
