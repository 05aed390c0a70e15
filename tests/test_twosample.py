"""b2b.evaluation.twosample: the classifier two-sample test and its confidence interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from b2b.evaluation.twosample import classifier, classifier_two_sample_test, shuffled_by_group, wilson_interval


def test_wilson_interval_by_hand():
    # 8 of 10: p = 0.8, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71677,
    # half 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.22657
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4) and high == pytest.approx(0.94331, abs=1e-4)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_classifier_shapes():
    import torch

    assert classifier()(torch.zeros(3, 17, 64, 72)).shape == (3,)


def _windows(n, track, pitches, rng):
    x = np.zeros((n, 17, 64, 72), bool)
    for i in range(n):
        p = rng.choice(pitches)
        start = rng.integers(0, 48)
        x[i, track, start:start + 16, p] = True
    return x


def test_separable_sets_are_told_apart():
    rng = np.random.default_rng(1)
    real = _windows(48, 7, [10, 14, 17], rng)  # Ensemble, low pitches
    fake = _windows(48, 1, [50, 55, 60], rng)  # Piano, high pitches
    res = classifier_two_sample_test(real, fake, steps=60, batch=16, seed=0)
    assert res.n_train == 48 and res.n_test == 48
    assert res.accuracy == 1.0 and res.low > 0.9 and res.p_value < 1e-10


def test_one_distribution_is_not_told_apart():
    rng = np.random.default_rng(2)
    both = _windows(96, 7, list(range(10, 40)), rng)
    res = classifier_two_sample_test(both[:48], both[48:], steps=60, batch=16, seed=0)
    assert res.low < 0.5 < res.high, res
    assert res.p_value > 0.05


def test_too_few_windows_is_an_error():
    with pytest.raises(ValueError, match="at least 4 windows"):
        classifier_two_sample_test(np.zeros((3, 17, 64, 72), bool), np.zeros((9, 17, 64, 72), bool))


def test_shuffled_by_group_keeps_songs_in_one_half():
    songs = np.repeat(np.arange(8), 5)[np.random.default_rng(4).permutation(40)]
    order = shuffled_by_group(40, songs, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(40))
    first, second = set(songs[order[:20]]), set(songs[order[20:]])
    assert len(first & second) <= 1  # only the song at the boundary is shared
    runs = np.count_nonzero(np.diff(songs[order]) != 0) + 1
    assert runs == 8  # each song's windows are contiguous
    plain = shuffled_by_group(40, None, np.random.default_rng(0))
    assert len(set(songs[plain[:20]]) & set(songs[plain[20:]])) > 1
    with pytest.raises(ValueError, match="one label per real window"):
        shuffled_by_group(40, songs[:-1], np.random.default_rng(0))
