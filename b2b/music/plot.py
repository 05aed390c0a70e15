"""Pianoroll figures, sample grids and the book's plot style.

One colour per LPD-17 track (:data:`PALETTE`), time in bars with a line at every bar and a tick
at every beat, pitch in note names (MIDI 60 = C4). Every figure function draws inside
:data:`STYLE`; call :func:`style` once to give a notebook's own figures the same look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from b2b.music import geometry as geo

__all__ = [
    "PALETTE",
    "STYLE",
    "style",
    "track_color",
    "note_name",
    "pianoroll",
    "sample_grid",
]

#: One colour per LPD-17 track, in LPD file order (Drums first, then the 16 GM families).
_COLORS = [
    "#3b3b3b",  # Drums
    "#1f77b4",  # Piano
    "#17becf",  # Chromatic Percussion
    "#9467bd",  # Organ
    "#ff7f0e",  # Guitar
    "#2ca02c",  # Bass
    "#d62728",  # Strings
    "#e377c2",  # Ensemble
    "#bcbd22",  # Brass
    "#8c564b",  # Reed
    "#7fb8e6",  # Pipe
    "#f2b134",  # Synth Lead
    "#98df8a",  # Synth Pad
    "#c5b0d5",  # Synth Effects
    "#a0522d",  # Ethnic
    "#7f7f7f",  # Percussive
    "#ff9896",  # Sound Effects
]
_NAMES = [
    "Drums", "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble",
    "Brass", "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive",
    "Sound Effects",
]  # fmt: skip
#: LPD-17 track name → colour.
PALETTE: dict[str, str] = dict(zip(_NAMES, _COLORS))

#: Matplotlib settings shared by every figure of the book.
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=_COLORS[1:] + _COLORS[:1]),
    "image.interpolation": "nearest",
}


def style() -> None:
    """Apply :data:`STYLE` to matplotlib globally (for a notebook's own figures)."""
    mpl.rcParams.update(STYLE)


def track_color(name: str | None = None, *, program: int = 0, is_drum: bool = False) -> str:
    """Colour of a track: by LPD-17 name if known, else by General MIDI family of ``program``."""
    if name in PALETTE:
        return PALETTE[name]
    if is_drum:
        return PALETTE["Drums"]
    return _COLORS[1 + (int(program) // 8) % 16]


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI note number: 60 → ``"C4"``, 24 → ``"C1"``, 61 → ``"C#4"``."""
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    return f"{names[int(pitch) % 12]}{int(pitch) // 12 - 1}"


# --------------------------------------------------------------------------------------------
# Input → a list of tracks
# --------------------------------------------------------------------------------------------


@dataclass
class _Track:
    name: str
    color: str
    roll: np.ndarray  # (time, pitch) float in [0, 1]
    lowest: int  # MIDI pitch of column 0
    is_drum: bool = False


@dataclass
class _Roll:
    tracks: list[_Track]  # all tracks, in order
    n_steps: int
    steps_per_bar: int
    steps_per_beat: int


def _levels(a: np.ndarray, threshold: float | None) -> np.ndarray:
    """Cell shades in [0, 1] (float32): the values themselves, or 0/1 at ``threshold``."""
    if a.dtype == bool or threshold is None:
        return a.astype(np.float32)
    return (a >= threshold).astype(np.float32)


def _window_roll(w: Any, threshold: float | None, name: str = "x") -> _Roll:
    """One window or song roll ``(17, T, 72)`` (checked by :func:`b2b.music.geometry.as_windows`)."""
    batch = geo.as_windows(w, name=name, song=True)
    if len(batch) != 1:
        raise ValueError(f"{name}: expected one window {geo.SAMPLE_SHAPE}, got a batch of shape "
                         f"{batch.shape}; use sample_grid() for batches")
    w = _levels(batch[0], threshold)
    tracks = [
        _Track(t.name, track_color(t.name, program=t.program, is_drum=t.is_drum), w[i],
               geo.LOWEST_PITCH, bool(t.is_drum))
        for i, t in enumerate(geo.TRACKS)
    ]  # fmt: skip
    return _Roll(tracks, w.shape[1], geo.STEPS_PER_BAR, geo.STEPS_PER_BEAT)


def _multitrack_roll(mt: Any, threshold: float | None) -> _Roll:
    tracks = []
    n_steps = max((len(t.pianoroll) for t in mt.tracks), default=0)
    for t in mt.tracks:
        roll = np.asarray(t.pianoroll)
        if roll.dtype != bool and roll.size and roll.max() > 1:  # velocities
            roll = roll / 127.0
            thr = None if threshold is None else min(threshold, 1.0 / 127.0)
        else:
            thr = threshold
        full = np.zeros((n_steps, 128), dtype=np.float32)
        if roll.size:
            full[: len(roll)] = _levels(np.clip(roll, 0.0, 1.0) if roll.dtype != bool else roll, thr)
        tracks.append(_Track(t.name or "", track_color(t.name, program=t.program,
                                                      is_drum=t.is_drum), full, 0, bool(t.is_drum)))
    beat = int(mt.resolution)
    return _Roll(tracks, n_steps, 4 * beat, beat)


def _as_roll(x: Any, threshold: float | None) -> _Roll:
    import pypianoroll

    if isinstance(x, pypianoroll.Multitrack):
        return _multitrack_roll(x, threshold)
    return _window_roll(x, threshold)


def _select(roll: _Roll, tracks: Sequence[str | int] | None) -> list[_Track]:
    if tracks is None:
        return [t for t in roll.tracks if t.roll.any()]
    names = [t.name for t in roll.tracks]
    out = []
    for key in tracks:
        if isinstance(key, (int, np.integer)):
            if not 0 <= key < len(names):
                raise ValueError(f"tracks: index {key} out of range 0..{len(names) - 1}")
            out.append(roll.tracks[int(key)])
        elif key in names:
            out.append(roll.tracks[names.index(key)])
        else:
            raise ValueError(f"tracks: unknown track {key!r}; expected one of {names}")
    return out


def _pitch_range(tracks: Sequence[_Track], min_span: int = 12, margin: int = 2) -> tuple[int, int]:
    """Lowest and highest MIDI pitch to show for ``tracks`` (at least ``min_span`` semitones)."""
    lo, hi = None, None
    for t in tracks:
        cols = np.nonzero(t.roll.any(axis=0))[0]
        if len(cols):
            a, b = t.lowest + cols[0], t.lowest + cols[-1]
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    if lo is None:
        lo, hi = 60, 71
    lo, hi = lo - margin, hi + margin
    if hi - lo + 1 < min_span:
        extra = min_span - (hi - lo + 1)
        lo -= extra // 2
        hi += extra - extra // 2
    return int(lo), int(hi)


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _draw_track(ax: Any, t: _Track, spb: int) -> None:
    n_steps, n_pitches = t.roll.shape
    rgba = np.zeros((n_pitches, n_steps, 4), dtype=np.float32)
    rgba[..., :3] = mpl.colors.to_rgb(t.color)
    rgba[..., 3] = t.roll.T
    ax.imshow(
        rgba, origin="lower", aspect="auto", interpolation="nearest",
        extent=(0, n_steps / spb, t.lowest - 0.5, t.lowest + n_pitches - 0.5),
    )  # fmt: skip


def _decorate(ax: Any, roll: _Roll, lo: int, hi: int) -> None:
    """Bar lines, beat ticks and note-name pitch ticks on an axis whose x unit is the bar."""
    n_bars = roll.n_steps / roll.steps_per_bar
    ax.set_xlim(0, n_bars)
    ax.set_ylim(lo - 0.5, hi + 0.5)
    for b in range(1, int(np.ceil(n_bars))):
        ax.axvline(b, color="0.55", lw=0.8, zorder=3, gid="barline")
    ax.xaxis.set_major_locator(mpl.ticker.MultipleLocator(1))
    ax.xaxis.set_minor_locator(mpl.ticker.MultipleLocator(roll.steps_per_beat / roll.steps_per_bar))
    ax.grid(True, which="minor", axis="x", color="0.9", lw=0.5)
    ax.set_axisbelow(True)
    # every C; with room to spare also every G (C, G) or every E and G (a C major triad)
    classes = (0,) if hi - lo > 30 else ((0, 7) if hi - lo > 14 else (0, 4, 7))
    ticks = [p for p in range(lo, hi + 1) if p % 12 in classes]
    ax.set_yticks(ticks)
    ax.set_yticklabels([note_name(p) for p in ticks])


def _drum_ticks(ax: Any, t: _Track, max_keys: int = 8) -> None:
    """Label the keys a drum track uses with their General MIDI drum names (if few enough)."""
    import pretty_midi

    keys = t.lowest + np.flatnonzero(t.roll.any(axis=0))
    if 0 < len(keys) <= max_keys:
        ax.set_yticks(keys)
        ax.set_yticklabels(
            [pretty_midi.note_number_to_drum_name(int(k)) or note_name(k) for k in keys]
        )


def pianoroll(
    x: Any,
    *,
    ax: Any = None,
    tracks: Sequence[str | int] | None = None,
    threshold: float | None = 0.5,
    title: str | None = None,
) -> Figure:
    """Draw a multitrack pianoroll.

    Parameters
    ----------
    x : array-like or pypianoroll.Multitrack
        One window ``(17, 64, 72)`` (numpy or torch, bool or float; a batch of one is
        accepted), a whole song roll ``(17, T, 72)``, or a Multitrack (its own resolution; 4/4
        assumed for bar lines).
    ax : matplotlib Axes, optional
        Draw all tracks overlaid on this axis, with a legend. Without it, a new figure gets one
        stacked subplot per track, each cropped to the pitches that track uses.
    tracks : sequence of str or int, optional
        Track names or indices to show; default: the active (non-empty) tracks only.
    threshold : float or None
        Values ``>= threshold`` are drawn as notes; ``None`` draws values in [0, 1] as opacity
        (for generator probabilities).
    title : str, optional
        Figure title (axis title when ``ax`` is given).

    Returns
    -------
    matplotlib.figure.Figure
        x is time in bars (a grey line at every bar, a minor tick at every beat); y is pitch,
        labelled with note names (C4 = MIDI 60). Each track's axis label or legend entry is its
        name. An input without notes gives a single axis saying so.
    """
    roll = _as_roll(x, threshold)
    shown = _select(roll, tracks)
    spb = roll.steps_per_bar
    with plt.rc_context(STYLE):
        if ax is not None or not shown:
            if ax is None:
                fig, ax = plt.subplots(figsize=(8, 2.6), layout="constrained")
            fig = ax.figure
            lo, hi = _pitch_range(shown)
            for t in shown:
                _draw_track(ax, t, spb)
            _decorate(ax, roll, lo, hi)
            ax.set_xlabel("time (bars)")
            ax.set_ylabel("pitch")
            if shown:
                handles = [Patch(color=t.color, label=t.name) for t in shown]
                ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1))
            else:
                ax.text(0.5, 0.5, "(no notes)", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")  # fmt: skip
            if title:
                ax.set_title(title)
            return fig
        ranges = [_pitch_range([t]) for t in shown]
        heights = [float(np.clip(hi - lo + 1, 12, 40)) for lo, hi in ranges]
        fig, axes = plt.subplots(
            len(shown), 1, sharex=True, squeeze=False, layout="constrained",
            figsize=(8, 0.6 + 0.045 * sum(heights) + 0.25 * len(shown)),
            gridspec_kw={"height_ratios": heights},
        )  # fmt: skip
        axes = axes[:, 0]
        for a, t, (lo, hi) in zip(axes, shown, ranges):
            _draw_track(a, t, spb)
            _decorate(a, roll, lo, hi)
            if t.is_drum:
                _drum_ticks(a, t)
            a.set_ylabel(t.name, color=t.color, rotation=0, ha="right", va="center",
                         fontweight="bold")  # fmt: skip
        axes[-1].set_xlabel("time (bars)")
        if title:
            fig.suptitle(title)
        return fig


def sample_grid(
    batch: Any,
    *,
    ncols: int = 4,
    threshold: float | None = 0.5,
    titles: Sequence[str] | None = None,
    width: float = 8.0,
) -> Figure:
    """Draw a compact grid of windows (e.g. generator samples), one axis per window.

    Parameters
    ----------
    batch : array-like
        Windows ``(n, 17, 64, 72)`` (numpy or torch) or a sequence of ``(17, 64, 72)`` windows.
    ncols : int
        Columns of the grid; rows follow.
    threshold : float or None
        As in :func:`pianoroll`; ``None`` shows probabilities as opacity.
    titles : sequence of str, optional
        One short title per window.
    width : float
        Figure width in inches.

    Returns
    -------
    matplotlib.figure.Figure
        ``n`` axes (unused grid cells are removed), all tracks of a window overlaid in their
        colours on a common pitch range, bar lines, and one legend of the tracks that occur.
    """
    if not isinstance(batch, np.ndarray) and isinstance(batch, (list, tuple)):
        batch = [geo.as_windows(w, name=f"batch[{i}]", song=True) for i, w in enumerate(batch)]
        batch = np.concatenate(batch) if batch else np.zeros((0,))
    arr = geo.as_windows(batch, name="batch", song=True)
    if arr.shape[0] == 0:
        raise ValueError("batch: expected windows of shape (n, 17, 64, 72) with n >= 1, got none")
    if not (isinstance(ncols, (int, np.integer)) and ncols >= 1):
        raise ValueError(f"ncols: expected a positive integer, got {ncols!r}")
    if titles is not None and len(titles) != len(arr):
        raise ValueError(f"titles: expected {len(arr)} titles, got {len(titles)}")
    rolls = [_window_roll(w, threshold, name=f"batch[{i}]") for i, w in enumerate(arr)]
    active = [[t for t in r.tracks if t.roll.any()] for r in rolls]
    lo, hi = _pitch_range([t for a in active for t in a])
    n = len(rolls)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, sharex=True, sharey=True, squeeze=False, layout="constrained",
            figsize=(width, 0.5 + nrows * 1.6 * min(1.0, 4 / ncols + 0.25)),
        )  # fmt: skip
        flat = axes.ravel()
        for i, (a, r, act) in enumerate(zip(flat, rolls, active)):
            for t in act:
                _draw_track(a, t, r.steps_per_bar)
            _decorate(a, r, lo, hi)
            a.tick_params(labelsize=7)
            if i + ncols >= n:  # nothing below: this axis shows the time labels
                a.tick_params(labelbottom=True)
            if titles is not None:
                a.set_title(titles[i], fontsize=8)
        for a in flat[n:]:
            a.remove()
        seen = {t.name: t.color for act in active for t in act}
        order = [name for name in PALETTE if name in seen]
        if order:
            fig.legend(
                handles=[Patch(color=seen[k], label=k) for k in order],
                loc="outside upper center", ncols=min(len(order), 6),
            )  # fmt: skip
        fig.supxlabel("time (bars)", fontsize=8)
        return fig
