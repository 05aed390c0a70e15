"""A classifier two-sample test: can a small network tell generated windows from real ones?

The test (Lopez-Paz & Oquab 2017) trains a classifier on half of the real and half of the
generated windows and measures its accuracy on the other halves. If the two sets came from the
same distribution no classifier can beat chance on held-out data, so the held-out accuracy is
about 0.5; the further above 0.5, the easier the generated music is to spot. It is the
reproducible counterpart of a listening test (in the original project 30% of listeners
identified the generated pieces), with a confidence interval instead of a panel.

The classifier is a fixed small convolutional network over the pianoroll (tracks as channels),
trained for a fixed number of steps with a fixed seed on the CPU, so the result is a number
that can be recomputed. Its accuracy is a *lower bound* on how distinguishable the sets are:
a stronger classifier might do better.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from b2b.evaluation.metrics import as_rolls

__all__ = ["TwoSampleResult", "classifier", "wilson_interval", "shuffled_by_group", "classifier_two_sample_test"]


@dataclass(frozen=True)
class TwoSampleResult:
    """Outcome of :func:`classifier_two_sample_test`.

    Attributes
    ----------
    accuracy : float
        Share of held-out windows classified correctly (0.5 = indistinguishable).
    low, high : float
        95% Wilson score interval of the accuracy.
    p_value : float
        One-sided binomial test of accuracy > 0.5.
    n_train, n_test : int
        Windows used to train and to test (half real, half generated each).
    steps, seed : int
        Training budget (optimizer steps) and seed.
    """

    accuracy: float
    low: float
    high: float
    p_value: float
    n_train: int
    n_test: int
    steps: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def classifier() -> nn.Module:
    """The test's classifier: windows ``(B, 17, 64, 72)`` -> logits ``(B,)`` (generated = 1)."""
    return nn.Sequential(
        nn.Conv2d(17, 16, (4, 12), stride=2, padding=(1, 5)),  # (B, 16, 32, 36): an octave of pitch
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),  # (B, 32, 16, 18)
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, stride=2, padding=1),  # (B, 64, 8, 9)
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),  # (B, 64, 1, 1)
        nn.Flatten(),  # (B, 64)
        nn.Linear(64, 1),  # (B, 1)
        nn.Flatten(0),  # (B,)
    )


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (95% for the default ``z``)."""
    if n < 1:
        return float("nan"), float("nan")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def shuffled_by_group(n: int, groups: Any | None, rng: np.random.Generator) -> np.ndarray:
    """A random order of ``range(n)`` that keeps each group's items together (groups in random
    order, items shuffled within); a plain permutation when ``groups`` is None."""
    order = rng.permutation(n)
    if groups is None:
        return order
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one label per real window, shape ({n},), got {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    rank = rng.permutation(inverse.max() + 1)[inverse]  # each group's place in a random order
    return order[np.argsort(rank[order], kind="stable")]


def classifier_two_sample_test(
    real: Any, generated: Any, *, threshold: float | None = None, groups: Any | None = None,
    steps: int = 300, batch: int = 64, lr: float = 1e-3, seed: int = 0,
) -> TwoSampleResult:
    """Train :func:`classifier` to separate two sets of windows; its held-out accuracy.

    Parameters
    ----------
    real : array ``(n, 17, 64, 72)``
        Real windows (0/1 or bool), not used to train the generator if possible.
    generated : array ``(m, 17, 64, 72)``
        Generated windows: bool, 0/1, or probabilities with ``threshold``.
    threshold : float, optional
        Binarization threshold of ``generated``.
    groups : array ``(n,)``, optional
        A label per real window (e.g. its song). Real windows are then split by group, so that
        the classifier is not tested on songs it has seen (windows of one song overlap by
        three bars, and recognising a song is not recognising real music); only the group at
        the boundary of the two halves is shared.
    steps, batch, lr : int, int, float
        Adam steps on batches of the training halves (a new shuffle each pass), batch size, rate.
    seed : int
        Seeds the split, the initialisation and the batch order.

    Returns
    -------
    TwoSampleResult
        Uses ``k = min(n, m)`` windows of each set (the first ``k`` after a seeded shuffle),
        ``k // 2`` of each to train and the rest to test.
    """
    r = as_rolls(real, name="real")
    g = as_rolls(generated, threshold, name="generated")
    k = min(len(r), len(g))
    if k < 4:
        raise ValueError(f"the two-sample test needs at least 4 windows per set, got {len(r)} real and {len(g)} generated")
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got {steps} and {batch}")
    rng = np.random.default_rng(seed)
    r = r[shuffled_by_group(len(r), groups, rng)[:k]]
    g = g[rng.permutation(len(g))[:k]]
    half = k // 2
    x_train = np.concatenate([r[:half], g[:half]])
    y_train = np.concatenate([np.zeros(half), np.ones(half)])
    x_test = np.concatenate([r[half:], g[half:]])
    y_test = np.concatenate([np.zeros(k - half), np.ones(k - half)])

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train).float()
    net.train()
    order, cursor = torch.randperm(len(xt), generator=gen), 0
    for _ in range(steps):
        if cursor >= len(order):
            order, cursor = torch.randperm(len(xt), generator=gen), 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        loss = nn.functional.binary_cross_entropy_with_logits(net(xt[idx].float()), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(torch.from_numpy(x_test[i:i + 256]).float()) for i in range(0, len(x_test), 256)])
    correct = int(((logits.numpy() > 0) == (y_test > 0.5)).sum())
    n = len(y_test)
    low, high = wilson_interval(correct, n)
    from scipy.stats import binom

    return TwoSampleResult(accuracy=correct / n, low=low, high=high, p_value=float(binom.sf(correct - 1, n, 0.5)),
                           n_train=len(y_train), n_test=n, steps=steps, seed=seed)
