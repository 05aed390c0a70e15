"""The shape of the music, defined once: tracks, steps, pitches, and turning input into windows.

A *window* is 4 bars of 4/4 at four steps per beat over 72 pitches (MIDI 24 to 95) for the 17
LPD-17 track families: an array ``(17, 64, 72)``, tracks × time steps × pitches; a batch is
``(n, 17, 64, 72)``. Every module takes its geometry from here (chapter 1 introduces it), and
every module that accepts windows checks them with :func:`as_windows` and turns them into notes
with :func:`binarize`, so the rules and the messages are the same everywhere:

* numpy arrays and torch tensors (any device, bfloat16 included) are accepted;
* shapes ``(17, 64, 72)`` (one window) and ``(n, 17, 64, 72)``, and with ``song=True`` also
  rolls of any length ``(17, T, 72)`` / ``(n, 17, T, 72)``;
* values are bools, or real numbers in [0, 1] with no NaN or infinity (probabilities: apply the
  generator's sigmoid first);
* a cell is a note when ``value >= threshold``; without a threshold only 0 and 1 are accepted; a
  threshold is a number strictly between 0 and 1 (:func:`check_threshold`).

This module needs only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "N_TRACKS", "STEPS_PER_BEAT", "BEATS_PER_BAR", "STEPS_PER_BAR", "N_BARS", "N_STEPS",
    "LOWEST_PITCH", "N_PITCHES", "SAMPLE_SHAPE", "Track", "TRACKS", "track_family",
    "as_windows", "binarize", "check_threshold",
]

N_TRACKS = 17
STEPS_PER_BEAT = 4
BEATS_PER_BAR = 4
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR  # 16
N_BARS = 4
N_STEPS = N_BARS * STEPS_PER_BAR  # 64
LOWEST_PITCH = 24
N_PITCHES = 72
SAMPLE_SHAPE = (N_TRACKS, N_STEPS, N_PITCHES)


@dataclass(frozen=True)
class Track:
    """One LPD-17 track: its ``name``, General MIDI ``program`` (0–127) and drum flag."""

    name: str
    program: int
    is_drum: bool


TRACKS: tuple[Track, ...] = (
    Track("Drums", 0, True),
    Track("Piano", 0, False),
    Track("Chromatic Percussion", 8, False),
    Track("Organ", 16, False),
    Track("Guitar", 24, False),
    Track("Bass", 32, False),
    Track("Strings", 40, False),
    Track("Ensemble", 48, False),
    Track("Brass", 56, False),
    Track("Reed", 64, False),
    Track("Pipe", 72, False),
    Track("Synth Lead", 80, False),
    Track("Synth Pad", 88, False),
    Track("Synth Effects", 96, False),
    Track("Ethnic", 104, False),
    Track("Percussive", 112, False),
    Track("Sound Effects", 120, False),
)


def track_family(program: int, is_drum: bool) -> int:
    """Index into :data:`TRACKS` of the LPD-17 family of a General MIDI ``program`` (0–127).

    Drum tracks go to 0 (Drums); other tracks to ``1 + program // 8``.
    """
    if is_drum:
        return 0
    program = int(program)
    if not 0 <= program <= 127:
        raise ValueError(f"program must be a General MIDI program 0..127, got {program}")
    return 1 + program // 8


def as_windows(x: Any, *, name: str = "x", song: bool = False) -> np.ndarray:
    """Check window-like ``x`` and return it as a numpy batch ``(n, 17, T, 72)``.

    Parameters
    ----------
    x : array-like or torch.Tensor
        ``(17, 64, 72)`` or ``(n, 17, 64, 72)`` (with ``song=True``: any ``T >= 1`` steps),
        bools or real numbers in [0, 1].
    name : str
        What ``x`` is called in error messages (an argument or a file name).
    song : bool
        Accept rolls of any length, not only 64-step windows.

    Returns
    -------
    np.ndarray
        ``(n, 17, T, 72)`` with ``T = 64`` unless ``song``; the input's dtype (bool or a number
        type; bfloat16 tensors become float32). One window gives ``n = 1``.

    Raises
    ------
    ValueError
        A one-line message naming ``name`` and what was expected.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu()
        x = x.float().numpy() if str(x.dtype) == "torch.bfloat16" else x.numpy()
    arr = np.asarray(x)
    steps_ok = arr.ndim in (3, 4) and arr.shape[-2] >= 1 and (song or arr.shape[-2] == N_STEPS)
    if not (steps_ok and (arr.shape[-3], arr.shape[-1]) == (N_TRACKS, N_PITCHES)):
        also = f", or song rolls ({N_TRACKS}, T, {N_PITCHES})" if song else ""
        raise ValueError(f"{name}: expected windows of shape (n, {N_TRACKS}, {N_STEPS}, {N_PITCHES}) or one "
                         f"window {SAMPLE_SHAPE}{also}, got shape {tuple(arr.shape)}")
    if arr.dtype != bool and (not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr)):
        raise ValueError(f"{name}: expected bools or real numbers in [0, 1], got dtype {arr.dtype}")
    if arr.dtype != bool and arr.size:
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: values in [{lo:g}, {hi:g}], expected bools or probabilities in [0, 1] "
                             "(apply the sigmoid first)")
    return arr.reshape((-1,) + arr.shape[-3:])


def binarize(x: Any, threshold: float | None = None, *, name: str = "x", song: bool = False) -> np.ndarray:
    """Notes of window-like ``x``: a bool batch ``(n, 17, T, 72)``, checked by :func:`as_windows`.

    A cell is on where ``value >= threshold``. Without ``threshold``, ``x`` must be bools or
    exactly 0 and 1 (real windows); probabilities then raise ValueError.
    """
    arr = as_windows(x, name=name, song=song)
    if arr.dtype == bool:
        return arr
    if threshold is None:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name}: holds probabilities (values other than 0 and 1): give a threshold "
                             "(--threshold on the command line) to binarize them")
        return arr != 0
    return arr >= threshold


def check_threshold(threshold: Any, name: str = "threshold", *, text: bool = True) -> float:
    """``threshold`` as a float strictly between 0 and 1; ValueError naming ``name`` otherwise.

    With ``text`` a number written as text (``"0.5"``, as a command line gives it) is accepted;
    without, only an int or float is (a value read from a file).
    """
    problem = ValueError(f"{name}: expected a number strictly between 0 and 1, got {threshold!r}")
    if not text and not isinstance(threshold, (int, float)):
        raise problem
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise problem from None
    if not 0.0 < t < 1.0:
        raise problem
    return t
