"""Tests for ``scripts/budget_table.py``: checkpoints of several runs ordered by the CPU time they cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import budget_table  # noqa: E402


def _run(steps_notes_ratio: list[tuple[int, float, float]]) -> dict:
    return {"runs": [{"steps": s, "rank": [ratio > 1.5, 0.99, -1],
                      "headline": {"qualified_note_rate": {"generated": q, "real": 0.95},
                                   "sets": {"within_ratio": ratio, "two_sample": {"accuracy": 0.99}},
                                   "scorecard": [{"ok": True}, {"ok": False}, {"ok": ratio <= 1.5}]}}
                     for s, q, ratio in steps_notes_ratio]}


def test_rows_merge_screening_and_long_runs_by_cpu_time(tmp_path):
    screen, long = tmp_path / "budget", tmp_path / "longrun"
    screen.mkdir()
    (screen / "cpu_seconds.json").write_text(json.dumps({"a": {"100": 50.0, "200": 120.0}, "b": {"300": 10.0}}))
    (screen / "trajectory-a.json").write_text(json.dumps(_run([(100, 0.4, 1.2), (200, 0.5, 2.0)])))
    (screen / "trajectory-b.json").write_text(json.dumps(_run([(300, 0.3, 1.4)])))
    # the long run "b" supersedes the screening's record of "b"; step 500 has no CPU time and is left out
    (long / "b").mkdir(parents=True)
    (long / "b" / "trajectory.json").write_text(json.dumps(_run([(300, 0.3, 1.4), (600, 0.7, 1.1), (500, 0.6, 1.0)])))
    (long / "b" / "cpu.json").write_text(json.dumps({"300": 90.0, "600": 80.0}))
    (long / "c").mkdir()   # a run with no trajectory yet: skipped
    rows = budget_table.rows(screen, long)
    assert [(r["run"], r["step"], r["cpu_s"]) for r in rows] == [("a", 100, 50.0), ("b (long run)", 600, 80.0),
                                                                 ("b (long run)", 300, 90.0), ("a", 200, 120.0)]
    assert [r["met"] for r in rows] == [2, 2, 2, 1] and [r["varied"] for r in rows] == [True, True, True, False]
    md = budget_table.markdown(rows).splitlines()
    assert md[0].startswith("| run | step | CPU s | notes ≥ an eighth (real 0.95)") and len(md) == 2 + 4
    assert "| two-sample accuracy |" in md[0]
    assert md[4] == "| b (long run) | 300 | 90 | 0.300 | 1.40 | 0.990 | 2 / 3 | yes |"
    # without --longrun only the screening's records count
    assert [(r["run"], r["cpu_s"]) for r in budget_table.rows(screen)] == [("b", 10.0), ("a", 50.0), ("a", 120.0)]
