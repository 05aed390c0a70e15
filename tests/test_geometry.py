"""b2b.music.geometry: the one home of the window shape and of the rules for turning input into windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from b2b.music import audio, data, geometry, plot
from b2b.evaluation import evaluate, metrics
from b2b.sampling import generate
from b2b.model import networks
from b2b.music.geometry import as_windows, binarize


def test_geometry_has_one_home():
    assert geometry.SAMPLE_SHAPE == (17, 64, 72) == (geometry.N_TRACKS, geometry.N_STEPS, geometry.N_PITCHES)
    assert geometry.N_STEPS == geometry.N_BARS * geometry.BEATS_PER_BAR * geometry.STEPS_PER_BEAT
    for module in (data, metrics, generate, networks):  # the same objects, not copies
        for name in ("N_TRACKS", "N_STEPS", "N_PITCHES", "SAMPLE_SHAPE"):
            if hasattr(module, name):
                assert getattr(module, name) is getattr(geometry, name), (module.__name__, name)
    assert data.TRACKS is geometry.TRACKS and data.track_family is geometry.track_family
    assert geometry.track_family(33, False) == 5 == [t.name for t in geometry.TRACKS].index("Bass")


def _window(seed: int = 0) -> np.ndarray:
    x = np.zeros((17, 64, 72), bool)
    x[1, 3:9, 40] = True  # piano, steps 3..8, pitch row 40: asymmetric in every axis
    x[5, 60, 2] = True
    return x


def test_as_windows_accepts_one_window_batches_tensors_and_songs():
    w = _window()
    assert as_windows(w).shape == (1, 17, 64, 72)
    np.testing.assert_array_equal(as_windows(np.stack([w, ~w]))[1], ~w)
    t = torch.from_numpy(w.astype(np.float32)).to(torch.bfloat16)
    got = as_windows(t)
    assert got.dtype == np.float32 and got.sum() == w.sum()
    song = np.zeros((17, 100, 72), np.float32)
    assert as_windows(song, song=True).shape == (1, 17, 100, 72)
    with pytest.raises(ValueError, match=r"^song: expected windows of shape \(n, 17, 64, 72\) or one window "
                                         r"\(17, 64, 72\), got shape \(17, 100, 72\)$"):
        as_windows(song, name="song")


@pytest.mark.parametrize("bad, message", [
    (np.zeros((17, 72, 64)), r"got shape \(17, 72, 64\)"),                      # swapped axes
    (np.zeros((2, 16, 64, 72)), r"got shape \(2, 16, 64, 72\)"),                # 16 tracks
    (np.zeros((17, 64)), r"got shape \(17, 64\)"),
    (np.full((17, 64, 72), np.nan), "NaN or infinite"),
    (np.full((17, 64, 72), np.inf), "NaN or infinite"),
    (np.full((17, 64, 72), 1.5), r"values in \[1.5, 1.5\].*apply the sigmoid first"),
    (np.full((17, 64, 72), -0.5), r"values in \[-0.5, -0.5\]"),
    (np.zeros((17, 64, 72), complex), "dtype complex128"),
    (np.zeros((17, 64, 72), object), "dtype object"),
])
def test_as_windows_refuses_with_one_line_naming_the_input(bad, message):
    with pytest.raises(ValueError, match=f"^probs: .*{message}") as e:
        as_windows(bad, name="probs")
    assert "\n" not in str(e.value)


def test_binarize_rules():
    w = _window()
    probs = np.where(w, 0.7, 0.2).astype(np.float32)
    np.testing.assert_array_equal(binarize(probs, 0.7)[0], w)            # on means value >= threshold
    assert not binarize(probs, 0.71).any()
    np.testing.assert_array_equal(binarize(w.astype(np.uint8))[0], w)    # exact 0/1 needs no threshold
    with pytest.raises(ValueError, match="holds probabilities.*--threshold"):
        binarize(probs, name="samples.npy")


def test_every_module_applies_the_same_rules(tmp_path):
    bad = np.full((2, 17, 64, 72), 1.5, np.float32)
    for call in (lambda: metrics.polyphony(bad, threshold=0.5), lambda: audio.render(bad[0]),
                 lambda: plot.pianoroll(bad[0]), lambda: generate.write_samples(bad, tmp_path / "o", 0.5),
                 lambda: data.windows_to_multitrack(bad)):
        with pytest.raises(ValueError, match=r"values in \[1.5, 1.5\], expected bools or probabilities"):
            call()
    np.save(tmp_path / "s.npy", np.full((2, 17, 64, 72), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"s.npy: holds probabilities"):
        evaluate.load_samples(tmp_path / "s.npy")
    # and the same notes
    w = _window()
    probs = np.where(w, 0.9, 0.1)
    np.testing.assert_array_equal(metrics.as_rolls(probs, 0.5)[0], w)
    np.testing.assert_array_equal(data._binarize(probs, 0.5), w)
