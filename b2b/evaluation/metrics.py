"""Music metrics for batches of 4-bar windows, and an MGEval-style comparison of two sets.

Every metric takes a batch of windows ``(n, 17, 64, 72)`` (tracks x time steps x pitches, the
geometry of :mod:`b2b.music.data`): boolean pianorolls, or probabilities/velocities together with a
``threshold`` (a cell is *on* where ``value >= threshold``, as in :mod:`b2b.sampling.generate`). numpy
arrays and torch tensors are both accepted. Per-track metrics return ``(n, 17)`` arrays, per-window metrics ``(n,)``; a value
that is undefined (an empty track, no notes, a drum track for a pitch metric) is **NaN**, so
aggregate with ``np.nanmean``.

Conventions used throughout:

- pitch row ``p`` is MIDI pitch ``24 + p``; its pitch class (octave class) is ``(24 + p) % 12``,
  0 = C. MIDI 24 and 36 are the same class, 24 and 25 are not. (pypianoroll 1.0.4 groups ten
  adjacent pitches instead; it is not used here.)
- a *note* is a maximal run of consecutive on steps at one pitch of one track. A note sounding at
  step 0 starts there and a note sounding at step 63 ends there (the window cuts it). Two notes
  of the same pitch with no step between them are indistinguishable from one long note at this
  resolution and count as one.
- bars are steps ``16 b .. 16 b + 15``, ``b = 0..3``; beats are groups of 4 steps.
- track 0 is the drum track (LPD-17 order). Pitch-class, scale and note-length metrics are NaN
  for drums, where pitch rows are instruments, not pitches.

The definitions follow MuseGAN (Dong et al. 2018), BinaryMuseGAN (Dong & Yang 2018), Harte et al.
(2006) and MGEval (Yang & Lerch 2018); where the original definition does not carry over to 16
steps per bar, the docstring says what is used instead and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from b2b.music.geometry import (  # the fixed geometry and the window rules, defined once
    BEATS_PER_BAR,
    LOWEST_PITCH,
    N_BARS,
    N_PITCHES,
    N_STEPS,
    N_TRACKS,
    SAMPLE_SHAPE,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    TRACKS,
    binarize,
)

N_BEATS = N_STEPS // STEPS_PER_BEAT  # 16
DRUM_TRACK = 0
PITCHED_TRACKS = tuple(range(1, N_TRACKS))

#: Shortest *qualified* note in steps: an eighth note at 4 steps per beat (see qualified_note_rate).
MIN_QUALIFIED_LENGTH = 2

#: Pitch classes of the C major scale; its rotations give the 12 major scales, which are also the
#: pitch-class sets of the 12 natural minor scales (A minor = C major).
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)

#: Harte et al. (2006) tonal-centroid radii: fifths, minor thirds, major thirds.
TONAL_RADII = (1.0, 1.0, 0.5)


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------


def as_rolls(x: Any, threshold: float | None = None, name: str = "x") -> np.ndarray:
    """Turn a batch of windows into a boolean numpy array ``(n, 17, 64, 72)``.

    Parameters
    ----------
    x : array-like or torch.Tensor
        ``(n, 17, 64, 72)`` (or one window ``(17, 64, 72)``): bool, or numbers in [0, 1]. Without
        ``threshold`` numbers must all be 0 or 1. The rules are :func:`b2b.music.geometry.binarize`'s.
    threshold : float, optional
        Cells with ``value >= threshold`` are on (e.g. 0.9 for generator probabilities), the
        project's convention (:mod:`b2b.music.data`, :mod:`b2b.sampling.generate`).
    name : str
        Name used in error messages.

    Returns
    -------
    np.ndarray
        Boolean array ``(n, 17, 64, 72)``.
    """
    return binarize(x, threshold, name=name)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float, NaN where ``den == 0``."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Mean ignoring NaN, NaN (without a warning) where every value is NaN."""
    ok = ~np.isnan(a)
    return _div(np.where(ok, a, 0.0).sum(axis=axis), ok.sum(axis=axis))


def _pitched_only(values: np.ndarray) -> np.ndarray:
    """Set the drum track (axis 1) to NaN."""
    values = values.astype(float, copy=True)
    values[:, DRUM_TRACK] = np.nan
    return values


def pitch_classes(n_pitches: int = N_PITCHES, lowest: int = LOWEST_PITCH) -> np.ndarray:
    """Pitch class ``(lowest + p) % 12`` of each pitch row ``p`` (0 = C), shape ``(n_pitches,)``."""
    return (lowest + np.arange(n_pitches)) % 12


def _to_chroma(a: np.ndarray) -> np.ndarray:
    """Sum a last axis of 72 pitches into 12 pitch classes (``(..., 72) -> (..., 12)``)."""
    onehot = np.eye(12, dtype=np.int64)[pitch_classes()]  # (72, 12)
    return a.astype(np.int64) @ onehot


def onsets(x: Any, threshold: float | None = None) -> np.ndarray:
    """Note starts: on at step ``t`` and off at ``t - 1`` (or ``t == 0``), shape like ``x``."""
    r = as_rolls(x, threshold)
    out = r.copy()
    out[:, :, 1:] &= ~r[:, :, :-1]
    return out


def note_lengths(x: Any, threshold: float | None = None) -> list[np.ndarray]:
    """Lengths in steps of every note of one window, as a list of 17 arrays (one per track).

    ``x`` is one window ``(17, 64, 72)`` (or a batch of one). Notes are ordered by pitch, then time.
    """
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    r = as_rolls(x[None] if x.ndim == 3 else x, threshold)
    if r.shape[0] != 1:
        raise ValueError(f"note_lengths takes one window, got a batch of {r.shape[0]}")
    r = np.transpose(r[0], (0, 2, 1))  # (17, 72, 64): runs along the last axis
    padded = np.zeros(r.shape[:-1] + (r.shape[-1] + 2,), dtype=np.int8)
    padded[..., 1:-1] = r
    d = np.diff(padded, axis=-1)
    lengths = []
    for k in range(r.shape[0]):
        starts = np.nonzero(d[k] == 1)
        ends = np.nonzero(d[k] == -1)
        lengths.append(ends[1] - starts[1])
    return lengths


# ----------------------------------------------------------------------------------------------
# per-track metrics
# ----------------------------------------------------------------------------------------------


def polyphony(x: Any, threshold: float | None = None, per_track: bool = True) -> np.ndarray:
    """Mean number of pitches sounding per step, over the steps with at least one pitch on.

    This is the statistic of the original "From Bytes to Beats" report (real 1.237, generated
    1.296), not BinaryMuseGAN's polyphonic rate (see :func:`polyphonic_rate`).

    Parameters
    ----------
    x : array ``(n, 17, 64, 72)``
    threshold : float, optional
    per_track : bool
        True: one value per track, ``sum_t count[t] / #{t : count[t] > 0}`` with ``count[t]``
        the pitches on at step ``t``. False: pooled over all tracks (drums included) of a
        window, the mean over the non-empty (track, step) pairs.

    Returns
    -------
    np.ndarray
        ``(n, 17)`` or ``(n,)``; NaN where the track (window) has no pitch on.
    """
    r = as_rolls(x, threshold)
    count = r.sum(axis=-1)  # (n, 17, 64)
    axis = -1 if per_track else (1, 2)
    return _div(count.sum(axis=axis), (count > 0).sum(axis=axis))


def polyphonic_rate(
    x: Any, threshold: float | None = None, over: str = "nonempty", min_pitches: int = 3,
    per_track: bool = True,
) -> np.ndarray:
    """Share of steps with more than two pitches on (BinaryMuseGAN's polyphonic rate).

    Parameters
    ----------
    x : array ``(n, 17, 64, 72)``
    threshold : float, optional
    over : {"nonempty", "all"}
        Denominator. ``"nonempty"`` (default): steps with at least one pitch on, so the rate
        says how often the instrument plays chords *when it plays* and does not double-count
        silence, which :func:`empty_bar_rate` already measures (over all steps a track silent
        half the time would halve its rate). ``"all"``: all 64 steps, BinaryMuseGAN's choice,
        for comparison with its numbers (0.48 on its training data).
    min_pitches : int
        A step is polyphonic with at least this many pitches on (3 = "more than two", as
        BinaryMuseGAN's paper and docs define it). Its released code
        (``musegan/utils/metrics.py`` of ``salu133445/bmusegan``, ``get_polyphonic_ratio``)
        counts ``>= threshold`` with ``threshold=2``, i.e. steps with **two** or more pitches,
        although its docstring says "larger than"; ``min_pitches=2, over="all"`` reproduces it.
    per_track : bool
        False pools the (track, step) pairs of each window.

    Returns
    -------
    np.ndarray
        ``(n, 17)`` or ``(n,)``; NaN where the denominator is 0.
    """
    if over not in ("nonempty", "all"):
        raise ValueError(f"over must be 'nonempty' or 'all', got {over!r}")
    r = as_rolls(x, threshold)
    count = r.sum(axis=-1)  # (n, 17, 64)
    axis = -1 if per_track else (1, 2)
    den = (count > 0) if over == "nonempty" else np.ones_like(count, dtype=bool)
    den = den.sum(axis=axis)
    return _div((count >= min_pitches).sum(axis=axis), den)


def note_count(x: Any, threshold: float | None = None) -> np.ndarray:
    """Number of notes per track and window (MGEval's note count), ``(n, 17)``, never NaN.

    Pitched tracks: notes (runs of on steps per pitch, see the module docstring). Drum track:
    hits (on cells), as in :func:`drum_pattern_rate`.
    """
    r = as_rolls(x, threshold)
    count = onsets(r).sum(axis=(2, 3))
    count[:, DRUM_TRACK] = r[:, DRUM_TRACK].sum(axis=(1, 2))
    return count


def bar_activity(x: Any, threshold: float | None = None) -> np.ndarray:
    """Whether each bar of each track has any pitch on, boolean ``(n, 17, 4)``."""
    r = as_rolls(x, threshold)
    n = r.shape[0]
    return r.reshape(n, N_TRACKS, N_BARS, STEPS_PER_BAR * N_PITCHES).any(axis=-1)


def empty_bar_rate(x: Any, threshold: float | None = None) -> np.ndarray:
    """Share of the 4 bars in which the track has no pitch on (MuseGAN's EB), ``(n, 17)``.

    1.0 for a silent track, 0.0 for a track that plays in every bar; never NaN.
    """
    return 1.0 - bar_activity(x, threshold).mean(axis=-1)


def used_pitch_classes(x: Any, threshold: float | None = None, per_bar: bool = False) -> np.ndarray:
    """Number of pitch classes used per bar (MuseGAN's UPC), from 0 to 12.

    A pitch class is used in a bar when any pitch of that class (any octave) is on at any step of
    the bar. Empty bars are NaN (they are counted by :func:`empty_bar_rate`; counting them as 0
    would mix the two metrics); so is the drum track.

    Returns
    -------
    np.ndarray
        ``per_bar=True``: ``(n, 17, 4)``; otherwise ``(n, 17)``, the mean over non-empty bars
        (NaN when every bar is empty).
    """
    r = as_rolls(x, threshold)
    n = r.shape[0]
    bars = r.reshape(n, N_TRACKS, N_BARS, STEPS_PER_BAR, N_PITCHES).any(axis=3)  # (n,17,4,72)
    used = (_to_chroma(bars) > 0).sum(axis=-1).astype(float)  # (n, 17, 4)
    used[~bars.any(axis=-1)] = np.nan
    used = _pitched_only(used)
    return used if per_bar else _nanmean(used, axis=-1)


def qualified_note_rate(
    x: Any, threshold: float | None = None, min_length: int = MIN_QUALIFIED_LENGTH
) -> np.ndarray:
    """Share of notes at least ``min_length`` steps long (MuseGAN's QN, adapted), ``(n, 17)``.

    MuseGAN counts notes of at least 3 steps at 96 steps per bar (a 32nd note) as qualified, to
    catch fragmented output. At 16 steps per bar the shortest representable note is already a
    16th, so that threshold (half a step) would make every note qualified and the metric always 1.
    We keep its purpose one grid level up: a note is qualified when it lasts at least an **8th
    note (2 steps)**; single-step blips, the typical fragmentation of a thresholded generator,
    are not. Real music has genuine 16th notes too, so the real data's rate is the reference,
    not 1. Notes are runs of on steps per pitch (see the module docstring); a note cut by the
    window end counts with its length inside the window. NaN for tracks without notes and for
    drums (drum hits have no meaningful length).
    """
    if min_length < 1:
        raise ValueError(f"min_length must be >= 1, got {min_length}")
    r = as_rolls(x, threshold)
    start = onsets(r)
    long_enough = start.copy()
    for k in range(1, min_length):  # the note is still on k steps after its onset
        long_enough[:, :, : N_STEPS - k] &= r[:, :, k:]
        long_enough[:, :, N_STEPS - k:] = False
    out = _div(long_enough.sum(axis=(2, 3)), start.sum(axis=(2, 3)))
    return _pitched_only(out)


def mean_pitch(x: Any, threshold: float | None = None) -> np.ndarray:
    """The register of each track: mean MIDI pitch of its on cells, ``(n, 17)``.

    Weighted by time (a note held 4 steps counts 4 times), so a note cut into fragments has the
    register of the held note. NaN for tracks without notes and for drums (their rows are drum
    kinds, not pitches).
    """
    r = as_rolls(x, threshold)
    pitch = LOWEST_PITCH + np.arange(r.shape[-1], dtype=float)
    cells = r.sum(axis=2, dtype=np.int64)                     # (n, 17, 72): steps on per pitch
    out = _div((cells * pitch).sum(axis=-1), cells.sum(axis=-1))
    return _pitched_only(out)


def off_track_share(note_count: np.ndarray, active: Any) -> np.ndarray:
    """Per window, the share of its notes (drum hits included) on the tracks not in ``active``,
    ``(n,)``; NaN for a window without notes. ``note_count`` is :func:`note_count`'s ``(n, 17)``,
    ``active`` the indices of the tracks the real data uses."""
    counts = np.asarray(note_count, dtype=float)
    inactive = [k for k in range(counts.shape[1]) if k not in set(active)]
    return _div(counts[:, inactive].sum(axis=1), counts.sum(axis=1))


def drum_pattern_rate(x: Any, threshold: float | None = None) -> np.ndarray:
    """Share of drum hits on the 8th-note grid (MuseGAN's DP, adapted), ``(n,)``.

    MuseGAN counts drum notes on an 8th/16th-note grid at 96 steps per bar; at 16 steps per bar
    every hit is on the 16th grid, so that rate would always be 1. We use the 8th-note grid: the
    share of drum hits at even steps (steps 0, 2, 4, … of the window, i.e. on a beat or an 8th
    off-beat). Each on cell of the drum track is one hit (drum sounds are percussive, and two
    16th hits in a row on one drum cannot be told from a held one). A straight 8th-note pattern
    scores 1, 16th hi-hats 0.5 on their own. NaN when the drum track is empty.

    Source note: MuseGAN's mask weights a hit next to the grid 0.1 instead of 0 (a partial
    credit for near misses at its finer resolution); here an off-grid hit counts 0.
    """
    r = as_rolls(x, threshold)
    hits = r[:, DRUM_TRACK].sum(axis=-1)  # (n, 64)
    return _div(hits[:, 0::2].sum(axis=-1), hits.sum(axis=-1))


def pitch_class_histogram(x: Any, threshold: float | None = None, per_track: bool = True) -> np.ndarray:
    """Number of notes (onsets) of each pitch class, ``(n, 17, 12)`` or pooled ``(n, 12)``.

    Notes are counted once each, whatever their length (MGEval's pitch-class histogram). Drum
    notes are left out: the drum row of the per-track histogram is all zero, and the pooled one
    sums the 16 pitched tracks.
    """
    hist = _to_chroma(onsets(x, threshold).sum(axis=2))  # (n, 17, 12)
    hist[:, DRUM_TRACK] = 0
    return hist if per_track else hist.sum(axis=1)


def pitch_class_entropy(x: Any, threshold: float | None = None, per_track: bool = True) -> np.ndarray:
    """Shannon entropy in bits of the normalized pitch-class histogram of the notes.

    ``H = -sum_c q_c log2 q_c`` with ``q`` the share of notes in class ``c``
    (:func:`pitch_class_histogram`): 0 for one pitch class, log2 12 = 3.585 for all twelve
    equally often. ``(n, 17)`` (drums NaN) or pooled over the pitched tracks ``(n,)``; NaN
    without notes.
    """
    hist = pitch_class_histogram(x, threshold, per_track).astype(float)
    total = hist.sum(axis=-1, keepdims=True)
    q = _div(hist, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, -q * np.log2(np.where(q > 0, q, 1.0)), 0.0)
    h = np.where(total[..., 0] > 0, terms.sum(axis=-1), np.nan)
    return _pitched_only(h) if per_track else h


def scale_masks() -> np.ndarray:
    """Membership of the 12 pitch classes in the 12 major scales, boolean ``(12 scales, 12)``.

    Row ``k`` is the major scale on tonic ``k`` (0 = C), which has the same pitch classes as the
    natural minor scale on ``k + 9`` (C major = A minor).
    """
    masks = np.zeros((12, 12), dtype=bool)
    for k in range(12):
        masks[k, [(k + s) % 12 for s in MAJOR_SCALE]] = True
    return masks


def scale_consistency(x: Any, threshold: float | None = None, per_track: bool = False) -> np.ndarray:
    """Share of notes in the best-fitting scale (Mogren 2016's scale consistency).

    ``max_k sum_{c in S_k} h_c / sum_c h_c`` with ``h`` the note pitch-class histogram and
    ``S_k`` the 12 major scales. Taking the 24 major and natural minor scales gives the same
    value (each natural minor scale has its relative major's pitch classes), so 12 suffice.
    Default pooled over the pitched tracks of a window ``(n,)`` (a key belongs to the music,
    not one part); ``per_track=True`` gives ``(n, 17)`` with drums NaN. NaN without notes.
    """
    hist = pitch_class_histogram(x, threshold, per_track).astype(float)
    in_scale = hist @ scale_masks().T.astype(float)  # (..., 12 scales)
    out = _div(in_scale.max(axis=-1), hist.sum(axis=-1))
    return _pitched_only(out) if per_track else out


# ----------------------------------------------------------------------------------------------
# tonal distance (Harte et al. 2006)
# ----------------------------------------------------------------------------------------------


def tonal_matrix(radii: tuple[float, float, float] = TONAL_RADII) -> np.ndarray:
    """Harte et al.'s 6 x 12 transform from chroma to the tonal centroid.

    Rows: ``r1 sin(7 pi l / 6), r1 cos(7 pi l / 6)`` (circle of fifths), ``r2 sin(3 pi l / 2),
    r2 cos(3 pi l / 2)`` (minor thirds), ``r3 sin(2 pi l / 3), r3 cos(2 pi l / 3)`` (major
    thirds), for pitch class ``l = 0..11``.
    """
    r1, r2, r3 = radii
    l = np.arange(12)
    return np.stack([
        r1 * np.sin(l * 7 * np.pi / 6), r1 * np.cos(l * 7 * np.pi / 6),
        r2 * np.sin(l * 3 * np.pi / 2), r2 * np.cos(l * 3 * np.pi / 2),
        r3 * np.sin(l * 2 * np.pi / 3), r3 * np.cos(l * 2 * np.pi / 3),
    ])


def _as_track_rolls(a: Any, threshold: float | None, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.shape[-2:] != (N_STEPS, N_PITCHES):
        raise ValueError(f"{name} must end with (64, 72) (steps, pitches), got {a.shape}")
    if a.dtype == bool:
        return a
    if threshold is None:
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} has values other than 0 and 1: pass threshold= to binarize")
        return a != 0
    return a >= threshold


def tonal_centroid(a: Any, threshold: float | None = None) -> np.ndarray:
    """Per-bar 6-D tonal centroid of pianorolls ``(..., 64, 72)`` -> ``(..., 4, 6)``.

    The bar's chroma counts the on cells of each pitch class (duration-weighted, as MuseGAN and
    Harte et al.); it is divided by its sum and multiplied by :func:`tonal_matrix`. NaN for an
    empty bar.
    """
    r = _as_track_rolls(a, threshold, "a")
    chroma = _to_chroma(r.reshape(r.shape[:-2] + (N_BARS, STEPS_PER_BAR, N_PITCHES)).sum(axis=-2))
    chroma = _div(chroma, chroma.sum(axis=-1, keepdims=True))  # NaN rows for empty bars
    return chroma @ tonal_matrix().T


def tonal_distance(a: Any, b: Any, threshold: float | None = None) -> np.ndarray:
    """Tonal distance between two tracks (MuseGAN's TD), Harte et al.'s 6-D tonal centroid.

    ``a`` and ``b`` are pianorolls ``(..., 64, 72)`` of the same shape, e.g. ``x[:, 1]`` and
    ``x[:, 5]``. Per bar, the Euclidean distance between the two tonal centroids
    (:func:`tonal_centroid`, radii 1, 1, 0.5); averaged over the bars where both tracks play.
    Returns ``(...)``: NaN where no bar has both tracks on.

    Source note: MuseGAN's released code (``get_harmonicity``) sums the chroma per **beat**, not
    per bar, and averages the per-beat distances; per-beat chroma vary more, so its values are
    larger and not comparable with ours (chapter 7 computes both on the Bach chorales).
    """
    ca, cb = tonal_centroid(a, threshold), tonal_centroid(b, threshold)
    if ca.shape != cb.shape:
        raise ValueError(f"a and b must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    return _nanmean(np.sqrt(((ca - cb) ** 2).sum(axis=-1)), axis=-1)


def tonal_distance_matrix(x: Any, threshold: float | None = None) -> np.ndarray:
    """Tonal distance between every pair of tracks of each window, ``(n, 17, 17)``.

    Entry ``[i, j, k]`` is ``tonal_distance(x[i, j], x[i, k])``; rows and columns of the drum
    track are NaN, as is every pair without a bar where both play.
    """
    r = as_rolls(x, threshold)
    c = tonal_centroid(r)  # (n, 17, 4, 6)
    d = np.sqrt(((c[:, :, None] - c[:, None, :]) ** 2).sum(axis=-1))  # (n, 17, 17, 4)
    d = _nanmean(d, axis=-1)
    d[:, DRUM_TRACK, :] = np.nan
    d[:, :, DRUM_TRACK] = np.nan
    return d


# ----------------------------------------------------------------------------------------------
# structure: self-similarity
# ----------------------------------------------------------------------------------------------


def _step_features(r: np.ndarray, features: str) -> np.ndarray:
    """Feature vector of each step ``(n, 64, d)`` of boolean rolls ``(n, 17, 64, 72)``."""
    if features == "chroma":
        return _to_chroma(r[:, PITCHED_TRACKS].sum(axis=1)).astype(float)  # (n, 64, 12)
    if features == "pitch":
        return r[:, PITCHED_TRACKS].sum(axis=1).astype(float)  # (n, 64, 72)
    if features == "tracks":
        return np.transpose(r, (0, 2, 1, 3)).reshape(r.shape[0], N_STEPS, -1).astype(float)
    raise ValueError(f"features must be 'chroma', 'pitch' or 'tracks', got {features!r}")


def self_similarity(
    x: Any, threshold: float | None = None, resolution: str = "beat", features: str = "chroma"
) -> np.ndarray:
    """Cosine self-similarity matrix of one window or a batch.

    Parameters
    ----------
    x : array ``(17, 64, 72)`` or ``(n, 17, 64, 72)``
    threshold : float, optional
    resolution : {"beat", "step"}
        One vector per beat (the 4 steps summed) -> ``(16, 16)``, or per step -> ``(64, 64)``.
    features : {"chroma", "pitch", "tracks"}
        Per step: pitch-class counts of the pitched tracks (12-D, default: harmony, octave
        blind), the pitch counts of the pitched tracks (72-D), or every track's pitches
        (17 x 72-D, drums included).

    Returns
    -------
    np.ndarray
        ``S[i, j] = <v_i, v_j> / (|v_i| |v_j|)`` in [0, 1], shape ``(16, 16)`` / ``(64, 64)``
        (batch: ``(n, ...)``); NaN in rows and columns of silent beats/steps.
    """
    single = np.ndim(x) == 3
    if single:
        x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)[None]
    if resolution not in ("beat", "step"):
        raise ValueError(f"resolution must be 'beat' or 'step', got {resolution!r}")
    v = _step_features(as_rolls(x, threshold), features)
    if resolution == "beat":
        v = v.reshape(v.shape[0], N_BEATS, STEPS_PER_BEAT, -1).sum(axis=2)
    norm = np.sqrt((v ** 2).sum(axis=-1))
    s = _div(v @ np.transpose(v, (0, 2, 1)), norm[:, :, None] * norm[:, None, :])
    return s[0] if single else s


def similarity_by_lag(s: np.ndarray) -> np.ndarray:
    """Mean of a self-similarity matrix's ``k``-th superdiagonal, ``k = 1..m-1``.

    ``(..., m, m) -> (..., m - 1)``: entry ``k - 1`` is the mean of ``S[i, i + k]`` over the
    pairs where it is defined (NaN if none).
    """
    m = s.shape[-1]
    out = np.full(s.shape[:-2] + (m - 1,), np.nan)
    for k in range(1, m):
        out[..., k - 1] = _nanmean(np.diagonal(s, offset=k, axis1=-2, axis2=-1), axis=-1)
    return out


def structure_score(x: Any, threshold: float | None = None, features: str = "chroma") -> np.ndarray:
    """Bar-repetition score of each window, ``(n,)``.

    From the per-beat self-similarity ``S`` (:func:`self_similarity`, 16 beats): the mean of
    ``S[i, j]`` over beat pairs a whole number of bars apart (``j - i`` = 4, 8 or 12 beats),
    minus the mean over the other pairs (``j - i`` not a multiple of 4). Positive: beats resemble
    the same beat of other bars more than other beats (bar-periodic repetition); about 0: no
    bar-level structure; 1 at most. NaN if either group has no defined pair (e.g. silence).
    """
    s = self_similarity(as_rolls(x, threshold), resolution="beat", features=features)
    i, j = np.triu_indices(N_BEATS, k=1)
    same = (j - i) % BEATS_PER_BAR == 0
    pairs = s[:, i, j]  # (n, 120)
    return _nanmean(pairs[:, same], axis=-1) - _nanmean(pairs[:, ~same], axis=-1)


# ----------------------------------------------------------------------------------------------
# feature table
# ----------------------------------------------------------------------------------------------

#: One-line definition of every feature in :func:`feature_table`.
DEFINITIONS: dict[str, str] = {
    "note_count": "number of notes in the window (drums: hits, i.e. on cells)",
    "polyphony": "mean number of pitches on per step, over the track's steps with >= 1 pitch on",
    "polyphony_pooled": "mean number of pitches on per (track, step), over non-empty (track, step) pairs of the window",
    "polyphonic_rate": "share of the track's non-empty steps with >= 3 pitches on",
    "polyphonic_rate_all": "share of all 64 steps with >= 3 pitches on (BinaryMuseGAN)",
    "empty_bar_rate": "share of the 4 bars in which the track has no pitch on",
    "used_pitch_classes": "pitch classes (octave classes) used per bar, mean over the track's non-empty bars",
    "qualified_note_rate": "share of the track's notes lasting >= 2 steps (an 8th note)",
    "mean_pitch": "register: mean MIDI pitch of the track's on cells (weighted by time)",
    "drum_pattern_rate": "share of drum hits (on cells of the drum track) at even steps (8th-note grid)",
    "pitch_class_entropy": "Shannon entropy (bits) of the track's note pitch-class histogram",
    "pitch_class_entropy_pooled": "Shannon entropy (bits) of the note pitch-class histogram of all pitched tracks",
    "scale_consistency": "share of the window's pitched notes in the best of the 12 major (= natural minor) scales",
    "tonal_distance": "Euclidean distance of two tracks' per-bar 6-D tonal centroids, mean over bars where both play",
    "structure": "per-beat chroma self-similarity: mean at lags of 1-3 bars minus mean at other lags",
    "held_pitch": "share of the 64 steps in which the window's most held pitch (pitched tracks) sounds",
}

#: Features with one value per track, ``(n, 17)``; the others are ``(n,)`` except tonal_distance.
PER_TRACK_FEATURES = (
    "note_count", "polyphony", "polyphonic_rate", "polyphonic_rate_all", "empty_bar_rate", "used_pitch_classes",
    "qualified_note_rate", "mean_pitch", "pitch_class_entropy",
)
#: Features with one value per pair of tracks, ``(n, 17, 17)``.
PAIR_FEATURES = ("tonal_distance",)


def feature_table(x: Any, threshold: float | None = None) -> dict[str, np.ndarray]:
    """Every metric of every window, as a dict of arrays (keys and definitions in DEFINITIONS).

    Parameters
    ----------
    x : array ``(n, 17, 64, 72)``
    threshold : float, optional

    Returns
    -------
    dict
        Per-track features (PER_TRACK_FEATURES) ``(n, 17)``, pair features (PAIR_FEATURES)
        ``(n, 17, 17)``, and the per-window features ``(n,)``. NaN where undefined.
    """
    r = as_rolls(x, threshold)
    return {
        "note_count": note_count(r),
        "polyphony": polyphony(r),
        "polyphony_pooled": polyphony(r, per_track=False),
        "polyphonic_rate": polyphonic_rate(r),
        "polyphonic_rate_all": polyphonic_rate(r, over="all"),
        "empty_bar_rate": empty_bar_rate(r),
        "used_pitch_classes": used_pitch_classes(r),
        "qualified_note_rate": qualified_note_rate(r),
        "mean_pitch": mean_pitch(r),
        "drum_pattern_rate": drum_pattern_rate(r),
        "pitch_class_entropy": pitch_class_entropy(r),
        "pitch_class_entropy_pooled": pitch_class_entropy(r, per_track=False),
        "scale_consistency": scale_consistency(r),
        "tonal_distance": tonal_distance_matrix(r),
        "structure": structure_score(r),
        "held_pitch": held_pitch(r)[0],
    }


# ----------------------------------------------------------------------------------------------
# MGEval-style comparison of two sets
# ----------------------------------------------------------------------------------------------


def _as_feature_matrix(f: Any, name: str) -> np.ndarray:
    f = np.asarray(f.detach().cpu().numpy() if hasattr(f, "detach") else f, dtype=float)
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim != 2:
        raise ValueError(f"{name} must be (n,) or (n, d) per-sample features, got shape {f.shape}")
    return f[~np.isnan(f).any(axis=1)]


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between feature vectors ``(n, d)``.

    ``b is None``: the intra-set distances of ``a`` over the pairs ``i < j``,
    ``n (n - 1) / 2`` values. Otherwise every pair of ``a`` and ``b``, ``n_a n_b`` values.
    """
    if b is None:
        i, j = np.triu_indices(a.shape[0], k=1)
        return np.sqrt(((a[i] - a[j]) ** 2).sum(axis=-1))
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)).ravel()


def _bandwidth(v: np.ndarray) -> float:
    """Scott's rule for one dimension: ``sd * n ** (-1/5)`` (0 for constant data)."""
    return float(v.std(ddof=1) * len(v) ** (-0.2)) if len(v) > 1 else 0.0


def kde_on_grid(v: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density of the values ``v`` on an evenly spaced ``grid``.

    The values are binned linearly onto the grid points and the bins smoothed with the kernel
    (exact up to the grid spacing, linear in ``len(v)``); the result integrates to 1 over the
    grid (values outside it are clipped onto its ends).
    """
    dx = grid[1] - grid[0]
    pos = (v - grid[0]) / dx
    lo = np.clip(np.floor(pos).astype(int), 0, len(grid) - 2)
    w = np.clip(pos - lo, 0.0, 1.0)
    counts = np.bincount(lo, weights=1 - w, minlength=len(grid)) + np.bincount(lo + 1, weights=w, minlength=len(grid))
    g = len(grid)
    kernel = np.exp(-0.5 * ((np.arange(-(g - 1), g) * dx) / bandwidth) ** 2)  # offsets -(g-1)..g-1
    dens = np.convolve(counts, kernel)[g - 1: 2 * g - 1]  # dens[i] = sum_j counts[j] k(i - j)
    return dens / (dens.sum() * dx)


@dataclass
class Comparison:
    """MGEval-style comparison of one feature between a real and a generated set.

    Attributes: numbers of samples used (after dropping NaN rows), mean and sd of the intra-real,
    intra-generated and inter-set distances, ``overlap`` (area under min of the intra-real and
    inter-set densities, 1 = identical distributions), ``kl`` (KL divergence in nats of the
    inter-set density from the intra-real one, 0 = identical), and the same two for the
    intra-generated set. ``curves`` (not in :meth:`as_dict`) holds the grid and densities.
    """

    n_real: int
    n_generated: int
    intra_real_mean: float
    intra_real_sd: float
    intra_generated_mean: float
    intra_generated_sd: float
    inter_mean: float
    inter_sd: float
    overlap: float
    kl: float
    overlap_generated: float
    kl_generated: float
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, float]:
        """Numbers only (JSON-ready: NaN becomes None)."""
        d = asdict(self)
        d.pop("curves")
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def _overlap_kl(p: np.ndarray, q: np.ndarray, dx: float) -> tuple[float, float]:
    overlap = float(np.minimum(p, q).sum() * dx)
    tiny = 1e-12
    mask = p > tiny
    kl = float((p[mask] * np.log(p[mask] / np.maximum(q[mask], tiny))).sum() * dx)
    return min(overlap, 1.0), max(kl, 0.0)


def compare(real_features: Any, generated_features: Any, grid_size: int = 1024) -> Comparison:
    """Compare one feature of two sets as MGEval does (Yang & Lerch 2018).

    1. Intra-set distances: Euclidean distances between all pairs of samples of the real set,
       and of the generated set; inter-set distances: all (real, generated) pairs.
    2. Gaussian kernel density estimates of the three distance distributions (Scott's rule
       bandwidth, at least 1 % of the range of all distances so that constant sets give a
       narrow bump instead of failing), evaluated on one common grid.
    3. Overlapping area ``integral min(p_intra_real, p_inter)`` and KL divergence
       ``KL(p_intra_real || p_inter) = integral p log(p / q)``, and the same against intra-
       generated. MGEval evaluates its two KL densities on different grids; here both share one.

    Identical sets give overlap close to 1 and KL close to 0 (the inter-set distances then add
    zero self-distances, so not exactly).

    Parameters
    ----------
    real_features, generated_features : array ``(n,)`` or ``(n, d)``
        One feature (vector) per sample; rows with a NaN are dropped.
    grid_size : int
        Points of the density grid.

    Returns
    -------
    Comparison
        All NaN when either set has fewer than 2 usable samples.
    """
    a = _as_feature_matrix(real_features, "real_features")
    b = _as_feature_matrix(generated_features, "generated_features")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: real {a.shape[1]}, generated {b.shape[1]}")
    nan = float("nan")
    if len(a) < 2 or len(b) < 2:
        return Comparison(len(a), len(b), *([nan] * 10))
    intra_a, intra_b, inter = pairwise_distances(a), pairwise_distances(b), pairwise_distances(a, b)
    everything = np.concatenate([intra_a, intra_b, inter])
    lo, hi = float(everything.min()), float(everything.max())
    span = hi - lo
    if span == 0:  # every distance equal: all three distributions are the same point mass
        stats = (1.0, 0.0, 1.0, 0.0)
        curves: dict[str, np.ndarray] = {}
    else:
        bws = [max(_bandwidth(v), 0.01 * span) for v in (intra_a, intra_b, inter)]
        pad = 4 * max(bws)
        grid = np.linspace(lo - pad, hi + pad, grid_size)
        dx = grid[1] - grid[0]
        p_a, p_b, q = (kde_on_grid(v, grid, h) for v, h in zip((intra_a, intra_b, inter), bws))
        stats = _overlap_kl(p_a, q, dx) + _overlap_kl(p_b, q, dx)
        curves = {"grid": grid, "intra_real": p_a, "intra_generated": p_b, "inter": q}
    return Comparison(
        n_real=len(a), n_generated=len(b),
        intra_real_mean=float(intra_a.mean()), intra_real_sd=float(intra_a.std()),
        intra_generated_mean=float(intra_b.mean()), intra_generated_sd=float(intra_b.std()),
        inter_mean=float(inter.mean()), inter_sd=float(inter.std()),
        overlap=stats[0], kl=stats[1], overlap_generated=stats[2], kl_generated=stats[3],
        curves=curves,
    )


__all__ = [
    "N_TRACKS", "N_STEPS", "N_PITCHES", "SAMPLE_SHAPE", "DRUM_TRACK", "MIN_QUALIFIED_LENGTH",
    "DEFINITIONS", "PER_TRACK_FEATURES", "PAIR_FEATURES", "Comparison",
    "as_rolls", "onsets", "note_lengths", "pitch_classes", "note_count", "polyphony", "polyphonic_rate",
    "bar_activity", "empty_bar_rate", "used_pitch_classes", "qualified_note_rate", "mean_pitch", "off_track_share",
    "drum_pattern_rate", "pitch_class_histogram", "pitch_class_entropy", "scale_masks",
    "scale_consistency", "tonal_matrix", "tonal_centroid", "tonal_distance",
    "tonal_distance_matrix", "self_similarity", "similarity_by_lag", "structure_score",
    "feature_table", "pairwise_distances", "kde_on_grid", "compare",
]


# ----------------------------------------------------------------------------------------------
# diversity, copying and drones (sets of windows, not single windows)
# ----------------------------------------------------------------------------------------------

#: A pitch sounding in at least this share of a window's 64 steps is *held* in that window.
DRONE_SHARE = 0.5


def _cells(r: np.ndarray) -> Any:
    """Boolean windows ``(n, 17, 64, 72)`` as a sparse ``(n, 78336)`` float matrix of on cells."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(r.reshape(r.shape[0], -1), dtype=np.float32)


def overlap_matrix(a: Any, b: Any | None = None, threshold: float | None = None) -> np.ndarray:
    """Note overlap of every pair of windows: the Jaccard index of their on cells.

    ``|A ∩ B| / |A ∪ B|`` where ``A`` and ``B`` are the sets of on cells (track, step, pitch) of
    two windows: 1 for identical windows, 0 for windows without a common cell, NaN when both are
    empty. Computed with sparse products, so memory grows with the notes, not with 78,336 cells.

    Parameters
    ----------
    a : array ``(n, 17, 64, 72)``
    b : array ``(m, 17, 64, 72)``, optional
        Default: ``a`` itself.
    threshold : float, optional

    Returns
    -------
    np.ndarray
        ``(n, m)`` float.
    """
    ra = as_rolls(a, threshold, name="a")
    rb = ra if b is None else as_rolls(b, threshold, name="b")
    sa, sb = _cells(ra), _cells(rb)
    inter = np.asarray((sa @ sb.T).todense(), dtype=float)
    na = np.asarray(sa.sum(axis=1), dtype=float)  # (n, 1)
    nb = np.asarray(sb.sum(axis=1), dtype=float).T  # (1, m)
    return _div(inter, na + nb - inter)


def within_overlap(x: Any, threshold: float | None = None) -> float:
    """Mean note overlap (:func:`overlap_matrix`) over all pairs ``i < j`` of a set of windows.

    A measure of (lack of) diversity: near 0 for varied windows, near 1 for copies of one
    window; pairs of two empty windows are left out. NaN for fewer than two windows.
    """
    m = overlap_matrix(x, threshold=threshold)
    i, j = np.triu_indices(m.shape[0], k=1)
    v = m[i, j]
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def nearest_overlap(
    x: Any, reference: Any, threshold: float | None = None, *, groups: tuple[Any, Any] | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """For each window, its highest note overlap with any window of ``reference``, and which.

    Used to detect copying: generated windows that (nearly) repeat a training window score
    close to 1. Real windows give the reference value; windows cut from one song with a one-bar
    hop share three bars, so compare a real window only with other songs' windows (``groups``).

    Parameters
    ----------
    x : array ``(n, 17, 64, 72)``
    reference : array ``(m, 17, 64, 72)``
        E.g. the training windows; processed ``chunk`` windows at a time.
    threshold : float, optional
        Binarization threshold of ``x`` (``reference`` must be 0/1 or bool).
    groups : (array (n,), array (m,)), optional
        Group labels (e.g. song ids): pairs with the same label are not compared.
    chunk : int
        Reference windows per sparse product (bounds the memory to ``n * chunk`` floats).

    Returns
    -------
    best : np.ndarray, float, ``(n,)``
        Highest overlap (NaN if no comparable pair has a note).
    index : np.ndarray, int, ``(n,)``
        Index into ``reference`` of the nearest window (-1 where ``best`` is NaN).
    """
    r = as_rolls(x, threshold, name="x")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    m = len(reference)
    if groups is not None:
        gx, gr = (np.asarray(g) for g in groups)
        if gx.shape != (r.shape[0],) or gr.shape != (m,):
            raise ValueError(f"groups must have shapes ({r.shape[0]},) and ({m},), got {gx.shape} and {gr.shape}")
    best = np.full(r.shape[0], -np.inf)
    index = np.full(r.shape[0], -1, dtype=np.int64)
    for start in range(0, m, chunk):
        ov = overlap_matrix(r, reference[start:start + chunk])
        if groups is not None:
            ov[gx[:, None] == gr[None, start:start + chunk]] = np.nan
        ov = np.where(np.isnan(ov), -np.inf, ov)
        j = ov.argmax(axis=1)
        v = ov[np.arange(len(j)), j]
        better = v > best
        best[better], index[better] = v[better], start + j[better]
    none = ~np.isfinite(best)
    best[none], index[none] = np.nan, -1
    return best, index


def held_pitch(x: Any, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The most held pitch of each window: the share of the 64 steps in which it sounds.

    Counted per (pitched track, pitch) over all steps, whether the pitch is one long note or
    repeated notes; only pitched tracks count (a drum row on every step is a groove). A pitch
    sounding in at least :data:`DRONE_SHARE` of the steps is *held*; the same held pitch in most
    generated windows (a drone) is the symptom of a collapsed generator.

    Returns
    -------
    share : np.ndarray, float, ``(n,)``
        Steps on / 64 of the window's most held (track, pitch); 0 without pitched notes.
    track, pitch : np.ndarray, int, ``(n,)``
        Where it is (track index, MIDI pitch; the lowest on ties); -1 without pitched notes.
    """
    r = as_rolls(x, threshold)
    steps = r[:, 1:].sum(axis=2)  # (n, 16, 72): steps on per pitched track and pitch
    flat = steps.reshape(steps.shape[0], -1)
    k = flat.argmax(axis=1)
    best = flat[np.arange(len(k)), k]
    track = np.where(best > 0, 1 + k // N_PITCHES, -1)
    pitch = np.where(best > 0, LOWEST_PITCH + k % N_PITCHES, -1)
    return best / N_STEPS, track, pitch


def _common_held(share: np.ndarray, track: np.ndarray, pitch: np.ndarray) -> tuple[str, float]:
    """From :func:`held_pitch`'s output: the (track, pitch) held (:data:`DRONE_SHARE`) in most
    windows, and in which share of the windows."""
    held = share >= DRONE_SHARE
    if not held.any():
        return "", 0.0
    keys, counts = np.unique(np.stack([track[held], pitch[held]], axis=1), axis=0, return_counts=True)
    t, p = keys[counts.argmax()]
    from pretty_midi import note_number_to_name

    return f"{TRACKS[int(t)].name} {note_number_to_name(int(p))}", float(counts.max() / len(share))


def diversity(generated: Any, real: Any, threshold: float | None = None) -> dict[str, float]:
    """Collapse at a glance: within-set overlaps and drones of a generated and a real set.

    Returns
    -------
    dict
        ``within_generated``, ``within_real`` (:func:`within_overlap`), their ratio
        ``within_ratio`` (about 1 for sets as varied as the real one, large for a collapsed
        generator), ``held_generated``, ``held_real`` (share of windows whose most held pitch
        sounds in at least :data:`DRONE_SHARE` of the steps, :func:`held_pitch`), and
        ``drone_generated``/``drone_real`` with ``drone_pitch_generated``/``drone_pitch_real``:
        the single (track, pitch) held in most windows (e.g. ``"Ensemble D4"``) and the share of
        the windows in which it is held.
    """
    g = as_rolls(generated, threshold, name="generated")
    r = as_rolls(real, name="real")
    wg, wr = within_overlap(g), within_overlap(r)
    hg, hr = held_pitch(g), held_pitch(r)
    dg, dr = _common_held(*hg), _common_held(*hr)
    return {
        "within_generated": wg, "within_real": wr,
        "within_ratio": wg / wr if wr and not np.isnan(wr) else float("nan"),
        "held_generated": float((hg[0] >= DRONE_SHARE).mean()),
        "held_real": float((hr[0] >= DRONE_SHARE).mean()),
        "drone_pitch_generated": dg[0], "drone_generated": dg[1],
        "drone_pitch_real": dr[0], "drone_real": dr[1],
    }
