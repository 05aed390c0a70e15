"""The scorecard's targets on a hand-made report, each checked at and just past its bound."""

import copy

import pytest

import numpy as np

from b2b.evaluation import metrics
from b2b.evaluation import scorecard as scorecard_module
from b2b.evaluation.scorecard import main_track, passed, rank_key, scorecard, table, typical, window_values


def _row(metric, track, real, gen):
    return {"metric": metric, "track": track, "real_mean": real, "generated_mean": gen}


def _report():
    """Every target met exactly at its bound: Ensemble is the main track (most real notes)."""
    return {
        "active_tracks": ["Organ", "Ensemble"],
        "rows": [
            _row("note_count", "Organ", 4.0, 5.0),  # +25%: the bound
            _row("note_count", "Ensemble", 68.0, 51.0),  # -25%
            _row("note_count", "Drums", 0.0, 0.0),
            _row("qualified_note_rate", "Ensemble", 0.95, 0.80),
            _row("mean_pitch", "Ensemble", 62.5, 60.5),  # 2 semitones lower: the bound
            _row("mean_pitch", "Organ", 50.0, 70.0),  # not the main track: ignored
            _row("qualified_note_rate", "Organ", 0.90, 0.10),  # not the main track: ignored
            _row("off_track_notes", "all", 0.004, 0.008),  # 2x
            _row("used_pitch_classes", "Ensemble", 7.0, 8.05),  # +15%
            _row("scale_consistency", "all", 0.94, 0.893),  # -5%
        ],
        "sets": {"within_ratio": 1.5, "drone_generated": 0.176, "drone_real": 0.088,
                 "two_sample": {"accuracy": 0.9, "low": 0.88, "high": 0.949}},
    }


def test_main_track_is_the_one_with_most_real_notes():
    assert main_track(_report()) == "Ensemble"


def test_every_target_met_at_its_bound():
    lines = scorecard(_report())
    assert [l.prop for l in lines] == ["register", "note length", "density", "density", "instrumentation", "key", "key",
                                       "diversity", "diversity", "two-sample test"]
    assert all(l.ok for l in lines), [l for l in lines if not l.ok]
    assert passed(_report()) == 10


@pytest.mark.parametrize("change, line", [
    (lambda r: r["rows"][4].update(generated_mean=60.49), 0),
    (lambda r: r["rows"][4].update(generated_mean=64.51), 0),
    (lambda r: r["rows"][3].update(generated_mean=0.79), 1),
    (lambda r: r["rows"][0].update(generated_mean=5.01), 2),
    (lambda r: r["rows"][1].update(generated_mean=50.9), 3),
    (lambda r: r["rows"][7].update(generated_mean=0.0081), 4),
    (lambda r: r["rows"][8].update(generated_mean=8.06), 5),
    (lambda r: r["rows"][9].update(generated_mean=0.89), 6),
    (lambda r: r["sets"].update(within_ratio=1.51), 7),
    (lambda r: r["sets"].update(drone_generated=0.177), 8),
    (lambda r: r["sets"]["two_sample"].update(high=0.95), 9),
    (lambda r: r["rows"].pop(3), 1),  # note length undefined: fails
    (lambda r: r["rows"].pop(4), 0),  # a report without the register (made before it existed): fails
])
def test_each_target_fails_just_past_its_bound(change, line):
    r = copy.deepcopy(_report())
    change(r)
    lines = scorecard(r)
    assert [i for i, l in enumerate(lines) if not l.ok] == [line]


def test_rank_prefers_varied_then_lower_accuracy_then_more_targets():
    a, b, c, d = (copy.deepcopy(_report()) for _ in range(4))
    b["sets"]["two_sample"].update(accuracy=0.8)  # lower accuracy: better than a
    c["sets"]["within_ratio"] = 3.0  # collapsing: worst, whatever its accuracy
    c["sets"]["two_sample"].update(accuracy=0.6)
    d["rows"][3].update(generated_mean=0.5)  # one target fewer at a's accuracy: just after a
    runs = {"a": a, "b": b, "c": c, "d": d}
    assert sorted(runs, key=lambda k: rank_key(runs[k])) == ["b", "a", "d", "c"]


def test_table_has_a_row_per_line_and_a_column_per_report():
    worse = copy.deepcopy(_report())
    worse["rows"][3].update(generated_mean=0.5)  # note length missed
    worse["sets"].update(within_ratio=3.0)  # and diversity
    md = table({"good": _report(), "worse": worse})
    lines = md.splitlines()
    assert lines[0] == "| property: statistic | target | real | good | worse |"
    assert len(lines) == 2 + 10 + 1
    assert lines[3] == "| **note length**: notes an eighth or longer (Ensemble) | ≥ 0.80 | 0.95 | 0.8 ✓ | 0.5 ✗ |"
    assert lines[9].endswith("| 1.5 ✓ | 3 ✗ |")
    assert lines[-1] == "| **targets met** | | | **10 of 10** | **8 of 10** |"


def test_table_refuses_reports_with_different_lines():
    other = copy.deepcopy(_report())
    other["rows"][1].update(real_mean=1.0)  # Organ becomes the main track
    with pytest.raises(ValueError, match="different lines"):
        table({"a": _report(), "b": other})


def test_window_values_per_property_on_a_hand_made_pair_of_windows():
    x = np.zeros((2, 17, 64, 72), dtype=bool)
    x[0, 1, 0:8, 10] = True          # piano (main): one note of 8 steps, MIDI 34
    x[0, 6, 0:1, 20] = True          # strings (unused by the "real data" here): one blip
    x[1, 1, 0:1, 12] = x[1, 1, 2:3, 12] = x[1, 1, 4:6, 19] = True  # piano: 2 blips of MIDI 36, one 8th of 43
    v = window_values(metrics.feature_table(x), main=1, active=[1, 5])
    np.testing.assert_allclose(v["register"], [34, (36 + 36 + 43 + 43) / 4])
    np.testing.assert_allclose(v["note length"], [1, 1 / 3])
    np.testing.assert_allclose(v["density"], [1, 3])
    np.testing.assert_allclose(v["key"], [1, 2])  # pitch classes per non-empty bar
    np.testing.assert_allclose(v["instrumentation"], [1 / 2, 0])  # 1 of window 0's 2 notes is off-track
    assert set(v) == set(scorecard_module.WINDOW_STATISTICS)


def test_typical_is_the_window_nearest_the_median():
    assert typical(np.array([5.0, np.nan, 1.0, 3.2, 9.0])) == 3  # median 4.1 of the defined values
    assert typical(np.array([2.0, 1.0, 2.0])) == 0  # the first of equals
    with pytest.raises(ValueError, match="no window"):
        typical(np.array([np.nan, np.nan]))
