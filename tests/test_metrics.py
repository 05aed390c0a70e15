"""Tests of b2b.evaluation.metrics against values worked out by hand on small, asymmetric pianorolls.

Pitch row p is MIDI 24 + p; pitch class (24 + p) % 12 = p % 12 (0 = C). Bars are steps 0-15,
16-31, 32-47, 48-63. Tracks: 0 drums, 1 piano, 4 guitar, 5 bass, 6 strings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from b2b.evaluation import metrics as m

NAN = float("nan")


def make(notes, n=1):
    """Windows (n, 17, 64, 72) with notes given as (window, track, pitch_row, start, end_exclusive)."""
    x = np.zeros((n, 17, 64, 72), dtype=bool)
    for w, k, p, a, b in notes:
        x[w, k, a:b, p] = True
    return x


# Window 0
DRUMS = [(0, 0, 12, t, t + 1) for t in (0, 8, 16, 24)]  # kick on 8th grid, 4 hits
DRUMS += [(0, 0, 18, 0, 4)]  # hi-hat at steps 0, 1, 2, 3 (even: 0, 2)
DRUMS += [(0, 0, 14, 5, 6)]  # snare at step 5 (odd)
PIANO = [(0, 1, p, 0, 4) for p in (0, 4, 7)]  # C E G triad, steps 0-3
PIANO += [(0, 1, 12, 14, 18)]  # C (MIDI 36) across the bar line 15|16
PIANO += [(0, 1, 2, 20, 21), (0, 1, 2, 22, 24)]  # repeated D: lengths 1 and 2
PIANO += [(0, 1, 71, 63, 64)]  # B (MIDI 95), top edge, cut by the window end
BASS = [(0, 5, 0, 0, 16)]  # C (MIDI 24), bottom edge, all of bar 0
BASS += [(0, 5, 7, 32, 48)]  # G, all of bar 2
BASS += [(0, 5, 3, 48, 50)]  # D# (MIDI 27), bar 3
# Window 1: guitar C (MIDI 36), C (MIDI 48), C# (25), D (26), steps 0-1
GUITAR = [(1, 4, p, 0, 2) for p in (12, 24, 1, 2)]

X = make(DRUMS + PIANO + BASS + GUITAR, n=2)


def close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), atol=tol, rtol=0)


# ----------------------------------------------------------------------------------------------


def test_note_count():
    c = m.note_count(X)
    assert c.shape == (2, 17)
    # drums: hits = on cells: kick 4 + hat 4 + snare 1 = 9 (the hat run counts 4 hits, not 1)
    # piano: C E G, C36, D, D, B = 7; bass: C, G, D# = 3; guitar (window 1): 4
    assert c[0].tolist() == [9, 7, 0, 0, 0, 3] + [0] * 11
    assert c[1].tolist() == [0, 0, 0, 0, 4] + [0] * 12


def test_mean_pitch_is_the_time_weighted_register():
    r = m.mean_pitch(X)
    assert r.shape == (2, 17)
    # piano: C E G (MIDI 24, 28, 31) 4 steps each, C36 4 steps, D26 1 + 2 steps, B95 1 step
    close(r[0, 1], (4 * (24 + 28 + 31) + 4 * 36 + 3 * 26 + 95) / 20)
    # bass: C24 16 steps, G31 16 steps, D#27 2 steps
    close(r[0, 5], (16 * 24 + 16 * 31 + 2 * 27) / 34)
    close(r[1, 4], (36 + 48 + 25 + 26) / 4)               # guitar, window 1: 2 steps each
    assert np.isnan(r[0, 0]) and np.isnan(r[0, 4]) and np.isnan(r[1, 1])  # drums, empty tracks
    # a note cut into fragments has the register of the held note
    held, cut = make([(0, 1, 10, 0, 8)]), make([(0, 1, 10, t, t + 1) for t in range(0, 8, 2)])
    close(m.mean_pitch(held)[0, 1], 34)
    close(m.mean_pitch(cut)[0, 1], 34)


def test_off_track_share_counts_notes_off_the_active_tracks():
    counts = m.note_count(X)  # window 0: drums 9, piano 7, bass 3; window 1: guitar 4
    close(m.off_track_share(counts, active=[1, 5]), [9 / 19, 1.0])  # drum hits count as notes
    close(m.off_track_share(counts, active=[0, 1, 4, 5]), [0.0, 0.0])
    assert np.isnan(m.off_track_share(m.note_count(make([], n=1)), active=[1]))[0]  # no notes: undefined


def test_polyphony_per_track():
    p = m.polyphony(X)
    assert p.shape == (2, 17)
    # drums: cells 4 + 4 + 1 = 9 over non-empty steps {0,1,2,3,5,8,16,24} = 8 -> 9 / 8
    close(p[0, 0], 1.125)
    # piano: cells 3*4 + 4 + 1 + 2 + 1 = 20 over steps 0-3, 14-17, 20, 22, 23, 63 = 12 -> 20 / 12
    close(p[0, 1], 1.6666667)
    # bass: monophonic
    close(p[0, 5], 1.0)
    # guitar window 1: 4 pitches at steps 0, 1 -> 8 / 2
    close(p[1, 4], 4.0)
    assert np.isnan(p[0, 6]) and np.isnan(p[1, 1]) and np.isnan(p[0, 4])  # empty tracks


def test_polyphony_pooled():
    # window 0: cells 9 + 20 + (16 + 16 + 2) = 63 over (track, step) pairs 8 + 12 + 34 = 54
    close(m.polyphony(X, per_track=False), [63 / 54, 4.0])  # 1.1666667, 4.0
    close(m.polyphony(X, per_track=False)[0], 1.1666667)


def test_polyphonic_rate():
    r = m.polyphonic_rate(X)
    # piano: steps with >= 3 pitches: 0-3 -> 4 of 12 non-empty steps
    close(r[0, 1], 0.3333333)
    close(r[0, 0], 0.0)  # drums: at most 2 at once
    close(r[1, 4], 1.0)
    assert np.isnan(r[0, 6])
    a = m.polyphonic_rate(X, over="all")
    close(a[0, 1], 0.0625)  # 4 / 64
    close(a[1, 4], 0.03125)  # 2 / 64
    close(a[0, 6], 0.0)  # empty track: 0 / 64, defined
    # pooled over all 17 tracks: window 0 has 4 polyphonic (track, step) pairs of 54 non-empty
    close(m.polyphonic_rate(X, per_track=False)[0], 4 / 54)
    with pytest.raises(ValueError, match="over"):
        m.polyphonic_rate(X, over="some")


def test_empty_bar_rate_not_inverted():
    eb = m.empty_bar_rate(X)
    assert eb.shape == (2, 17)
    close(eb[0, 0], 0.5)  # drums play in bars 0 and 1 only
    close(eb[0, 1], 0.25)  # piano silent in bar 2 only (the C across 15|16 is in bars 0 and 1)
    close(eb[0, 5], 0.25)  # bass silent in bar 1 only
    close(eb[0, 6], 1.0)  # strings never play: every bar empty
    close(eb[1, 4], 0.75)  # guitar plays in bar 0 only
    full = np.ones((1, 17, 64, 72), dtype=bool)
    close(m.empty_bar_rate(full), np.zeros((1, 17)))


def test_pitch_classes_are_octave_classes():
    pc = m.pitch_classes()
    assert pc.shape == (72,)
    assert pc[0] == 0 and pc[12] == 0 and pc[24] == 0  # MIDI 24, 36, 48 are all C
    assert pc[0] != pc[1]  # MIDI 24 (C) and 25 (C#) differ
    assert pc[71] == 11  # MIDI 95 is B
    # MIDI 24 and 36 together in a bar are one pitch class; 24 and 25 are two
    same = make([(0, 1, 0, 0, 4), (0, 1, 12, 0, 4)])
    differ = make([(0, 1, 0, 0, 4), (0, 1, 1, 0, 4)])
    assert m.used_pitch_classes(same)[0, 1] == 1
    assert m.used_pitch_classes(differ)[0, 1] == 2
    # ten adjacent pitches (pypianoroll's bug) are ten classes
    ten = make([(0, 1, p, 0, 1) for p in range(10)])
    assert m.used_pitch_classes(ten)[0, 1] == 10


def test_used_pitch_classes():
    per_bar = m.used_pitch_classes(X, per_bar=True)
    assert per_bar.shape == (2, 17, 4)
    # piano: bar 0 {C, E, G} (+ C of MIDI 36) = 3; bar 1 {C, D} = 2; bar 2 empty; bar 3 {B} = 1
    close(per_bar[0, 1], [3, 2, NAN, 1])
    close(per_bar[0, 5], [1, NAN, 1, 1])  # bass: C, -, G, D#
    upc = m.used_pitch_classes(X)
    close(upc[0, 1], 2.0)  # (3 + 2 + 1) / 3 non-empty bars
    close(upc[0, 5], 1.0)
    close(upc[1, 4], 3.0)  # guitar: C (36 and 48 are one class), C#, D
    assert np.isnan(upc[0, 0])  # drums: no pitch classes
    assert np.isnan(upc[0, 6])  # empty track


def test_qualified_note_rate():
    q = m.qualified_note_rate(X)
    # piano notes: C E G (4 steps), C36 (4, across the bar line: one note), D (1), D (2), B (1,
    # cut at the window end) = 7 notes, of which >= 2 steps: 3 + 1 + 1 = 5
    close(q[0, 1], 5 / 7)  # 0.7142857
    close(q[0, 5], 1.0)  # bass: lengths 16, 16, 2
    close(q[1, 4], 1.0)  # guitar: four notes of 2 steps
    assert np.isnan(q[0, 0]) and np.isnan(q[0, 6])  # drums, empty
    # with the minimum at 3 steps the D of length 2 no longer qualifies: 4 / 7
    close(m.qualified_note_rate(X, min_length=3)[0, 1], 4 / 7)
    # min_length 1: every note qualifies
    close(m.qualified_note_rate(X, min_length=1)[0, 1], 1.0)
    # a 2-step note ending exactly at the window end qualifies, a 1-step one there does not
    end = make([(0, 2, 30, 62, 64), (0, 2, 31, 63, 64)])
    close(m.qualified_note_rate(end)[0, 2], 0.5)


def test_note_lengths():
    lengths = m.note_lengths(X[0])
    assert sorted(lengths[1].tolist()) == [1, 1, 2, 4, 4, 4, 4]
    assert lengths[5].tolist() == [16, 2, 16]  # ordered by pitch (C, D#, G), then time
    assert lengths[6].size == 0


def test_drum_pattern_rate():
    dp = m.drum_pattern_rate(X)
    assert dp.shape == (2,)
    # hits: kick 0, 8, 16, 24 (even); hat 0, 1, 2, 3 (even 0, 2); snare 5 (odd) -> 6 / 9
    close(dp[0], 0.6666667)
    assert np.isnan(dp[1])  # no drums in window 1
    straight = make([(0, 0, 12, t, t + 1) for t in range(0, 64, 2)])
    sixteenths = make([(0, 0, 18, 0, 64)])
    close(m.drum_pattern_rate(straight), [1.0])
    close(m.drum_pattern_rate(sixteenths), [0.5])


def test_pitch_class_histogram_and_entropy():
    h = m.pitch_class_histogram(X)
    # piano notes: C (MIDI 24), C (36) -> 2; D twice -> 2; E, G, B -> 1 each
    assert h[0, 1].tolist() == [2, 0, 2, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert h[0, 0].sum() == 0  # drums left out
    e = m.pitch_class_entropy(X)
    # piano: q = (2, 2, 1, 1, 1) / 7: 2 (2/7) log2 3.5 + 3 (1/7) log2 7
    #      = 4/7 * 1.807355 + 3/7 * 2.807355 = 1.032774 + 1.203152 = 2.235926
    close(e[0, 1], 2.235926)
    close(e[0, 5], 1.584963)  # bass: C, D#, G once each: log2 3
    close(e[1, 4], 1.5)  # guitar: q = (1/2, 1/4, 1/4): 0.5*1 + 2*0.25*2
    assert np.isnan(e[0, 0]) and np.isnan(e[0, 6])
    pooled = m.pitch_class_entropy(X, per_track=False)
    # window 0, pitched notes: C 3, D 2, D# 1, E 1, G 2, B 1 (10 notes)
    # 0.3 log2(10/3) + 2 * 0.2 log2 5 + 3 * 0.1 log2 10 = 0.521090 + 0.928771 + 0.996578
    close(pooled[0], 2.446439)
    close(pooled[1], 1.5)


def test_scale_consistency():
    s = m.scale_consistency(X)
    # window 0: C 3, D 2, D# 1, E 1, G 2, B 1; C major holds all but D# -> 9 / 10
    # (no major scale holds C, D, D# and E together)
    close(s[0], 0.9)
    # window 1: C 2, C# 1, D 1; C major: C, D -> 3/4; Db major: C, C# -> 3/4; none holds all
    close(s[1], 0.75)
    per_track = m.scale_consistency(X, per_track=True)
    close(per_track[0, 1], 1.0)  # piano alone: C D E G B, all in C major
    close(per_track[0, 5], 1.0)  # bass C, D#, G: all in Eb major (= C natural minor)
    close(per_track[1, 4], 0.75)  # guitar alone: as window 1
    assert np.isnan(per_track[0, 0])


def test_scale_masks():
    masks = m.scale_masks()
    assert masks.shape == (12, 12) and masks.sum() == 84
    assert np.flatnonzero(masks[0]).tolist() == [0, 2, 4, 5, 7, 9, 11]  # C major
    assert np.flatnonzero(masks[7]).tolist() == [0, 2, 4, 6, 7, 9, 11]  # G major: F#


def test_tonal_matrix_and_centroid():
    phi = m.tonal_matrix()
    assert phi.shape == (6, 12)
    close(phi[:, 0], [0, 1, 0, 1, 0, 0.5])  # C
    # G (l = 7): sin/cos(49 pi / 6) = (1/2, sqrt(3)/2); (21 pi / 2) = (1, 0); 0.5 * (14 pi / 3) = (0.433013, -0.25)
    close(phi[:, 7], [0.5, 0.866025, 1, 0, 0.433013, -0.25])
    c = m.tonal_centroid(X[0, 5])
    assert c.shape == (4, 6)
    close(c[0], [0, 1, 0, 1, 0, 0.5])  # bass bar 0: C only
    assert np.isnan(c[1]).all()  # bass bar 1 empty


def test_tonal_distance():
    c = make([(0, 1, 0, 0, 16)])[0, 1]  # C for a bar
    g = make([(0, 1, 7 + 12, 0, 16)])[0, 1]  # G (MIDI 43) for a bar
    # (0.5, -0.133975, 1, -1, 0.433013, -0.75): 0.25 + 0.017949 + 1 + 1 + 0.1875 + 0.5625 = 3.017949
    close(m.tonal_distance(c, g), 1.737225)
    close(m.tonal_distance(c, c), 0.0)
    # piano vs bass of window 0: bars 0 and 3 have both (bar 1: no bass, bar 2: no piano).
    # Bar 0: piano chroma (cells) C 4 + 2 (MIDI 36 at steps 14, 15), E 4, G 4 ->
    # (6 phi_C + 4 phi_E + 4 phi_G) / 14 with phi_E = (0.866025, -0.5, 0, 1, 0.433013, -0.25):
    # (0.390293, 0.533150, 0.285714, 0.714286, 0.247436, 0.071429); bass phi_C; squared
    # differences 0.152329 + 0.217949 + 0.081633 + 0.081633 + 0.061224 + 0.183673 = 0.778441
    # -> 0.882293.
    # Bar 3: piano B, phi_11 = (0.5, -0.866025, 1, 0, -0.433013, -0.25); bass D#,
    # phi_3 = (-1, 0, 1, 0, 0, 0.5): 2.25 + 0.75 + 0 + 0 + 0.1875 + 0.5625 = 3.75 -> 1.936492.
    # Mean (0.882293 + 1.936492) / 2 = 1.409392
    close(m.tonal_distance(X[0, 1], X[0, 5]), 1.409392)
    bass_bar0 = X[0, 5].copy()
    bass_bar0[16:] = False  # bass in bar 0 only: bar 0's distance alone
    close(m.tonal_distance(X[0, 1], bass_bar0), 0.882293)
    assert np.isnan(m.tonal_distance(X[0, 1], X[0, 6]))  # strings empty
    td = m.tonal_distance_matrix(X)
    assert td.shape == (2, 17, 17)
    close(td[0, 1, 5], 1.409392)
    close(td[0, 5, 1], 1.409392)
    assert np.isnan(td[0, 0, 1]) and np.isnan(td[0, 1, 6])
    # batched call over the window axis
    close(m.tonal_distance(X[:, 1], X[:, 5]), [1.409392, NAN])


def bar_pattern():
    """Piano: C on the first beat of every bar, G on every other beat."""
    notes = [(0, 1, 0 if beat % 4 == 0 else 7, 4 * beat, 4 * beat + 4) for beat in range(16)]
    return make(notes)


def test_self_similarity():
    x = bar_pattern()
    s = m.self_similarity(x[0])
    assert s.shape == (16, 16)
    assert s[0, 4] == 1.0 and s[0, 1] == 0.0 and s[1, 2] == 1.0
    close(np.diagonal(s), np.ones(16))
    assert m.self_similarity(x[0], resolution="step").shape == (64, 64)
    assert m.self_similarity(x, features="pitch").shape == (1, 16, 16)
    assert m.self_similarity(x, features="tracks").shape == (1, 16, 16)
    # a lone note: only its beat is defined
    lone = m.self_similarity(make([(0, 1, 0, 4, 5)])[0])
    assert lone[1, 1] == 1.0 and np.isnan(lone[0, 0]) and np.isnan(lone[1, 2])
    with pytest.raises(ValueError):
        m.self_similarity(x, resolution="bar")


def test_similarity_by_lag_and_structure():
    x = bar_pattern()
    lag = m.similarity_by_lag(m.self_similarity(x[0]))
    assert lag.shape == (15,)
    close(lag[3], 1.0)  # lag 4 beats: always the same kind of beat
    # lag 1: pairs (i, i+1), 15 of them; same kind when neither is a bar's first beat:
    # i in {1, 2, 5, 6, 9, 10, 13, 14} -> 8 / 15
    close(lag[0], 8 / 15)
    # pairs at lags 4, 8, 12: 12 + 8 + 4 = 24, all similarity 1. Other lags: 120 - 24 = 96 pairs,
    # similarity 1 when both are G beats: 12 G beats -> 66 pairs, 3 * 6 = 18 of them at bar lags
    # -> 48 / 96 = 0.5. Score 1 - 0.5 = 0.5
    close(m.structure_score(x), [0.5])
    assert np.isnan(m.structure_score(make([]))[0])


def test_feature_table_keys_and_shapes():
    f = m.feature_table(X)
    assert set(f) == set(m.DEFINITIONS)
    for k, v in f.items():
        if k in m.PER_TRACK_FEATURES:
            assert v.shape == (2, 17), k
        elif k in m.PAIR_FEATURES:
            assert v.shape == (2, 17, 17), k
        else:
            assert v.shape == (2,), k
    close(f["polyphony"][0, 1], 20 / 12)
    close(f["empty_bar_rate"][0, 5], 0.25)


def test_inputs_threshold_torch_and_errors():
    probs = X.astype(np.float32) * 0.95
    with pytest.raises(ValueError, match="threshold"):
        m.polyphony(probs)
    close(m.polyphony(probs, threshold=0.9), m.polyphony(X))
    close(m.polyphony(probs, threshold=0.95), m.polyphony(X))  # on means value >= threshold
    assert np.isnan(m.polyphony(probs, threshold=0.96)).all()
    close(m.polyphony(torch.from_numpy(X.astype(np.float32))), m.polyphony(X))
    close(m.polyphony(X.astype(np.uint8)), m.polyphony(X))
    close(m.polyphony(X[0]), m.polyphony(X[:1]))  # one window is a batch of one (b2b.music.geometry's rule)
    with pytest.raises(ValueError, match=r"\(n, 17, 64, 72\)"):
        m.polyphony(X[0, :, :32])
    with pytest.raises(ValueError, match="shape"):
        m.empty_bar_rate(np.zeros((2, 17, 72, 64), dtype=bool))  # swapped axes
    with pytest.raises(ValueError, match="NaN"):
        m.polyphony(np.full((1, 17, 64, 72), np.nan), threshold=0.5)


def test_compare_known_distances():
    c = m.compare(np.array([0.0, 1.0, 3.0]), np.array([10.0, 11.0]))
    # intra real: |0-1|, |0-3|, |1-3| = 1, 3, 2 -> mean 2; intra generated: 1
    assert c.intra_real_mean == pytest.approx(2.0)
    assert c.intra_generated_mean == pytest.approx(1.0)
    # inter: 10, 11, 9, 10, 7, 8 -> mean 55 / 6
    assert c.inter_mean == pytest.approx(55 / 6)
    assert c.overlap < 0.05 and c.kl > 1.0  # far apart
    assert c.n_real == 3 and c.n_generated == 2


def test_compare_identical_and_degenerate():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 2))
    same = m.compare(a, a)
    assert same.overlap > 0.95 and same.kl < 0.02
    assert same.intra_real_mean == pytest.approx(same.intra_generated_mean)
    shifted = m.compare(a, a + 5.0)
    assert shifted.overlap < 0.1
    const = m.compare(np.zeros(10), np.zeros(12))
    assert const.overlap == 1.0 and const.kl == 0.0
    # NaN rows are dropped; fewer than two usable samples gives NaN
    c = m.compare(np.array([0.0, NAN, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert c.n_real == 3
    few = m.compare(np.array([1.0, NAN]), np.array([1.0, 2.0]))
    assert np.isnan(few.overlap) and few.as_dict()["overlap"] is None
    with pytest.raises(ValueError, match="dimensions"):
        m.compare(np.zeros((3, 2)), np.zeros((3, 3)))


def test_kde_integrates_to_one():
    grid = np.linspace(-5, 5, 512)
    dens = m.kde_on_grid(np.array([0.0]), grid, 1.0)
    assert dens.sum() * (grid[1] - grid[0]) == pytest.approx(1.0)
    assert dens[np.argmin(np.abs(grid))] == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-2)


# --- diversity, copying, drones ------------------------------------------------------------------


def _window(cells):
    w = np.zeros((17, 64, 72), bool)
    for t, s, p in cells:
        w[t, s, p] = True
    return w


def test_overlap_matrix_by_hand():
    a = _window([(0, 0, 0), (1, 5, 3)])
    b = _window([(1, 5, 3), (2, 1, 1), (3, 3, 3)])
    empty = _window([])
    ov = m.overlap_matrix(np.stack([a, b, empty]))
    # |a & b| = 1, |a | b| = 4
    assert ov[0, 1] == ov[1, 0] == 0.25
    assert ov[0, 0] == ov[1, 1] == 1.0
    assert ov[0, 2] == 0.0 and np.isnan(ov[2, 2])
    assert m.overlap_matrix(a[None], np.stack([b, a])).tolist() == [[0.25, 1.0]]


def test_within_overlap_by_hand():
    a = _window([(0, 0, 0), (1, 5, 3)])
    b = _window([(1, 5, 3), (2, 1, 1), (3, 3, 3)])
    c = _window([(0, 0, 0)])
    # pairs: (a,b) 1/4, (a,c) 1/2, (b,c) 0 -> mean 0.25
    assert m.within_overlap(np.stack([a, b, c])) == pytest.approx(0.25)
    assert m.within_overlap(np.stack([a, a, a])) == 1.0


def test_nearest_overlap_chunks_and_groups():
    ref = np.stack([_window([(1, s, 3) for s in range(k)]) for k in (1, 2, 4, 8)])
    x = np.stack([_window([(1, s, 3) for s in range(3)]), _window([(5, 0, 0)])])
    # x[0] has 3 cells; overlaps with ref: 1/3, 2/3, 3/4, 3/8 -> best ref[2]
    for chunk in (1, 3, 16):
        best, idx = m.nearest_overlap(x, ref, chunk=chunk)
        assert best[0] == pytest.approx(0.75) and idx[0] == 2
        assert best[1] == 0.0
    best, idx = m.nearest_overlap(x, ref, groups=(np.array(["s", "t"]), np.array(["u", "u", "s", "u"])))
    assert best[0] == pytest.approx(2 / 3) and idx[0] == 1  # ref[2] is the same song: skipped


def test_held_pitch_counts_steps_of_a_pitch_and_ignores_drums():
    # track 5 pitch 10: two notes of 30 and 25 steps (55 steps on); track 7 pitch 20: one note of
    # 40 steps; the drum track on every step does not count
    w = _window([(5, s, 10) for s in list(range(30)) + list(range(31, 56))] + [(7, s, 20) for s in range(3, 43)]
                + [(0, s, 12) for s in range(64)])
    share, track, pitch = m.held_pitch(np.stack([w, _window([(0, 1, 1)])]))
    assert share.tolist() == [55 / 64, 0.0]
    assert track.tolist() == [5, -1] and pitch.tolist() == [24 + 10, -1]


def test_diversity_flags_a_collapsed_set():
    rng = np.random.default_rng(0)
    real = np.zeros((6, 17, 64, 72), bool)
    for i in range(6):
        real[i, 7, rng.integers(0, 60, 20), rng.integers(0, 72, 20)] = True
    drone = _window([(7, s, 30) for s in range(64)])
    d = m.diversity(np.stack([drone] * 4), real)
    assert d["within_generated"] == 1.0 and d["held_generated"] == 1.0
    assert d["drone_pitch_generated"] == "Ensemble F#3" and d["drone_generated"] == 1.0  # MIDI 24 + 30 = 54
    assert d["within_ratio"] > 5 and d["held_real"] == 0.0 and d["drone_pitch_real"] == ""
