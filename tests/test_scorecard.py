"""The scorecard's targets on a hand-made report, each checked at and just past its bound."""

import copy

import pytest

from b2b.scorecard import main_track, passed, rank_key, scorecard


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
    assert [l.prop for l in lines] == ["note length", "density", "density", "instrumentation", "key", "key",
                                       "diversity", "diversity", "two-sample test"]
    assert all(l.ok for l in lines), [l for l in lines if not l.ok]
    assert passed(_report()) == 9


@pytest.mark.parametrize("change, line", [
    (lambda r: r["rows"][3].update(generated_mean=0.79), 0),
    (lambda r: r["rows"][0].update(generated_mean=5.01), 1),
    (lambda r: r["rows"][1].update(generated_mean=50.9), 2),
    (lambda r: r["rows"][5].update(generated_mean=0.0081), 3),
    (lambda r: r["rows"][6].update(generated_mean=8.06), 4),
    (lambda r: r["rows"][7].update(generated_mean=0.89), 5),
    (lambda r: r["sets"].update(within_ratio=1.51), 6),
    (lambda r: r["sets"].update(drone_generated=0.177), 7),
    (lambda r: r["sets"]["two_sample"].update(high=0.95), 8),
    (lambda r: r["rows"].pop(3), 0),  # note length undefined: fails
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
