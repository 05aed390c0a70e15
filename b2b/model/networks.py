"""The networks: the generator ``GenConvNet`` and the critic ``DiscConvNet``, built from a preset.

Both networks follow "From Bytes to Beats" (2023); see DEVELOPERS.md. Tracks are channels,
time is height and pitch is width, so a batch is ``(B, 17, 64, 72)``.

Generator (preset ``seed``, latent 128)::

    z (B, 128) -> view (B, 128, 1, 1)
    block1  ConvTranspose2d(128->64, k=(2,1), s=(2,2)) + BN + PReLU   -> (B, 64,  2,  1)
    block2  ConvTranspose2d( 64->64, k=(2,1), s=(2,2)) + BN + PReLU   -> (B, 64,  4,  1)
    block3                                                            -> (B, 64,  8,  1)
    block4                                                            -> (B, 64, 16,  1)
    attention  SelfAttention(64) over the 16 time positions          -> (B, 64, 16,  1)
    block5                                                            -> (B, 64, 32,  1)
    edge    ConvTranspose2d(64->17, k=(2,72), s=(2,2))                -> (B, 17, 64, 72)
    sigmoid                                                           -> probabilities

Critic::

    x (B, 17, 64, 72)
    block1  Conv2d(17->16, k=(2,72), s=(2,2)) + BN + PReLU + Dropout   -> (B, 16, 32, 1)
    block2  Conv2d(16->16, k=(2,1),  s=(2,2)) + ...                    -> (B, 16, 16, 1)
    block3                                                             -> (B, 16,  8, 1)
    attention  SelfAttention(16) over the 8 time positions            -> (B, 16,  8, 1)
    block4                                                             -> (B, 16,  4, 1)
    block5                                                             -> (B, 16,  2, 1)
    flatten -> (B, 32);  linear Linear(32->1)                          -> (B, 1) scores

The original states neither the latent size nor where exactly the critic's attention sits in
DEVELOPERS.md; we use a latent of 128 (the MuseGAN PyTorch tutorial's, which gives the
"about 0.2 M parameters" generator) and attention after the critic's third convolution (the
original README: "self-attention mechanism after the third convolutional layer").

Every layer is PyTorch's own (``nn.ConvTranspose2d``, ``nn.Conv2d``, ``nn.GroupNorm``, ...), one
line per block with its output shape, as chapter 5's tables write them. The faster forms of the
two full-pitch-width *edge* layers and of the layer norm live in :mod:`b2b.model.fast`, which swaps
them in with the same parameters (``build(preset, fast_edges=True)``, as the trainer does).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

from b2b.model.attention import SelfAttention
from b2b.model.fast import speed_up
from b2b.model.presets import N_BLOCKS, CriticConfig, GeneratorConfig, Preset, get_preset
from b2b.music.geometry import N_PITCHES, N_STEPS, N_TRACKS
from b2b.model.refiner import Refiner
from b2b.model.streams import ChromaStream, OnsetStream, stream_width

__all__ = [
    "SelfAttention",
    "GenConvNet",
    "DiscConvNet",
    "MinibatchStd",
    "StraightThrough",
    "OutputBias",
    "TrackMask",
    "noise",
    "build",
    "count_parameters",
    "parameter_bytes",
    "check_memory",
    "MAX_PARAMETER_BYTES",
]

#: Most bytes the parameters of a preset's two networks may take (float32), estimated on torch's
#: ``meta`` device (no memory) before :func:`build` allocates them.
MAX_PARAMETER_BYTES = 2 * 2**30


# --------------------------------------------------------------------------- networks
def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # per sample over channels, time and pitch
    return nn.Identity()


def _up(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """A generator block: ``(B, c_in, T, 1)`` -> ``(B, c_out, 2T, 1)``, time doubled, no pitch axis."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel_size=(2, 1), stride=(2, 2)), _norm(norm, c_out),
                         nn.PReLU())


def _down(conv: nn.Module, c: int, norm: str, dropout: float) -> nn.Sequential:
    """A critic block: ``conv`` (time halved), normalization, PReLU and (if > 0) dropout."""
    return nn.Sequential(conv, _norm(norm, c), nn.PReLU(), *([nn.Dropout(dropout)] if dropout > 0 else []))


class GenConvNet(nn.Module):
    """Generator: noise ``(B, latent)`` -> probabilities ``(B, 17, 64, 72)`` in [0, 1].

    ``self.layers`` is an ``nn.Sequential`` (``block1`` .. ``block5``, ``attention``, ``edge``,
    ``output``) applied to the noise viewed as ``(B, latent, 1, 1)``; iterate over it to see the
    shape after each layer.
    """

    def __init__(self, config: GeneratorConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = dataclasses.replace(config or GeneratorConfig(), **overrides)
        self.config = config
        c, norm = config.channels, config.norm

        def att(i: int) -> list[tuple[str, nn.Module]]:  # self-attention after block i (shape kept)
            return [("attention", SelfAttention(c))] if config.attention == i else []

        layers = [                                                      # z viewed as (B, latent, 1, 1)
            ("block1", _up(config.latent, c, norm)), *att(1),           # -> (B, c,  2, 1)
            ("block2", _up(c, c, norm)), *att(2),                       # -> (B, c,  4, 1)
            ("block3", _up(c, c, norm)), *att(3),                       # -> (B, c,  8, 1)
            ("block4", _up(c, c, norm)), *att(4),                       # -> (B, c, 16, 1)
            ("block5", _up(c, c, norm)), *att(5),                       # -> (B, c, 32, 1)
            ("edge", nn.ConvTranspose2d(c, N_TRACKS, kernel_size=(2, N_PITCHES), stride=(2, 2))),  # -> (B, 17, 64, 72)
            *([("refiner", Refiner(config.refiner))] if config.refiner else []),  # -> (B, 17, 64, 72)
            *([("prior", OutputBias())] if config.prior else []),      # -> (B, 17, 64, 72)
            ("output", StraightThrough() if config.binary else nn.Sigmoid()),  # probabilities (or notes)
            *([("mask", TrackMask())] if config.silent_tracks else []),  # unused tracks -> 0
        ]
        self.layers = nn.Sequential(OrderedDict(layers))

    @property
    def latent(self) -> int:
        """Noise size."""
        return self.config.latent

    @torch.no_grad()
    def set_prior(self, windows: Tensor, floor: float = 1e-4) -> "GenConvNet":
        """Start the output bias at the log-odds of each track and pitch in ``windows``.

        ``windows`` ``(N, 17, 64, 72)`` (0/1 or bool): the share ``p`` of steps on per track and
        pitch, clamped to ``[floor, 0.5]``, becomes the bias ``log(p / (1 - p))``. The rest of the
        network starts near zero logits, so a new generator's probabilities are the data's share
        per track and pitch (the "initialise the output bias to the base rate" practice); a track
        the data never uses starts at ``floor``.
        ValueError if the generator has no output bias (``GeneratorConfig(prior=True)``).
        """
        if not self.config.prior:
            raise ValueError("set_prior: this generator has no output bias (GeneratorConfig(prior=True))")
        total = torch.zeros(N_TRACKS, N_PITCHES, dtype=torch.float64)
        for chunk in windows.split(256):  # (n, 17, 64, 72), bounded memory
            total += chunk.to(torch.float64).sum(dim=(0, 2)).cpu()
        p = (total / max(1, windows.shape[0] * windows.shape[2])).clamp(floor, 0.5)
        bias = self.layers.prior.bias
        bias.copy_(torch.log(p / (1 - p)).to(bias).view_as(bias))
        return self

    @torch.no_grad()
    def set_active_tracks(self, windows: Tensor) -> "GenConvNet":
        """Record which tracks ``windows`` ``(N, 17, 64, 72)`` use: the others output silence.

        ValueError if the generator has no track mask (``GeneratorConfig(silent_tracks=True)``).
        """
        if not self.config.silent_tracks:
            raise ValueError("set_active_tracks: this generator has no track mask (GeneratorConfig(silent_tracks=True))")
        used = torch.zeros(N_TRACKS, dtype=torch.bool)
        for chunk in windows.split(256):  # (n, 17, 64, 72), bounded memory
            used |= chunk.to(torch.bool).any(dim=3).any(dim=2).any(dim=0).cpu()
        mask = self.layers.mask.active
        mask.copy_(used.to(mask).view_as(mask))
        return self

    def noise(self, n: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
        """Standard normal noise ``(n, latent)`` on ``device`` (default: the network's)."""
        if device is None:
            device = next(self.parameters()).device
        return noise(n, self.config.latent, generator=generator, device=device)

    def forward(self, z: Tensor) -> Tensor:
        """``(B, latent)`` noise -> ``(B, 17, 64, 72)`` probabilities."""
        if z.dim() != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"noise must have shape (B, {self.config.latent}), got {tuple(z.shape)}")
        return self.layers(z.view(z.shape[0], -1, 1, 1))


class OutputBias(nn.Module):
    """A learned bias per track and pitch added to logits: ``(B, 17, 64, 72)`` -> same shape.

    Starts at zero (the identity); :meth:`GenConvNet.set_prior` sets it from data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, N_TRACKS, 1, N_PITCHES))

    def forward(self, x: Tensor) -> Tensor:
        """``x + bias``, the bias broadcast over batch and time."""
        return x + self.bias


class TrackMask(nn.Module):
    """Silence on the tracks the training data never uses: ``(B, 17, 64, 72)`` -> same shape.

    ``active`` is a buffer ``(1, 17, 1, 1)`` of 0/1 (all 1 until
    :meth:`GenConvNet.set_active_tracks` records the data's tracks); the output is ``x * active``.
    A stated rule, not a learned one: a critic sees an unused track sound only as one more way to
    tell fakes apart, and the generator learns to silence it slowly (chapter 7's off-track share).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("active", torch.ones(1, N_TRACKS, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """``x * active``, broadcast over batch, time and pitch."""
        return x * self.active


class StraightThrough(nn.Module):
    """A sigmoid whose output is binarized at 0.5 in train mode, with the sigmoid's gradient.

    Deterministic binary neurons with the straight-through estimator (Bengio et al. 2013;
    BinaryMuseGAN, Dong & Yang 2018): the forward pass returns ``sigmoid(x) > 0.5`` as 0/1
    floats, the backward pass treats it as ``sigmoid(x)``. In eval mode it returns the
    probabilities ``sigmoid(x)``, so sampling, threshold calibration and export see the same
    probabilities as for a plain sigmoid. Shape is kept: ``(B, ...) -> (B, ...)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Logits -> 0/1 (train mode) or probabilities (eval mode), same shape."""
        p = torch.sigmoid(x)
        if not self.training:
            return p
        return p + ((p > 0.5).to(p.dtype) - p).detach()


class MinibatchStd(nn.Module):
    """ProGAN's minibatch standard deviation (Karras et al. 2018, section 3), as one extra channel.

    The batch is split into groups of ``group`` consecutive samples (the whole batch when its
    size is not a multiple of ``group``); within each group the standard deviation of every
    feature is taken over the samples, averaged over all features, and appended to each sample
    of the group as a constant channel: ``(B, C, H, W)`` -> ``(B, C + 1, H, W)``.
    """

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def groups_within(self, batch: int) -> bool:
        """Whether batches of ``batch`` samples stacked together keep this layer's groups apart."""
        return batch % self.group == 0

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C + 1, H, W)``."""
        b, c, h, w = x.shape
        g = self.group if b % self.group == 0 else b
        y = x.reshape(b // g, g, c, h, w)  # (groups, g, C, H, W)
        std = torch.sqrt(y.var(dim=1, unbiased=False) + 1e-8)  # (groups, C, H, W)
        s = std.mean(dim=(1, 2, 3))  # (groups,)
        s = s.repeat_interleave(g).view(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, s], dim=1)


class DiscConvNet(nn.Module):
    """Critic: ``(B, 17, 64, 72)`` -> scores ``(B, 1)`` (unbounded reals, higher = more real).

    ``self.layers`` is an ``nn.Sequential`` (``block1`` .. ``block5``, ``attention``,
    ``minibatch_std`` if configured, ``flatten``, ``linear``). With ``streams > 0``,
    ``self.streams`` holds an :class:`~b2b.model.streams.OnsetStream` and a
    :class:`~b2b.model.streams.ChromaStream` whose features are concatenated with the flattened main
    path before ``linear``.
    """

    def __init__(self, config: CriticConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = dataclasses.replace(config or CriticConfig(), **overrides)
        self.config = config
        c, norm, drop = config.channels, config.norm, config.dropout

        def att(i: int) -> list[tuple[str, nn.Module]]:  # self-attention after block i (shape kept)
            return [("attention", SelfAttention(c))] if config.attention == i else []

        def conv() -> nn.Conv2d:  # time halved, no pitch axis
            return nn.Conv2d(c, c, kernel_size=(2, 1), stride=(2, 2))

        edge = nn.Conv2d(N_TRACKS, c, kernel_size=(2, N_PITCHES), stride=(2, 2))
        # what the linear layer reads: the main path's channels at each time left after the blocks
        # halved it, then each stream's features (the streams are made after it: the same order of
        # random initialisation as ever)
        time_left = N_STEPS >> N_BLOCKS                                 # 64 -> 2
        streams = 2 * stream_width(config.streams) if config.streams else 0  # the onset and the chroma stream
        width = (c + config.minibatch_std) * time_left + streams
        layers = [                                                      # x (B, 17, 64, 72)
            ("block1", _down(edge, c, norm, drop)), *att(1),            # -> (B, c, 32, 1)
            ("block2", _down(conv(), c, norm, drop)), *att(2),          # -> (B, c, 16, 1)
            ("block3", _down(conv(), c, norm, drop)), *att(3),          # -> (B, c,  8, 1)
            ("block4", _down(conv(), c, norm, drop)), *att(4),          # -> (B, c,  4, 1)
            ("block5", _down(conv(), c, norm, drop)), *att(5),          # -> (B, c,  2, 1)
            *([("minibatch_std", MinibatchStd())] if config.minibatch_std else []),  # -> (B, c + 1, 2, 1)
            ("flatten", nn.Flatten()),                                  # -> (B, 2 (c + 1 if minibatch_std))
            ("linear", nn.Linear(width, 1)),                             # -> (B, 1)
        ]
        self.layers = nn.Sequential(OrderedDict(layers))
        if config.streams:
            self.streams = nn.ModuleDict({"onsets": OnsetStream(config.streams),  # -> (B, 4s)
                                          "chroma": ChromaStream(config.streams)})  # -> (B, 4s)

    def scores_apart(self, batch: int) -> bool:
        """Whether two batches of ``batch`` windows get the same scores in one pass as in two.

        True without batch norm (which normalizes over the whole batch) when the minibatch
        standard deviation's groups do not straddle the two halves; then
        :func:`b2b.gan.losses.critic_loss` may score real and fake windows together (``joint``).
        """
        mbstd = getattr(self.layers, "minibatch_std", None)
        return self.config.norm != "batch" and (mbstd is None or mbstd.groups_within(batch))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 17, 64, 72)`` -> ``(B, 1)``."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (N_TRACKS, N_STEPS, N_PITCHES):
            raise ValueError(f"critic input must have shape (B, {N_TRACKS}, {N_STEPS}, {N_PITCHES}), "
                             f"got {tuple(x.shape)}")
        if not self.config.streams:
            return self.layers(x)
        h = self.layers[:-1](x)  # the main path up to the linear layer, (B, 2 (c + 1))
        return self.layers.linear(torch.cat([h, *(s(x) for s in self.streams.values())], dim=1))


def noise(n: int, latent: int, generator: torch.Generator | None = None, device: Any = None) -> Tensor:
    """The generator's input, standard normal noise ``(n, latent)`` float32 on ``device`` drawn from
    ``generator`` (default: torch's global random state). The one place noise is drawn: the
    Trainer's steps and fixed noise, :func:`b2b.sampling.generate.generate` and :meth:`GenConvNet.noise`."""
    return torch.randn(n, latent, generator=generator, device=device)


def build(preset: str | Preset = "seed", fast_edges: bool = False) -> tuple[GenConvNet, DiscConvNet]:
    """The generator and critic of ``preset`` (freshly initialised from torch's global RNG).

    Parameters
    ----------
    preset : str or Preset
        A name in :data:`b2b.model.presets.PRESETS` or a :class:`Preset`.
    fast_edges : bool
        Swap in :mod:`b2b.model.fast`'s faster layers (same parameters, same function), as the
        trainer does; False gives the networks exactly as written here.

    Returns
    -------
    (GenConvNet, DiscConvNet)
    """
    p = get_preset(preset)
    check_memory(p)
    g, d = GenConvNet(p.generator), DiscConvNet(p.critic)
    return (speed_up(g), speed_up(d)) if fast_edges else (g, d)


def parameter_bytes(preset: str | Preset) -> int:
    """Bytes the float32 parameters of ``preset``'s two networks take, counted on torch's ``meta``
    device (shapes only: nothing is allocated)."""
    p = get_preset(preset)
    with torch.device("meta"):
        g, d = GenConvNet(p.generator), DiscConvNet(p.critic)
    return 4 * (sum(t.numel() for t in g.parameters()) + sum(t.numel() for t in d.parameters()))


def check_memory(preset: str | Preset, limit: int = MAX_PARAMETER_BYTES) -> None:
    """ValueError (one line, naming the preset and the bound) if the networks of ``preset`` would
    take more than ``limit`` bytes of parameters; called by :func:`build` before allocating."""
    p = get_preset(preset)
    need = parameter_bytes(p)
    if need > limit:
        raise ValueError(f"preset {p.name!r}: its networks' parameters would take {need:,} bytes, more "
                         f"than the {limit:,}-byte bound (networks.MAX_PARAMETER_BYTES); use smaller "
                         "sizes (channels, latent, refiner, streams)")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
