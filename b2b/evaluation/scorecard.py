"""A scorecard of generated music against the real data: properties a listener hears, each with its target.

It reads the report that :func:`b2b.evaluation.evaluate.evaluate` writes (``mgeval.json``: per-metric rows
and the set statistics) and checks the targets this project set for a generator that sounds like
its data (issue "Music within a CPU budget", its "Targets"). The main track is the one with the
most real notes (Ensemble for the Bach chorales: all four voices).

A *property* (note length, key, density, instrumentation, diversity, the two-sample test) is
checked by one or more *lines*, and it is met when all of its lines are: the scorecard counts
properties, not lines, so a property checked on several tracks weighs no more than one checked
once. Tracks that the real data uses rarely (every active track but the main one: Organ, Strings
and Brass in the chorales, under one note per window) are judged by their *presence*, the share
of windows in which they sound, not by their note counts, which a track silent in most windows
meets or misses wholesale.

The targets are written once, in :data:`TARGETS` (each line's check and its text, e.g. "real ± 25%",
come from there); :func:`table` renders the scorecard with them, as the Experiments chapter shows
it, with the properties met and the verdict of the rule that picks a checkpoint (:func:`rank_key`:
varied first, then the two-sample test, then the properties met) rather than "the last one".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TARGETS", "PROPERTIES", "Line", "main_track", "presence", "scorecard", "properties", "passed", "rank_key",
           "verdict", "table", "nearer", "compare", "WINDOW_STATISTICS", "window_values", "typical"]


#: The targets, one number each: how far a generated statistic may lie from the real one (relative),
#: or the bound it must meet.
TARGETS: dict[str, float] = {
    "note length": 0.86,        # share of notes an eighth or longer, main track: at least (0.90 of real)
    "pitch classes": 0.15,      # pitch classes per bar, main track: real ± 15 %
    "scale consistency": 0.05,  # whole window: real ± 5 %
    "density": 0.25,            # notes per window, main track: real ± 25 %
    "presence": 2,              # share of windows where a rarely used track sounds: at most 2 × real
    "off-track notes": 2,       # share of notes on tracks the real data leaves empty: at most 2 × real
    "overlap": 1.5,             # within-set overlap, generated / real: at most
    "drone": 2,                 # windows holding the most common held pitch: at most 2 × real
    "two-sample": 0.95,         # classifier accuracy, upper end of its 95 % interval: below
}

#: The properties, in the scorecard's order.
PROPERTIES: tuple[str, ...] = ("note length", "key", "density", "instrumentation", "diversity", "two-sample test")


@dataclass(frozen=True)
class Line:
    """One line of the scorecard: ``value`` (generated) against ``real`` and the ``target``."""

    prop: str
    statistic: str
    value: float | None
    real: float | None
    target: str
    ok: bool


def _row(report: Mapping[str, Any], metric: str, track: str) -> dict[str, Any] | None:
    return next((r for r in report["rows"] if r["metric"] == metric and r["track"] == track), None)


def main_track(report: Mapping[str, Any]) -> str:
    """The track with the most real notes per window (``"all"`` if the report has none)."""
    counts = {r["track"]: r.get("real_mean") or 0.0 for r in report["rows"] if r["metric"] == "note_count"}
    return max(counts, key=counts.get) if counts else "all"


def presence(report: Mapping[str, Any], track: str) -> tuple[float | None, float | None]:
    """The share of windows in which ``track`` sounds, ``(generated, real)``.

    Read from the report's per-track ``polyphony`` row: polyphony is defined exactly in the
    windows where the track has a cell on (drums included), so its ``*_n`` over the set's size
    (``n_generated``, ``n_real``) is the share. ``(None, None)`` when the report has no such row
    (a track the real data leaves empty has none).
    """
    r = _row(report, "polyphony", track)
    if r is None:
        return None, None
    return r["generated_n"] / report["n_generated"], r["real_n"] / report["n_real"]


def _within(value: float | None, real: float | None, rel: float) -> bool:
    return value is not None and real is not None and abs(value - real) <= rel * abs(real) + 1e-12  # float slack


def _at_most(value: float | None, bound: float | None) -> bool:
    return value is not None and bound is not None and value <= bound + 1e-12


def scorecard(report: Mapping[str, Any]) -> list[Line]:
    """The scorecard of one evaluation report (``mgeval.json`` as a dict), against :data:`TARGETS`.

    A statistic the report cannot define (e.g. note length when no generated window has a note
    on the main track) fails its target. KeyError if the report lacks ``rows`` or ``sets``.
    """
    main, sets, T = main_track(report), report["sets"], TARGETS
    lines = []

    qn = _row(report, "qualified_note_rate", main) or {}
    v = qn.get("generated_mean")
    lines.append(Line("note length", f"notes an eighth or longer ({main})", v, qn.get("real_mean"),
                      f"≥ {T['note length']:.2f}", v is not None and v >= T["note length"] - 1e-12))
    for metric, track, label, rel in (("used_pitch_classes", main, f"pitch classes per bar ({main})", T["pitch classes"]),
                                      ("scale_consistency", "all", "scale consistency", T["scale consistency"])):
        r = _row(report, metric, track) or {}
        v, real = r.get("generated_mean"), r.get("real_mean")
        lines.append(Line("key", label, v, real, f"real ± {rel:.0%}", _within(v, real, rel)))
    r = _row(report, "note_count", main) or {}
    v, real = r.get("generated_mean"), r.get("real_mean")
    lines.append(Line("density", f"notes per window ({main})", v, real, f"real ± {T['density']:.0%}",
                      _within(v, real, T["density"])))
    for track in report.get("active_tracks", []):
        if track == main:
            continue
        v, real = presence(report, track)
        lines.append(Line("instrumentation", f"windows where {track} sounds", v, real, f"≤ {T['presence']} × real",
                          _at_most(v, None if real is None else T["presence"] * real)))
    r = _row(report, "off_track_notes", "all") or {}
    v, real = r.get("generated_mean"), r.get("real_mean")
    lines.append(Line("instrumentation", "share of notes on tracks the real data leaves empty", v, real,
                      f"≤ {T['off-track notes']} × real", _at_most(v, None if real is None else T["off-track notes"] * real)))
    v = sets.get("within_ratio")
    lines.append(Line("diversity", "within-set overlap, generated / real", v, 1.0, f"≤ {T['overlap']}",
                      _at_most(v, T["overlap"])))
    v, real = sets.get("drone_generated"), sets.get("drone_real")
    lines.append(Line("diversity", "windows holding the most common held pitch", v, real, f"≤ {T['drone']} × real",
                      _at_most(v, None if real is None else T["drone"] * real)))
    ts = sets.get("two_sample") or {}
    v = ts.get("high")
    lines.append(Line("two-sample test", "classifier accuracy, upper end of the 95% interval", v, 0.5,
                      f"< {T['two-sample']}", v is not None and v < T["two-sample"]))
    return lines


def properties(lines: list[Line]) -> dict[str, bool]:
    """Whether each property of a scorecard is met (all of its lines are), in the order of :data:`PROPERTIES`."""
    out: dict[str, bool] = {}
    for line in lines:
        out[line.prop] = out.get(line.prop, True) and line.ok
    return {p: out[p] for p in sorted(out, key=lambda p: PROPERTIES.index(p) if p in PROPERTIES else len(PROPERTIES))}


def passed(report: Mapping[str, Any]) -> int:
    """How many properties of :func:`scorecard` are met (a property is met when all its lines are)."""
    return sum(properties(scorecard(report)).values())


def rank_key(report: Mapping[str, Any]) -> tuple[bool, float, int]:
    """Sort key for choosing among checkpoints (smallest first): a checkpoint whose windows are
    as varied as real ones (the diversity property met) before any that is not, then the lowest
    two-sample accuracy (the classifier finds it hardest to tell from the real data), then the
    most properties met. Counting properties first would prefer a collapsed checkpoint that
    happens to leave the rare tracks silent (seen in ``data/ablations/screen``)."""
    met = properties(scorecard(report))
    acc = (report["sets"].get("two_sample") or {}).get("accuracy")
    return (not met.get("diversity", False), 1.0 if acc is None else float(acc), -sum(met.values()))


def verdict(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The place :func:`rank_key` gives each report among ``reports`` (1 = the one it picks;
    equal keys share a place), by name, in the order of ``reports``."""
    keys = {name: rank_key(r) for name, r in reports.items()}
    return {name: 1 + sum(other < key for other in keys.values()) for name, key in keys.items()}


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _cell(line: Line) -> str:
    return "–" if line.value is None else f"{line.value:.3g} {'✓' if line.ok else '✗'}"


def table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of the scorecards of several reports: one row per line, one column per
    report (its value, ✓ where the target is met), beside the real value and the target.

    ``reports`` maps a column name to a report (``mgeval.json`` as a dict); the real values are
    the first report's (compare reports of the same real set). The last two rows count the
    properties met and give the ranking rule's verdict (:func:`verdict`: "1st" is the report
    :func:`rank_key` picks, "alike" marks one whose windows are not as varied as real ones).
    """
    cards = {name: scorecard(r) for name, r in reports.items()}
    first = next(iter(cards.values()))
    if any([(line.prop, line.statistic) for line in card] != [(line.prop, line.statistic) for line in first]
           for card in cards.values()):
        raise ValueError("reports: their scorecards have different lines (a different main or active track)")
    rows = ["| property: statistic | target | real | " + " | ".join(cards) + " |",
            "| --- | --- | ---: |" + " ---: |" * len(cards)]
    for i, line in enumerate(first):
        real = "–" if line.real is None else f"{line.real:.3g}"
        rows.append(f"| **{line.prop}**: {line.statistic} | {line.target} | {real} | "
                    + " | ".join(_cell(card[i]) for card in cards.values()) + " |")
    met = {name: properties(card) for name, card in cards.items()}
    rows.append("| **properties met** | all lines met | | " + " | ".join(f"**{sum(m.values())} of {len(m)}**"
                                                              for m in met.values()) + " |")
    place = verdict(reports)
    rows.append("| **the ranking rule's verdict** (`rank_key`: varied, then two-sample accuracy, then properties) | | | "
                + " | ".join(f"**{_ordinal(place[name])}**" + ("" if met[name].get("diversity") else " (alike)")
                             for name in cards) + " |")
    return "\n".join(rows)


def nearer(value: float | None, other: float | None, real: float | None) -> bool:
    """Whether ``value`` lies strictly nearer ``real`` than ``other`` does. False when ``value`` or
    ``real`` is undefined (None or NaN); a defined ``value`` is nearer than an undefined ``other``."""
    def defined(v: float | None) -> bool:
        return v is not None and not np.isnan(v)

    if not (defined(value) and defined(real)):
        return False
    return not defined(other) or abs(value - real) < abs(other - real)


def compare(card: list[Line], other: list[Line]) -> tuple[list[str], list[str]]:
    """The statistics on which ``card`` is nearer the real value than ``other`` (:func:`nearer`),
    and those on which it is further: two scorecards of the same lines (ValueError otherwise)."""
    if [(a.prop, a.statistic) for a in card] != [(b.prop, b.statistic) for b in other]:
        raise ValueError("card, other: the scorecards have different lines")
    return ([a.statistic for a, b in zip(card, other) if nearer(a.value, b.value, a.real)],
            [a.statistic for a, b in zip(card, other) if nearer(b.value, a.value, a.real)])


#: What :func:`window_values` measures per window, by property (the main track's, except instrumentation).
WINDOW_STATISTICS = {"note length": "share of notes an eighth or longer", "key": "pitch classes per bar",
                     "density": "notes", "instrumentation": "tracks that sound besides the main one"}


def window_values(features: Mapping[str, np.ndarray], main: int) -> dict[str, np.ndarray]:
    """Per window, the statistic behind each scorecard property that one window can show, ``(n,)``
    each (NaN where the window does not define it): to pick a window to listen to per property.

    ``features`` is a :func:`b2b.evaluation.metrics.feature_table` of the windows (``Report.real_features`` /
    ``generated_features``), ``main`` the main track's index. Diversity and the two-sample test
    are properties of a set, not of a window.
    """
    notes = np.asarray(features["note_count"], dtype=float)
    others = np.delete(notes, main, axis=1)
    return {"note length": np.asarray(features["qualified_note_rate"])[:, main],
            "key": np.asarray(features["used_pitch_classes"])[:, main],
            "density": notes[:, main],
            "instrumentation": (others > 0).sum(axis=1).astype(float)}


def typical(values: np.ndarray) -> int:
    """Index of the window whose value is nearest the median of the defined values (the first of
    equals): a window that shows the set as it usually is. ValueError if no value is defined."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        raise ValueError("values: no window defines this statistic")
    return int(np.nanargmin(np.where(np.isfinite(v), np.abs(v - np.nanmedian(v)), np.nan)))
