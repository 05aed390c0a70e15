"""The real-versus-generated report, built: rows of every metric, whole-set statistics, texts.

:func:`build_report` computes :func:`b2b.evaluation.metrics.feature_table` for a real and a generated
set of windows ``(n, 17, 64, 72)`` (or takes the feature tables) and returns a :class:`Report`: one
:class:`Row` per metric and track (only tracks active in the real data) or track pair, with mean ±
sd of both sets, the relative gap ``(generated - real) / |real|``, the difference in real sds, and
the MGEval overlap and KL divergence of the feature (:func:`b2b.evaluation.metrics.compare`).
:func:`set_statistics` adds the statistics of whole sets (diversity, copying, held pitches, the
classifier two-sample test). The texts are pure functions of the report: :func:`render_markdown`
(``report.md``), :func:`render_csv` (``report.csv``), :meth:`Report.as_dict` (``mgeval.json``) and
:func:`summary` (what ``b2b evaluate`` prints).

Nothing here writes a file: :mod:`b2b.evaluation.evaluate` writes the report's files and figures
and is the ``b2b evaluate`` command.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from b2b.evaluation import metrics as M
from b2b.evaluation.twosample import classifier_two_sample_test
from b2b.music.geometry import TRACKS

__all__ = [
    "TRACK_NAMES", "METRIC_ORDER", "REPORT_DEFINITIONS", "DEFINITIONS", "MIN_ACTIVE", "MGEVAL_MAX",
    "CSV_COLUMNS", "SUMMARY_ROWS", "Row", "Report", "features", "active_tracks", "series", "build_report", "fmt",
    "render_markdown", "render_sets", "stride", "set_statistics", "render_csv", "summary",
]

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
    """Result of :func:`build_report`.

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
        Name -> path of every file written (:func:`b2b.evaluation.evaluate.write_report`; empty until then).
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


def features(x: Any, threshold: float | None, name: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The feature table of a set and, when given windows, the boolean windows themselves.

    ``x`` is windows ``(n, 17, 64, 72)`` (bool, 0/1 numbers, or probabilities with ``threshold``)
    or a :func:`b2b.evaluation.metrics.feature_table` dict (returned with None). ValueError
    names ``name`` for a dict missing a feature or an empty set.
    """
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


def series(
    real: Mapping[str, np.ndarray], gen: Mapping[str, np.ndarray], active: Sequence[int]
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(metric, track label, real values (n,), generated values (m,))`` for every row of the
    report, from the two feature tables and the active tracks (NaN where undefined)."""
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


def build_report(
    real: Any,
    generated: Any,
    threshold: float | None = None,
    real_threshold: float | None = None,
    min_active: float = MIN_ACTIVE,
    meta: Mapping[str, Any] | None = None,
    mgeval_max: int = MGEVAL_MAX,
) -> Report:
    """The report comparing a generated set of windows with a real one (nothing is written).

    Parameters
    ----------
    real, generated : array ``(n, 17, 64, 72)`` or dict
        Windows (bool, 0/1 numbers, or probabilities with a threshold; numpy or torch), or
        precomputed :func:`b2b.evaluation.metrics.feature_table` dicts (to reuse the real set's
        features over several generated sets).
    threshold : float, optional
        Binarization threshold for ``generated`` probabilities (cells ``>= threshold`` are on);
        recorded in ``meta``.
    real_threshold : float, optional
        The same for ``real`` (real data is normally already 0/1).
    min_active : float
        Per-track rows are kept for tracks with a note in at least this share of real windows.
    meta : dict, optional
        Description of the sets printed in the report's header (e.g. sources, seed).
    mgeval_max : int
        MGEval statistics compare the first ``mgeval_max`` windows of each set where the feature
        is defined (memory grows with its square); means, sds and counts use every window.

    Returns
    -------
    Report
        ``sets`` empty (:func:`set_statistics` computes them) and no files.
    """
    real_f, _ = features(real, real_threshold, "real")
    gen_f, _ = features(generated, threshold, "generated")
    active = active_tracks(real_f, min_active)
    rows, comparisons = [], {}
    for metric, track, va, vb in series(real_f, gen_f, active):
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
    return report


# ----------------------------------------------------------------------------------------------
# whole sets and the texts
# ----------------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, or "–" when it is undefined (None or NaN)."""
    return "–" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _fmt_pm(mean: float, sd: float, digits: int) -> str:
    return "–" if math.isnan(mean) else f"{mean:.{digits}f} ± {fmt(sd, digits)}"


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
            f"| {fmt(r.overlap, 2)} | {fmt(r.kl, 3)} |"
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
             f"| mean note overlap between two windows of the set | {fmt(s['within_real'])} "
             f"| {fmt(s['within_generated'])} |",
             f"| windows with a pitch held in >= {M.DRONE_SHARE:.0%} of the steps | {fmt(s['held_real'])} "
             f"| {fmt(s['held_generated'])} |",
             f"| the pitch held in most windows, share of windows | {s['drone_pitch_real'] or '–'} "
             f"{fmt(s['drone_real'])} | {s['drone_pitch_generated'] or '–'} {fmt(s['drone_generated'])} |"]
    if "nearest_real" in s:
        lines.append(f"| mean overlap with the nearest training window | {fmt(s['nearest_real'])} "
                     f"| {fmt(s['nearest_generated'])} |")
        lines.append(f"| windows with an overlap >= 0.9 with a training window | {fmt(s['copies_real'])} "
                     f"| {fmt(s['copies_generated'])} |")
    lines += ["", f"Within-set overlap ratio (generated / real): {fmt(s['within_ratio'], 2)} "
              "(about 1 for a set as varied as the real one, far above 1 for a collapsed generator)."]
    t = s.get("two_sample")
    if t:
        lines += ["", f"Classifier two-sample test: a small classifier trained on {t['n_train']} windows "
                  f"tells held-out real from generated windows with accuracy **{t['accuracy']:.3f}** "
                  f"(95% interval {t['low']:.3f}–{t['high']:.3f}, {t['n_test']} test windows, "
                  f"p = {t['p_value']:.2g} for > 0.5; 0.5 = indistinguishable)."]
    return lines


def stride(n: int, k: int) -> int:
    """The stride that spreads at most ``k`` picks evenly over ``n`` items."""
    return max(1, math.ceil(n / max(1, k)))


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
        lines.append(f"{label:30s} {fmt(r.real_mean, digits):>12s} {fmt(r.generated_mean, digits):>12s}")
    s = report.sets
    if s:
        lines.append(f"{'overlap within the set':30s} {fmt(s['within_real']):>12s} {fmt(s['within_generated']):>12s}"
                     f"   (ratio {fmt(s['within_ratio'], 2)}; near 1 = as varied as the real set)")
        lines.append(f"{'windows with a held pitch':30s} {fmt(s['held_real']):>12s} {fmt(s['held_generated']):>12s}")
        if "nearest_generated" in s:
            lines.append(f"{'overlap with nearest training':30s} {fmt(s['nearest_real']):>12s} "
                         f"{fmt(s['nearest_generated']):>12s}")
        if s.get("two_sample"):
            t = s["two_sample"]
            lines.append(f"{'two-sample test accuracy':30s} {'':>12s} {t['accuracy']:>12.3f}"
                         f"   (95% {t['low']:.3f}-{t['high']:.3f}; 0.5 = indistinguishable)")
    overlaps = [r.overlap for r in report.rows if not math.isnan(r.overlap)]
    if overlaps:
        lines.append(f"{'MGEval overlap, mean of rows':30s} {'':>12s} {float(np.mean(overlaps)):>12.2f}"
                     f"   (1 = same distribution; {len(overlaps)} of {len(report.rows)} rows)")
    return "\n".join(lines)
