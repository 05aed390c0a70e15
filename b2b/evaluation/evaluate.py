"""Compare generated music with real music: a table of every metric, figures, MGEval statistics.

:func:`evaluate` computes :func:`b2b.evaluation.metrics.feature_table` for a real and a generated set of
windows ``(n, 17, 64, 72)`` and builds a :class:`Report`: one :class:`Row` per metric and track
(only tracks active in the real data) or track pair, with mean ± sd of both sets, the relative
gap ``(generated - real) / |real|``, and the MGEval overlap and KL divergence of the feature
(:func:`b2b.evaluation.metrics.compare`). With ``out_dir`` it writes

- ``report.md`` (:func:`render_markdown`) and ``report.csv`` (:func:`render_csv`),
- ``mgeval.json``: every row's comparison (intra/inter distance statistics, overlap, KL),
- ``features_real.npz``, ``features_generated.npz``: the per-window features,
- ``figures/distributions_<metric>.png``: histograms of real vs generated per metric and track,
- ``figures/self_similarity.png``: per-beat self-similarity matrices of a few samples of each,
- ``figures/mgeval.png``: the MGEval distance densities of the per-window metrics.

``b2b evaluate`` does the same from the command line, drawing the real windows from a dataset
and the generated ones from a ``.npy`` file or a checkpoint's generator.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from b2b.evaluation import metrics as M
from b2b.files.atomic import (FolderLock, NotARegularFile, atomic_write, check_not_input, claim_output, publish,
                        remove_leftovers, write_text)
from b2b.model.checkpoint import load_generator, resolve_device
from b2b.datasets.catalog import open_dataset
from b2b.sampling.generate import describe_threshold, explicit_threshold, iter_generate, latent_size, resolve_threshold
from b2b.music.geometry import TRACKS, binarize
from b2b.music.plot import STYLE
from b2b.evaluation.twosample import classifier_two_sample_test

#: LPD-17 track names in file order (``b2b.music.data.TRACKS``' names).
TRACK_NAMES: tuple[str, ...] = tuple(t.name for t in TRACKS)

#: Order of the metrics in the report.
METRIC_ORDER: tuple[str, ...] = (
    "note_count", "off_track_notes", "polyphony", "polyphony_pooled", "polyphonic_rate", "polyphonic_rate_all", "empty_bar_rate",
    "used_pitch_classes", "qualified_note_rate", "mean_pitch", "drum_pattern_rate", "pitch_class_entropy",
    "pitch_class_entropy_pooled", "scale_consistency", "tonal_distance", "structure", "held_pitch",
    "nearest_train_overlap",
)  # fmt: skip

#: Metrics the report adds to :data:`b2b.evaluation.metrics.DEFINITIONS` (they depend on the real set).
REPORT_DEFINITIONS: dict[str, str] = {
    "off_track_notes": "share of the window's notes (drum hits included) on tracks inactive in the real data",
    "nearest_train_overlap": ("note overlap (Jaccard index of on cells) with the most similar training window; "
                              "real windows are compared with other songs' windows only"),
}

#: One-line definition of every metric in the report.
DEFINITIONS: dict[str, str] = {**M.DEFINITIONS, **REPORT_DEFINITIONS}

#: A track is *active* when it has a note in at least this share of the real windows.
MIN_ACTIVE = 0.01

#: MGEval's distances are over all pairs of windows (memory and time grow with ``n²``): each
#: comparison uses the first ``MGEVAL_MAX`` windows of each set where the feature is defined
#: (the sets are random draws, so the first ones are a random subset); means and sds use all.
MGEVAL_MAX = 2000

#: Most windows per set ``b2b evaluate`` accepts (``--n``). Windows are generated, read and
#: featurized in chunks of :data:`CHUNK`, so memory holds the per-window features (about 3.5 kB
#: per window and set: 0.7 GB for both sets at the bound), never ``n × 78,336`` cells.
MAX_N = 100_000
#: Windows per chunk when generating, reading and featurizing.
CHUNK = 250

#: Diversity, copying and the two-sample test use at most this many windows of each set, spread
#: evenly over it (pairwise overlaps grow with its square).
DIVERSITY_N = 1000

#: A generated set with at least this share of silent windows (no note at all) is "nearly silent":
#: ``b2b evaluate`` warns.
SILENT_WARNING = 0.5


@dataclass
class Row:
    """One line of the report: a metric on one track, one pair of tracks, or whole windows.

    ``track`` is a track name, ``"A / B"`` for a pair, or ``"all"``. Means and sds are over the
    windows where the metric is defined (``*_n`` of them); ``gap`` is
    ``(generated_mean - real_mean) / |real_mean|`` (0 when both are 0, NaN when only the real
    mean is 0 or either is undefined); ``effect`` is ``(generated_mean - real_mean) / real_sd``,
    the difference in units of the real spread (readable where the real mean is near 0; NaN
    when ``real_sd`` is 0 and the means differ);
    ``overlap`` and ``kl`` are MGEval's (see :class:`b2b.evaluation.metrics.Comparison`).
    """

    metric: str
    track: str
    real_mean: float
    real_sd: float
    real_n: int
    generated_mean: float
    generated_sd: float
    generated_n: int
    gap: float
    effect: float
    overlap: float
    kl: float

    @property
    def key(self) -> str:
        """``metric`` or ``metric[track]``: the row's name in ``mgeval.json`` and figures."""
        return self.metric if self.track == "all" else f"{self.metric}[{self.track}]"


@dataclass
class Report:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    rows : list of Row
    comparisons : dict
        Row key -> :class:`b2b.evaluation.metrics.Comparison` (MGEval statistics and density curves).
    real_features, generated_features : dict
        :func:`b2b.evaluation.metrics.feature_table` of each set.
    n_real, n_generated : int
        Number of windows.
    active_tracks : list of int
        Tracks with notes in at least ``MIN_ACTIVE`` of the real windows.
    meta : dict
        Free-form description (sources, threshold, seed) printed in the Markdown header.
    files : dict
        Name -> path of every file written (empty without ``out_dir``).
    sets : dict
        Statistics of whole sets (:func:`set_statistics`: within-set overlaps, held pitches, the
        classifier two-sample test); empty unless computed.
    """

    rows: list[Row]
    comparisons: dict[str, M.Comparison]
    real_features: dict[str, np.ndarray]
    generated_features: dict[str, np.ndarray]
    n_real: int
    n_generated: int
    active_tracks: list[int]
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    sets: dict[str, Any] = field(default_factory=dict)

    def row(self, metric: str, track: str = "all") -> Row:
        """The row of ``metric`` on ``track`` (a name, ``"A / B"``, or ``"all"``)."""
        for r in self.rows:
            if r.metric == metric and r.track == track:
                return r
        raise KeyError(f"no row for metric {metric!r} and track {track!r}")

    def to_markdown(self) -> str:
        """The report as Markdown (:func:`render_markdown`)."""
        return render_markdown(self)

    def to_csv(self) -> str:
        """The rows as CSV text (:func:`render_csv`)."""
        return render_csv(self.rows)

    def mgeval(self) -> dict[str, dict[str, Any]]:
        """Row key -> MGEval statistics (JSON-ready: NaN as None)."""
        return {k: c.as_dict() for k, c in self.comparisons.items()}

    def as_dict(self) -> dict[str, Any]:
        """Everything but the feature arrays and curves, JSON-ready."""
        return {
            "n_real": self.n_real, "n_generated": self.n_generated,
            "active_tracks": [TRACK_NAMES[k] for k in self.active_tracks],
            "meta": self.meta, "rows": [_json_ready(asdict(r)) for r in self.rows],
            "mgeval": self.mgeval(), "sets": _json_ready(self.sets),
        }


def _json_ready(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------


def _stats(v: np.ndarray) -> tuple[float, float, int]:
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std()), int(v.size)


def _gap(real: float, generated: float) -> float:
    if math.isnan(real) or math.isnan(generated):
        return math.nan
    if real == 0:
        return 0.0 if generated == 0 else math.nan
    return (generated - real) / abs(real)


def _effect(real: float, sd: float, generated: float) -> float:
    if math.isnan(real) or math.isnan(generated):
        return math.nan
    if sd == 0:
        return 0.0 if generated == real else math.nan
    return (generated - real) / sd


def _features(x: Any, threshold: float | None, name: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Features and (when given windows) the boolean windows themselves."""
    if isinstance(x, Mapping):
        missing = set(M.DEFINITIONS) - set(x)
        if missing:
            raise ValueError(f"{name} features lack {sorted(missing)} (expected b2b.evaluation.metrics.feature_table output)")
        return {k: np.asarray(x[k]) for k in M.DEFINITIONS}, None
    rolls = M.as_rolls(x, threshold, name=name)
    if rolls.shape[0] < 1:
        raise ValueError(f"{name} is empty: expected at least one window")
    return M.feature_table(rolls), rolls


def _head(v: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` values of ``v`` that are not NaN."""
    v = np.asarray(v, dtype=float)
    return v[~np.isnan(v)][:k]


def active_tracks(real_features: Mapping[str, np.ndarray], min_active: float = MIN_ACTIVE) -> list[int]:
    """Tracks with a note in at least ``min_active`` of the real windows (from the empty-bar rate)."""
    playing = (np.asarray(real_features["empty_bar_rate"]) < 1.0).mean(axis=0)  # (17,)
    return [k for k in range(M.N_TRACKS) if playing[k] >= min_active and playing[k] > 0]


def _series(
    real: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], active: Sequence[int]
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(metric, track label, real values, generated values) for every row of the report."""
    out = []
    inactive = [k for k in range(M.N_TRACKS) if k not in active]
    for metric in METRIC_ORDER:
        if metric == "off_track_notes":
            if not inactive:
                continue
            a, b = (M.off_track_share(f["note_count"], active) for f in (real, gen))
        elif metric not in real or metric not in gen:  # e.g. nearest_train_overlap, computed by the command
            continue
        else:
            a, b = real[metric], gen[metric]
        if metric in M.PER_TRACK_FEATURES:
            items = [(TRACK_NAMES[k], a[:, k], b[:, k]) for k in active]
        elif metric in M.PAIR_FEATURES:
            pitched = [k for k in active if k != M.DRUM_TRACK]
            items = [(f"{TRACK_NAMES[i]} / {TRACK_NAMES[j]}", a[:, i, j], b[:, i, j])
                     for n, i in enumerate(pitched) for j in pitched[n + 1:]]
        else:
            items = [("all", a, b)]
        for track, va, vb in items:
            if np.isnan(va).all():  # undefined on the real data (e.g. drum metrics without drums)
                continue
            out.append((metric, track, np.asarray(va, dtype=float), np.asarray(vb, dtype=float)))
    return out


def evaluate(
    real: Any,
    generated: Any,
    out_dir: str | os.PathLike | None = None,
    threshold: float | None = None,
    real_threshold: float | None = None,
    min_active: float = MIN_ACTIVE,
    n_examples: int = 4,
    meta: Mapping[str, Any] | None = None,
    figures: bool = True,
    mgeval_max: int = MGEVAL_MAX,
) -> Report:
    """Compare a generated set of windows with a real one.

    Parameters
    ----------
    real, generated : array ``(n, 17, 64, 72)`` or dict
        Windows (bool, 0/1 numbers, or probabilities with a threshold; numpy or torch), or
        precomputed :func:`b2b.evaluation.metrics.feature_table` dicts (to reuse the real set's features
        over several generated sets; no self-similarity figure then).
    out_dir : path, optional
        Where to write the report files and figures (created if needed); nothing is written
        without it.
    threshold : float, optional
        Binarization threshold for ``generated`` probabilities (cells ``>= threshold`` are on).
    real_threshold : float, optional
        The same for ``real`` (real data is normally already 0/1).
    min_active : float
        Per-track rows are kept for tracks with a note in at least this share of real windows.
    n_examples : int
        Self-similarity matrices of this many real and generated windows in the figure.
    meta : dict, optional
        Description of the sets printed in the report's header (e.g. sources, seed).
    figures : bool
        With ``out_dir``, also draw the figures (the slow part: a few seconds).
    mgeval_max : int
        MGEval statistics compare the first ``mgeval_max`` windows of each set where the feature
        is defined (memory grows with its square); means, sds and counts use every window.

    Returns
    -------
    Report
    """
    real_f, real_rolls = _features(real, real_threshold, "real")
    gen_f, gen_rolls = _features(generated, threshold, "generated")
    active = active_tracks(real_f, min_active)
    rows, comparisons = [], {}
    for metric, track, va, vb in _series(real_f, gen_f, active):
        rm, rs, rn = _stats(va)
        gm, gs, gn = _stats(vb)
        c = M.compare(_head(va, mgeval_max), _head(vb, mgeval_max))
        row = Row(metric, track, rm, rs, rn, gm, gs, gn, _gap(rm, gm), _effect(rm, rs, gm), c.overlap, c.kl)
        rows.append(row)
        comparisons[row.key] = c
    report = Report(
        rows=rows, comparisons=comparisons, real_features=real_f, generated_features=gen_f,
        n_real=len(real_f["structure"]), n_generated=len(gen_f["structure"]), active_tracks=active,
        meta=dict(meta or {}),
    )
    if threshold is not None:
        report.meta.setdefault("threshold", threshold)
    if max(report.n_real, report.n_generated) > mgeval_max:
        report.meta.setdefault("MGEval", f"overlap and KL from the first {mgeval_max} windows of each set")
    if out_dir is not None:
        write_report(report, out_dir, real_rolls, gen_rolls, n_examples, figures)
    return report


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _fmt_pm(mean: float, sd: float, digits: int) -> str:
    return "–" if math.isnan(mean) else f"{mean:.{digits}f} ± {_fmt(sd, digits)}"


def _fmt_signed(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:+.2f}"


def _fmt_gap(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:+.1f}%"


def render_markdown(report: Report, digits: int = 3) -> str:
    """The report as Markdown: a header, one table row per :class:`Row`, and the definitions.

    Columns: metric, track, real mean ± sd, generated mean ± sd, numbers of windows where the
    metric is defined (real / generated), relative gap, difference in real sds, MGEval overlap
    (1 = same distribution) and KL divergence (0 = same).
    """
    lines = ["# Real vs generated", ""]
    lines.append(f"- real windows: {report.n_real}; generated windows: {report.n_generated}")
    lines.append("- tracks active in the real data: "
                 + (", ".join(TRACK_NAMES[k] for k in report.active_tracks) or "none"))
    for k, v in report.meta.items():
        lines.append(f"- {k}: {v}")
    lines += ["", "| metric | track | real | generated | n | gap | Δ/sd | overlap | KL |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report.rows:
        lines.append(
            f"| {r.metric} | {r.track} | {_fmt_pm(r.real_mean, r.real_sd, digits)} "
            f"| {_fmt_pm(r.generated_mean, r.generated_sd, digits)} "
            f"| {r.real_n} / {r.generated_n} | {_fmt_gap(r.gap)} | {_fmt_signed(r.effect)} "
            f"| {_fmt(r.overlap, 2)} | {_fmt(r.kl, 3)} |"
        )
    lines += ["", "Mean ± sd over the n (real / generated) windows where the metric is defined; "
              "gap = (generated − real) / |real|; Δ/sd = (generated − real) / sd of real; overlap "
              "and KL (nats) compare the intra-real and inter-set distance densities (MGEval).", ""]
    if report.sets:
        lines += render_sets(report.sets) + [""]
    lines += ["## Definitions", ""]
    used = [m for m in METRIC_ORDER if any(r.metric == m for r in report.rows)]
    lines += [f"- **{m}**: {DEFINITIONS[m]}" for m in used]
    return "\n".join(lines) + "\n"


def render_sets(sets: Mapping[str, Any]) -> list[str]:
    """Markdown lines for :func:`set_statistics`: diversity, held pitches, the two-sample test."""
    s = sets
    lines = ["## Diversity, copying and the two-sample test", "",
             f"On {s['n_real']} real and {s['n_generated']} generated windows.", "",
             "| statistic | real | generated |", "| --- | ---: | ---: |",
             f"| mean note overlap between two windows of the set | {_fmt(s['within_real'])} "
             f"| {_fmt(s['within_generated'])} |",
             f"| windows with a pitch held in >= {M.DRONE_SHARE:.0%} of the steps | {_fmt(s['held_real'])} "
             f"| {_fmt(s['held_generated'])} |",
             f"| the pitch held in most windows, share of windows | {s['drone_pitch_real'] or '–'} "
             f"{_fmt(s['drone_real'])} | {s['drone_pitch_generated'] or '–'} {_fmt(s['drone_generated'])} |"]
    if "nearest_real" in s:
        lines.append(f"| mean overlap with the nearest training window | {_fmt(s['nearest_real'])} "
                     f"| {_fmt(s['nearest_generated'])} |")
        lines.append(f"| windows with an overlap >= 0.9 with a training window | {_fmt(s['copies_real'])} "
                     f"| {_fmt(s['copies_generated'])} |")
    lines += ["", f"Within-set overlap ratio (generated / real): {_fmt(s['within_ratio'], 2)} "
              "(about 1 for a set as varied as the real one, far above 1 for a collapsed generator)."]
    t = s.get("two_sample")
    if t:
        lines += ["", f"Classifier two-sample test: a small classifier trained on {t['n_train']} windows "
                  f"tells held-out real from generated windows with accuracy **{t['accuracy']:.3f}** "
                  f"(95% interval {t['low']:.3f}–{t['high']:.3f}, {t['n_test']} test windows, "
                  f"p = {t['p_value']:.2g} for > 0.5; 0.5 = indistinguishable)."]
    return lines


def _every(n: int, k: int) -> int:
    """The stride that spreads at most ``k`` picks evenly over ``n`` items."""
    return max(1, math.ceil(n / max(1, k)))


class _DatasetWindows:
    """A dataset's windows as a sliceable sequence of bool arrays (for :func:`b2b.evaluation.metrics.nearest_overlap`)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.stack([np.asarray(self.ds.window(i)) for i in range(*s.indices(len(self.ds)))])


def set_statistics(
    real: np.ndarray, generated: np.ndarray, *, reference: Any = None, real_groups: Any = None,
    reference_groups: Any = None, two_sample: bool = True, seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Diversity, copying, held pitches and the classifier two-sample test of two sets of windows.

    Parameters
    ----------
    real, generated : bool arrays ``(n, 17, 64, 72)``, ``(m, 17, 64, 72)``
    reference : sequence of windows, optional
        The training windows (sliceable, e.g. an array): each window's overlap with its
        nearest training window (:func:`b2b.evaluation.metrics.nearest_overlap`) measures copying.
    real_groups, reference_groups : arrays ``(n,)``, ``(len(reference),)``, optional
        Song labels: a real window is compared only with other songs' training windows (it is
        itself a training window, and windows of one song share bars). Also used to split the
        real windows of the two-sample test by song.
    two_sample : bool
        Run :func:`b2b.evaluation.twosample.classifier_two_sample_test` (about a minute on 2 CPU cores).
    seed : int

    Returns
    -------
    sets : dict
        :func:`b2b.evaluation.metrics.diversity`, ``n_real``, ``n_generated``; with ``reference``:
        ``nearest_real``, ``nearest_generated`` (means) and ``copies_real``,
        ``copies_generated`` (share of windows with an overlap >= 0.9); with ``two_sample``:
        ``two_sample`` (:class:`b2b.evaluation.twosample.TwoSampleResult` as a dict).
    nearest_real, nearest_generated : np.ndarray or None
        The per-window nearest-training overlaps.
    """
    sets: dict[str, Any] = {"n_real": len(real), "n_generated": len(generated), **M.diversity(generated, real)}
    near_r = near_g = None
    if reference is not None:
        if (real_groups is None) != (reference_groups is None):
            raise ValueError("real_groups and reference_groups go together")
        groups = None if real_groups is None else (np.asarray(real_groups), np.asarray(reference_groups))
        near_g, _ = M.nearest_overlap(generated, reference)
        if groups is not None:
            near_r, _ = M.nearest_overlap(real, reference, groups=groups)
            sets["nearest_real"] = float(np.nanmean(near_r))
            sets["copies_real"] = float(np.mean(near_r >= 0.9))
        else:
            sets["nearest_real"] = sets["copies_real"] = float("nan")
        sets["nearest_generated"] = float(np.nanmean(near_g))
        sets["copies_generated"] = float(np.mean(near_g >= 0.9))
    if two_sample and min(len(real), len(generated)) >= 4:
        sets["two_sample"] = classifier_two_sample_test(real, generated, groups=real_groups, seed=seed).as_dict()
    return sets, near_r, near_g


CSV_COLUMNS = ("metric", "track", "real_mean", "real_sd", "real_n", "generated_mean",
               "generated_sd", "generated_n", "gap", "effect", "overlap", "kl")


def render_csv(rows: Sequence[Row]) -> str:
    """Rows as CSV text with a header (:data:`CSV_COLUMNS`); undefined numbers are empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        d = asdict(r)
        w.writerow(["" if isinstance(d[c], float) and math.isnan(d[c]) else
                    (f"{d[c]:.6g}" if isinstance(d[c], float) else d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def _grid(n: int, cols: int = 4) -> tuple[int, int]:
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def plot_distributions(report: Report, metric: str) -> Any:
    """Histograms of one metric, real vs generated, one panel per row (track); a Figure."""
    rows = [r for r in report.rows if r.metric == metric]
    if not rows:
        raise ValueError(f"the report has no rows for metric {metric!r}")
    series = {(m, t): (a, b) for m, t, a, b in _series(report.real_features, report.generated_features,
                                                         report.active_tracks)}
    nr, nc = _grid(len(rows))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 2.4 * nr), squeeze=False)
        for ax in axes.flat[len(rows):]:
            ax.axis("off")
        for ax, r in zip(axes.flat, rows):
            a, b = series[(r.metric, r.track)]
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
                ax.set_title(f"{name} {j}: {_fmt(score[j], 2)}", fontsize=8)
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
            ax.set_title(f"{k}\noverlap {_fmt(c.overlap, 2)}, KL {_fmt(c.kl, 3)}", fontsize=8)
            ax.set_xlabel("feature distance of two windows", fontsize=7)
            ax.set_ylabel("density", fontsize=7)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2 / nr, top=1 - 0.18 / nr, hspace=0.8, wspace=0.35)
    return fig


#: The temporaries a killed run of ``b2b evaluate`` leaves in ``--out`` and in its ``figures/``.
_LEFTOVER_RE = re.compile(r"\.(report(\.md|\.csv)?|mgeval\.json|features_(real|generated)\.npz|b2b-old)\.[0-9a-f]{8}\.tmp")
#: The figures a report draws (an earlier report's that a new one does not draw are removed with it).
_FIGURE_RE = re.compile(r"(distributions_\w+|self_similarity|mgeval)\.png")
_FIGURE_LEFTOVER_RE = re.compile(r"\.(distributions_\w+|self_similarity|mgeval)\.png\.[0-9a-f]{8}\.tmp")


def write_report(
    report: Report,
    out_dir: str | os.PathLike,
    real: np.ndarray | None = None,
    generated: np.ndarray | None = None,
    n_examples: int = 4,
    figures: bool = True,
    lock: FolderLock | None = None,
) -> dict[str, str]:
    """Write the report's files into ``out_dir`` (see the module docstring); returns name -> path.

    One writer at a time: ``lock`` is the caller's held lock of ``out_dir`` (from
    :func:`b2b.files.atomic.claim_output`, as ``b2b evaluate`` takes it before computing anything);
    without one this call takes it. Either way the temporaries of killed runs are removed and
    only regular files are written (a symlink, device or FIFO at a name is refused).

    ``real``/``generated`` are the boolean windows for the self-similarity figure (skipped when
    both are None); ``figures=False`` writes the tables, JSON and features only.

    The new files are written into a private ``.report.<random>.tmp`` folder and swapped in as a
    whole (:func:`b2b.files.atomic.publish`, ``report.md`` last); if writing fails or is interrupted
    (full disk, no permission, Ctrl-C) the earlier report's files stay byte for byte as they were
    and an OSError naming the file is raised, so a folder never holds a ``report.md`` next to
    files of another run or half a set of files.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    files: dict[str, str] = {}
    names: list[str] = []  # what this run writes, relative to out (report.md last)
    current = out

    own = lock is None
    if own:
        lock = claim_output(out, f"--out {out}", pattern=_LEFTOVER_RE)  # one writer; a killed one's temporaries go
    # the new set is written beside the old one, in a private folder, and swapped in as a whole
    # (b2b.files.atomic.publish): whatever fails or interrupts the run, the earlier report stays as it was
    stage = out / f".report.{uuid.uuid4().hex[:8]}.tmp"

    def put(name: str, write: Any) -> None:
        nonlocal current
        current = out / name
        write(stage / name)
        names.append(name)
        files[Path(name).name] = str(out / name)

    try:
        fig_dir = out / "figures"
        if fig_dir.is_symlink() or (fig_dir.exists() and not fig_dir.is_dir()):  # never write through a link
            raise NotARegularFile(errno.EEXIST, "exists and is not a real folder; b2b writes only into "
                                  "real folders (remove it or choose another --out)", str(fig_dir))
        stage.mkdir()
        put("report.csv", lambda p: write_text(p, render_csv(report.rows)))
        put("mgeval.json", lambda p: write_text(p, json.dumps(report.as_dict(), indent=2, allow_nan=False) + "\n"))
        for name, feats in (("features_real.npz", report.real_features),
                            ("features_generated.npz", report.generated_features)):
            put(name, lambda p, a=feats: atomic_write(p, lambda f: np.savez_compressed(f, **a)))
        if figures:
            (stage / "figures").mkdir()
            if fig_dir.is_dir():
                remove_leftovers(fig_dir, _FIGURE_LEFTOVER_RE, older_than=lock.since)
            for metric in METRIC_ORDER:
                if any(r.metric == metric for r in report.rows):
                    put(f"figures/distributions_{metric}.png",
                        lambda p, m=metric: _save(plot_distributions(report, m), p))
            if (real is not None or generated is not None) and n_examples > 0:
                put("figures/self_similarity.png",
                    lambda p: _save(plot_self_similarity(real, generated, n_examples), p))
            if any(r.track == "all" and report.comparisons[r.key].curves for r in report.rows):
                put("figures/mgeval.png", lambda p: _save(plot_mgeval(report), p))
        put("report.md", lambda p: write_text(p, render_markdown(report)))
        current = out
        # figures of an earlier report that this one does not draw go with the rest of it
        stale = [f"figures/{p.name}" for p in (fig_dir.iterdir() if fig_dir.is_dir() else ())
                 if _FIGURE_RE.fullmatch(p.name) and f"figures/{p.name}" not in names]
        publish(stage, out, names, remove=stale)
    except OSError as e:
        where = e.filename if current == out and e.filename is not None else current
        raise OSError(e.errno or errno.EIO, f"could not write {where} ({e.strerror or e}); the folder's "
                      "earlier files are untouched") from e
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
        if own:
            lock.release()
    files = {"report.md": files.pop("report.md"), **files}  # the report first, as before
    report.files.update(files)
    return files


# ----------------------------------------------------------------------------------------------
# loading sets for the command
# ----------------------------------------------------------------------------------------------


def _open_samples(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` of windows ``(m, 17, 64, 72)``, memory-mapped (not read), shape and dtype checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file {path} not found")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npy array: {e}") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{path} must hold one array (n, 17, 64, 72), not an archive")
    if x.ndim != 4 or x.shape[1:] != M.SAMPLE_SHAPE:
        raise ValueError(f"{path} must hold an array of shape (n, 17, 64, 72), got {x.shape}")
    if not (x.dtype == bool or np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{path} must hold bools or numbers in [0, 1], got dtype {x.dtype}")
    return x


def _binarize(x: np.ndarray, threshold: float | None, path: Any) -> np.ndarray:
    """Check and binarize a chunk of a samples file (:func:`b2b.music.geometry.binarize`'s rules)."""
    return binarize(x, threshold, name=str(path))


def iter_samples(path: str | os.PathLike, n: int | None = None, threshold: float | None = None,
                 chunk: int = CHUNK) -> tuple[int, Iterator[np.ndarray]]:
    """The first ``n`` windows of a ``.npy`` file, checked and binarized chunk by chunk.

    Returns ``(count, chunks)``: the number of windows and an iterator of bool arrays
    ``(c, 17, 64, 72)``, ``c <= chunk`` (the file is memory-mapped, never read whole).
    """
    x = _open_samples(path)
    m = len(x) if n is None else min(int(n), len(x))

    def chunks() -> Iterator[np.ndarray]:
        for i in range(0, m, chunk):
            yield _binarize(x[i:min(i + chunk, m)], threshold, path)

    return m, chunks()


def load_samples(path: str | os.PathLike, n: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Windows from a ``.npy`` file ``(m, 17, 64, 72)`` of bools or numbers, as booleans.

    Numbers must lie in [0, 1]; values other than 0 and 1 (probabilities) need ``threshold``.
    The first ``n`` windows are kept (all when ``n`` is None or larger than ``m``). Memory:
    ``n × 78,336`` bytes; :func:`iter_samples` reads in chunks.
    """
    m, chunks = iter_samples(path, n, threshold)
    parts = list(chunks)
    return np.concatenate(parts) if parts else np.zeros((0, *M.SAMPLE_SHAPE), bool)


def sample_indices(size: int, n: int, seed: int) -> np.ndarray:
    """``min(n, size)`` distinct indices of ``range(size)`` drawn with ``seed``, sorted."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if size < 1:
        raise ValueError("the real dataset is empty")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=min(n, size), replace=False))


def iter_real(data: str, n: int, seed: int, chunk: int = CHUNK,
              dataset: Any = None) -> tuple[int, Iterator[np.ndarray]]:
    """``min(n, size)`` windows drawn with ``seed`` from a dataset, in chunks (see :func:`load_real`).

    ``dataset`` is ``data`` already opened (:func:`b2b.datasets.catalog.open_dataset`), to open it only once.

    Returns ``(count, chunks)``: chunks are bool arrays ``(c, 17, 64, 72)``, ``c <= chunk``.
    """
    if str(data).endswith(".npy"):
        x = _open_samples(data)
        idx = sample_indices(len(x), n, seed)

        def from_file() -> Iterator[np.ndarray]:
            for i in range(0, len(idx), chunk):
                yield _binarize(x[idx[i:i + chunk]], None, data)

        return len(idx), from_file()
    ds = open_dataset(data) if dataset is None else dataset
    idx = sample_indices(len(ds), n, seed)
    window = getattr(ds, "window", None)  # b2b.datasets.store.WindowDataset: bool (17, 64, 72) per window

    def from_dataset() -> Iterator[np.ndarray]:
        for i in range(0, len(idx), chunk):
            part = idx[i:i + chunk]
            if callable(window):
                x = np.stack([np.asarray(window(int(j))) for j in part])
            else:
                x = np.stack([np.asarray(ds[int(j)]) for j in part])
            yield M.as_rolls(x, None if x.dtype == bool else 0.5, name=f"dataset {data}")

    return len(idx), from_dataset()


def load_real(data: str, n: int, seed: int) -> np.ndarray:
    """``n`` windows drawn with ``seed`` from a dataset (``bach``, ``lpd17``, a path, or a
    ``.npy`` of windows), as booleans ``(n, 17, 64, 72)`` (:func:`iter_real` in one piece)."""
    _, chunks = iter_real(data, n, seed)
    return np.concatenate(list(chunks))


def open_generator(checkpoint: str | os.PathLike, threshold: Any = None,
                   device: str = "cpu") -> tuple[Any, float, str, dict[str, Any]]:
    """Load a checkpoint's generator and settle the threshold.

    ``threshold``: a number wins (source ``"argument"``); ``None`` or ``"auto"`` take the
    threshold stored in the file (``"calibrated"``) or the preset's (``"preset"``), see
    :func:`b2b.model.checkpoint.load_generator`. Returns ``(generator, threshold, source, info)``.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    gen, info = load_generator(str(path), device=device)
    t, source = resolve_threshold(threshold, info)
    return gen, t, source, dict(info)


def iter_generated(gen: Any, latent: int, n: int, seed: int, threshold: float,
                   batch: int = CHUNK) -> Iterator[np.ndarray]:
    """``n`` binarized windows from ``gen``, ``batch`` at a time (bool ``(c, 17, 64, 72)``).

    The book's one sampler, :func:`b2b.sampling.generate.iter_generate`, binarized at ``p >= threshold``:
    the noise ``(n, latent)`` is drawn up front from a ``torch.Generator`` seeded with ``seed``,
    so the windows are those of ``b2b generate --seed`` and do not depend on ``batch``; they are
    made where the generator's parameters are. ``latent`` must be the generator's. ValueError if
    an output is not finite.
    """
    if int(latent) != latent_size(gen):
        raise ValueError(f"latent: the generator takes noise of size {latent_size(gen)}, not {latent}")
    for p in iter_generate(gen, int(n), seed=int(seed), chunk=batch):
        yield (p >= float(threshold)).numpy()


def generate_samples(
    checkpoint: str | os.PathLike, n: int, seed: int, threshold: float | None = None,
    batch: int = CHUNK, device: str = "cpu",
) -> tuple[np.ndarray, float]:
    """``n`` windows from a checkpoint's generator, binarized; returns (windows, threshold used).

    The noise is standard normal drawn from a ``torch.Generator`` seeded with ``seed``; the
    threshold defaults (``None`` or ``"auto"``) to the one stored in the file, else the preset's.
    Memory: ``n × 78,336`` bytes; :func:`iter_generated` works in chunks.
    """
    gen, t, _, info = open_generator(checkpoint, threshold, device)
    return np.concatenate(list(iter_generated(gen, info["latent"], n, seed, t, batch))), t


def features_of_chunks(chunks: Iterable[np.ndarray], examples: int = 4,
                       every: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """:func:`b2b.evaluation.metrics.feature_table` of a set given in chunks, never holding the whole set.

    Parameters
    ----------
    chunks : iterable of bool arrays ``(c, 17, 64, 72)``
    examples : int
        Windows to keep (for the self-similarity figure and the set statistics).
    every : int
        Keep the windows at positions ``0, every, 2 * every, …`` of the set (to spread the kept
        windows over a large set).

    Returns
    -------
    features : dict
        The per-window features of every chunk, concatenated (as ``feature_table`` of the whole set).
    examples : np.ndarray
        The kept windows, bool ``(k, 17, 64, 72)``, ``k <= examples``.
    stats : dict
        ``n`` (windows), ``on`` (cells on), ``silent`` (windows without a note).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    parts: dict[str, list[np.ndarray]] = {}
    kept: list[np.ndarray] = []
    n_kept = 0
    stats = {"n": 0, "on": 0, "silent": 0}
    for x in chunks:
        for k, v in M.feature_table(x).items():
            parts.setdefault(k, []).append(v)
        if n_kept < examples:
            first = (-stats["n"]) % every  # the first position in this chunk that is a multiple of every
            take = x[first::every][:examples - n_kept]
            kept.append(take.copy())
            n_kept += len(take)
        stats["n"] += len(x)
        stats["on"] += int(np.count_nonzero(x))
        stats["silent"] += int((~x.any(axis=(1, 2, 3))).sum())
    if not stats["n"]:
        raise ValueError("no windows to evaluate")
    feats = {k: np.concatenate(v) for k, v in parts.items()}
    ex = np.concatenate(kept) if kept else np.zeros((0, *M.SAMPLE_SHAPE), bool)
    return feats, ex, stats


def training_reference(ds: Any, n: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """The training windows of an opened dataset and song labels, for the nearest-window overlap.

    Returns ``(windows, song of each training window, song of each window drawn by
    :func:`iter_real` with the same n and seed)``, or None for a dataset without songs.
    """
    if not callable(getattr(ds, "window", None)) or not hasattr(ds, "index"):
        return None
    songs = np.asarray(ds.index)[:, 0]
    return _DatasetWindows(ds), songs, songs[sample_indices(len(ds), n, seed)]


# ----------------------------------------------------------------------------------------------
# command
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b evaluate``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="generator checkpoint to sample from")
    source.add_argument("--samples", help=".npy of generated windows (n, 17, 64, 72): bools or probabilities")
    parser.add_argument("--data", default="bach",
                        help="real data: bach, lpd17, a dataset path, or a .npy of windows (default: bach)")
    parser.add_argument("--n", type=int, default=1000, help=f"windows per set, 1 to {MAX_N} (default: 1000)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threshold", default=None,
                        help="binarization threshold for generated probabilities, p >= T is a note; with "
                             "--checkpoint the default 'auto' is the threshold calibrated at export and "
                             "stored in the file, else the preset's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the real windows and of the noise")
    parser.add_argument("--device", default="cpu",
                        help="device for sampling from --checkpoint (cpu, cuda, auto; default: cpu)")
    parser.add_argument("--examples", type=int, default=4, help="self-similarity examples per set")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="write the tables and JSON only")
    parser.add_argument("--no-two-sample", dest="two_sample", action="store_false",
                        help="skip the classifier two-sample test (it trains a small classifier: about a "
                             "minute on 2 CPU cores)")


#: Rows of the short summary ``b2b evaluate`` prints: (metric, track, label, digits).
SUMMARY_ROWS: tuple[tuple[str, str, str, int], ...] = (
    ("polyphony_pooled", "all", "pitches per sounding step", 2),
    ("pitch_class_entropy_pooled", "all", "pitch-class entropy (bits)", 2),
    ("scale_consistency", "all", "scale consistency", 3),
    ("structure", "all", "structure score", 3),
)


def summary(report: Report, real_stats: Mapping[str, int], gen_stats: Mapping[str, int]) -> str:
    """A few headline numbers, real vs generated, as aligned text lines (what ``b2b evaluate`` prints)."""
    cells = int(np.prod(M.SAMPLE_SHAPE))
    lines = [f"{'':30s} {'real':>12s} {'generated':>12s}",
             f"{'windows':30s} {real_stats['n']:>12d} {gen_stats['n']:>12d}",
             f"{'cells on (note density)':30s} {real_stats['on'] / (real_stats['n'] * cells):>12.3%} "
             f"{gen_stats['on'] / (gen_stats['n'] * cells):>12.3%}",
             f"{'silent windows':30s} {real_stats['silent']:>12d} {gen_stats['silent']:>12d}"]
    per_window = [report.real_features["note_count"].sum(axis=1), report.generated_features["note_count"].sum(axis=1)]
    lines.append(f"{'notes per window':30s} {per_window[0].mean():>12.1f} {per_window[1].mean():>12.1f}")
    for metric, track, label, digits in SUMMARY_ROWS:
        try:
            r = report.row(metric, track)
        except KeyError:
            continue
        lines.append(f"{label:30s} {_fmt(r.real_mean, digits):>12s} {_fmt(r.generated_mean, digits):>12s}")
    s = report.sets
    if s:
        lines.append(f"{'overlap within the set':30s} {_fmt(s['within_real']):>12s} {_fmt(s['within_generated']):>12s}"
                     f"   (ratio {_fmt(s['within_ratio'], 2)}; near 1 = as varied as the real set)")
        lines.append(f"{'windows with a held pitch':30s} {_fmt(s['held_real']):>12s} {_fmt(s['held_generated']):>12s}")
        if "nearest_generated" in s:
            lines.append(f"{'overlap with nearest training':30s} {_fmt(s['nearest_real']):>12s} "
                         f"{_fmt(s['nearest_generated']):>12s}")
        if s.get("two_sample"):
            t = s["two_sample"]
            lines.append(f"{'two-sample test accuracy':30s} {'':>12s} {t['accuracy']:>12.3f}"
                         f"   (95% {t['low']:.3f}-{t['high']:.3f}; 0.5 = indistinguishable)")
    overlaps = [r.overlap for r in report.rows if not math.isnan(r.overlap)]
    if overlaps:
        lines.append(f"{'MGEval overlap, mean of rows':30s} {'':>12s} {float(np.mean(overlaps)):>12.2f}"
                     f"   (1 = same distribution; {len(overlaps)} of {len(report.rows)} rows)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``b2b evaluate``: write the report into ``--out`` and print a short summary."""
    resolve_device(args.device)  # an unusable --device is one line before any work
    if not 1 <= args.n <= MAX_N:
        raise ValueError(f"--n must be >= 1 and <= {MAX_N} (windows per set; the features of both sets "
                         f"are kept in memory), got {args.n}")
    explicit = explicit_threshold(args.threshold)  # before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    for name in ("report.md", "report.csv", "mgeval.json", "features_real.npz", "features_generated.npz"):
        check_not_input(out / name, [args.samples, args.data, args.checkpoint], "--out")  # never replace what is read
    existed = out.exists()
    try:  # a second evaluate into the same folder is refused now, not after the work
        lock = claim_output(out, f"--out {out}", pattern=_LEFTOVER_RE)
    except OSError as e:
        raise ValueError(f"--out {out}: {e.strerror or e}") from None
    try:
        return _run(args, out, explicit, lock)
    finally:
        lock.release()
        if not existed:  # a run refused before writing leaves no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()


def _run(args: argparse.Namespace, out: Path, explicit: float | None, lock: FolderLock) -> int:
    """The body of :func:`run`, holding the lock of ``--out``."""
    meta: dict[str, Any] = {"real": args.data, "seed": args.seed}
    info: dict[str, Any] = {}
    if args.samples:
        n_gen, gen_chunks = iter_samples(args.samples, args.n, explicit)
        meta["generated"] = args.samples
        if explicit is not None:
            meta["threshold"] = explicit
            meta["threshold_source"] = "--threshold"
        described = None if explicit is None else f"{explicit:g} (--threshold)"
    else:
        gen, threshold, source, info = open_generator(args.checkpoint, explicit, device=args.device)
        gen_chunks = iter_generated(gen, info["latent"], args.n, args.seed, threshold)
        n_gen = args.n
        meta["generated"] = f"{args.checkpoint} ({args.n} samples)"
        meta["threshold"] = threshold
        meta["threshold_source"] = {"argument": "--threshold"}.get(source, source)
        described = describe_threshold(threshold, source, info)
        if source == "calibrated" and info.get("calibration"):
            cal = info["calibration"]
            meta["threshold_calibration"] = (f"{cal.get('rule')}; density target {cal.get('density_target')} "
                                             f"from {cal.get('data')}")
    if str(args.data).endswith(".npy"):  # windows without songs: no training reference
        ds = None
    else:
        ds = open_dataset(args.data)
    n_real, real_chunks = iter_real(args.data, args.n, args.seed, dataset=ds)
    keep = max(args.examples, DIVERSITY_N)
    real_f, real_kept, real_stats = features_of_chunks(real_chunks, keep, _every(n_real, DIVERSITY_N))
    gen_f, gen_kept, gen_stats = features_of_chunks(gen_chunks, keep, _every(n_gen, DIVERSITY_N))
    real_ex, gen_ex = real_kept[:args.examples], gen_kept[:args.examples]
    ref = None if ds is None else training_reference(ds, args.n, args.seed)
    sets, near_r, near_g = set_statistics(
        real_kept, gen_kept, reference=None if ref is None else ref[0],
        reference_groups=None if ref is None else ref[1],
        real_groups=None if ref is None else ref[2][::_every(n_real, DIVERSITY_N)][:len(real_kept)],
        two_sample=args.two_sample, seed=args.seed)
    if near_r is not None and near_g is not None:  # per-window rows: NaN outside the kept windows
        for feats, near, stats in ((real_f, near_r, real_stats), (gen_f, near_g, gen_stats)):
            col = np.full(stats["n"], np.nan)
            col[::_every(stats["n"], DIVERSITY_N)][:len(near)] = near
            feats["nearest_train_overlap"] = col
    cells = int(np.prod(M.SAMPLE_SHAPE))
    meta["cells on (real / generated)"] = (f"{real_stats['on'] / (real_stats['n'] * cells):.4%} / "
                                           f"{gen_stats['on'] / (gen_stats['n'] * cells):.4%}")
    meta["silent windows (real / generated)"] = f"{real_stats['silent']} / {gen_stats['silent']}"
    report = evaluate(real_f, gen_f, meta=meta)
    report.sets = sets
    try:
        write_report(report, out, real_ex if len(real_ex) else None, gen_ex if len(gen_ex) else None,
                     args.examples, args.figures, lock=lock)
    except OSError as e:
        raise ValueError(f"--out {out}: {e.strerror or e}") from None
    head = f"b2b evaluate: {report.n_real} real windows ({args.data}) vs {report.n_generated} generated"
    print(head + (f" at threshold {described}" if described else "") + ":")
    print(summary(report, real_stats, gen_stats))
    extra = "figures, " if args.figures else ""
    print(f"full report ({len(report.rows)} rows, {extra}MGEval statistics): {out / 'report.md'}")
    if gen_stats["silent"] >= SILENT_WARNING * gen_stats["n"]:
        share = gen_stats["silent"] / gen_stats["n"]
        where = f"at threshold {described}" if described else "in --samples"
        if args.samples:
            hint = "binarize the probabilities at a lower --threshold"
        elif meta["threshold_source"] == "calibrated":
            hint = "the generator itself plays little: try a lower --threshold"
        elif info.get("threshold_source") == "calibrated":
            hint = (f"leave out --threshold (auto) to use the calibrated threshold {info['threshold']:.4g} "
                    f"stored in the file")
        else:
            hint = ("export the generator with a calibrated threshold (b2b export --checkpoint CKPT --data DATA "
                    "--out FILE), which --threshold auto then uses")
        print(f"b2b evaluate: warning: {gen_stats['silent']} of {gen_stats['n']} generated windows "
              f"({share:.0%}) are silent {where}; {hint}", file=sys.stderr)
    return 0


__all__ = [
    "TRACK_NAMES", "METRIC_ORDER", "REPORT_DEFINITIONS", "DEFINITIONS", "MIN_ACTIVE", "MGEVAL_MAX", "MAX_N",
    "CHUNK", "DIVERSITY_N", "SILENT_WARNING", "CSV_COLUMNS", "SUMMARY_ROWS", "Row", "Report", "evaluate",
    "active_tracks", "render_markdown", "render_csv", "plot_distributions", "plot_self_similarity",
    "plot_mgeval", "write_report", "iter_samples", "load_samples", "sample_indices", "iter_real", "load_real",
    "open_generator", "iter_generated", "generate_samples", "features_of_chunks", "training_reference",
    "set_statistics", "render_sets", "summary",
    "add_arguments", "run",
]
