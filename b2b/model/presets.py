"""The presets: the networks' and the training's hyper-parameters, by name.

A :class:`Preset` names a :class:`GeneratorConfig`, a :class:`CriticConfig` and a
:class:`TrainingConfig` (learning rates, batch, ``n_critic``, ``lambda_gp``, schedule: their one
home) and the threshold that binarizes its samples; :data:`PRESETS` holds the named ones
(``seed`` is the original model, ``improved`` the recipe chapter 8's experiments support) and
:func:`get_preset` finds one. :func:`b2b.model.networks.build` makes the networks of a preset.
Plain dataclasses, no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GeneratorConfig", "CriticConfig", "TrainingConfig", "Preset", "PRESETS", "get_preset", "MAX_BATCH", "BOUNDS",
           "NORMS", "N_BLOCKS"]

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
        Residual units of a :class:`b2b.model.refiner.Refiner` between the edge layer and the output
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
        Channels of each of BinaryMuseGAN's two extra streams (:mod:`b2b.model.streams`: onsets/offsets
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
    """The training hyper-parameters: their one list (a preset's ``training``; used by ``b2b.training.trainer``).

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
        Decay of the moving average of the generator's weights (:mod:`b2b.training.ema`) that checkpoints
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
                raise ValueError(f"{name} must be at most {BOUNDS[name]} (presets.BOUNDS), got {v!r}")
        if self.batch > MAX_BATCH:
            raise ValueError(f"batch {self.batch} is beyond any sensible batch size (at most {MAX_BATCH}; "
                             "the presets use 64)")
        for name, high in (("lr_g", BOUNDS["lr"]), ("lr_d", BOUNDS["lr"]), ("lr_gamma", BOUNDS["lr_gamma"])):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= high:
                raise ValueError(f"{name} must be in (0, {high}] (presets.BOUNDS), got {v!r}")
        if isinstance(self.lambda_gp, bool) or not isinstance(self.lambda_gp, (int, float)) \
                or not 0 <= self.lambda_gp <= BOUNDS["lambda_gp"]:
            raise ValueError(f"lambda_gp must be in [0, {BOUNDS['lambda_gp']:g}] (presets.BOUNDS), got {self.lambda_gp!r}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass(frozen=True)
class Preset:
    """A named model: both networks' configs, the training hyper-parameters and the threshold.

    ``threshold`` turns generated probabilities into notes (:func:`b2b.music.geometry.binarize`); it is
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
        g.pop("fast_edges", None), c.pop("fast_edges", None)  # files written before b2b.model.fast said how they ran
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
        raise ValueError(f"{net} {name} must be an integer in [{low}, {high}] (presets.BOUNDS), got {value!r}")


def _check_count(net: str, name: str, value: Any, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{net} {name} must be a number of {unit} >= 0, got {value!r}")
    if value > BOUNDS[name]:
        raise ValueError(f"{net} {name} must be at most {BOUNDS[name]} {unit} (presets.BOUNDS), got {value!r}")


def _budget(name: str, *, lr: float, betas: tuple[float, float], n_critic: int, batch: int,
            description: str) -> Preset:
    """A budget candidate: the ``streams`` networks, the tracks the data never uses silenced, a moving
    average of the generator (decay 0.999), and this optimizer, critic steps and batch."""
    return Preset(
        name,
        generator=GeneratorConfig(binary=True, silent_tracks=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True, streams=32),
        training=TrainingConfig(lr_g=lr, lr_d=lr, betas=betas, lr_gamma=1.0, n_critic=n_critic, batch=batch, ema=0.999),
        threshold=0.5, description=description)


# The one place where presets live. ``seed`` is the original model; ``improved`` is the recipe
# that chapter 8's experiments support (scripts/recipe_search.py, candidate ``binary``, recorded in
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
        description="what the recipe search supports (chapter 8): a binary generator output in training, "
                    "a layer-norm critic of 64 channels with a minibatch standard deviation channel and no "
                    "dropout, and WGAN-GP's optimizer settings (Adam 1e-4, betas (0, 0.9), constant rate)",
    ),
    "streams": Preset(
        "streams",
        generator=GeneratorConfig(binary=True),
        critic=CriticConfig(norm="layer", dropout=0.0, channels=64, minibatch_std=True, streams=32),
        training=TrainingConfig(lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), lr_gamma=1.0),
        threshold=0.5,
        description="improved with BinaryMuseGAN's two extra critic streams (b2b.model.streams): onsets/offsets per "
                    "track and step, and chroma per track and beat, 32 channels each (data/ablations/streams/)",
    ),
    # The budget candidates of issue 31 (data/ablations/budget/): the streams networks with the data's
    # unused tracks silenced and a moving average of the generator, at fewer and smaller critic steps.
    "lean": _budget(
        "lean", lr=2e-4, betas=(0.5, 0.9), n_critic=2, batch=32,
        description="streams at about a quarter of the work per generator step: 2 critic steps at batch 32, "
                    "Adam 2e-4, betas (0.5, 0.9), a moving average of the generator (decay 0.999), and the "
                    "tracks the data never uses silenced"),
    "economy": _budget(
        "economy", lr=3e-4, betas=(0.5, 0.9), n_critic=1, batch=16,
        description="streams at the ISMIR 2019 tutorial's economy (1 critic step at batch 16) with a third of "
                    "its learning rate (Adam 3e-4, betas (0.5, 0.9); at 1e-3 it degraded), a moving average "
                    "of the generator (decay 0.999), and the tracks the data never uses silenced"),
    "steady": _budget(
        "steady", lr=1e-4, betas=(0.0, 0.9), n_critic=2, batch=32,
        description="lean with WGAN-GP's own optimizer settings (Adam 1e-4, betas (0, 0.9), the streams "
                    "recipe's): lean's windows grew alike again after 2,000 steps (data/longrun/lean-s0); "
                    "does the slower, momentum-free optimizer keep them varied?"),
}


def get_preset(preset: str | Preset) -> Preset:
    """The :class:`Preset` named ``preset`` (or ``preset`` itself); ValueError if unknown."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[preset]
