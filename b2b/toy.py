"""Toy 2-D data, small MLP GANs and the measures used to judge them.

The chapters on GANs and on the Wasserstein distance train tiny networks on the *ring of
Gaussians*: ``modes`` isotropic Gaussians of standard deviation ``std`` whose centres sit evenly
on a circle. The data is simple enough to look at, and its modes are known, so mode collapse can
be **measured** (:func:`mode_coverage`) rather than only pictured, and distances between sample
sets can be computed exactly (:func:`wasserstein_1d`, :func:`wasserstein_assignment`) to check a
critic's estimate against.

Three training loops share one evaluation:

- :func:`train_gan`: the original GAN, with the minimax or the non-saturating generator loss;
- :func:`train_wgan_clip`: WGAN with weight clipping (Arjovsky et al. 2017);
- :func:`train_wgan_gp`: WGAN with the gradient penalty (Gulrajani et al. 2017), via
  :mod:`b2b.losses`.

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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from b2b import losses

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
        evaluation points), ``g_grad`` (mean norm of the generator loss's gradient with respect
        to each generated point, times the batch size).
    snapshots : dict of int to Tensor
        Generated evaluation points ``(n_eval, 2)`` at each checkpoint, keyed by step.
    real : Tensor
        The fixed real evaluation points ``(n_eval, 2)``.
    centres : Tensor
        The mode centres ``(modes, 2)``.
    config : dict
        The arguments of the run.
    """

    generator: nn.Module
    critic: nn.Module
    history: dict[str, list[float]]
    snapshots: dict[int, Tensor]
    real: Tensor
    centres: Tensor
    config: dict = field(default_factory=dict)


_HISTORY_KEYS = (
    "step", "d_loss", "g_loss", "modes", "high_quality", "w_estimate", "w1", "grad_norm",
    "grad_norm_std", "g_grad",
)


def _evaluate(
    run: ToyRun, step: int, z_eval: Tensor, std: float, d_losses: list[float], g_losses: list[float],
    g_grads: list[float], is_wgan: bool, eps: Tensor,
) -> None:
    gen, critic, h = run.generator, run.critic, run.history
    gen.eval()
    critic.eval()
    with torch.no_grad():
        fake = gen(z_eval)
        w_est = (critic(run.real).mean() - critic(fake).mean()).item() if is_wgan else math.nan
    norms = losses.gradient_norms(critic, losses.interpolate(run.real, fake, eps), create_graph=False)
    modes, hq = mode_coverage(fake, run.centres, std)
    row = {
        "step": step,
        "d_loss": float(np.mean(d_losses)) if d_losses else math.nan,
        "g_loss": float(np.mean(g_losses)) if g_losses else math.nan,
        "modes": modes,
        "high_quality": hq,
        "w_estimate": w_est,
        "w1": wasserstein_assignment(fake, run.real),
        "grad_norm": norms.mean().item(),
        "grad_norm_std": norms.std().item(),
        "g_grad": float(np.mean(g_grads)) if g_grads else math.nan,
    }
    for key in _HISTORY_KEYS:
        h[key].append(row[key])
    run.snapshots[step] = fake.detach().clone()
    gen.train()
    critic.train()


def _train(
    kind: str,
    *,
    steps: int,
    n_critic: int,
    batch_size: int,
    lr_g: float,
    lr_d: float,
    make_opt: Callable[[list[nn.Parameter], float], torch.optim.Optimizer],
    critic_step: Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Callable[[], None] | None]],
    g_loss_fn: Callable[[Tensor], Tensor],
    is_wgan: bool,
    latent_dim: int,
    hidden: int,
    depth: int,
    critic_norm: str | None,
    critic_dropout: float,
    modes: int,
    radius: float,
    std: float,
    every: int,
    n_eval: int,
    seed: int,
    config: dict,
) -> ToyRun:
    if steps < 0 or every < 1 or n_critic < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 0, every >= 1, n_critic >= 1, batch_size >= 2; got {config}")
    data = _ring_sampler(modes, radius, std)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)  # initial weights and dropout masks
        g = torch.Generator().manual_seed(seed + 1)  # data and noise
        gen = mlp_generator(latent_dim, hidden, depth)
        critic = mlp_critic(2, hidden, depth, norm=critic_norm, dropout=critic_dropout)
        opt_g = make_opt(list(gen.parameters()), lr_g)
        opt_d = make_opt(list(critic.parameters()), lr_d)
        g_eval = torch.Generator().manual_seed(seed + 2)
        real_eval = data(n_eval, g_eval)
        z_eval = torch.randn(n_eval, latent_dim, generator=g_eval)
        eps_eval = torch.rand(n_eval, generator=g_eval)
        run = ToyRun(gen, critic, {k: [] for k in _HISTORY_KEYS}, {}, real_eval, ring_centres(modes, radius), config)
        d_losses: list[float] = []
        g_losses: list[float] = []
        g_grads: list[float] = []
        _evaluate(run, 0, z_eval, std, d_losses, g_losses, g_grads, is_wgan, eps_eval)
        for step in range(1, steps + 1):
            for _ in range(n_critic):
                real = data(batch_size, g)
                with torch.no_grad():
                    fake = gen(torch.randn(batch_size, latent_dim, generator=g))
                loss, after = critic_step(critic, real, fake)
                opt_d.zero_grad(set_to_none=True)
                loss.backward()
                opt_d.step()
                if after is not None:
                    after()
                d_losses.append(loss.item())
            fake = gen(torch.randn(batch_size, latent_dim, generator=g))
            fake.retain_grad()
            loss = g_loss_fn(critic(fake))
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            g_losses.append(loss.item())
            g_grads.append((fake.grad.norm(dim=1) * batch_size).mean().item())
            if step % every == 0 or step == steps:
                _evaluate(run, step, z_eval, std, d_losses, g_losses, g_grads, is_wgan, eps_eval)
                d_losses, g_losses, g_grads = [], [], []
        gen.eval()
        critic.eval()
    return run


def train_gan(
    loss: str = "non_saturating",
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    lr_d: float | None = None,
    latent_dim: int = 2,
    hidden: int = 64,
    depth: int = 3,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    every: int = 100,
    n_eval: int = 1000,
    seed: int = 0,
) -> ToyRun:
    """Train the original GAN (Goodfellow et al. 2014) on the ring of Gaussians.

    The discriminator ``D = sigmoid(critic(x))`` minimises the binary cross-entropy
    ``-mean log D(real) - mean log(1 - D(fake))``, one step per generator step. The generator
    minimises either ``mean log(1 - D(fake))`` (``loss="minimax"``, the game as written) or
    ``-mean log D(fake)`` (``loss="non_saturating"``, the version used in practice).

    Parameters
    ----------
    loss : {"minimax", "non_saturating"}
        The generator's loss.
    steps : int
        Generator steps.
    batch_size : int
        Points per batch.
    lr, betas : float, tuple
        Adam settings for both networks (``lr`` is the generator's).
    lr_d : float, optional
        The discriminator's learning rate; ``lr`` when omitted. A discriminator much slower than
        the generator makes the generator chase it from mode to mode (mode collapse).
    latent_dim, hidden, depth : int
        Network sizes (see :func:`mlp_generator`, :func:`mlp_critic`).
    modes, radius, std : int, float, float
        The data (see :func:`ring_of_gaussians`); ``std`` is also the unit of the quality measure.
    every : int
        Evaluate every ``every`` generator steps.
    n_eval : int
        Points used for each evaluation.
    seed : int
        Seeds weights, data and noise.

    Returns
    -------
    ToyRun
        Networks, history (see :class:`ToyRun`) and snapshots.
    """
    if loss not in ("minimax", "non_saturating"):
        raise ValueError(f"loss must be 'minimax' or 'non_saturating', got {loss!r}")
    lr_d = lr if lr_d is None else lr_d
    if not (lr > 0 and lr_d > 0):
        raise ValueError(f"learning rates must be > 0, got lr={lr}, lr_d={lr_d}")
    config = {
        "kind": "gan", "loss": loss, "steps": steps, "batch_size": batch_size, "lr": lr, "lr_d": lr_d, "betas": betas,
        "seed": seed, "std": std,
    }

    def critic_step(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, None]:
        # -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s)
        return F.softplus(-critic(real)).mean() + F.softplus(critic(fake)).mean(), None

    if loss == "minimax":
        g_loss_fn = lambda s: -F.softplus(s).mean()  # log(1 - D) = -softplus(s)
    else:
        g_loss_fn = lambda s: F.softplus(-s).mean()  # -log D = softplus(-s)
    return _train(
        "gan", steps=steps, n_critic=1, batch_size=batch_size, lr_g=lr, lr_d=lr_d,
        make_opt=lambda p, lr_: torch.optim.Adam(p, lr=lr_, betas=betas),
        critic_step=critic_step, g_loss_fn=g_loss_fn, is_wgan=False, latent_dim=latent_dim,
        hidden=hidden, depth=depth, critic_norm=None, critic_dropout=0.0, modes=modes, radius=radius,
        std=std, every=every, n_eval=n_eval, seed=seed, config=config,
    )


def train_wgan_clip(
    steps: int = 1000,
    n_critic: int = 5,
    clip: float = 0.01,
    batch_size: int = 256,
    lr: float = 5e-5,
    latent_dim: int = 2,
    hidden: int = 64,
    depth: int = 3,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    every: int = 100,
    n_eval: int = 1000,
    seed: int = 0,
) -> ToyRun:
    """Train a WGAN with weight clipping (Arjovsky et al. 2017) on the ring of Gaussians.

    The critic minimises ``mean f(fake) - mean f(real)`` (:func:`b2b.losses.critic_loss` with
    ``lambda_gp=0``) for ``n_critic`` steps per generator step, after each of which every
    critic parameter is clipped to ``[-clip, clip]``; the generator minimises
    ``-mean f(fake)``. RMSprop, as in the paper. Other parameters as in :func:`train_gan`.
    """
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    config = {
        "kind": "wgan_clip", "steps": steps, "n_critic": n_critic, "clip": clip, "batch_size": batch_size, "lr": lr,
        "seed": seed, "std": std,
    }

    def critic_step(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Callable[[], None]]:
        loss, _ = losses.critic_loss(critic, real, fake, lambda_gp=0.0)

        def clamp() -> None:
            with torch.no_grad():
                for p in critic.parameters():
                    p.clamp_(-clip, clip)

        return loss, clamp

    return _train(
        "wgan_clip", steps=steps, n_critic=n_critic, batch_size=batch_size, lr_g=lr, lr_d=lr,
        make_opt=lambda p, lr_: torch.optim.RMSprop(p, lr=lr_),
        critic_step=critic_step, g_loss_fn=lambda s: -s.float().mean(), is_wgan=True,
        latent_dim=latent_dim, hidden=hidden, depth=depth, critic_norm=None, critic_dropout=0.0,
        modes=modes, radius=radius, std=std, every=every, n_eval=n_eval, seed=seed, config=config,
    )


def train_wgan_gp(
    steps: int = 1000,
    n_critic: int = 5,
    lambda_gp: float = 10.0,
    batch_size: int = 256,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    latent_dim: int = 2,
    hidden: int = 64,
    depth: int = 3,
    critic_norm: str | None = None,
    critic_dropout: float = 0.0,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    every: int = 100,
    n_eval: int = 1000,
    seed: int = 0,
) -> ToyRun:
    """Train a WGAN-GP (Gulrajani et al. 2017) on the ring of Gaussians.

    The critic minimises :func:`b2b.losses.critic_loss` (``mean f(fake) - mean f(real) +
    lambda_gp * mean (||grad f(x_hat)|| - 1)^2``) for ``n_critic`` steps per generator step; the
    generator minimises :func:`b2b.losses.generator_loss`. Adam for both. ``critic_norm`` and
    ``critic_dropout`` put batch/layer norm or dropout in the critic (see :func:`mlp_critic`).
    Other parameters as in :func:`train_gan`.
    """
    config = {
        "kind": "wgan_gp", "steps": steps, "n_critic": n_critic, "lambda_gp": lambda_gp, "batch_size": batch_size,
        "lr": lr, "betas": betas, "critic_norm": critic_norm, "critic_dropout": critic_dropout, "seed": seed, "std": std,
    }

    def critic_step(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, None]:
        eps = torch.rand(real.shape[0])  # global RNG: seeded by the run
        loss, _ = losses.critic_loss(critic, real, fake, lambda_gp=lambda_gp, eps=eps)
        return loss, None

    return _train(
        "wgan_gp", steps=steps, n_critic=n_critic, batch_size=batch_size, lr_g=lr, lr_d=lr,
        make_opt=lambda p, lr_: torch.optim.Adam(p, lr=lr_, betas=betas),
        critic_step=critic_step, g_loss_fn=lambda s: -s.float().mean(), is_wgan=True,
        latent_dim=latent_dim, hidden=hidden, depth=depth, critic_norm=critic_norm,
        critic_dropout=critic_dropout, modes=modes, radius=radius, std=std, every=every,
        n_eval=n_eval, seed=seed, config=config,
    )


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
            opt: torch.optim.Optimizer = torch.optim.Adam(critic.parameters(), lr=lr or 1e-4, betas=(0.5, 0.9))
        else:
            opt = torch.optim.RMSprop(critic.parameters(), lr=lr or 5e-5)
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
            if method == "clip":
                with torch.no_grad():
                    for p in critic.parameters():
                        p.clamp_(-clip, clip)
            if step % every == 0 or step == steps:
                evaluate(step)
        critic.eval()
    return critic, history
