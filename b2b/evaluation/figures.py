"""The report's figures: what :mod:`b2b.evaluation.evaluate` draws into ``figures/``.

Each function draws a matplotlib Figure from a :class:`b2b.evaluation.report.Report` (or from
windows) and returns it; none writes a file (``b2b evaluate`` saves them, see
:func:`b2b.evaluation.evaluate.write_report`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np

from b2b.evaluation import metrics as M
from b2b.evaluation.report import DEFINITIONS, Report, fmt, series
from b2b.music.plot import STYLE


__all__ = [
    "plot_distributions", "plot_self_similarity", "plot_mgeval",
]

def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def plot_distributions(report: Report, metric: str) -> Any:
    """Histograms of one metric, real vs generated, one panel per row (track); a Figure."""
    rows = [r for r in report.rows if r.metric == metric]
    if not rows:
        raise ValueError(f"the report has no rows for metric {metric!r}")
    by_row = {(m, t): (a, b) for m, t, a, b in series(report.real_features, report.generated_features,
                                                       report.active_tracks)}
    nr, nc = _grid(len(rows))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 2.4 * nr), squeeze=False)
        for ax in axes.flat[len(rows):]:
            ax.axis("off")
        for ax, r in zip(axes.flat, rows):
            a, b = by_row[(r.metric, r.track)]
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            both = np.concatenate([a, b])
            lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
            for values, name in ((a, "real"), (b, "generated")):
                # an empty set still gets its legend entry (n=0), without a density of nothing
                ax.hist(values if values.size else [], bins=bins, density=bool(values.size),
                        alpha=0.55, label=f"{name} (n={values.size})")
            ax.set_title(r.track if r.track != "all" else metric, fontsize=9)
            ax.set_xlabel(metric.replace("_", " "), fontsize=7)
            ax.set_ylabel("density", fontsize=7)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{metric}: {DEFINITIONS[metric]}", fontsize=9)
        fig.subplots_adjust(left=0.08, right=0.97, bottom=0.18 / nr, top=1 - 0.22 / nr, hspace=0.6, wspace=0.35)
    return fig


def plot_self_similarity(real: np.ndarray | None, generated: np.ndarray | None, n: int = 4) -> Any:
    """Per-beat chroma self-similarity (16 x 16) of the first ``n`` real and generated windows."""
    sets = [(name, x) for name, x in (("real", real), ("generated", generated)) if x is not None]
    if not sets or n < 1:
        raise ValueError("plot_self_similarity needs at least one set of windows and n >= 1")
    cols = min(n, max(len(x) for _, x in sets))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(sets), cols, figsize=(2.3 * cols, 2.4 * len(sets)), squeeze=False)
        image = None
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # silent beats: undefined
        for i, (name, x) in enumerate(sets):
            s = M.self_similarity(x[:cols]) if len(x) else np.zeros((0, 16, 16))
            score = M.structure_score(x[:cols]) if len(x) else np.zeros(0)
            for j in range(cols):
                ax = axes[i, j]
                ax.set_xticks([0, 4, 8, 12])
                ax.set_yticks([0, 4, 8, 12])
                ax.tick_params(labelsize=6)
                if j >= len(s):
                    ax.axis("off")
                    continue
                image = ax.imshow(np.ma.masked_invalid(s[j]), vmin=0, vmax=1, cmap=cmap, origin="upper")
                ax.set_title(f"{name} {j}: {fmt(score[j], 2)}", fontsize=8)
                if i == len(sets) - 1:
                    ax.set_xlabel("beat", fontsize=7)
                if j == 0:
                    ax.set_ylabel("beat", fontsize=7)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
        fig.suptitle("per-beat chroma self-similarity (title: structure score; grey: silent beat)",
                     fontsize=9)
    return fig


def plot_mgeval(report: Report, keys: Sequence[str] | None = None) -> Any:
    """MGEval densities (intra-real, intra-generated, inter-set distances) per row key."""
    if keys is None:
        keys = [r.key for r in report.rows if r.track == "all"]
    keys = [k for k in keys if report.comparisons.get(k) is not None and report.comparisons[k].curves]
    if not keys:
        raise ValueError("no comparisons with density curves to plot")
    nr, nc = _grid(len(keys), 3)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nr, nc, figsize=(3.4 * nc, 2.5 * nr), squeeze=False)
        for ax in axes.flat[len(keys):]:
            ax.axis("off")
        for ax, k in zip(axes.flat, keys):
            c = report.comparisons[k]
            g = c.curves["grid"]
            ax.plot(g, c.curves["intra_real"], label="intra real")
            ax.plot(g, c.curves["intra_generated"], label="intra generated")
            ax.plot(g, c.curves["inter"], "--", label="inter-set")
            ax.set_title(f"{k}\noverlap {fmt(c.overlap, 2)}, KL {fmt(c.kl, 3)}", fontsize=8)
            ax.set_xlabel("feature distance of two windows", fontsize=7)
            ax.set_ylabel("density", fontsize=7)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2 / nr, top=1 - 0.18 / nr, hspace=0.8, wspace=0.35)
    return fig
