"""Music as data: songs (LPD ``.npz``, MIDI) ⇄ song rolls ⇄ windows, and back to MIDI.

A **window** (one training sample) is a boolean array ``(17, 64, 72)``: the 17 LPD-17 tracks ×
64 time steps (4 bars of 4/4 at 4 steps per beat) × 72 pitches (row ``p`` is MIDI pitch
``24 + p``). This module turns songs into windows and back:

* :func:`load_lpd` reads one LPD-17 ``.npz`` (the pypianoroll 0.3.0 layout) into a
  :class:`pypianoroll.Multitrack`; :func:`read_midi` reads a MIDI file.
* :func:`multitrack_to_roll` resamples a Multitrack to a song roll ``(17, T, 72)`` at 4 steps per
  beat; :func:`roll_window_starts` picks the windows worth keeping; :func:`multitrack_to_windows`
  does both.
* :func:`windows_to_multitrack` and :func:`write_midi` go back from windows to music.
* :func:`asset` finds a file shipped with b2b (the repository's ``data/``).

Many songs are kept on disk by :mod:`b2b.datasets.store` (packed bits, served as tensors), and
:func:`b2b.datasets.catalog.open_dataset` opens a prepared dataset by name. The geometry (shapes, the
track table, the window validator) is :mod:`b2b.music.geometry`'s, re-exported here.

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
    one-step hits), and :func:`track_notes` turns every active drum step back into its own hit
    (for :func:`write_midi` and :mod:`b2b.music.audio`), so drum rolls survive the MIDI round trip.
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

import importlib.resources
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from b2b.files.atomic import atomic_path, parse_json
from b2b.music.geometry import (  # noqa: F401  (re-exported: the geometry as b2b.music.data names it)
    BEATS_PER_BAR, LOWEST_PITCH, N_BARS, N_PITCHES, N_STEPS, N_TRACKS, SAMPLE_SHAPE, STEPS_PER_BAR,
    STEPS_PER_BEAT, TRACKS, Track, binarize, track_family,
)

__all__ = [
    "N_TRACKS", "STEPS_PER_BEAT", "BEATS_PER_BAR", "STEPS_PER_BAR", "N_BARS", "N_STEPS",
    "LOWEST_PITCH", "N_PITCHES", "SAMPLE_SHAPE", "Track", "TRACKS", "DataError",
    "DEFAULT_MIN_ONSETS", "DEFAULT_MIN_ACTIVE_BARS",
    "load_lpd", "read_midi", "track_family", "notes_to_roll", "multitrack_to_roll",
    "check_roll", "roll_window_starts", "multitrack_to_windows", "track_notes", "windows_to_multitrack",
    "windows_to_pretty_midi", "write_midi", "asset",
]

# The geometry (N_TRACKS ... SAMPLE_SHAPE, Track, TRACKS, track_family) lives in b2b.music.geometry
# and is re-exported here, where chapter 1 meets it.

DEFAULT_MIN_ONSETS = 8
DEFAULT_MIN_ACTIVE_BARS = 3
INFO_MAX_BYTES = 2**20  # an LPD song's info.json: 17 tracks' names and programs take a few kB


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
            info = parse_json(raw if isinstance(raw, bytes) else raw.tobytes(), dict, max_bytes=INFO_MAX_BYTES,
                              what="info.json")  # bounded: size, depth, an object
            if "beat_resolution" not in info:
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
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:  # parse_json's refusals are ValueErrors
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


def track_notes(roll: Any, is_drum: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The notes one track's roll plays, the rule every roll-to-MIDI conversion uses.

    A pitched track plays one note per run of active steps. A drum track plays one hit per
    active step (a run of sixteenth-note hi-hats is a run of hits, as :func:`multitrack_to_roll`
    reads drums), each occupying its step.

    Parameters
    ----------
    roll : array-like
        ``(T, P)`` one track, time × pitch; nonzero steps are active.
    is_drum : bool
        Whether the track is a drum track.

    Returns
    -------
    pitch, onset, offset : np.ndarray
        ``(N,)`` each, ordered by onset, then pitch: the pitch column (int), the first step (int)
        and the step after the last (int, exclusive) of every note.
    """
    on = np.asarray(roll) > 0
    if is_drum:
        onset, pitch = np.nonzero(on)  # time-major: already ordered by onset, then pitch
        return pitch, onset, onset + 1
    pitch, onset, offset = _runs(on)
    order = np.lexsort((pitch, onset))
    return pitch[order], onset[order], offset[order]


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


def check_roll(roll: Any, label: str) -> np.ndarray:
    """``roll`` as a song roll: a bool array ``(17, T, 72)`` of whole bars (``T`` a multiple of 16).

    :class:`DataError` naming ``label`` (e.g. a file or song id) and what was expected otherwise.
    """
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
    roll = check_roll(roll, "roll")
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
        p, t_on, t_off = track_notes(roll[k], tr.is_drum)
        # a drum hit lasts half a step (no note-off at the instant of the next hit's note-on); a
        # note ends a quarter step late, so that readers that truncate (pypianoroll.read) do not
        # lose its last step to rounding errors
        t_off = t_on + 0.5 if tr.is_drum else t_off + 0.25
        for pi, a, b in zip(p.tolist(), t_on.tolist(), t_off.tolist()):
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
# Files shipped with b2b
# --------------------------------------------------------------------------------------------

def asset(name: str) -> Path:
    """Path of a committed artefact shipped with the package (the repository's ``data/``).

    ``name`` is relative to ``data/``, e.g. ``"pretrained/generator.pt"``. The same files are
    found in a clone and in a ``pip install`` (where ``data/`` is installed as ``b2b.assets``),
    so a chapter run in Colab reads what a clone reads. FileNotFoundError if there is no such file.
    """
    path = Path(str(importlib.resources.files("b2b.assets").joinpath(*name.split("/"))))
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file shipped with b2b (looked in {path.parent})")
    return path
