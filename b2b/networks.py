"""The networks: the generator ``GenConvNet``, the critic ``DiscConvNet``, and their presets.

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
two full-pitch-width *edge* layers and of the layer norm live in :mod:`b2b.fast`, which swaps
them in with the same parameters (``build(preset, fast_edges=True)``, as the trainer does).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from b2b.attention import SelfAttention
from b2b.fast import speed_up
from b2b.geometry import N_PITCHES, N_STEPS, N_TRACKS
from b2b.refiner import Refiner
from b2b.streams import ChromaStream, OnsetStream

__all__ = [
    "SelfAttention",
    "GeneratorConfig",
    "CriticConfig",
    "TrainingConfig",
    "Preset",
    "PRESETS",
    "GenConvNet",
    "DiscConvNet",
    "MinibatchStd",
    "StraightThrough",
    "OutputBias",
    "TrackMask",
    "get_preset",
    "build",
    "count_parameters",
    "parameter_bytes",
    "check_memory",
    "BOUNDS",
]

NORMS = ("batch", "layer", "none")
MAX_BATCH = 65536  # beyond any sensible GAN batch (the presets use 64)
N_BLOCKS = 5
#: The bound of every size a preset declares (name -> largest value), checked where the preset is
#: made, before anything is built: far beyond what the presets use (latent 128, channels 64,
#: refiner 2, streams 32, n_critic 5), far below what would exhaust a machine's memory.
BOUNDS: dict[str, int | float] = {
    "latent": 4096, "channels": 1024, "refiner": 16, "streams": 256,
    "n_critic": 100, "lr_step_epochs": 10**6, "lr": 1.0, "lr_gamma": 1.0, "lambda_gp": 1e4,
}
#: Most bytes the parameters of a preset's two networks may take (float32), estimated on torch's
#: ``meta`` device (no memory) before :func:`build` allocates them.
MAX_PARAMETER_BYTES = 2 * 2**30


# --------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class GeneratorConfig:
    """Generator hyper-parameters.

    Attributes
    ----------
    latent : int
        Noise size ``(B, latent)``.
    channels : int
        Width of the five transposed-convolution blocks.
    norm : {"batch", "layer", "none"}
        Normalization after each block's convolution ("layer": ``GroupNorm(1, C)``, per sample).
    attention : int or None
        Self-attention after block ``attention`` (1..5); None for none.
    binary : bool
        End with :class:`StraightThrough` instead of a plain sigmoid: in train mode the critic
        then sees 0/1 windows, like real ones (BinaryMuseGAN's deterministic binary neurons).
    refiner : int
        Residual units of a :class:`b2b.refiner.Refiner` between the edge layer and the output
        (time-overlapping, per track); 0 for none (the original).
    prior : bool
        Add a learned bias per track and pitch to the output logits (:class:`OutputBias`), which
        the trainer starts at the training data's log-odds (:meth:`GenConvNet.set_prior`), so a
        new generator's probabilities already follow the data's share of each track and pitch
        and a track the data never uses starts near silent.
    silent_tracks : bool
        End with a :class:`TrackMask`: the trainer records which tracks the training data uses
        (:meth:`GenConvNet.set_active_tracks`) and the generator's other tracks output silence.
    """

    latent: int = 128
    channels: int = 64
    norm: str = "batch"
    attention: int | None = 4
    binary: bool = False
    refiner: int = 0
    prior: bool = False
    silent_tracks: bool = False

    def __post_init__(self) -> None:
        _check_common("generator", self.norm, self.attention, self.channels)
        _check_size("generator", "latent", self.latent, 1)
        _check_count("generator", "refiner", self.refiner, "units")


@dataclass(frozen=True)
class CriticConfig:
    """Critic hyper-parameters.

    Attributes
    ----------
    channels : int
        Width of the five convolution blocks.
    norm : {"batch", "layer", "none"}
        Normalization after each convolution. WGAN-GP recommends "layer" (``GroupNorm(1, C)``:
        per sample over channels, time and pitch) because batch norm couples the samples, so
        the penalty's per-sample gradient is not per sample.
    dropout : float
        Dropout probability after each block; 0 removes the dropout layers.
    attention : int or None
        Self-attention after block ``attention`` (1..5); None for none.
    minibatch_std : bool
        Append ProGAN's minibatch standard deviation (:class:`MinibatchStd`, groups of 4) as one
        more channel before the linear layer, so the critic can see how alike the windows of a
        batch are: a generator that collapses onto one window is then easy to tell apart.
    streams : int
        Channels of each of BinaryMuseGAN's two extra streams (:mod:`b2b.streams`: onsets/offsets
        and chroma per beat), whose features join the main path's before the linear layer; 0 for
        none (the original).
    """

    channels: int = 16
    norm: str = "batch"
    dropout: float = 0.5
    attention: int | None = 3
    minibatch_std: bool = False
    streams: int = 0

    def __post_init__(self) -> None:
        _check_common("critic", self.norm, self.attention, self.channels)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"critic dropout must be in [0, 1), got {self.dropout}")
        _check_count("critic", "streams", self.streams, "channels")


@dataclass(frozen=True)
class TrainingConfig:
    """The training hyper-parameters: their one list (a preset's ``training``; used by ``b2b.train``).

    Attributes
    ----------
    lr_g, lr_d : float
        Adam learning rates of the generator and the critic.
    betas : tuple of float
        Adam betas for both.
    lr_step_epochs : int
        StepLR step size in epochs (an epoch is ``len(dataset)`` real samples shown to the critic).
    lr_gamma : float
        StepLR factor.
    n_critic : int
        Critic steps per generator step.
    lambda_gp : float
        Gradient-penalty weight.
    batch : int
        Batch size (global, over all processes), 1..:data:`MAX_BATCH`.
    ema : float
        Decay of the moving average of the generator's weights (:mod:`b2b.ema`) that checkpoints
        export and sample; 0 (the original) keeps no average.
    """

    lr_g: float = 3e-4
    lr_d: float = 6e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_step_epochs: int = 25
    lr_gamma: float = 0.75
    n_critic: int = 5
    lambda_gp: float = 10.0
    batch: int = 64
    ema: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", (float(self.betas[0]), float(self.betas[1])))
        if not (self.ema == 0 or 0 < self.ema < 1):
            raise ValueError(f"ema must be 0 (none) or a decay in (0, 1), got {self.ema!r}")
        for name in ("lr_step_epochs", "n_critic", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
            if name != "batch" and v > BOUNDS[name]:
                raise ValueError(f"{name} must be at most {BOUNDS[name]} (networks.BOUNDS), got {v!r}")
        if self.batch > MAX_BATCH:
            raise ValueError(f"batch {self.batch} is beyond any sensible batch size (at most {MAX_BATCH}; "
                             "the presets use 64)")
        for name, high in (("lr_g", BOUNDS["lr"]), ("lr_d", BOUNDS["lr"]), ("lr_gamma", BOUNDS["lr_gamma"])):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= high:
                raise ValueError(f"{name} must be in (0, {high}] (networks.BOUNDS), got {v!r}")
        if isinstance(self.lambda_gp, bool) or not isinstance(self.lambda_gp, (int, float)) \
                or not 0 <= self.lambda_gp <= BOUNDS["lambda_gp"]:
            raise ValueError(f"lambda_gp must be in [0, {BOUNDS['lambda_gp']:g}] (networks.BOUNDS), got {self.lambda_gp!r}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass(frozen=True)
class Preset:
    """A named model: both networks' configs, the training hyper-parameters and the threshold.

    ``threshold`` turns generated probabilities into notes (:func:`b2b.geometry.binarize`); it is
    a sampling setting, used when a generator file states no calibrated threshold of its own.
    """

    name: str
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    threshold: float = 0.9
    description: str = ""

    def with_overrides(self, overrides: dict[str, dict[str, Any]], name: str, description: str = "") -> "Preset":
        """A new preset: this one with ``overrides`` (``{"generator"|"critic"|"training": {field: value}}``)."""
        return dataclasses.replace(
            self, name=name, description=description,
            generator=dataclasses.replace(self.generator, **overrides.get("generator", {})),
            critic=dataclasses.replace(self.critic, **overrides.get("critic", {})),
            training=dataclasses.replace(self.training, **overrides.get("training", {})),
        )

    def with_training(self, **changes: Any) -> "Preset":
        """This preset (same name) with some training hyper-parameters changed, e.g. ``batch=16``.

        ValueError naming the field if it is not one of :class:`TrainingConfig`'s or its value is bad.
        """
        known = [f.name for f in dataclasses.fields(TrainingConfig)]
        for k in changes:
            if k not in known:
                raise ValueError(f"{k!r} is not a training hyper-parameter (expected one of {', '.join(known)})")
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (for checkpoints and JSON)."""
        d = dataclasses.asdict(self)
        d["training"]["betas"] = list(d["training"]["betas"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preset":
        """Inverse of :meth:`to_dict`; also reads files written before the threshold left ``training``."""
        t = dict(d["training"])
        threshold = d.get("threshold", t.pop("threshold", 0.9))  # older files kept it in training
        g, c = dict(d["generator"]), dict(d["critic"])
        g.pop("fast_edges", None), c.pop("fast_edges", None)  # files written before b2b.fast said how they ran
        # files written before the output option was removed say "sigmoid" (its only real choice)
        if g.pop("output", "sigmoid") != "sigmoid":
            raise ValueError(f"preset {d.get('name')!r}: generator output {d['generator']['output']!r} is no "
                             "longer supported (the generator always ends with a sigmoid)")
        return cls(name=d["name"], generator=GeneratorConfig(**g),
                   critic=CriticConfig(**c), training=TrainingConfig(**t),
                   threshold=float(threshold), description=d.get("description", ""))


def _check_common(net: str, norm: str, attention: int | None, channels: int) -> None:
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"{net} norm must be one of {NORMS}, got {norm!r}")
    if attention is not None and (isinstance(attention, bool) or not isinstance(attention, int)
                                  or not 1 <= attention <= N_BLOCKS):
        raise ValueError(f"{net} attention must be None or a block number 1..{N_BLOCKS}, got {attention!r}")
    _check_size(net, "channels", channels, 1)


def _check_size(net: str, name: str, value: Any, low: int) -> None:
    """ValueError naming the field and its bound unless ``value`` is an integer in [low, BOUNDS[name]]."""
    high = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{net} {name} must be an integer in [{low}, {high}] (networks.BOUNDS), got {value!r}")


def _check_count(net: str, name: str, value: Any, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{net} {name} must be a number of {unit} >= 0, got {value!r}")
    if value > BOUNDS[name]:
        raise ValueError(f"{net} {name} must be at most {BOUNDS[name]} {unit} (networks.BOUNDS), got {value!r}")


# The one place where presets live. ``seed`` is the original model; ``improved`` is the recipe
# that chapter 7's experiments support (scripts/recipe_search.py, candidate ``binary``, recorded in
# data/ablations/recipe/): the original networks with a straight-through binary generator output,
# a wider layer-norm critic with a minibatch standard deviation channel, WGAN-GP's optimizer.
PRESETS: dict[str, Preset] = {
    "seed": Preset(
        "seed",
        description="the original model: batch norm and dropout 0.5 in the critic",
    ),
    "improved": Preset(
        "improved",
        generator=GeneratorConfig(binary=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True),
        training=TrainingConfig(lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), lr_gamma=1.0),
        threshold=0.5,
        description="what the recipe search supports (chapter 7): a binary generator output in training, "
                    "a layer-norm critic of 64 channels with a minibatch standard deviation channel and no "
                    "dropout, and WGAN-GP's optimizer settings (Adam 1e-4, betas (0, 0.9), constant rate)",
    ),
    "streams": Preset(
        "streams",
        generator=GeneratorConfig(binary=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True, streams=32),
        training=TrainingConfig(lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), lr_gamma=1.0),
        threshold=0.5,
        description="improved with BinaryMuseGAN's two extra critic streams (b2b.streams): onsets/offsets per "
                    "track and step, and chroma per track and beat, 32 channels each (data/ablations/streams/)",
    ),
    # The two budget candidates of issue 31: the streams networks, the data's unused tracks silenced,
    # fewer and smaller critic steps per generator step, and a moving average of the generator.
    "lean": Preset(
        "lean",
        generator=GeneratorConfig(binary=True, silent_tracks=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True, streams=32),
        training=TrainingConfig(lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.9), lr_gamma=1.0, n_critic=2, batch=32,
                                ema=0.999),
        threshold=0.5,
        description="streams at about a quarter of the work per generator step: 2 critic steps at batch 32, "
                    "Adam 2e-4, betas (0.5, 0.9), a moving average of the generator (decay 0.999), and the "
                    "tracks the data never uses silenced",
    ),
    "economy": Preset(
        "economy",
        generator=GeneratorConfig(binary=True, silent_tracks=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True, streams=32),
        training=TrainingConfig(lr_g=3e-4, lr_d=3e-4, betas=(0.5, 0.9), lr_gamma=1.0, n_critic=1, batch=16,
                                ema=0.999),
        threshold=0.5,
        description="streams at the ISMIR 2019 tutorial's economy (1 critic step at batch 16) with a third of "
                    "its learning rate (Adam 3e-4, betas (0.5, 0.9); at 1e-3 it degraded), a moving average "
                    "of the generator (decay 0.999), and the tracks the data never uses silenced",
    ),
}


def get_preset(preset: str | Preset) -> Preset:
    """The :class:`Preset` named ``preset`` (or ``preset`` itself); ValueError if unknown."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


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
        return torch.randn(n, self.config.latent, generator=generator, device=device)

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
    ``self.streams`` holds an :class:`~b2b.streams.OnsetStream` and a
    :class:`~b2b.streams.ChromaStream` whose features are concatenated with the flattened main
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
        layers = [                                                      # x (B, 17, 64, 72)
            ("block1", _down(edge, c, norm, drop)), *att(1),            # -> (B, c, 32, 1)
            ("block2", _down(conv(), c, norm, drop)), *att(2),          # -> (B, c, 16, 1)
            ("block3", _down(conv(), c, norm, drop)), *att(3),          # -> (B, c,  8, 1)
            ("block4", _down(conv(), c, norm, drop)), *att(4),          # -> (B, c,  4, 1)
            ("block5", _down(conv(), c, norm, drop)), *att(5),          # -> (B, c,  2, 1)
            *([("minibatch_std", MinibatchStd())] if config.minibatch_std else []),  # -> (B, c + 1, 2, 1)
            ("flatten", nn.Flatten()),                                  # -> (B, 2 (c + 1 if minibatch_std))
            ("linear", nn.Linear((c + config.minibatch_std) * (N_STEPS >> N_BLOCKS)
                                 + 2 * config.streams * N_STEPS // 16, 1)),  # (+ the streams' 2 x 4s) -> (B, 1)
        ]
        self.layers = nn.Sequential(OrderedDict(layers))
        if config.streams:
            self.streams = nn.ModuleDict({"onsets": OnsetStream(config.streams),  # -> (B, 4s)
                                          "chroma": ChromaStream(config.streams)})  # -> (B, 4s)

    def scores_apart(self, batch: int) -> bool:
        """Whether two batches of ``batch`` windows get the same scores in one pass as in two.

        True without batch norm (which normalizes over the whole batch) when the minibatch
        standard deviation's groups do not straddle the two halves; then
        :func:`b2b.losses.critic_loss` may score real and fake windows together (``joint``).
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


def build(preset: str | Preset = "seed", fast_edges: bool = False) -> tuple[GenConvNet, DiscConvNet]:
    """The generator and critic of ``preset`` (freshly initialised from torch's global RNG).

    Parameters
    ----------
    preset : str or Preset
        A name in :data:`PRESETS` or a :class:`Preset`.
    fast_edges : bool
        Swap in :mod:`b2b.fast`'s faster layers (same parameters, same function), as the
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
