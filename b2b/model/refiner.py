"""A refining last stage for the generator: residual units along time, one set per track.

The generator's last layer (:class:`b2b.model.networks.GenConvNet`'s ``edge``) turns each of 32 hidden
vectors into two time steps of all 17 tracks and 72 pitches, with no overlap in time: neighbouring
pairs of steps come from different vectors, and nothing lets step ``2i + 1`` see step ``2i + 2``.
Notes then break at those seams. BinaryMuseGAN (Dong & Yang 2018) refines its generator's output
with residual units; this stage is a small version of that idea for the seams: residual units
whose convolutions run along time only (a kernel of ``k`` steps at every pitch), grouped so that
each track has its own filters and bias (a track the data leaves empty can learn to stay empty).

Each unit adds ``conv2(prelu(conv1(x)))`` to its input logits; ``conv2`` starts at zero, so a new
refiner is the identity and training decides how much to change (as attention's ``gamma``).
"""

from __future__ import annotations

from torch import Tensor, nn

from b2b.music.geometry import N_TRACKS

__all__ = ["Refiner"]


class Refiner(nn.Module):
    """Residual units along time, per track: logits ``(B, 17, 64, 72)`` -> ``(B, 17, 64, 72)``.

    One unit (``hidden`` filters per track, kernel ``k`` steps, padding keeps the length; with the
    default ``hidden=1`` both convolutions are depthwise: one filter per track, shared by its pitches)::

        conv1  Conv2d(17 -> 17*hidden, k=(k,1), groups=17) + PReLU   -> (B, 17*hidden, 64, 72)
        conv2  Conv2d(17*hidden -> 17, k=(k,1), groups=17), zero-init -> (B, 17, 64, 72)
        x + conv2(...)                                               -> (B, 17, 64, 72)

    Parameters
    ----------
    units : int
        Number of residual units (>= 1).
    hidden : int
        Filters per track inside a unit.
    kernel : int
        Time steps each convolution sees (odd, so the output stays aligned with the input).
    """

    def __init__(self, units: int = 2, hidden: int = 1, kernel: int = 5) -> None:
        super().__init__()
        if units < 1 or hidden < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"refiner needs units >= 1, hidden >= 1 and an odd kernel, got {units}, {hidden}, {kernel}")
        k, h, pad = kernel, hidden * N_TRACKS, (kernel // 2, 0)
        self.units = nn.ModuleList()
        for _ in range(units):
            unit = nn.Sequential(
                nn.Conv2d(N_TRACKS, h, kernel_size=(k, 1), padding=pad, groups=N_TRACKS),  # -> (B, 17h, 64, 72)
                nn.PReLU(),
                nn.Conv2d(h, N_TRACKS, kernel_size=(k, 1), padding=pad, groups=N_TRACKS),  # -> (B, 17, 64, 72)
            )
            nn.init.zeros_(unit[2].weight)
            nn.init.zeros_(unit[2].bias)
            self.units.append(unit)

    def forward(self, x: Tensor) -> Tensor:
        """Refine logits ``(B, 17, 64, 72)``; same shape."""
        for unit in self.units:
            x = x + unit(x)
        return x
