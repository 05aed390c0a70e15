"""Tests for b2b.music.plot: axes per active track, bar lines, beat ticks, names and colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pretty_midi  # noqa: E402
import pypianoroll  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from b2b.music import data, plot  # noqa: E402

TRACK = {t.name: i for i, t in enumerate(data.TRACKS)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def window(*notes: tuple[str, int, int, int]) -> np.ndarray:
    """A float window with notes ``(track name, first step, n steps, MIDI pitch)``."""
    w = np.zeros(data.SAMPLE_SHAPE, dtype=np.float32)
    for name, step, length, pitch in notes:
        w[TRACK[name], step : step + length, pitch - data.LOWEST_PITCH] = 1.0
    return w


def barlines(ax) -> list[float]:
    return sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == "barline")


# three active tracks, deliberately not the first three of the table
W3 = window(("Bass", 0, 16, 36), ("Drums", 4, 1, 38), ("Strings", 20, 30, 67), ("Strings", 0, 3, 72))


def test_one_axis_per_active_track_in_table_order():
    fig = plot.pianoroll(W3)
    assert len(fig.axes) == 3
    assert [a.get_ylabel() for a in fig.axes] == ["Drums", "Bass", "Strings"]
    for a, name in zip(fig.axes, ["Drums", "Bass", "Strings"]):
        assert matplotlib.colors.to_hex(a.yaxis.label.get_color()) == plot.PALETTE[name]


def test_bar_lines_and_beat_ticks():
    fig = plot.pianoroll(W3)
    for a in fig.axes:
        # x is in bars: a line every 16 steps = at 1, 2, 3; the window spans 0..4
        assert barlines(a) == [1.0, 2.0, 3.0]
        assert a.get_xlim() == (0.0, 4.0)
        minor = a.xaxis.get_minorticklocs()
        assert np.allclose(minor[(minor > 0) & (minor < 1)], [0.25, 0.5, 0.75])  # beats
    assert fig.axes[-1].get_xlabel() == "time (bars)"


def test_notes_drawn_at_their_step_and_pitch():
    fig = plot.pianoroll(window(("Piano", 20, 3, 61)))
    (ax,) = fig.axes
    (img,) = ax.get_images()
    rgba = img.get_array()
    left, right, bottom, top = img.get_extent()
    assert (left, right) == (0.0, 4.0)
    assert (bottom, top) == (23.5, 95.5)  # row p is MIDI 24 + p
    on = np.argwhere(rgba[..., 3] > 0)
    assert sorted({int(r) for r, _ in on}) == [61 - 24]
    assert sorted({int(c) for _, c in on}) == [20, 21, 22]
    # 61 is C#4 and lies inside the shown pitch range
    lo, hi = ax.get_ylim()
    assert lo < 61 < hi


def test_pitch_axis_uses_note_names():
    fig = plot.pianoroll(window(("Piano", 0, 4, 60), ("Piano", 8, 4, 84)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "C4" in labels and "C6" in labels
    assert all(lab[0] in "CDEFGAB" for lab in labels)


def test_drum_axis_names_the_drums():
    fig = plot.pianoroll(window(("Drums", 0, 1, 36), ("Drums", 4, 1, 38), ("Drums", 2, 1, 42)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [pretty_midi.note_number_to_drum_name(k) for k in (36, 38, 42)]
    assert fig.axes[0].get_yticks().tolist() == [36, 38, 42]


@pytest.mark.parametrize("pitch", [24, 35, 60, 61, 70, 95, 127])
def test_note_name_matches_pretty_midi(pitch):
    assert plot.note_name(pitch) == pretty_midi.note_number_to_name(pitch)


def test_overlay_on_given_axis_has_legend_of_names():
    fig, ax = plt.subplots()
    out = plot.pianoroll(W3, ax=ax, title="three tracks")
    assert out is fig and len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Drums", "Bass", "Strings"]
    assert len(ax.get_images()) == 3
    assert barlines(ax) == [1.0, 2.0, 3.0]
    assert ax.get_title() == "three tracks"


def test_track_selection_and_errors():
    fig = plot.pianoroll(W3, tracks=["Strings", 5])
    assert [a.get_ylabel() for a in fig.axes] == ["Strings", "Bass"]
    with pytest.raises(ValueError, match="tracks: unknown track 'Kazoo'"):
        plot.pianoroll(W3, tracks=["Kazoo"])
    with pytest.raises(ValueError, match=r"x: expected .*\(17, 64, 72\)"):
        plot.pianoroll(np.zeros((17, 64, 70)))
    with pytest.raises(ValueError, match="sample_grid"):
        plot.pianoroll(np.zeros((3, 17, 64, 72)))


def test_threshold_and_torch_input():
    probs = torch.from_numpy(W3 * 0.6)
    assert len(plot.pianoroll(probs, threshold=0.5).axes) == 3
    assert len(plot.pianoroll(probs, threshold=0.7).axes) == 1  # nothing left: one empty axis
    fig = plot.pianoroll(probs, threshold=None)  # opacity = probability
    alpha = fig.axes[0].get_images()[0].get_array()[..., 3]
    assert alpha.max() == pytest.approx(0.6)


def test_empty_window_gives_one_axis():
    fig = plot.pianoroll(np.zeros(data.SAMPLE_SHAPE, dtype=bool))
    assert len(fig.axes) == 1
    assert any("no notes" in t.get_text() for t in fig.axes[0].texts)


def test_multitrack_at_its_own_resolution():
    # 24 steps per beat: 96 per bar; 3 bars -> bar lines at 1 and 2
    roll = np.zeros((288, 128), dtype=np.uint8)
    roll[100:140, 50] = 90
    mt = pypianoroll.Multitrack(
        resolution=24,
        tracks=[
            pypianoroll.StandardTrack(name="Guitar", program=25, pianoroll=roll),
            pypianoroll.StandardTrack(name="Empty", program=0, pianoroll=np.zeros((288, 128))),
        ],
    )
    fig = plot.pianoroll(mt)
    assert [a.get_ylabel() for a in fig.axes] == ["Guitar"]
    ax = fig.axes[0]
    assert barlines(ax) == [1.0, 2.0]
    assert ax.get_xlim() == (0.0, 3.0)
    minor = ax.xaxis.get_minorticklocs()
    assert np.allclose(minor[(minor > 1) & (minor < 2)], [1.25, 1.5, 1.75])  # every 24 steps


def test_song_roll_of_several_bars():
    roll = np.zeros((17, 96, 72), dtype=bool)  # 6 bars
    roll[TRACK["Ensemble"], 5:90, [40, 47]] = True
    roll[TRACK["Organ"], 80:96, 30] = True
    fig = plot.pianoroll(roll)
    assert [a.get_ylabel() for a in fig.axes] == ["Organ", "Ensemble"]
    assert barlines(fig.axes[0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert fig.axes[0].get_xlim() == (0.0, 6.0)


def test_sample_grid_axes_and_legend():
    batch = np.stack([W3, window(("Piano", 0, 8, 60)), W3 * 0, W3, window(("Reed", 3, 3, 70))])
    fig = plot.sample_grid(batch, ncols=3, titles=list("abcde"))
    assert len(fig.axes) == 5  # the sixth cell of the 2 x 3 grid is removed
    assert [a.get_title() for a in fig.axes] == list("abcde")
    for a in fig.axes:
        assert barlines(a) == [1.0, 2.0, 3.0]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["Drums", "Piano", "Bass", "Strings", "Reed"]
    # all samples share one pitch range
    assert len({a.get_ylim() for a in fig.axes}) == 1


def test_sample_grid_inputs():
    assert len(plot.sample_grid(torch.rand(2, 17, 64, 72), threshold=None).axes) == 2
    assert len(plot.sample_grid([W3, W3, W3]).axes) == 3
    with pytest.raises(ValueError, match="batch"):
        plot.sample_grid(np.zeros((2, 17, 64)))
    with pytest.raises(ValueError, match="ncols"):
        plot.sample_grid(W3[None], ncols=0)


def test_style_is_applied_and_colours_are_distinct():
    with matplotlib.rc_context():
        plot.style()
        assert matplotlib.rcParams["font.size"] == plot.STYLE["font.size"]
    assert len(set(plot.PALETTE.values())) == len(data.TRACKS)
    assert list(plot.PALETTE) == [t.name for t in data.TRACKS]
    assert plot.track_color("Bass") == plot.PALETTE["Bass"]
    assert plot.track_color("bass guitar", program=33) == plot.PALETTE["Bass"]
    assert plot.track_color("kit", is_drum=True) == plot.PALETTE["Drums"]
