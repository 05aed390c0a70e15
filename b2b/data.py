"""Music as data: sample geometry, the LPD-17 track table, Multitrack ⇄ windows, the compact store.

A **window** (one training sample) is a boolean array ``(17, 64, 72)``: the 17 LPD-17 tracks ×
64 time steps (4 bars of 4/4 at 4 steps per beat) × 72 pitches (row ``p`` is MIDI pitch
``24 + p``). This module turns songs into windows and back:

* :func:`load_lpd` reads one LPD-17 ``.npz`` (the pypianoroll 0.3.0 layout) into a
  :class:`pypianoroll.Multitrack`; :func:`read_midi` reads a MIDI file.
* :func:`multitrack_to_roll` resamples a Multitrack to a song roll ``(17, T, 72)`` at 4 steps per
  beat; :func:`roll_window_starts` picks the windows worth keeping; :func:`multitrack_to_windows`
  does both.
* :func:`windows_to_multitrack` and :func:`write_midi` go back from windows to music.
* :func:`write_store` / :class:`WindowDataset` keep many songs as packed bits on disk and serve
  windows as ``float32`` tensors; :func:`open_dataset` finds a prepared dataset by name.

Rules (stated once, used everywhere)
------------------------------------
Resampling
    Notes are read as events: for every track and pitch a note starts where the roll switches
    on and ends where it switches off (LPD separates repeated notes by a one-step gap). Onsets
    and offsets are moved to the nearest sixteenth (halves round up); a note shorter than a
    sixteenth still sounds one step. When a note of the same track and pitch starts at or
    before the step where the previous one ends, the new onset is kept and the previous note is
    cut to end one step earlier, so the two stay separate notes in the boolean roll. (Only a
    one-step note immediately followed by the same pitch cannot be separated: a boolean roll
    has no room for the gap; the two then read as one two-step note.) Two notes of the same
    pitch starting on the same step are one note.
Drums
    A drum note is a hit: the drum track keeps one step at each onset. In a Multitrack every
    active step of a drum track is read as a hit (LPD and ``pypianoroll.read`` store drums as
    one-step hits), and :func:`write_midi` writes every active drum step as its own hit, so drum
    rolls survive the MIDI round trip.
Pitch range
    Pitched notes outside MIDI 24–95 are folded by octaves into the range (pitch class kept);
    drum notes outside the range are dropped (General MIDI drums 35–81 all fit).
Bars
    Bars start at the first downbeat (the Multitrack's ``downbeat`` array if it has one, else
    time 0). Silence is added before it so that it falls on a bar line: a pickup is kept at the
    end of an otherwise empty first bar. The song is cut to whole bars: a trailing partial bar
    is kept (padded with silence) only if a note sounds in it.
Track mapping
    A Multitrack of 17 tracks named as in :data:`TRACKS` (LPD-17 files) keeps its order.
    Otherwise a track goes to the LPD-17 family of its General MIDI program (``program // 8``,
    the order of :data:`TRACKS`), drum tracks to Drums (on LPD-17 files, whose programs are
    those of :data:`TRACKS`, both give the same). Tracks of the same family are merged.
Windows
    Windows are 64 steps long and start on bar lines every ``hop_bars`` bars. A window is kept
    when at least ``min_active_bars`` (default 3) of its 4 bars have a note sounding and it has at
    least ``min_onsets`` (default 8) note onsets over all tracks (a note already sounding at the
    window's first step counts as an onset there).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.utils.data

from b2b.atomic import atomic_path
from b2b.geometry import (  # noqa: F401  (re-exported: the geometry as b2b.data names it)
    BEATS_PER_BAR, LOWEST_PITCH, N_BARS, N_PITCHES, N_STEPS, N_TRACKS, SAMPLE_SHAPE, STEPS_PER_BAR,
    STEPS_PER_BEAT, TRACKS, Track, binarize, track_family,
)

__all__ = [
    "N_TRACKS", "STEPS_PER_BEAT", "BEATS_PER_BAR", "STEPS_PER_BAR", "N_BARS", "N_STEPS",
    "LOWEST_PITCH", "N_PITCHES", "SAMPLE_SHAPE", "Track", "TRACKS", "DataError",
    "DEFAULT_MIN_ONSETS", "DEFAULT_MIN_ACTIVE_BARS", "DATA_SOURCES",
    "load_lpd", "read_midi", "track_family", "notes_to_roll", "multitrack_to_roll",
    "roll_window_starts", "multitrack_to_windows", "windows_to_multitrack", "windows_to_pretty_midi", "write_midi",
    "write_store", "is_store", "WindowDataset", "default_root", "asset", "open_dataset",
    "add_arguments", "run",
]

# The geometry (N_TRACKS ... SAMPLE_SHAPE, Track, TRACKS, track_family) lives in b2b.geometry
# and is re-exported here, where chapter 1 meets it.
_PACKED_BYTES = N_PITCHES // 8  # 9 bytes per step

DEFAULT_MIN_ONSETS = 8
DEFAULT_MIN_ACTIVE_BARS = 3


class DataError(ValueError):
    """A data file (or a song in it) is missing, corrupt, or not what was expected."""


# --------------------------------------------------------------------------------------------
# Reading songs
# --------------------------------------------------------------------------------------------


def load_lpd(path: str | os.PathLike) -> "pypianoroll.Multitrack":  # noqa: F821
    """Read one LPD-17 ``.npz`` file (pypianoroll 0.3.0 layout) into a Multitrack.

    The file holds ``info.json`` (``beat_resolution`` and per track ``program``, ``is_drum``,
    ``name``), ``tempo.npy`` (bpm per step), optionally ``downbeat.npy`` (bool per step) and per
    track ``i`` a scipy CSC matrix ``pianoroll_{i}_csc_{data,indices,indptr,shape}`` of uint8
    velocities, shape ``(T_i, 128)``; absent families are stored as empty ``(0, 128)`` tracks.

    Returns
    -------
    pypianoroll.Multitrack
        Named after the file (so that later errors name it); ``resolution`` = the file's
        ``beat_resolution``; every track a ``StandardTrack`` of uint8 velocities ``(T, 128)``,
        empty tracks padded with zeros to the song length ``T``.

    Raises
    ------
    DataError
        The file is missing, not a readable zip/npz, truncated, lacks a key, or has a wrong shape.
    """
    import pypianoroll
    import scipy.sparse

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such LPD file")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            if "info.json" not in files:
                raise DataError(f"{path}: not an LPD file: no info.json in the archive")
            raw = f["info.json"]
            info = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw.tobytes())
            if not isinstance(info, dict) or "beat_resolution" not in info:
                raise DataError(f"{path}: info.json has no 'beat_resolution' (pypianoroll 0.3.0 layout expected)")
            resolution = int(info["beat_resolution"])
            if resolution <= 0:
                raise DataError(f"{path}: beat_resolution must be positive, got {resolution}")
            if "tempo" not in files:
                raise DataError(f"{path}: no tempo array in the archive")
            tempo = np.asarray(f["tempo"], dtype=float).reshape(-1)
            downbeat = np.asarray(f["downbeat"]).reshape(-1).astype(bool) if "downbeat" in files else None
            n = 0
            while f"pianoroll_{n}_csc_shape" in files:
                n += 1
            if n == 0:
                raise DataError(f"{path}: no tracks (pianoroll_0_csc_* arrays) in the archive")
            rolls, meta = [], []
            for i in range(n):
                keys = [f"pianoroll_{i}_csc_{k}" for k in ("data", "indices", "indptr", "shape")]
                missing = [k for k in keys if k not in files]
                if missing:
                    raise DataError(f"{path}: track {i} lacks {', '.join(missing)}")
                shape = tuple(int(s) for s in np.asarray(f[keys[3]]).reshape(-1))
                if len(shape) != 2 or shape[1] != 128 or shape[0] < 0:
                    raise DataError(f"{path}: track {i} has shape {shape}, expected (T, 128)")
                try:
                    mat = scipy.sparse.csc_matrix((f[keys[0]], f[keys[1]], f[keys[2]]), shape=shape)
                    mat.check_format(full_check=True)
                except (ValueError, TypeError) as e:
                    raise DataError(f"{path}: track {i} is not a valid CSC matrix of shape {shape}: {e}") from None
                rolls.append(mat.toarray())
                ti = info.get(str(i), {})
                meta.append((str(ti.get("name", TRACKS[i].name if i < N_TRACKS else f"track {i}")),
                             int(ti.get("program", 0)), bool(ti.get("is_drum", False))))
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, UnicodeDecodeError,
            json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable LPD .npz file ({type(e).__name__}: {e})") from None

    length = max([len(tempo)] + [r.shape[0] for r in rolls] + ([len(downbeat)] if downbeat is not None else []))
    tracks = []
    for roll, (name, program, is_drum) in zip(rolls, meta):
        full = np.zeros((length, 128), np.uint8)
        full[: roll.shape[0]] = np.clip(roll, 0, 127).astype(np.uint8)
        tracks.append(pypianoroll.StandardTrack(name=name, program=program, is_drum=is_drum, pianoroll=full))
    if len(tempo) < length:
        tempo = np.concatenate([tempo, np.full(length - len(tempo), tempo[-1] if len(tempo) else 120.0)])
    if downbeat is not None and len(downbeat) < length:
        downbeat = np.concatenate([downbeat, np.zeros(length - len(downbeat), bool)])
    return pypianoroll.Multitrack(name=str(path), resolution=resolution,
                                  tempo=tempo, downbeat=downbeat, tracks=tracks)


def read_midi(path: str | os.PathLike, *, check_time_signature: bool = True) -> "pypianoroll.Multitrack":  # noqa: F821
    """Read a MIDI file into a Multitrack at 4 steps per beat, named after the file.

    Unlike ``pypianoroll.read`` this checks what a window needs first: the file parses, has
    notes, and (if ``check_time_signature``) every time signature is 4/4 (a file without one is
    taken as 4/4, its first beat at time 0, where ``pypianoroll.read`` would estimate it).

    Raises
    ------
    DataError
        Unreadable file, no notes, or a time signature other than 4/4.
    """
    import pretty_midi
    import pypianoroll

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such MIDI file")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido raises many kinds of errors on bad files
        raise DataError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None
    if check_time_signature:
        for ts in pm.time_signature_changes:
            if (ts.numerator, ts.denominator) != (4, 4):
                raise DataError(f"{path}: time signature {ts.numerator}/{ts.denominator} at "
                                f"{ts.time:.2f} s; only 4/4 is supported")
    if not any(inst.notes for inst in pm.instruments):
        raise DataError(f"{path}: the MIDI file has no notes")
    # beats from the first time signature, else from time 0 (pypianoroll would guess from onsets)
    first = min((ts.time for ts in pm.time_signature_changes), default=0.0)
    mt = pypianoroll.from_pretty_midi(pm, resolution=STEPS_PER_BEAT, algorithm="custom", first_beat_time=first)
    mt.name = str(path)
    return mt


# --------------------------------------------------------------------------------------------
# Multitrack -> roll -> windows
# --------------------------------------------------------------------------------------------


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=float) + 0.5 + 1e-9).astype(np.int64)


def notes_to_roll(track: np.ndarray, pitch: np.ndarray, onset: np.ndarray, offset: np.ndarray,
                  is_drum: np.ndarray | bool = False, n_steps: int | None = None) -> np.ndarray:
    """Place note events on the window grid: the shared core of every conversion.

    Parameters
    ----------
    track : int array (N,)
        Index into :data:`TRACKS` per note.
    pitch : int array (N,)
        MIDI pitch per note (any value; folded or dropped by the module's pitch rule).
    onset, offset : float arrays (N,)
        Note start and end in steps at 4 steps per beat, already aligned to bars (step 0 is a
        bar line). Rounded to the nearest step, halves up.
    is_drum : bool or bool array (N,)
        Drum notes keep only their onset step.
    n_steps : int, optional
        Length of the song in steps before trimming to whole bars (default: the last offset).

    Returns
    -------
    np.ndarray, bool, shape (17, T, 72)
        ``T`` a multiple of 16, see the module's *Bars* rule.
    """
    track = np.asarray(track, np.int64).reshape(-1)
    pitch = np.asarray(pitch, np.int64).reshape(-1)
    on = _round_half_up(onset).reshape(-1)
    off = _round_half_up(offset).reshape(-1)
    drum = np.broadcast_to(np.asarray(is_drum, bool), track.shape)
    off = np.where(drum, on + 1, np.maximum(off, on + 1))
    # pitch rule: fold pitched notes by octaves, drop drum notes out of range
    lo, hi = LOWEST_PITCH, LOWEST_PITCH + N_PITCHES - 1
    folded = np.where(pitch < lo, pitch + 12 * ((lo - pitch + 11) // 12), pitch)
    folded = np.where(folded > hi, folded - 12 * ((folded - hi + 11) // 12), folded)
    pitch = np.where(drum, pitch, folded)
    keep = (on >= 0) & (pitch >= lo) & (pitch <= hi)
    track, pitch, on, off = track[keep], pitch[keep] - lo, on[keep], off[keep]

    if len(on):
        order = np.lexsort((-off, on, pitch, track))
        track, pitch, on, off = track[order], pitch[order], on[order], off[order]
        key = track * N_PITCHES + pitch
        # same key, same onset: one note (the longest, listed first)
        first = np.ones(len(on), bool)
        first[1:] = (key[1:] != key[:-1]) | (on[1:] != on[:-1])
        track, pitch, on, off, key = track[first], pitch[first], on[first], off[first], key[first]
        # same key, next onset at or before this offset: cut this note one step before it
        nxt = np.zeros(len(on), bool)
        nxt[:-1] = (key[1:] == key[:-1])
        nxt_on = np.empty_like(on)
        nxt_on[:-1] = on[1:]
        clash = nxt.copy()
        clash[:-1] &= nxt_on[:-1] <= off[:-1]
        off = np.where(clash, np.maximum(on + 1, nxt_on - 1), off)

    end = int(off.max()) if len(off) else 0
    n = end if n_steps is None else int(n_steps)
    length = max((n // STEPS_PER_BAR) * STEPS_PER_BAR, -(-end // STEPS_PER_BAR) * STEPS_PER_BAR)
    delta = np.zeros((N_TRACKS, length + 1, N_PITCHES), np.int16)
    np.add.at(delta, (track, on, pitch), 1)
    np.add.at(delta, (track, off, pitch), -1)
    return np.cumsum(delta[:, :length], axis=1) > 0


def _runs(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pitch, start, end) of every run of nonzero steps in a ``(T, P)`` roll, pitch-major."""
    on = np.asarray(roll) > 0
    d = np.diff(on.T.astype(np.int8), axis=1, prepend=0, append=0)
    p_on, t_on = np.nonzero(d == 1)
    _, t_off = np.nonzero(d == -1)
    return p_on, t_on, t_off


def _name_of(mt: Any, name: str | None) -> str:
    return str(name or getattr(mt, "name", None) or "<multitrack>")


def multitrack_to_roll(mt: "pypianoroll.Multitrack", *, check_time_signature: bool = True,  # noqa: F821
                       name: str | None = None) -> np.ndarray:
    """Resample a Multitrack to a song roll on the window grid.

    Parameters
    ----------
    mt : pypianoroll.Multitrack
        Any resolution (LPD: 24 steps per beat); tracks in any order (mapped by program).
    check_time_signature : bool
        If the Multitrack has a ``downbeat`` array, require downbeats exactly 4 beats apart.
    name : str, optional
        Name used in error messages (default: ``mt.name``).

    Returns
    -------
    np.ndarray, bool, shape (17, T, 72)
        4 steps per beat, ``T`` a multiple of 16. See the module docstring for the rules
        (resampling, drums, pitch range, bars, track mapping).

    Raises
    ------
    DataError
        Not in 4/4, or a track of the wrong shape.
    """
    label = _name_of(mt, name)
    res = int(mt.resolution)
    if res <= 0:
        raise DataError(f"{label}: resolution must be positive, got {res}")
    lengths = [np.asarray(t.pianoroll).shape[0] for t in mt.tracks]
    for t in mt.tracks:
        shape = np.asarray(t.pianoroll).shape
        if len(shape) != 2 or shape[1] != 128:
            raise DataError(f"{label}: track {t.name!r} has shape {shape}, expected (T, 128)")
    downbeat = getattr(mt, "downbeat", None)
    # song length: the tracks and the downbeat array (not ``tempo``: pypianoroll.read makes it
    # 24 entries per beat whatever the resolution)
    length = max(lengths + [len(downbeat) if downbeat is not None else 0])
    first = 0
    if downbeat is not None and np.any(downbeat):
        beats = np.flatnonzero(np.asarray(downbeat).reshape(-1))
        first = int(beats[0])
        if check_time_signature and len(beats) > 1:
            gaps = np.diff(beats)
            bad = gaps != BEATS_PER_BAR * res
            if np.any(bad):
                g = int(gaps[bad][0])
                raise DataError(f"{label}: not in 4/4: downbeats {g} steps ({g / res:g} beats) apart "
                                f"at step {int(beats[:-1][bad][0])}, expected {BEATS_PER_BAR * res} "
                                f"(4 beats at resolution {res})")
    scale = STEPS_PER_BEAT / res
    first_step = int(_round_half_up(first * scale))
    shift = (-first_step) % STEPS_PER_BAR  # silence added so the first downbeat is a bar line

    # already in LPD-17 order (17 tracks named as in TRACKS): keep the order whatever the programs
    lpd_order = len(mt.tracks) == N_TRACKS and all(
        str(t.name or "").strip().lower() == tr.name.lower() for t, tr in zip(mt.tracks, TRACKS))
    tracks, pitches, ons, offs, drums = [], [], [], [], []
    for i, t in enumerate(mt.tracks):
        roll = np.asarray(t.pianoroll)
        if not roll.any():  # most of LPD's 17 tracks are empty: skip them cheaply
            continue
        if t.is_drum:  # every active step is a hit
            a, p = np.nonzero(roll > 0)
            b = a + 1
        else:
            p, a, b = _runs(roll)
        fam = i if lpd_order else track_family(t.program, bool(t.is_drum))
        tracks.append(np.full(len(p), fam))
        pitches.append(p)
        ons.append(a * scale + shift)
        offs.append(b * scale + shift)
        drums.append(np.full(len(p), bool(t.is_drum)))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return notes_to_roll(cat(tracks, np.int64), cat(pitches, np.int64), cat(ons, float),
                         cat(offs, float), cat(drums, bool), n_steps=int(_round_half_up(length * scale)) + shift)


def _check_roll(roll: Any, label: str) -> np.ndarray:
    roll = np.asarray(roll)
    if roll.ndim != 3 or roll.shape[0] != N_TRACKS or roll.shape[2] != N_PITCHES:
        raise DataError(f"{label}: roll has shape {roll.shape}, expected (17, T, 72)")
    if roll.dtype != np.bool_:
        raise DataError(f"{label}: roll has dtype {roll.dtype}, expected bool")
    if roll.shape[1] % STEPS_PER_BAR:
        raise DataError(f"{label}: roll has {roll.shape[1]} steps, expected whole bars (a multiple of 16)")
    return roll


def roll_window_starts(roll: np.ndarray, *, hop_bars: int = 1, min_onsets: int = DEFAULT_MIN_ONSETS,
                       min_active_bars: int = DEFAULT_MIN_ACTIVE_BARS) -> np.ndarray:
    """Start steps of the windows worth keeping in a song roll.

    Parameters
    ----------
    roll : np.ndarray, bool, shape (17, T, 72)
        ``T`` a multiple of 16.
    hop_bars : int
        Windows start every ``hop_bars`` bars (1: overlapping by 3 bars; 4: disjoint).
    min_onsets : int
        Keep a window only if it has at least this many note onsets (all tracks; a note sounding
        at the window's first step counts as an onset there).
    min_active_bars : int
        ... and at least this many of its 4 bars have a note sounding.

    Returns
    -------
    np.ndarray, int64, shape (n,)
        Start steps (multiples of 16), increasing.
    """
    roll = _check_roll(roll, "roll")
    if int(hop_bars) < 1:
        raise ValueError(f"hop_bars must be >= 1, got {hop_bars}")
    T = roll.shape[1]
    if T < N_STEPS:
        return np.zeros(0, np.int64)
    starts = np.arange(0, T - N_STEPS + 1, STEPS_PER_BAR * int(hop_bars), dtype=np.int64)
    prev = np.zeros_like(roll)
    prev[:, 1:] = roll[:, :-1]
    onset_steps = (roll & ~prev).sum(axis=(0, 2))  # onsets per step
    cum = np.concatenate([[0], np.cumsum(onset_steps)])
    sustained = (roll & prev).sum(axis=(0, 2))  # notes continuing into each step
    onsets = cum[starts + N_STEPS] - cum[starts] + sustained[starts]
    bar_active = roll.reshape(N_TRACKS, T // STEPS_PER_BAR, STEPS_PER_BAR, N_PITCHES).any(axis=(0, 2, 3))
    bars = np.concatenate([[0], np.cumsum(bar_active)])
    b = starts // STEPS_PER_BAR
    active = bars[b + N_BARS] - bars[b]
    return starts[(onsets >= min_onsets) & (active >= min_active_bars)]


def multitrack_to_windows(mt: "pypianoroll.Multitrack", *, hop_bars: int = 1,  # noqa: F821
                          min_onsets: int = DEFAULT_MIN_ONSETS,
                          min_active_bars: int = DEFAULT_MIN_ACTIVE_BARS,
                          check_time_signature: bool = True, name: str | None = None) -> np.ndarray:
    """The windows of a song: :func:`multitrack_to_roll` then :func:`roll_window_starts`.

    Returns
    -------
    np.ndarray, bool, shape (n, 17, 64, 72)

    Raises
    ------
    DataError
        The song is shorter than one window, has no notes, or no window passes the rule.
    """
    label = _name_of(mt, name)
    roll = multitrack_to_roll(mt, check_time_signature=check_time_signature, name=label)
    T = roll.shape[1]
    if not roll.any():
        raise DataError(f"{label}: the song has no notes")
    if T < N_STEPS:
        raise DataError(f"{label}: {T} steps ({T // STEPS_PER_BAR} bars) is shorter than one "
                        f"window of {N_STEPS} steps ({N_BARS} bars)")
    starts = roll_window_starts(roll, hop_bars=hop_bars, min_onsets=min_onsets, min_active_bars=min_active_bars)
    if not len(starts):
        raise DataError(f"{label}: no 4-bar window has >= {min_onsets} onsets and "
                        f">= {min_active_bars} bars with notes")
    return np.stack([roll[:, s:s + N_STEPS] for s in starts])


# --------------------------------------------------------------------------------------------
# Windows -> music
# --------------------------------------------------------------------------------------------


def _binarize(windows: Any, threshold: float) -> np.ndarray:
    """(17, T, 72) or (n, 17, T, 72) numpy/torch, bool or [0, 1] → bool (17, n*T, 72), in order."""
    w = binarize(windows, threshold, name="windows", song=True)
    return np.concatenate(list(w), axis=1) if len(w) else np.zeros((N_TRACKS, 0, N_PITCHES), bool)


def windows_to_multitrack(windows: Any, *, threshold: float = 0.5, tempo: float = 120.0,
                          name: str = "b2b") -> "pypianoroll.Multitrack":  # noqa: F821
    """Turn one window ``(17, 64, 72)`` or a batch ``(n, 17, 64, 72)`` into a Multitrack.

    A batch is played one window after the other. Float values (generator output in [0, 1])
    are binarized with ``value >= threshold``; numpy arrays and torch tensors are accepted.

    Returns
    -------
    pypianoroll.Multitrack
        Resolution 4, constant ``tempo`` (bpm), a downbeat every 16 steps and the 17 tracks of
        :data:`TRACKS` (name, program, drum flag) as ``BinaryTrack`` ``(T, 128)``.
    """
    import pypianoroll

    roll = _binarize(windows, threshold)
    T = roll.shape[1]
    downbeat = np.zeros(T, bool)
    downbeat[::STEPS_PER_BAR] = True
    tracks = []
    for k, tr in enumerate(TRACKS):
        full = np.zeros((T, 128), bool)
        full[:, LOWEST_PITCH:LOWEST_PITCH + N_PITCHES] = roll[k]
        tracks.append(pypianoroll.BinaryTrack(name=tr.name, program=tr.program, is_drum=tr.is_drum, pianoroll=full))
    return pypianoroll.Multitrack(name=name, resolution=STEPS_PER_BEAT, tempo=np.full(T, float(tempo)),
                                  downbeat=downbeat, tracks=tracks)


def windows_to_pretty_midi(windows: Any, *, threshold: float = 0.5, tempo: float = 120.0,
                           velocity: int = 100) -> "pretty_midi.PrettyMIDI":  # noqa: F821
    """Windows (see :func:`windows_to_multitrack`) as a :class:`pretty_midi.PrettyMIDI`.

    Each run of active steps of a pitched track is one note; every active drum step is one hit
    (so a run of sixteenth-note hi-hats stays a run of hits). Only non-empty tracks are included
    (program and drum flag from :data:`TRACKS`), with a 4/4 time signature, a constant ``tempo``
    (bpm) and an end marker at the end of the last window, in seconds. (MIDI has 15 melodic
    channels: with all 16 melodic families active, two share a channel.)
    """
    import pretty_midi

    roll = _binarize(windows, threshold)
    step = 60.0 / float(tempo) / STEPS_PER_BEAT
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(tempo))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    for k, tr in enumerate(TRACKS):
        if not roll[k].any():
            continue
        inst = pretty_midi.Instrument(program=tr.program, is_drum=tr.is_drum, name=tr.name)
        if tr.is_drum:  # a hit per active step, half a step long (no note-off/note-on clash)
            t_on, p = np.nonzero(roll[k])
            t_off = t_on + 0.5
        else:  # a note per run; the end a quarter step late so that readers that truncate
            # (pypianoroll.read) do not lose its last step to rounding errors
            p, t_on, t_off = _runs(roll[k])
            t_off = t_off + 0.25
        for pi, a, b in sorted(zip(p.tolist(), t_on.tolist(), t_off.tolist()), key=lambda x: (x[1], x[0])):
            inst.notes.append(pretty_midi.Note(velocity=int(velocity), pitch=LOWEST_PITCH + pi,
                                               start=a * step, end=b * step))
        pm.instruments.append(inst)
    pm.text_events.append(pretty_midi.Text("end", roll.shape[1] * step))
    return pm


def write_midi(windows: Any, path: str | os.PathLike, *, threshold: float = 0.5,
               tempo: float = 120.0, velocity: int = 100) -> Path:
    """Write windows as a playable MIDI file (see :func:`windows_to_pretty_midi`), atomically.

    The end marker makes ``pypianoroll.read(path, resolution=4)`` give back the whole length.

    Returns
    -------
    Path
        ``path``.
    """
    pm = windows_to_pretty_midi(windows, threshold=threshold, tempo=tempo, velocity=velocity)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pm.write(str(tmp))
    return path


# --------------------------------------------------------------------------------------------
# Compact store
# --------------------------------------------------------------------------------------------

STORE_FORMAT = "b2b-window-store"
STORE_VERSION = 1
_RESERVED = {"format", "version", "sample_shape", "steps_per_beat", "lowest_pitch", "tracks",
             "songs", "window_rule", "n_windows", "n_songs"}


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a complete store folder (both ``meta.json`` and ``store.npz``)."""
    path = Path(path)
    return (path / "meta.json").is_file() and (path / "store.npz").is_file()


def write_store(path: str | os.PathLike, songs: Iterable[tuple[str, np.ndarray]], meta: dict, *,
                hop_bars: int = 1, min_onsets: int = DEFAULT_MIN_ONSETS,
                min_active_bars: int = DEFAULT_MIN_ACTIVE_BARS) -> Path:
    """Write songs as a compact window store, atomically (a temp folder renamed into place).

    Each song ``(song_id, roll)`` has ``roll`` bool ``(17, T, 72)``, ``T`` a multiple of 16.
    Only its non-empty tracks are kept, as packed bits (``np.packbits`` along pitch: 9 bytes per
    step), with the index of its windows (:func:`roll_window_starts`). The folder holds
    ``store.npz`` (``bits`` uint8 (R, 9), ``track_rows`` int64 (S, 17) first row of each
    song track or -1, ``song_steps`` int64 (S,), ``windows`` int64 (n, 2) = song, start step) and
    ``meta.json`` (per-song ids, steps, tracks and window counts, the window rule, and the
    caller's ``meta``). An existing store at ``path`` is replaced.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    meta = dict(meta or {})
    clash = _RESERVED & set(meta)
    if clash:
        raise ValueError(f"meta: keys {sorted(clash)} are reserved by the store")
    if int(hop_bars) < 1:
        raise ValueError(f"hop_bars must be >= 1, got {hop_bars}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()  # (not tempfile.mkdtemp: its mode 0700 would stick to the store)
    try:
        bits, rows, steps, windows, song_meta = [], [], [], [], []
        n_rows, seen = 0, set()
        for song_id, roll in songs:
            song_id = str(song_id)
            if song_id in seen:
                raise ValueError(f"songs: duplicate song id {song_id!r}")
            seen.add(song_id)
            roll = _check_roll(roll, f"song {song_id!r}")
            s = len(steps)
            T = roll.shape[1]
            r = np.full(N_TRACKS, -1, np.int64)
            for k in np.flatnonzero(roll.any(axis=(1, 2))):
                bits.append(np.packbits(roll[k], axis=-1))
                r[k] = n_rows
                n_rows += T
            starts = roll_window_starts(roll, hop_bars=hop_bars, min_onsets=min_onsets,
                                        min_active_bars=min_active_bars)
            windows.append(np.stack([np.full(len(starts), s, np.int64), starts], axis=1))
            rows.append(r)
            steps.append(T)
            song_meta.append({"id": song_id, "steps": T, "windows": int(len(starts)),
                              "tracks": [TRACKS[k].name for k in np.flatnonzero(r >= 0)]})
        arrays = {
            "bits": np.concatenate(bits) if bits else np.zeros((0, _PACKED_BYTES), np.uint8),
            "track_rows": np.stack(rows) if rows else np.zeros((0, N_TRACKS), np.int64),
            "song_steps": np.asarray(steps, np.int64),
            "windows": np.concatenate(windows) if windows else np.zeros((0, 2), np.int64),
        }
        np.savez_compressed(tmp / "store.npz", **arrays)
        full_meta = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "sample_shape": list(SAMPLE_SHAPE),
            "steps_per_beat": STEPS_PER_BEAT, "lowest_pitch": LOWEST_PITCH,
            "tracks": [{"name": t.name, "program": t.program, "is_drum": t.is_drum} for t in TRACKS],
            "window_rule": {
                "hop_bars": int(hop_bars), "min_onsets": int(min_onsets),
                "min_active_bars": int(min_active_bars),
                "rule": (f"4-bar windows starting every {int(hop_bars)} bar(s); kept if >= "
                         f"{int(min_onsets)} note onsets and >= {int(min_active_bars)} of 4 bars with notes"),
            },
            "n_songs": len(steps), "n_windows": int(len(arrays["windows"])),
            **meta,
            "songs": song_meta,
        }
        with open(tmp / "meta.json", "w") as f:
            json.dump(full_meta, f, indent=1, default=_json_default)
        # swap into place: old store moved aside first, removed after
        old = None
        for attempt in range(3):  # another process may create ``path`` between the two renames
            if path.exists():
                old = old or path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
                os.replace(path, old)
            try:
                os.replace(tmp, path)
                break
            except OSError:
                if attempt == 2 or not path.exists():
                    raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta: {type(o).__name__} is not JSON serializable")


def _check_store_meta(meta: Any, meta_file: Path) -> None:
    """DataError naming ``meta_file`` unless ``meta`` is a store's meta.json of a known version."""
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise DataError(f"{meta_file}: not a b2b window store (format {STORE_FORMAT!r} expected)")
    version = meta.get("version")
    if version != STORE_VERSION:
        raise DataError(f"{meta_file}: store version {version!r} is not known to this b2b (it reads version "
                        f"{STORE_VERSION}); rebuild the store (e.g. `b2b data bach --force`)")
    shape = meta.get("sample_shape")
    if not isinstance(shape, list) or tuple(shape) != SAMPLE_SHAPE:
        raise DataError(f"{meta_file}: sample_shape is {shape!r}, expected {list(SAMPLE_SHAPE)}")
    songs = meta.get("songs")
    if not isinstance(songs, list):
        raise DataError(f"{meta_file}: 'songs' is {type(songs).__name__}, expected a list of songs")
    for i, song in enumerate(songs):
        if not isinstance(song, dict) or not isinstance(song.get("id"), (str, int)) or isinstance(song.get("id"), bool):
            raise DataError(f"{meta_file}: song {i} has no 'id' (expected {{'id': str, ...}}, got {str(song)[:60]})")
    ids = [str(song["id"]) for song in songs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{meta_file}: song ids are not unique")


class WindowDataset(torch.utils.data.Dataset):
    """Windows from a store folder written by :func:`write_store`.

    Items are ``float32`` tensors ``(17, 64, 72)`` in {0, 1}, unpacked from the bits on demand.

    Attributes
    ----------
    path : Path
    meta : dict
        The store's ``meta.json`` (source, mapping, window rule, per-song entries …).
    songs : list[str]
        Song ids, in store order.
    index : np.ndarray, int64, shape (n, 2)
        ``(song, start step)`` of every window.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self.path = path
        if not path.is_dir():
            raise DataError(f"{path}: no dataset store here (expected a folder with meta.json and store.npz)")
        meta_file, npz_file = path / "meta.json", path / "store.npz"
        for f in (meta_file, npz_file):
            if not f.is_file():
                raise DataError(f"{f}: missing; {path} is not a complete dataset store")
        try:
            with open(meta_file) as f:
                self.meta = json.load(f)
        except (OSError, ValueError) as e:
            raise DataError(f"{meta_file}: not readable JSON ({e})") from None
        _check_store_meta(self.meta, meta_file)
        try:
            with np.load(npz_file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("bits", "track_rows", "song_steps", "windows")}
        except KeyError as e:
            raise DataError(f"{npz_file}: missing array {e}") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"{npz_file}: corrupt or truncated store ({type(e).__name__}: {e})") from None
        bits, rows, steps, windows = (arrays[k] for k in ("bits", "track_rows", "song_steps", "windows"))

        def bad(what: str) -> DataError:
            return DataError(f"{npz_file}: {what}")

        if bits.dtype != np.uint8 or bits.ndim != 2 or bits.shape[1] != _PACKED_BYTES:
            raise bad(f"bits has dtype {bits.dtype} shape {bits.shape}, expected uint8 (R, {_PACKED_BYTES})")
        S = len(steps)
        if rows.shape != (S, N_TRACKS) or not np.issubdtype(rows.dtype, np.integer):
            raise bad(f"track_rows has shape {rows.shape}, expected ({S}, {N_TRACKS}) integers")
        if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
            raise bad(f"song_steps has shape {steps.shape} dtype {steps.dtype}, expected (S,) integers")
        if windows.ndim != 2 or windows.shape[1] != 2 or not np.issubdtype(windows.dtype, np.integer):
            raise bad(f"windows has shape {windows.shape} dtype {windows.dtype}, expected (n, 2) integers")
        if len(self.meta["songs"]) != S:
            raise DataError(f"{meta_file}: lists {len(self.meta['songs'])} songs, store.npz has {S}")
        if len(windows) and (windows[:, 0].min() < 0 or windows[:, 0].max() >= S or windows[:, 1].min() < 0
                             or np.any(windows[:, 1] + N_STEPS > steps[windows[:, 0]])):
            raise bad("a window lies outside its song")
        has = rows >= 0
        if np.any(rows[has] + np.broadcast_to(steps[:, None], rows.shape)[has] > len(bits)):
            raise bad("a track lies outside the bits array")
        self._bits, self._rows, self._steps = bits, rows.astype(np.int64), steps.astype(np.int64)
        self.index = windows.astype(np.int64)
        self.songs = [str(s["id"]) for s in self.meta["songs"]]

    def __len__(self) -> int:
        return len(self.index)

    def window(self, i: int) -> np.ndarray:
        """Window ``i`` as a bool array ``(17, 64, 72)``."""
        song, start = self.index[i]
        out = np.zeros(SAMPLE_SHAPE, bool)
        for k in np.flatnonzero(self._rows[song] >= 0):
            r = self._rows[song, k] + start
            out[k] = np.unpackbits(self._bits[r:r + N_STEPS], axis=-1, count=N_PITCHES).astype(bool)
        return out

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        return torch.from_numpy(self.window(int(i) % len(self)).astype(np.float32))

    def song_roll(self, song: int | str) -> np.ndarray:
        """The whole roll of a song (index or id) as bool ``(17, T, 72)``."""
        s = self.songs.index(song) if isinstance(song, str) else int(song)
        T = int(self._steps[s])
        out = np.zeros((N_TRACKS, T, N_PITCHES), bool)
        for k in np.flatnonzero(self._rows[s] >= 0):
            r = self._rows[s, k]
            out[k] = np.unpackbits(self._bits[r:r + T], axis=-1, count=N_PITCHES).astype(bool)
        return out

    def tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All windows as one tensor ``(n, 17, 64, 72)`` of ``dtype`` (float32, uint8 or bool).

        Memory: ``n × 78,336`` elements (float32: 306 KiB per window).
        """
        if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.bool):
            raise ValueError(f"dtype: {dtype}, expected torch.float32, float16, bfloat16, uint8 or bool")
        out = torch.zeros((len(self),) + SAMPLE_SHAPE, dtype=dtype)
        if not len(self):
            return out
        songs = self.index[:, 0]
        ar = np.arange(N_STEPS)
        for s in np.unique(songs):
            idx = np.flatnonzero(songs == s)
            steps = self.index[idx, 1][:, None] + ar  # (m, 64)
            for k in np.flatnonzero(self._rows[s] >= 0):
                r = self._rows[s, k]
                track = np.unpackbits(self._bits[r:r + self._steps[s]], axis=-1, count=N_PITCHES)
                out[torch.from_numpy(idx), k] = torch.from_numpy(track[steps]).to(dtype)
        return out

    def __repr__(self) -> str:
        return f"WindowDataset({str(self.path)!r}, songs={len(self.songs)}, windows={len(self)})"


# --------------------------------------------------------------------------------------------
# Finding datasets
# --------------------------------------------------------------------------------------------


def default_root() -> Path:
    """The data root: ``$B2B_DATA`` if set, else ``~/b2b-data``."""
    env = os.environ.get("B2B_DATA")
    return Path(env).expanduser() if env else Path.home() / "b2b-data"


def asset(name: str) -> Path:
    """Path of a committed artefact shipped with the package (the repository's ``data/``).

    ``name`` is relative to ``data/``, e.g. ``"pretrained/generator.pt"``. The same files are
    found in a clone and in a ``pip install`` (where ``data/`` is installed as ``b2b.assets``),
    so a chapter run in Colab reads what a clone reads. FileNotFoundError if there is no such file.
    """
    import importlib.resources

    path = Path(str(importlib.resources.files("b2b.assets").joinpath(*name.split("/"))))
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file shipped with b2b (looked in {path.parent})")
    return path


def open_dataset(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> WindowDataset:
    """Open a prepared dataset: ``"bach"`` (installed on first use), ``"lpd17"``, or a store folder.

    Parameters
    ----------
    name_or_path : str or path
        ``"bach"`` → ``<root>/bach`` (if missing, :func:`b2b.bach.install` copies the prebuilt
        store that ships with b2b, or builds it);
        ``"lpd17"`` → ``<root>/lpd17`` (prepare it with ``b2b data lpd17``); anything else is
        the path of a store folder.
    root : path, optional
        Data root (default :func:`default_root`).
    """
    root = Path(root).expanduser() if root is not None else default_root()
    if isinstance(name_or_path, str) and name_or_path == "bach":
        path = root / "bach"
        if not is_store(path):
            from . import bach

            bach.install(root=root)
        return WindowDataset(path)
    if isinstance(name_or_path, str) and name_or_path == "lpd17":
        path = root / "lpd17"
        if not is_store(path):
            raise DataError(f"{path}: the LPD-17 dataset is not prepared; run `b2b data lpd17` first "
                            "(it downloads and preprocesses the LPD-17 rock subset)")
        return WindowDataset(path)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such dataset; expected 'bach', 'lpd17' or a store folder")
    return WindowDataset(path)


# --------------------------------------------------------------------------------------------
# CLI: b2b data {bach,lpd17}
# --------------------------------------------------------------------------------------------

# sub-command -> module providing add_arguments(parser) and run(args) -> int
DATA_SOURCES: dict[str, str] = {"bach": "b2b.bach", "lpd17": "b2b.lpd"}
_SOURCE_HELP = {
    "bach": "Build the embedded dataset from the Bach chorales bundled with music21 (offline).",
    "lpd17": "Download and prepare the LPD-17 rock subset.",
}


class _LazySourceParser(argparse.ArgumentParser):
    """A sub-command parser that imports its source module only when that sub-command is used."""

    _b2b_module: str = ""
    _b2b_loaded: bool = False

    def _b2b_load(self) -> None:
        if self._b2b_module and not self._b2b_loaded:
            self._b2b_loaded = True
            module = importlib.import_module(self._b2b_module)
            module.add_arguments(self)
            self.set_defaults(_source_module=module)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._b2b_load()
        return super().parse_known_args(args, namespace)

    if hasattr(argparse.ArgumentParser, "parse_known_intermixed_args"):
        def parse_known_intermixed_args(self, args=None, namespace=None):  # type: ignore[override]
            self._b2b_load()
            return super().parse_known_intermixed_args(args, namespace)

    if hasattr(argparse.ArgumentParser, "_parse_known_args2"):
        def _parse_known_args2(self, args, namespace, intermixed):  # type: ignore[override]
            self._b2b_load()
            return super()._parse_known_args2(args, namespace, intermixed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``b2b data`` sub-commands (one per entry of :data:`DATA_SOURCES`)."""
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True,
                                parser_class=_LazySourceParser)
    for name, module in DATA_SOURCES.items():
        p = sub.add_parser(name, help=_SOURCE_HELP.get(name, ""), description=_SOURCE_HELP.get(name, ""))
        p._b2b_module = module


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``b2b data`` sub-command; returns its exit code."""
    module = getattr(args, "_source_module", None)
    if module is None:
        module = importlib.import_module(DATA_SOURCES[args.source])
    return int(module.run(args) or 0)
