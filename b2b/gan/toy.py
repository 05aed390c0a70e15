"""Toy 2-D data, small MLP GANs and the measures used to judge them.

The chapters on GANs and on the Wasserstein distance train tiny networks on the *ring of
Gaussians*: ``modes`` isotropic Gaussians of standard deviation ``std`` whose centres sit evenly
on a circle. The data is simple enough to look at, and its modes are known, so mode collapse can
be **measured** (:func:`mode_coverage`) rather than only pictured, and distances between sample
sets can be computed exactly (:func:`wasserstein_1d`, :func:`wasserstein_assignment`) to check a
critic's estimate against.

Three training methods share one :class:`ToyConfig` (data, networks, batch, learning rate,
schedule, seed) and one evaluation:

- :func:`train_gan`: the original GAN, with the minimax or the non-saturating generator loss
  (its own five-line step: one discriminator step, one generator step);
- :func:`train_wgan_gp`: WGAN with the gradient penalty (Gulrajani et al. 2017), trained by
  :func:`b2b.gan.step.wgan_gp_iteration`, the step the music model trains with;
- :func:`train_wgan_clip`: WGAN with weight clipping (Arjovsky et al. 2017), the same step with
  ``lambda_gp=0`` and the clamp as a hook after each critic optimizer step.

Each returns a :class:`ToyRun` whose ``history`` holds, per checkpoint, the losses, the modes
covered, the high-quality fraction, the critic's Wasserstein estimate, the exact Wasserstein-1
distance between generated and real evaluation samples, and gradient norms. Every run is seeded
and deterministic on a given machine, leaves the global random state alone, and runs on one CPU
thread (faster than several for networks this small); it takes seconds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.optim import Optimizer

from b2b.gan import losses
from b2b.gan.step import STATS, wgan_gp_iteration

#: A sampler draws ``n`` points ``(n, d)`` using the given random generator.
Sampler = Callable[[int, torch.Generator], Tensor]

__all__ = [  # noqa: RUF022 (in reading order)
    "ring_centres",
    "ring_of_gaussians",
    "mlp_generator",
    "mlp_critic",
    "mode_coverage",
    "wasserstein_1d",
    "wasserstein_assignment",
    "ToyConfig",
    "ToyRun",
    "train_gan",
    "train_wgan_clip",
    "train_wgan_gp",
    "fit_critic",
]


# --------------------------------------------------------------------------------------- data


def ring_centres(modes: int = 8, radius: float = 2.0) -> Tensor:
    """Centres of the ring of Gaussians.

    Parameters
    ----------
    modes : int
        Number of Gaussians, evenly spaced in angle starting at angle 0.
    radius : float
        Radius of the circle.

    Returns
    -------
    Tensor
        ``(modes, 2)`` float32, centre ``k`` at angle ``2 pi k / modes``.
    """
    if modes < 1:
        raise ValueError(f"modes must be >= 1, got {modes}")
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def ring_of_gaussians(
    n: int,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``n`` points from a ring of ``modes`` equally weighted Gaussians.

    Parameters
    ----------
    n : int
        Number of points.
    modes, radius : int, float
        The centres are :func:`ring_centres` ``(modes, radius)``.
    std : float
        Standard deviation of each (isotropic) Gaussian.
    generator : torch.Generator, optional
        Source of randomness (the global one when omitted).

    Returns
    -------
    Tensor
        ``(n, 2)`` float32 points.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    centres = ring_centres(modes, radius)
    which = torch.randint(modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return centres[which] + std * noise


def _ring_sampler(modes: int, radius: float, std: float) -> Sampler:
    return lambda n, g: ring_of_gaussians(n, modes, radius, std, generator=g)


# ------------------------------------------------------------------------------------ networks


def mlp_generator(latent_dim: int = 2, hidden: int = 64, depth: int = 3, out_dim: int = 2) -> nn.Sequential:
    """A small MLP generator: noise ``(B, latent_dim)`` to points ``(B, out_dim)``.

    ``depth`` hidden layers of width ``hidden`` with ReLU, then a linear output (no squashing).
    """
    layers: list[nn.Module] = []
    width = latent_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def mlp_critic(
    in_dim: int = 2, hidden: int = 64, depth: int = 3, norm: str | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """A small MLP critic (or GAN discriminator): points ``(B, in_dim)`` to scores ``(B, 1)``.

    The output is an unbounded score: a WGAN critic value, or the logit of a GAN discriminator
    (``D(x) = sigmoid(score)``).

    Parameters
    ----------
    in_dim : int
        Dimension of the input points.
    hidden, depth : int
        ``depth`` hidden layers of width ``hidden``, each ``Linear → [norm] → LeakyReLU(0.2)
        → [Dropout]``.
    norm : {None, "batch", "layer"}
        Normalization after each hidden linear layer: ``"batch"`` (``BatchNorm1d``, which couples
        the samples of a batch) or ``"layer"`` (``LayerNorm``, per sample).
    dropout : float
        Dropout probability after each hidden layer (0 for none).
    """
    if norm not in (None, "batch", "layer"):
        raise ValueError(f"norm must be None, 'batch' or 'layer', got {norm!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers.append(nn.Linear(width, hidden))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(hidden))
        elif norm == "layer":
            layers.append(nn.LayerNorm(hidden))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------ measures


def mode_coverage(samples: Tensor, centres: Tensor, std: float, min_fraction: float = 0.01) -> tuple[int, float]:
    """How many modes a sample set covers, and how many of its samples are of high quality.

    Each sample is assigned to its nearest centre. A sample is **high quality** if it lies within
    ``3 * std`` (Euclidean distance) of that centre. A mode is **covered** if at least
    ``min_fraction`` of *all* samples are high-quality samples assigned to it (with the default
    1% and 8 modes, a mode needs at least 1/12.5 of its fair share of 12.5%).

    Parameters
    ----------
    samples : Tensor
        ``(n, d)`` points, ``n >= 1``.
    centres : Tensor
        ``(modes, d)`` mode centres.
    std : float
        Standard deviation of each mode (the same unit as the points).
    min_fraction : float
        Fraction of the ``n`` samples a mode needs (as high-quality samples) to count as covered.

    Returns
    -------
    modes_covered : int
        Number of covered modes, between 0 and ``modes``.
    high_quality : float
        Fraction of samples within ``3 * std`` of their nearest centre, in [0, 1].
    """
    samples = torch.as_tensor(samples, dtype=torch.float64)
    centres = torch.as_tensor(centres, dtype=torch.float64)
    if samples.dim() != 2 or centres.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(
            f"samples (n, d) and centres (modes, d) must agree on d, got {tuple(samples.shape)} "
            f"and {tuple(centres.shape)}"
        )
    if samples.shape[0] == 0:
        raise ValueError("samples must hold at least one point")
    dist = torch.cdist(samples, centres)  # (n, modes)
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=centres.shape[0])
    covered = int((counts >= min_fraction * samples.shape[0]).sum())
    return covered, float(good.double().mean())


def wasserstein_1d(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Exact Wasserstein-1 (earth mover's) distance between two 1-D empirical distributions.

    For samples of equal size ``n`` this is ``mean_i |a_(i) - b_(i)|`` over the **sorted** samples
    (the optimal transport matches the i-th smallest to the i-th smallest). For unequal sizes
    it is the area between the two empirical CDFs, ``integral |F_a(t) - F_b(t)| dt``, which gives
    the same value when the sizes are equal.

    Parameters
    ----------
    a, b : array-like
        ``(n,)`` and ``(m,)`` samples, each with uniform weights; ``n, m >= 1``.

    Returns
    -------
    float
        The distance, in the unit of the samples.
    """
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("a and b must each hold at least one sample")
    if a.size == b.size:
        return float(np.mean(np.abs(a - b)))
    grid = np.sort(np.concatenate([a, b]))
    widths = np.diff(grid)
    # CDFs on each interval [grid[k], grid[k+1]).
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def wasserstein_assignment(a: Tensor, b: Tensor) -> float:
    """Exact Wasserstein-1 distance between two equal-size empirical distributions in ``d`` dims.

    With ``n`` points on each side and uniform weights, an optimal transport plan is a
    permutation (Birkhoff–von Neumann), found by the Hungarian algorithm on the Euclidean cost
    matrix. Cost grows as ``n^3``: keep ``n`` to a few thousand.

    Parameters
    ----------
    a, b : Tensor
        ``(n, d)`` points each.

    Returns
    -------
    float
        ``min over permutations s of mean_i ||a_i - b_s(i)||_2``.
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.dim() != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"a and b must both be (n, d) with n >= 1, got {tuple(a.shape)} and {tuple(b.shape)}")
    cost = torch.cdist(a, b).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


# -------------------------------------------------------------------------------------- training


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one CPU thread (faster for tiny networks, and steadier on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ToyConfig:
    """The settings every toy run shares: data, networks, batch, learning rate, schedule, seed.

    What differs between the training methods (the GAN's generator loss, the WGAN's clip value,
    WGAN-GP's ``lambda_gp``) is an argument of :func:`train_gan`, :func:`train_wgan_clip` and
    :func:`train_wgan_gp`; change one setting with ``dataclasses.replace(config, steps=300)``.

    Attributes
    ----------
    steps : int
        Generator steps (>= 0).
    batch_size : int
        Points per batch (>= 2).
    lr : float
        Learning rate of both networks (for :func:`train_gan` with ``lr_d``, the generator's).
        The default, 1e-4, is WGAN-GP's; WGAN with clipping used 5e-5.
    latent_dim, hidden, depth : int
        Network sizes (see :func:`mlp_generator`, :func:`mlp_critic`).
    critic_norm : {None, "batch", "layer"}
        Normalization in the critic (see :func:`mlp_critic`).
    critic_dropout : float
        Dropout in the critic, in [0, 1).
    modes, radius, std : int, float, float
        The data (see :func:`ring_of_gaussians`); ``std`` is also the unit of the quality measure.
    every : int
        Evaluate every ``every`` generator steps (and after the last).
    n_eval : int
        Points used for each evaluation.
    seed : int
        Seeds weights, dropout masks, data and noise.
    """

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-4
    latent_dim: int = 2
    hidden: int = 64
    depth: int = 3
    critic_norm: str | None = None
    critic_dropout: float = 0.0
    modes: int = 8
    radius: float = 2.0
    std: float = 0.02
    every: int = 100
    n_eval: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.every < 1 or self.batch_size < 2 or self.n_eval < 1:
            raise ValueError(f"need steps >= 0, every >= 1, batch_size >= 2, n_eval >= 1; got {self}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.critic_norm not in (None, "batch", "layer") or not 0.0 <= self.critic_dropout < 1.0:
            raise ValueError(f"need critic_norm None, 'batch' or 'layer' and critic_dropout in [0, 1); got {self}")


@dataclass
class ToyRun:
    """The result of one toy training run.

    Attributes
    ----------
    generator, critic : nn.Module
        The trained networks (in eval mode). For a GAN, ``critic`` is the discriminator and
        outputs logits.
    history : dict of str to list of float
        One entry per checkpoint (the first at step 0, before training): ``step`` (generator
        steps), ``d_loss`` and ``g_loss`` (means over the steps since the previous checkpoint),
        ``modes`` and ``high_quality`` (:func:`mode_coverage` on ``n_eval`` generated points),
        ``w_estimate`` (critic: mean score on real minus mean score on generated evaluation
        points; NaN for a GAN), ``w1`` (exact :func:`wasserstein_assignment` between the
        generated and real evaluation points), ``grad_norm`` and ``grad_norm_std`` (mean and
        standard deviation of ``||grad_x critic||`` at points between real and generated
        evaluation points), ``g_grad`` (GAN only, NaN for the WGANs: mean norm of the generator
        loss's gradient with respect to each generated point, times the batch size).
    snapshots : dict of int to Tensor
        Generated evaluation points ``(n_eval, 2)`` at each checkpoint, keyed by step.
    real : Tensor
        The fixed real evaluation points ``(n_eval, 2)``.
    centres : Tensor
        The mode centres ``(modes, 2)``.
    config : ToyConfig
        The shared settings of the run.
    method : dict
        The training method and its own settings, e.g.
        ``{"kind": "wgan_clip", "n_critic": 5, "clip": 0.01}``.
    """

    generator: nn.Module
    critic: nn.Module
    history: dict[str, list[float]]
    snapshots: dict[int, Tensor]
    real: Tensor
    centres: Tensor
    config: ToyConfig
    method: dict


_HISTORY_KEYS = (
    "step", "d_loss", "g_loss", "modes", "high_quality", "w_estimate", "w1", "grad_norm",
    "grad_norm_std", "g_grad",
)

#: One generator step of a training method: ``(G, D, opt_g, opt_d, next_real, noise)`` to the
#: step's mean critic loss, generator loss and ``g_grad`` (see :class:`ToyRun`).
_Iteration = Callable[[nn.Module, nn.Module, Optimizer, Optimizer, Callable[[], Tensor], Callable[[], Tensor]],
                      tuple[float, float, float]]


def _evaluate(run: ToyRun, step: int, z_eval: Tensor, eps: Tensor, since: list[tuple[float, float, float]]) -> None:
    gen, critic, h = run.generator, run.critic, run.history
    is_wgan = run.method["kind"] != "gan"
    gen.eval()
    critic.eval()
    with torch.no_grad():
        fake = gen(z_eval)
        w_est = (critic(run.real).mean() - critic(fake).mean()).item() if is_wgan else math.nan
    norms = losses.gradient_norms(critic, losses.interpolate(run.real, fake, eps), create_graph=False)
    modes, hq = mode_coverage(fake, run.centres, run.config.std)
    d_loss, g_loss, g_grad = (float(np.mean(col)) for col in zip(*since)) if since else (math.nan,) * 3
    row = {
        "step": step, "d_loss": d_loss, "g_loss": g_loss, "modes": modes, "high_quality": hq,
        "w_estimate": w_est, "w1": wasserstein_assignment(fake, run.real), "grad_norm": norms.mean().item(),
        "grad_norm_std": norms.std().item(), "g_grad": g_grad,
    }
    for key in _HISTORY_KEYS:
        h[key].append(row[key])
    run.snapshots[step] = fake.detach().clone()
    gen.train()
    critic.train()


def _train(config: ToyConfig, method: dict, optimizers: Callable[[nn.Module, nn.Module], tuple[Optimizer, Optimizer]],
           iteration: _Iteration) -> ToyRun:
    """Seed, build the two networks and their ``optimizers``, run ``iteration`` ``config.steps``
    times on batches of the ring, and evaluate before the first step and every ``config.every``."""
    data = _ring_sampler(config.modes, config.radius, config.std)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(config.seed)  # initial weights and dropout masks
        g = torch.Generator().manual_seed(config.seed + 1)  # data and noise
        gen = mlp_generator(config.latent_dim, config.hidden, config.depth)
        critic = mlp_critic(2, config.hidden, config.depth, norm=config.critic_norm, dropout=config.critic_dropout)
        opt_g, opt_d = optimizers(gen, critic)
        g_eval = torch.Generator().manual_seed(config.seed + 2)
        real_eval = data(config.n_eval, g_eval)
        z_eval = torch.randn(config.n_eval, config.latent_dim, generator=g_eval)
        eps_eval = torch.rand(config.n_eval, generator=g_eval)
        run = ToyRun(gen, critic, {k: [] for k in _HISTORY_KEYS}, {}, real_eval,
                     ring_centres(config.modes, config.radius), config, method)

        def next_real() -> Tensor:
            return data(config.batch_size, g)

        def noise() -> Tensor:
            return torch.randn(config.batch_size, config.latent_dim, generator=g)

        since: list[tuple[float, float, float]] = []
        _evaluate(run, 0, z_eval, eps_eval, since)
        for step in range(1, config.steps + 1):
            since.append(iteration(gen, critic, opt_g, opt_d, next_real, noise))
            if step % config.every == 0 or step == config.steps:
                _evaluate(run, step, z_eval, eps_eval, since)
                since = []
        gen.eval()
        critic.eval()
    return run


def train_gan(
    config: ToyConfig | None = None, loss: str = "non_saturating", lr_d: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
) -> ToyRun:
    """Train the original GAN (Goodfellow et al. 2014) on the ring of Gaussians.

    Per generator step, one discriminator step: ``D = sigmoid(critic(x))`` minimises the binary
    cross-entropy ``-mean log D(real) - mean log(1 - D(fake))``. Then the generator minimises
    either ``mean log(1 - D(fake))`` (``loss="minimax"``, the game as written) or
    ``-mean log D(fake)`` (``loss="non_saturating"``, the version used in practice). Adam for both.

    Parameters
    ----------
    config : ToyConfig, optional
        Data, networks, batch, learning rate (the generator's), schedule and seed.
    loss : {"minimax", "non_saturating"}
        The generator's loss.
    lr_d : float, optional
        The discriminator's learning rate; ``config.lr`` when omitted. A discriminator much
        slower than the generator makes the generator chase it from mode to mode (mode collapse).
    betas : tuple of float
        Adam's betas for both networks.

    Returns
    -------
    ToyRun
        Networks, history (see :class:`ToyRun`) and snapshots.
    """
    config = config or ToyConfig()
    if loss not in ("minimax", "non_saturating"):
        raise ValueError(f"loss must be 'minimax' or 'non_saturating', got {loss!r}")
    lr_d = config.lr if lr_d is None else lr_d
    if not lr_d > 0:
        raise ValueError(f"lr_d must be > 0, got {lr_d}")

    def iteration(gen: nn.Module, disc: nn.Module, opt_g: Optimizer, opt_d: Optimizer,
                  next_real: Callable[[], Tensor], noise: Callable[[], Tensor]) -> tuple[float, float, float]:
        real = next_real()
        with torch.no_grad():
            fake = gen(noise())
        # -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s)
        d_loss = F.softplus(-disc(real)).mean() + F.softplus(disc(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        fake = gen(noise())
        fake.retain_grad()
        s = disc(fake)
        # minimax: log(1 - D) = -softplus(s); non-saturating: -log D = softplus(-s)
        g_loss = -F.softplus(s).mean() if loss == "minimax" else F.softplus(-s).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item(), (fake.grad.norm(dim=1) * len(fake)).mean().item()

    def optimizers(gen: nn.Module, disc: nn.Module) -> tuple[Optimizer, Optimizer]:
        return (torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas),
                torch.optim.Adam(disc.parameters(), lr=lr_d, betas=betas))

    method = {"kind": "gan", "loss": loss, "lr_d": lr_d, "betas": betas}
    return _train(config, method, optimizers, iteration)


def _wgan(n_critic: int, lambda_gp: float) -> _Iteration:
    """One generator step of a WGAN: :func:`b2b.gan.step.wgan_gp_iteration`, the model's own step."""
    if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
        raise ValueError(f"n_critic must be an integer >= 1, got {n_critic!r}")

    def iteration(gen: nn.Module, critic: nn.Module, opt_g: Optimizer, opt_d: Optimizer,
                  next_real: Callable[[], Tensor], noise: Callable[[], Tensor]) -> tuple[float, float, float]:
        stats = dict(zip(STATS, wgan_gp_iteration(gen, critic, opt_g, opt_d, next_real, noise,
                                                  n_critic=n_critic, lambda_gp=lambda_gp).tolist()))
        return stats["loss_d"], stats["loss_g"], math.nan

    return iteration


def _clipping(opt: Optimizer, critic: nn.Module, clip: float) -> Optimizer:
    """``opt``, which from now on clamps every parameter of ``critic`` to ``[-clip, clip]`` after each step."""

    @torch.no_grad()
    def clamp(*_: object) -> None:
        for p in critic.parameters():
            p.clamp_(-clip, clip)

    opt.register_step_post_hook(clamp)
    return opt


def train_wgan_clip(config: ToyConfig | None = None, n_critic: int = 5, clip: float = 0.01) -> ToyRun:
    """Train a WGAN with weight clipping (Arjovsky et al. 2017) on the ring of Gaussians.

    :func:`b2b.gan.step.wgan_gp_iteration` with ``lambda_gp=0``: the critic minimises
    ``mean f(fake) - mean f(real)`` for ``n_critic`` steps per generator step, and a hook on its
    optimizer clips every critic parameter to ``[-clip, clip]`` after each step; the generator
    minimises ``-mean f(fake)``. RMSprop at ``config.lr``, as in the paper (which used 5e-5).
    """
    config = config or ToyConfig()
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")

    def optimizers(gen: nn.Module, critic: nn.Module) -> tuple[Optimizer, Optimizer]:
        opt_d = _clipping(torch.optim.RMSprop(critic.parameters(), lr=config.lr), critic, clip)
        return torch.optim.RMSprop(gen.parameters(), lr=config.lr), opt_d

    method = {"kind": "wgan_clip", "n_critic": n_critic, "clip": clip}
    return _train(config, method, optimizers, _wgan(n_critic, 0.0))


def train_wgan_gp(
    config: ToyConfig | None = None, n_critic: int = 5, lambda_gp: float = 10.0,
    betas: tuple[float, float] = (0.5, 0.9),
) -> ToyRun:
    """Train a WGAN-GP (Gulrajani et al. 2017) on the ring of Gaussians.

    :func:`b2b.gan.step.wgan_gp_iteration`, the step the music model trains with: the critic minimises
    :func:`b2b.gan.losses.critic_loss` (``mean f(fake) - mean f(real) + lambda_gp * mean
    (||grad f(x_hat)|| - 1)^2``) for ``n_critic`` steps per generator step; the generator
    minimises :func:`b2b.gan.losses.generator_loss`. Adam with ``betas`` for both, at ``config.lr``.
    """
    config = config or ToyConfig()
    if not lambda_gp >= 0:
        raise ValueError(f"lambda_gp must be >= 0, got {lambda_gp}")

    def optimizers(gen: nn.Module, critic: nn.Module) -> tuple[Optimizer, Optimizer]:
        return (torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas),
                torch.optim.Adam(critic.parameters(), lr=config.lr, betas=betas))

    method = {"kind": "wgan_gp", "n_critic": n_critic, "lambda_gp": lambda_gp, "betas": betas}
    return _train(config, method, optimizers, _wgan(n_critic, lambda_gp))


def fit_critic(
    real: Sampler,
    fake: Sampler,
    method: str = "gp",
    steps: int = 1000,
    batch_size: int = 256,
    clip: float = 0.01,
    lambda_gp: float = 10.0,
    lr: float | None = None,
    in_dim: int = 2,
    hidden: int = 64,
    depth: int = 3,
    every: int = 50,
    n_eval: int = 2000,
    seed: int = 0,
) -> tuple[nn.Module, dict[str, list[float]]]:
    """Train a critic alone between two fixed distributions and track its Wasserstein estimate.

    With the generator frozen, a WGAN critic's value ``mean f(real) - mean f(fake)`` is an
    estimate of W1(real, fake) that is exact (in the limit) only if ``f`` is an optimal
    **1-Lipschitz** function. Use it with distributions whose W1 is known: a distribution and its
    translate by a vector ``v`` are at distance ``||v||``.

    Parameters
    ----------
    real, fake : Sampler
        ``sampler(n, generator) -> (n, in_dim)``.
    method : {"gp", "clip"}
        Gradient penalty (Adam, betas (0.5, 0.9)) or weight clipping (RMSprop).
    lr : float, optional
        Learning rate; by default 1e-4 for ``"gp"`` and 5e-5 for ``"clip"``, as in the papers.
    steps : int
        Critic steps.
    every : int
        Evaluate every ``every`` steps on ``n_eval`` fixed points from each side.
    seed : int
        Seeds weights and draws.

    Returns
    -------
    critic : nn.Module
        The trained critic (eval mode), ``(B, in_dim) -> (B, 1)``.
    history : dict of str to list of float
        ``step``, ``w_estimate`` (on the fixed evaluation points), ``grad_norm`` and
        ``grad_norm_std`` (of ``||grad_x f||`` at interpolates of the evaluation points).
    """
    if method not in ("gp", "clip"):
        raise ValueError(f"method must be 'gp' or 'clip', got {method!r}")
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed + 1)
        g_eval = torch.Generator().manual_seed(seed + 2)
        critic = mlp_critic(in_dim, hidden, depth)
        if method == "gp":
            opt: Optimizer = torch.optim.Adam(critic.parameters(), lr=lr or 1e-4, betas=(0.5, 0.9))
        else:
            opt = _clipping(torch.optim.RMSprop(critic.parameters(), lr=lr or 5e-5), critic, clip)
        r_eval, f_eval = real(n_eval, g_eval), fake(n_eval, g_eval)
        eps_eval = torch.rand(n_eval, generator=g_eval)
        history: dict[str, list[float]] = {"step": [], "w_estimate": [], "grad_norm": [], "grad_norm_std": []}

        def evaluate(step: int) -> None:
            with torch.no_grad():
                w = (critic(r_eval).mean() - critic(f_eval).mean()).item()
            norms = losses.gradient_norms(critic, losses.interpolate(r_eval, f_eval, eps_eval), create_graph=False)
            history["step"].append(step)
            history["w_estimate"].append(w)
            history["grad_norm"].append(norms.mean().item())
            history["grad_norm_std"].append(norms.std().item())

        evaluate(0)
        for step in range(1, steps + 1):
            r, f = real(batch_size, g), fake(batch_size, g)
            loss, _ = losses.critic_loss(critic, r, f, lambda_gp=lambda_gp if method == "gp" else 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % every == 0 or step == steps:
                evaluate(step)
        critic.eval()
    return critic, history
