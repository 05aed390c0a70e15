"""A scorecard of generated music against the real data: one line per property, each with a target.

It reads the report that :func:`b2b.evaluation.evaluate.evaluate` writes (``mgeval.json``: per-metric rows
and the set statistics) and checks the targets this project set for a generator that sounds like
its data (issue "From varied to musical"). The main track is the one with the most real notes
(Ensemble for the Bach chorales: all four voices).

The targets are written once, in :data:`TARGETS` (each line's check and its text, e.g. "real ± 25%",
come from there); :func:`table` renders the scorecard with them, as chapter 7 shows it.

The register target is this book's own (the issue set none: a whole tone is a shift a listener
hears as the same voice range); the others are the issue's. Used to pick a checkpoint by a fixed rule (:func:`rank_key`: varied first, then the two-sample
test, then the targets) rather than "the last one".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from b2b.evaluation.metrics import off_track_share

__all__ = ["TARGETS", "Line", "main_track", "scorecard", "passed", "rank_key", "table", "WINDOW_STATISTICS", "window_values",
           "typical"]


#: The targets, one number each: how far a generated statistic may lie from the real one (``register``
#: in semitones, ``density`` and the two ``key`` lines relative), or the bound it must meet.
TARGETS: dict[str, float] = {
    "register": 2,            # mean pitch of the sounding notes, main track: real ± 2 semitones
    "note length": 0.80,      # share of notes an eighth or longer, main track: at least
    "density": 0.25,          # notes per window, each track the real data uses: real ± 25 %
    "instrumentation": 2,     # share of notes on tracks the real data leaves empty: at most 2 × real
    "pitch classes": 0.15,    # pitch classes per bar, main track: real ± 15 %
    "scale consistency": 0.05,  # whole window: real ± 5 %
    "overlap": 1.5,           # within-set overlap, generated / real: at most
    "drone": 2,               # windows holding the most common held pitch: at most 2 × real
    "two-sample": 0.95,       # classifier accuracy, upper end of its 95 % interval: below
}


@dataclass(frozen=True)
class Line:
    """One line of the scorecard: ``value`` (generated) against ``real`` and the ``target``."""

    prop: str
    statistic: str
    value: float | None
    real: float | None
    target: str
    ok: bool


def _row(report: dict[str, Any], metric: str, track: str) -> dict[str, Any] | None:
    return next((r for r in report["rows"] if r["metric"] == metric and r["track"] == track), None)


def main_track(report: dict[str, Any]) -> str:
    """The track with the most real notes per window (``"all"`` if the report has none)."""
    counts = {r["track"]: r.get("real_mean") or 0.0 for r in report["rows"] if r["metric"] == "note_count"}
    return max(counts, key=counts.get) if counts else "all"


def _within(value: float | None, real: float | None, rel: float) -> bool:
    return value is not None and real is not None and abs(value - real) <= rel * abs(real) + 1e-12  # float slack


def scorecard(report: dict[str, Any]) -> list[Line]:
    """The scorecard of one evaluation report (``mgeval.json`` as a dict), against :data:`TARGETS`.

    A statistic the report cannot define (e.g. note length when no generated window has a note
    on the main track) fails its target. KeyError if the report lacks ``rows`` or ``sets``.
    """
    main, sets = main_track(report), report["sets"]
    T = TARGETS
    lines = []

    r = _row(report, "mean_pitch", main) or {}
    v, real = r.get("generated_mean"), r.get("real_mean")
    lines.append(Line("register", f"mean pitch in MIDI numbers ({main})", v, real, f"real ± {T['register']} semitones",
                      v is not None and real is not None and abs(v - real) <= T["register"] + 1e-12))

    qn = _row(report, "qualified_note_rate", main) or {}
    v = qn.get("generated_mean")
    lines.append(Line("note length", f"notes an eighth or longer ({main})", v, qn.get("real_mean"), f"≥ {T['note length']:.2f}",
                      v is not None and v >= T["note length"]))
    for track in report.get("active_tracks", []):
        r = _row(report, "note_count", track) or {}
        v, real = r.get("generated_mean"), r.get("real_mean")
        lines.append(Line("density", f"notes per window ({track})", v, real, f"real ± {T['density']:.0%}",
                          _within(v, real, T["density"])))
    r = _row(report, "off_track_notes", "all") or {}
    v, real = r.get("generated_mean"), r.get("real_mean")
    lines.append(Line("instrumentation", "share of notes on tracks the real data leaves empty", v, real,
                      f"≤ {T['instrumentation']} × real", v is not None and real is not None and v <= T["instrumentation"] * real))
    for metric, track, label, rel in (("used_pitch_classes", main, f"pitch classes per bar ({main})", T["pitch classes"]),
                                      ("scale_consistency", "all", "scale consistency", T["scale consistency"])):
        r = _row(report, metric, track) or {}
        v, real = r.get("generated_mean"), r.get("real_mean")
        lines.append(Line("key", label, v, real, f"real ± {rel:.0%}", _within(v, real, rel)))
    v = sets.get("within_ratio")
    lines.append(Line("diversity", "within-set overlap, generated / real", v, 1.0, f"≤ {T['overlap']}",
                      v is not None and v <= T["overlap"]))
    v, real = sets.get("drone_generated"), sets.get("drone_real")
    lines.append(Line("diversity", "windows holding the most common held pitch", v, real, f"≤ {T['drone']} × real",
                      v is not None and real is not None and v <= T["drone"] * real))
    ts = sets.get("two_sample") or {}
    v = ts.get("high")
    lines.append(Line("two-sample test", "classifier accuracy, upper end of the 95% interval", v, 0.5,
                      f"< {T['two-sample']}", v is not None and v < T["two-sample"]))
    return lines


def passed(report: dict[str, Any]) -> int:
    """How many lines of :func:`scorecard` meet their target."""
    return sum(line.ok for line in scorecard(report))


def rank_key(report: dict[str, Any]) -> tuple[bool, float, int]:
    """Sort key for choosing among checkpoints (smallest first): a checkpoint whose windows are
    as varied as real ones (both diversity lines met) before any that is not, then the lowest
    two-sample accuracy (the classifier finds it hardest to tell from the real data), then the
    most targets met. Counting targets first would prefer a collapsed checkpoint that happens
    to leave the rare tracks silent (seen in ``data/ablations/screen``)."""
    card = scorecard(report)
    diverse = all(line.ok for line in card if line.prop == "diversity")
    acc = (report["sets"].get("two_sample") or {}).get("accuracy")
    return (not diverse, 1.0 if acc is None else float(acc), -sum(line.ok for line in card))


def _cell(line: Line) -> str:
    return "–" if line.value is None else f"{line.value:.3g} {'✓' if line.ok else '✗'}"


def table(reports: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of the scorecards of several reports: one row per line, one column per
    report (its value, ✓ where the target is met), beside the real value and the target.

    ``reports`` maps a column name to a report (``mgeval.json`` as a dict); the real values are
    the first report's (compare reports of the same real set). The last row counts targets met.
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
    rows.append("| **targets met** | | | " + " | ".join(f"**{sum(line.ok for line in card)} of {len(card)}**"
                                                    for card in cards.values()) + " |")
    return "\n".join(rows)


#: What :func:`window_values` measures per window, by property (the main track's, except instrumentation).
WINDOW_STATISTICS = {"register": "mean pitch in MIDI numbers", "note length": "share of notes an eighth or longer",
                     "density": "notes", "key": "pitch classes per bar",
                     "instrumentation": "share of notes on tracks the real data leaves empty"}


def window_values(features: Mapping[str, np.ndarray], main: int, active: Sequence[int]) -> dict[str, np.ndarray]:
    """Per window, the statistic behind each scorecard property that one window can show, ``(n,)``
    each (NaN where the window does not define it): to pick a window to listen to per line.

    ``features`` is a :func:`b2b.evaluation.metrics.feature_table` of the windows (``Report.real_features`` /
    ``generated_features``), ``main`` the main track's index, ``active`` the tracks the real data
    uses. Diversity and the two-sample test are properties of a set, not of a window.
    """
    notes = np.asarray(features["note_count"], dtype=float)
    return {"register": np.asarray(features["mean_pitch"])[:, main],
            "note length": np.asarray(features["qualified_note_rate"])[:, main],
            "density": notes[:, main],
            "key": np.asarray(features["used_pitch_classes"])[:, main],
            "instrumentation": off_track_share(notes, active)}


def typical(values: np.ndarray) -> int:
    """Index of the window whose value is nearest the median of the defined values (the first of
    equals): a window that shows the set as it usually is. ValueError if no value is defined."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        raise ValueError("values: no window defines this statistic")
    return int(np.nanargmin(np.where(np.isfinite(v), np.abs(v - np.nanmedian(v)), np.nan)))
