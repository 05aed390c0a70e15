"""The scorecard's targets on a hand-made report, each checked at and just past its bound; properties, not lines."""

import copy

import pytest

import numpy as np

from b2b.evaluation import metrics
from b2b.evaluation import scorecard as scorecard_module
from b2b.evaluation.scorecard import (compare, main_track, nearer, passed, presence, properties, rank_key, scorecard,
                                      table, typical, verdict, window_values)


def _row(metric, track, real, gen, real_n=200, gen_n=100):
    return {"metric": metric, "track": track, "real_mean": real, "generated_mean": gen, "real_n": real_n,
            "generated_n": gen_n}


def _report():
    """Every target met exactly at its bound: Ensemble is the main track (most real notes); 200 real
    windows against 100 generated ones, so a share and a count differ."""
    return {
        "n_real": 200, "n_generated": 100,
        "active_tracks": ["Organ", "Ensemble"],
        "rows": [
            _row("note_count", "Organ", 4.0, 50.0),  # not the main track: counts are not judged
            _row("note_count", "Ensemble", 68.0, 51.0),  # -25%: the bound
            _row("note_count", "Drums", 0.0, 0.0),
            _row("qualified_note_rate", "Ensemble", 0.95, 0.86),  # the bound
            _row("polyphony", "Organ", 3.0, 1.0, real_n=10, gen_n=10),  # sounds in 10/200 = 0.05 and 10/100 = 0.10: 2x
            _row("polyphony", "Ensemble", 3.7, 4.0),  # the main track: no presence line
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


def test_presence_is_the_share_of_windows_where_the_track_sounds():
    assert presence(_report(), "Organ") == (10 / 100, 10 / 200)
    assert presence(_report(), "Ensemble") == (1.0, 1.0)
    assert presence(_report(), "Reed") == (None, None)  # a track the real data leaves empty has no row


def test_every_target_met_at_its_bound():
    lines = scorecard(_report())
    assert [(l.prop, l.statistic) for l in lines] == [
        ("note length", "notes an eighth or longer (Ensemble)"),
        ("key", "pitch classes per bar (Ensemble)"), ("key", "scale consistency"),
        ("density", "notes per window (Ensemble)"),
        ("instrumentation", "windows where Organ sounds"),
        ("instrumentation", "share of notes on tracks the real data leaves empty"),
        ("diversity", "within-set overlap, generated / real"), ("diversity", "windows holding the most common held pitch"),
        ("two-sample test", "classifier accuracy, upper end of the 95% interval")]
    assert all(l.ok for l in lines), [l for l in lines if not l.ok]
    assert (lines[4].value, lines[4].real) == (0.10, 0.05)
    assert properties(lines) == dict.fromkeys(scorecard_module.PROPERTIES, True)
    assert passed(_report()) == 6


@pytest.mark.parametrize("change, line", [
    (lambda r: r["rows"][3].update(generated_mean=0.859), 0),
    (lambda r: r["rows"][8].update(generated_mean=8.06), 1),
    (lambda r: r["rows"][8].update(generated_mean=5.94), 1),
    (lambda r: r["rows"][9].update(generated_mean=0.89), 2),
    (lambda r: r["rows"][1].update(generated_mean=50.9), 3),
    (lambda r: r["rows"][1].update(generated_mean=85.1), 3),
    (lambda r: r["rows"][4].update(generated_n=11), 4),  # Organ in 11 of 100 windows: 0.11 > 2 x 0.05
    (lambda r: r["rows"][7].update(generated_mean=0.0081), 5),
    (lambda r: r["sets"].update(within_ratio=1.51), 6),
    (lambda r: r["sets"].update(drone_generated=0.177), 7),
    (lambda r: r["sets"]["two_sample"].update(high=0.95), 8),
    (lambda r: r["rows"].pop(3), 0),  # note length undefined: fails
    (lambda r: r["rows"].pop(4), 4),  # no presence row for Organ: fails
])
def test_each_target_fails_just_past_its_bound(change, line):
    r = copy.deepcopy(_report())
    change(r)
    lines = scorecard(r)
    assert [i for i, l in enumerate(lines) if not l.ok] == [line]
    assert passed(r) == 5


def test_a_property_is_met_only_when_all_its_lines_are():
    r = copy.deepcopy(_report())
    r["rows"][4].update(generated_n=90)  # Organ in 90% of the windows
    r["rows"][7].update(generated_mean=0.05)  # and many off-track notes: two lines, one property
    met = properties(scorecard(r))
    assert met == {"note length": True, "key": True, "density": True, "instrumentation": False, "diversity": True,
                   "two-sample test": True}
    assert passed(r) == 5
    r["sets"].update(within_ratio=2.0)  # and the diversity property
    assert passed(r) == 4


def test_rank_prefers_varied_then_lower_accuracy_then_more_properties():
    a, b, c, d = (copy.deepcopy(_report()) for _ in range(4))
    b["sets"]["two_sample"].update(accuracy=0.8)  # lower accuracy: better than a
    c["sets"]["within_ratio"] = 3.0  # collapsing: worst, whatever its accuracy
    c["sets"]["two_sample"].update(accuracy=0.6)
    d["rows"][3].update(generated_mean=0.5)  # one property fewer at a's accuracy: just after a
    runs = {"a": a, "b": b, "c": c, "d": d}
    assert sorted(runs, key=lambda k: rank_key(runs[k])) == ["b", "a", "d", "c"]
    assert rank_key(a) == (False, 0.9, -6) and rank_key(c) == (True, 0.6, -5)
    assert verdict(runs) == {"a": 2, "b": 1, "c": 4, "d": 3}
    assert verdict({"x": a, "y": copy.deepcopy(a), "z": b}) == {"x": 2, "y": 2, "z": 1}  # equal keys share a place


def test_table_has_a_row_per_line_the_properties_and_the_verdict():
    worse = copy.deepcopy(_report())
    worse["rows"][3].update(generated_mean=0.5)  # note length missed
    worse["sets"].update(within_ratio=3.0)  # and diversity
    md = table({"good": _report(), "worse": worse})
    lines = md.splitlines()
    assert lines[0] == "| property: statistic | target | real | good | worse |"
    assert len(lines) == 2 + 9 + 2
    assert lines[2] == "| **note length**: notes an eighth or longer (Ensemble) | ≥ 0.86 | 0.95 | 0.86 ✓ | 0.5 ✗ |"
    assert lines[6] == "| **instrumentation**: windows where Organ sounds | ≤ 2 × real | 0.05 | 0.1 ✓ | 0.1 ✓ |"
    assert lines[8].endswith("| 1.5 ✓ | 3 ✗ |")
    assert lines[-2] == "| **properties met** | all lines met | | **6 of 6** | **4 of 6** |"
    assert lines[-1].startswith("| **the ranking rule's verdict** (`rank_key`") and lines[-1].endswith("| **1st** | **2nd** (alike) |")


def test_table_refuses_reports_with_different_lines():
    other = copy.deepcopy(_report())
    other["rows"][1].update(real_mean=1.0)  # Organ becomes the main track
    with pytest.raises(ValueError, match="different lines"):
        table({"a": _report(), "b": other})


def test_window_values_per_property_on_a_hand_made_pair_of_windows():
    x = np.zeros((2, 17, 64, 72), dtype=bool)
    x[0, 1, 0:8, 10] = True          # piano (main): one note of 8 steps, MIDI 34
    x[0, 6, 0:1, 20] = True          # strings: one blip
    x[1, 1, 0:1, 12] = x[1, 1, 2:3, 12] = x[1, 1, 4:6, 19] = True  # piano: 2 blips of MIDI 36, one 8th of 43
    x[1, 0, 3, 2] = x[1, 5, 8:12, 7] = True  # a drum hit and a bass note
    v = window_values(metrics.feature_table(x), main=1)
    np.testing.assert_allclose(v["note length"], [1, 1 / 3])
    np.testing.assert_allclose(v["density"], [1, 3])
    np.testing.assert_allclose(v["key"], [1, 2])  # pitch classes per non-empty bar
    np.testing.assert_allclose(v["instrumentation"], [1, 2])  # strings; drums and bass
    assert set(v) == set(scorecard_module.WINDOW_STATISTICS)


def test_typical_is_the_window_nearest_the_median():
    assert typical(np.array([5.0, np.nan, 1.0, 3.2, 9.0])) == 3  # median 4.1 of the defined values
    assert typical(np.array([2.0, 1.0, 2.0])) == 0  # the first of equals
    with pytest.raises(ValueError, match="no window"):
        typical(np.array([np.nan, np.nan]))


def test_nearer_compares_distances_to_the_real_value():
    assert nearer(9.0, 4.0, 7.0)            # 2 from the real value against 3
    assert not nearer(4.0, 9.0, 7.0)
    assert not nearer(5.0, 9.0, 7.0)        # equally far: not nearer
    assert nearer(0.2, None, 0.5) and nearer(0.2, float("nan"), 0.5)   # an undefined other is further
    assert not nearer(None, 0.2, 0.5) and not nearer(0.2, 0.3, None)


def test_compare_lists_the_statistics_nearer_and_further():
    other = copy.deepcopy(_report())
    other["rows"][3].update(generated_mean=0.5)   # note length further from 0.95 than 0.86
    other["rows"][8].update(generated_mean=7.5)   # pitch classes nearer 7.0 than 8.05
    near, far = compare(scorecard(other), scorecard(_report()))
    assert near == ["pitch classes per bar (Ensemble)"]
    assert far == ["notes an eighth or longer (Ensemble)"]
    bigger = copy.deepcopy(_report())
    bigger["active_tracks"] = ["Organ", "Ensemble", "Brass"]
    with pytest.raises(ValueError, match="different lines"):
        compare(scorecard(bigger), scorecard(_report()))
