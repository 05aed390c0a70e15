"""Rendering pianorolls to sound, offline.

Everything ends up as a :class:`pretty_midi.PrettyMIDI` (seconds, programs, a drum flag) and is
then synthesized to a mono ``float32`` waveform in [-1, 1]:

* ``backend="soundfont"`` plays every instrument, drums included, with `tinysoundfont` and the
  General MIDI SoundFont ``TimGM6mb.sf2`` that ships inside the ``pretty_midi`` package;
* ``backend="numpy"`` is a small additive synthesizer (a harmonic recipe per General MIDI family,
  noise bursts for drums) that needs nothing but numpy;
* ``backend="auto"`` (the default) uses the SoundFont when it can and the numpy synthesizer
  otherwise.

No audio device is used: samples are computed into arrays. MIDI export lives in
:func:`b2b.music.data.write_midi`.

Players in a page (:func:`to_audio`) embed the sound as a file: 16-bit WAV (32 KB per second at
16 kHz) or, when the ``soundfile`` package is installed (it is in Colab and in the ``notebook``
extra), MP3 (:func:`encode`), several times smaller for the same spectrum within a few percent
(``benchmarks/README.md`` records the sizes and errors measured).
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from b2b.music import data
from b2b.files.atomic import atomic_path
from b2b.music.geometry import as_windows

__all__ = [
    "PEAK",
    "TAIL",
    "Backend",
    "default_soundfont",
    "have_soundfont",
    "MIN_TEMPO",
    "MAX_TEMPO",
    "check_tempo",
    "to_midi",
    "render",
    "to_audio",
    "side_by_side",
    "encode",
    "resolve_format",
    "AUDIO_FORMATS",
    "write_wav",
    "synth_recipe",
]

Backend = Literal["auto", "soundfont", "numpy"]

#: Peak amplitude of a rendered waveform (headroom below full scale).
PEAK = 0.9
#: Seconds of release tail appended after the last note (or the end of the window).
TAIL = 0.75
#: Velocity given to the notes of binary (on/off) pianorolls.
DEFAULT_VELOCITY = 100
#: Below this peak a rendered track counts as silent.
_SILENT = 1e-5
#: Accepted tempo range in beats per minute (a 4-bar window lasts ``960 / tempo`` seconds:
#: 48 s at the slowest, 2.4 s at the fastest). Outside it a window is either minutes of near
#: silence or a blur of 1/16 notes shorter than 40 ms, and extreme values break the MIDI
#: encoding (``inf``) or the WAV length (``1e-300``).
MIN_TEMPO, MAX_TEMPO = 20.0, 400.0


def check_tempo(tempo: Any, name: str = "tempo") -> float:
    """``tempo`` (beats per minute) as a float in [:data:`MIN_TEMPO`, :data:`MAX_TEMPO`].

    ValueError naming ``name`` for anything else (not a number, NaN, infinite, out of range).
    """
    ok = isinstance(tempo, (int, float, np.integer, np.floating)) and not isinstance(tempo, bool)
    if not ok or not MIN_TEMPO <= float(tempo) <= MAX_TEMPO:  # NaN fails the comparison
        raise ValueError(f"{name}: expected beats per minute in [{MIN_TEMPO:g}, {MAX_TEMPO:g}], got {tempo!r}")
    return float(tempo)


# --------------------------------------------------------------------------------------------
# Input → PrettyMIDI
# --------------------------------------------------------------------------------------------


def _check_windows(x: Any) -> np.ndarray:
    """Check ``x`` and return it as a numpy array ``(n, 17, T, 72)`` (windows: ``T = 64``)."""
    return as_windows(x, name="x", song=True)


def _multitrack_to_midi(mt: Any, tempo: float | None, threshold: float) -> Any:
    """Convert a :class:`pypianoroll.Multitrack` to PrettyMIDI with audible velocities.

    Boolean tracks get :data:`DEFAULT_VELOCITY`; float tracks with values in [0, 1] (generator
    probabilities) are binarized at ``threshold``; other tracks are read as MIDI velocities.
    """
    import pretty_midi

    if tempo is None:
        tempo = float(mt.tempo[0]) if mt.tempo is not None and len(mt.tempo) else 120.0
    step = 60.0 / tempo / mt.resolution
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for track in mt.tracks:
        roll = np.asarray(track.pianoroll)
        if roll.size == 0:
            continue
        if roll.dtype == bool:
            vel = np.where(roll, DEFAULT_VELOCITY, 0)
        elif np.issubdtype(roll.dtype, np.floating) and roll.max() <= 1.0:
            vel = np.where(roll >= threshold, DEFAULT_VELOCITY, 0)
        else:
            vel = np.clip(np.rint(roll), 0, 127).astype(int)
        inst = pretty_midi.Instrument(
            program=int(track.program), is_drum=bool(track.is_drum), name=str(track.name)
        )
        for pitch, s, e in zip(*data.track_notes(vel > 0, bool(track.is_drum))):  # by onset, then pitch
            v = int(np.clip(vel[s, pitch], 1, 127))  # MIDI velocity: how hard it is struck
            inst.notes.append(pretty_midi.Note(v, int(pitch), s * step, e * step))
        if inst.notes:
            midi.instruments.append(inst)
    return midi


def to_midi(x: Any, *, tempo: float = 120.0, threshold: float = 0.5) -> Any:
    """Turn a window, a batch, a Multitrack or a PrettyMIDI into a :class:`pretty_midi.PrettyMIDI`.

    Parameters
    ----------
    x : array-like, pypianoroll.Multitrack or pretty_midi.PrettyMIDI
        A window ``(17, 64, 72)``, a batch ``(n, 17, 64, 72)`` (played one window after
        another) or a song roll ``(17, T, 72)`` (numpy or torch; bool, or probabilities in
        [0, 1] binarized at ``threshold``), a Multitrack, or a PrettyMIDI (returned unchanged).
    tempo : float
        Beats per minute for windows, in [:data:`MIN_TEMPO`, :data:`MAX_TEMPO`] (a Multitrack
        keeps its own first tempo).
    threshold : float
        Values ``>= threshold`` count as notes.

    Returns
    -------
    pretty_midi.PrettyMIDI
        Notes in seconds; binary notes get velocity :data:`DEFAULT_VELOCITY`.
    """
    import pretty_midi
    import pypianoroll

    if isinstance(x, pretty_midi.PrettyMIDI):
        return x
    if isinstance(x, pypianoroll.Multitrack):
        return _multitrack_to_midi(x, None, threshold)
    tempo = check_tempo(tempo)
    windows = _check_windows(x)
    return data.windows_to_pretty_midi(windows, threshold=threshold, tempo=tempo,
                                       velocity=DEFAULT_VELOCITY)


def _duration(x: Any, midi: Any, tempo: float) -> float:
    """Seconds the input lasts: whole windows / whole Multitrack length, else the last note."""
    import pypianoroll

    end = float(midi.get_end_time()) if any(i.notes for i in midi.instruments) else 0.0
    if isinstance(x, pypianoroll.Multitrack):
        steps = max((len(t.pianoroll) for t in x.tracks), default=0)
        mt_tempo = float(x.tempo[0]) if x.tempo is not None and len(x.tempo) else 120.0
        end = max(end, steps * 60.0 / mt_tempo / x.resolution)
    elif not hasattr(x, "instruments"):
        shape = tuple(np.shape(x))
        steps = shape[0] * shape[2] if len(shape) == 4 else shape[1]
        end = max(end, steps * 60.0 / tempo / data.STEPS_PER_BEAT)
    return end


# --------------------------------------------------------------------------------------------
# The SoundFont backend
# --------------------------------------------------------------------------------------------


def default_soundfont() -> Path | None:
    """Path of ``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package, or None."""
    try:
        import pretty_midi
    except ImportError:  # pragma: no cover - pretty_midi is a dependency
        return None
    path = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


def have_soundfont(soundfont: str | os.PathLike | None = None) -> bool:
    """True if `tinysoundfont` imports and the SoundFont file (default: TimGM6mb) exists."""
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        return False
    path = Path(soundfont) if soundfont is not None else default_soundfont()
    return path is not None and path.is_file()


@dataclass
class _Event:
    sample: int
    on: bool
    pitch: int
    velocity: int


def _events(inst: Any, sample_rate: int) -> list[_Event]:
    ev = []
    for n in inst.notes:
        s = int(round(n.start * sample_rate))
        e = max(int(round(n.end * sample_rate)), s + 1)
        ev.append(_Event(s, True, int(n.pitch), int(n.velocity)))
        ev.append(_Event(e, False, int(n.pitch), 0))
    # note-offs before note-ons at the same sample, so a repeated note is struck again
    ev.sort(key=lambda v: (v.sample, v.on))
    return ev


_SYNTHS: dict[tuple[str, int, int], tuple[Any, int]] = {}


def _synth(path: Path, sample_rate: int) -> tuple[Any, int]:
    """A tinysoundfont Synth with ``path`` loaded, cached (loading parses the whole SoundFont file)."""
    import tinysoundfont

    key = (str(path.resolve()), path.stat().st_mtime_ns, int(sample_rate))
    if key not in _SYNTHS:
        if len(_SYNTHS) >= 4:
            _SYNTHS.clear()
        synth = tinysoundfont.Synth(samplerate=int(sample_rate))
        _SYNTHS[key] = (synth, synth.sfload(str(path)))
    return _SYNTHS[key]


def _render_soundfont(midi: Any, n_samples: int, sample_rate: int, path: Path) -> list[np.ndarray]:
    """One mono waveform per instrument of ``midi``, rendered by tinysoundfont."""
    synth, sfid = _synth(path, sample_rate)
    out = []
    for inst in midi.instruments:
        chan = 9 if inst.is_drum else 0
        bank = 128 if inst.is_drum else 0
        try:
            synth.program_select(chan, sfid, bank, int(inst.program), is_drums=inst.is_drum)
        except Exception:  # no such preset (e.g. an unknown drum kit): use the standard one
            synth.program_select(chan, sfid, bank, 0, is_drums=inst.is_drum)
        buf = np.zeros(2 * n_samples, dtype=np.float32)
        view = memoryview(buf).cast("B")
        pos = 0

        def advance(to: int) -> None:
            nonlocal pos
            to = min(to, n_samples)
            if to > pos:
                synth.generate_simple(to - pos, buffer=view[8 * pos : 8 * to])
                pos = to

        for ev in _events(inst, sample_rate):
            advance(ev.sample)
            if ev.on:
                synth.noteon(chan, ev.pitch, ev.velocity)
            else:
                synth.noteoff(chan, ev.pitch)
        advance(n_samples)
        out.append(buf.reshape(-1, 2).mean(axis=1))
        # leave the cached synth silent for the next instrument: cut every voice, reset the
        # controllers and let the quick release finish
        synth.sounds_off()
        for c in range(16):
            synth.control_change(c, 121, 0)
        synth.generate_simple(sample_rate // 10)
    return out


# --------------------------------------------------------------------------------------------
# The numpy backend
# --------------------------------------------------------------------------------------------

# Per General MIDI family (program // 8): harmonic amplitudes (the fundamental is always the
# strongest partial), attack (s), decay time constant (s, None = sustained), release (s).
_FAMILIES: list[tuple[tuple[float, ...], float, float | None, float]] = [
    ((1.0, 0.5, 0.3, 0.2, 0.1, 0.05), 0.005, 0.8, 0.15),  # 0 piano
    ((1.0, 0.0, 0.35, 0.0, 0.15), 0.002, 0.4, 0.3),  # 1 chromatic percussion
    ((1.0, 0.8, 0.6, 0.4, 0.3, 0.2), 0.01, None, 0.05),  # 2 organ
    ((1.0, 0.6, 0.4, 0.3, 0.2, 0.1), 0.003, 0.6, 0.1),  # 3 guitar
    ((1.0, 0.45, 0.15, 0.05), 0.005, 1.0, 0.08),  # 4 bass
    ((1.0, 0.5, 0.33, 0.25, 0.2, 0.16), 0.06, None, 0.2),  # 5 strings
    ((1.0, 0.45, 0.3, 0.2, 0.15), 0.08, None, 0.25),  # 6 ensemble
    ((1.0, 0.85, 0.7, 0.55, 0.4, 0.3), 0.03, None, 0.1),  # 7 brass
    ((1.0, 0.05, 0.5, 0.05, 0.3, 0.05, 0.15), 0.03, None, 0.08),  # 8 reed
    ((1.0, 0.15, 0.05), 0.04, None, 0.1),  # 9 pipe
    ((1.0, 0.5, 0.33, 0.25, 0.2, 0.17, 0.14), 0.005, None, 0.08),  # 10 synth lead
    ((1.0, 0.3, 0.2, 0.1), 0.2, None, 0.4),  # 11 synth pad
    ((1.0, 0.7, 0.0, 0.4), 0.05, 1.5, 0.4),  # 12 synth effects
    ((1.0, 0.6, 0.5, 0.3), 0.005, 0.5, 0.15),  # 13 ethnic
    ((1.0, 0.3, 0.5, 0.2), 0.002, 0.25, 0.1),  # 14 percussive
    ((1.0, 0.5, 0.5, 0.5), 0.02, 0.7, 0.2),  # 15 sound effects
]


def synth_recipe(program: int) -> tuple[tuple[float, ...], float, float | None, float]:
    """The numpy synthesizer's recipe for General MIDI ``program`` (0–127), by its family.

    Returns ``(partials, attack, decay, release)``: relative amplitudes of harmonics 1, 2, ...,
    the attack time, the decay time constant (None: held at full level) and the release time,
    all in seconds. Chapter 9's in-page generator plays tracks with the same recipes.
    """
    return _FAMILIES[(program // 8) % 16]


def _tone(pitch: int, velocity: int, dur: float, program: int, sample_rate: int) -> np.ndarray:
    """One pitched note: additive partials times an attack/decay/release envelope."""
    partials, attack, decay, release = synth_recipe(program)
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    n = int(round((dur + release) * sample_rate))
    t = np.arange(n) / sample_rate
    wave_ = np.zeros(n)
    for k, a in enumerate(partials, start=1):
        if a and k * f0 < 0.45 * sample_rate:
            # higher partials die away faster, as in struck and plucked strings
            fade = 1.0 if decay is None else np.exp(-t * (k - 1) / (2.0 * decay))
            wave_ += a * fade * np.sin(2 * np.pi * k * f0 * t)
    env = np.minimum(1.0, t / max(attack, 1.0 / sample_rate))
    if decay is not None:
        env *= np.exp(-t / decay)
    held = t > dur
    env[held] *= np.exp(-(t[held] - dur) / (release / 4.0))
    return (velocity / 127.0) * 0.25 * env * wave_


def _drum(pitch: int, velocity: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: a noise burst whose brightness and length depend on the key."""
    from scipy.signal import lfilter

    low = pitch in (35, 36, 41, 43, 45)  # kicks and low toms
    length = 0.6 if pitch in (49, 51, 52, 55, 57, 59) else (0.15 if pitch in (42, 44) else 0.3)
    n = int(length * sample_rate)
    t = np.arange(n) / sample_rate
    noise = rng.standard_normal(n)
    # one-pole low-pass: darker for low keys, brighter (almost white) for cymbals
    cutoff = 200.0 if low else min(8000.0, 100.0 * 2.0 ** ((pitch - 30) / 6.0))
    a = np.exp(-2 * np.pi * cutoff / sample_rate)
    burst = lfilter([1 - a], [1, -a], noise)
    burst /= np.max(np.abs(burst)) + 1e-12
    out = burst * np.exp(-t / (length / 4.0))
    if low:  # a falling sine gives kicks and toms their thump
        f = (60.0 if pitch in (35, 36) else 90.0 + 10 * (pitch - 41)) * (1 + 2 * np.exp(-t / 0.02))
        out = 0.4 * out + np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * np.exp(-t / 0.12)
    return (velocity / 127.0) * 0.4 * out


def _render_numpy(midi: Any, n_samples: int, sample_rate: int) -> list[np.ndarray]:
    """One mono waveform per instrument of ``midi``, from the numpy synthesizer."""
    rng = np.random.default_rng(0)
    out = []
    for inst in midi.instruments:
        buf = np.zeros(n_samples)
        for note in inst.notes:
            s = int(round(note.start * sample_rate))
            if s >= n_samples:
                continue
            if inst.is_drum:
                sound = _drum(int(note.pitch), int(note.velocity), sample_rate, rng)
            else:
                dur = max(note.end - note.start, 1.0 / sample_rate)
                sound = _tone(int(note.pitch), int(note.velocity), dur, inst.program, sample_rate)
            m = min(len(sound), n_samples - s)
            buf[s : s + m] += sound[:m]
        out.append(buf.astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def render(
    x: Any,
    *,
    sample_rate: int = 22050,
    tempo: float = 120.0,
    threshold: float = 0.5,
    soundfont: str | os.PathLike | None = None,
    backend: Backend = "auto",
    tail: float = TAIL,
) -> np.ndarray:
    """Synthesize music to a mono waveform.

    Parameters
    ----------
    x : array-like, pypianoroll.Multitrack or pretty_midi.PrettyMIDI
        A window ``(17, 64, 72)``, a batch ``(n, 17, 64, 72)`` (played one window after
        another) or a song roll ``(17, T, 72)`` (numpy or torch, bool or float in [0, 1]), a
        Multitrack or a PrettyMIDI.
    sample_rate : int
        Samples per second of the result.
    tempo : float
        Beats per minute for windows (4 steps per beat: step ``s`` starts at
        ``s * 15 / tempo`` seconds).
    threshold : float
        Window values ``>= threshold`` are notes.
    soundfont : path, optional
        An ``.sf2`` file; default ``TimGM6mb.sf2`` from the ``pretty_midi`` package.
    backend : {"auto", "soundfont", "numpy"}
        ``"soundfont"`` requires `tinysoundfont` and the SoundFont; ``"auto"`` falls back to
        the numpy synthesizer when either is missing. An instrument the SoundFont leaves silent
        (e.g. drum keys outside the General MIDI drum map) is played by the numpy synthesizer.
    tail : float
        Seconds of release tail after the end of the music.

    Returns
    -------
    np.ndarray
        ``float32`` of shape ``(n_samples,)``, peak-normalised to :data:`PEAK` (all zeros if
        there are no notes). Its length covers whole windows (a 4-bar window at 120 bpm is 8 s)
        (a song roll: all its steps) plus ``tail``.
    """
    if backend not in ("auto", "soundfont", "numpy"):
        raise ValueError(f"backend: expected 'auto', 'soundfont' or 'numpy', got {backend!r}")
    if not (isinstance(sample_rate, (int, np.integer)) and 1000 <= sample_rate <= 192000):
        raise ValueError(f"sample_rate: expected an integer in [1000, 192000], got {sample_rate!r}")
    if not (isinstance(tail, (int, float)) and tail >= 0):
        raise ValueError(f"tail: expected a non-negative number of seconds, got {tail!r}")
    midi = to_midi(x, tempo=tempo, threshold=threshold)
    n_samples = int(np.ceil((_duration(x, midi, tempo) + tail) * sample_rate))
    sf_path = Path(soundfont) if soundfont is not None else default_soundfont()
    if soundfont is not None and not Path(soundfont).is_file():
        raise FileNotFoundError(f"soundfont: no such file: {soundfont}")
    use_sf = backend == "soundfont" or (backend == "auto" and have_soundfont(sf_path))
    if backend == "soundfont" and not have_soundfont(sf_path):
        raise FileNotFoundError(
            "backend='soundfont' needs the tinysoundfont package and a SoundFont "
            f"(looked for {sf_path}); install tinysoundfont or use backend='numpy'"
        )
    midi_instruments = [i for i in midi.instruments if i.notes]
    if not midi_instruments:
        return np.zeros(n_samples, dtype=np.float32)
    import pretty_midi

    only = pretty_midi.PrettyMIDI()
    only.instruments = midi_instruments
    if use_sf:
        tracks = _render_soundfont(only, n_samples, sample_rate, sf_path)
        for k, (inst, track) in enumerate(zip(midi_instruments, tracks)):
            if np.max(np.abs(track)) < _SILENT:  # the SoundFont has no sound for these keys
                sub = pretty_midi.PrettyMIDI()
                sub.instruments = [inst]
                tracks[k] = _render_numpy(sub, n_samples, sample_rate)[0]
    else:
        tracks = _render_numpy(only, n_samples, sample_rate)
    mix = np.sum(tracks, axis=0)
    peak = float(np.max(np.abs(mix)))
    if peak > 0:
        mix = mix * (PEAK / peak)
    return mix.astype(np.float32)


#: File formats of :func:`encode`: name -> MIME type.
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}
#: MP3 encoder setting (soundfile's ``compression_level``, 0 = best quality .. 1 = smallest).
MP3_COMPRESSION = 0.5


def _have_soundfile() -> bool:
    try:
        import soundfile  # noqa: F401
    except (ImportError, OSError):  # OSError: the package without its libsndfile
        return False
    return True


def resolve_format(format: str) -> str:
    """The file format ``format`` stands for: ``"mp3"`` or ``"wav"`` as given, and ``"auto"`` as
    MP3 when the ``soundfile`` package can be imported, else WAV.

    ValueError naming the format for anything else.
    """
    if format == "auto":
        return "mp3" if _have_soundfile() else "wav"
    if format not in AUDIO_FORMATS:
        raise ValueError(f"format must be 'auto' or one of {sorted(AUDIO_FORMATS)}, got {format!r}")
    return format


def encode(wave_: Any, sample_rate: int, format: str = "auto") -> bytes:
    """The bytes of a sound file holding a mono waveform.

    Parameters
    ----------
    wave_ : array ``(n_samples,)``
        Float samples in [-1, 1] (clipped).
    sample_rate : int
        Samples per second.
    format : {"auto", "wav", "mp3"}
        ``"wav"``: 16-bit PCM, 2 bytes per sample. ``"mp3"``: MPEG layer III through the
        ``soundfile`` package (its wheels carry libsndfile with an MP3 encoder), variable bit rate
        at :data:`MP3_COMPRESSION`. ``"auto"``: MP3 when ``soundfile`` is installed, else WAV.

    Returns
    -------
    bytes
        The whole file.
    """
    import io

    fmt = resolve_format(format)
    w = np.clip(np.asarray(wave_, dtype=np.float32).reshape(-1), -1.0, 1.0)
    buf = io.BytesIO()
    if fmt == "wav":
        pcm = np.round(w * 32767).astype("<i2")
        with wave.open(buf, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(int(sample_rate))
            f.writeframes(pcm.tobytes())
    else:
        import soundfile

        soundfile.write(buf, w, int(sample_rate), format="MP3", subtype="MPEG_LAYER_III",
                        compression_level=MP3_COMPRESSION)
    return buf.getvalue()


def to_audio(x: Any, *, format: str = "auto", **kw: Any) -> Any:
    """An :class:`IPython.display.Audio` player for ``x`` (no autoplay, no loop).

    Parameters
    ----------
    x : array-like, pypianoroll.Multitrack or pretty_midi.PrettyMIDI
        Anything :func:`render` accepts; a 1-D float array is taken as a waveform already.
    format : {"auto", "wav", "mp3"}
        The embedded file (:func:`encode`); ``"auto"``: MP3 when ``soundfile`` is installed.
    **kw
        Passed on to :func:`render` (``sample_rate``, ``tempo``, ``threshold``, ``backend``...).

    Returns
    -------
    IPython.display.Audio
        An HTML5 ``<audio controls>`` element with the file embedded; its ``data`` are the file's
        bytes and its ``mimetype`` says which format they are.
    """
    from IPython.display import Audio

    sample_rate = kw.get("sample_rate", 22050)
    arr = None if hasattr(x, "instruments") or hasattr(x, "tracks") else np.asarray(x)
    if arr is not None and arr.ndim == 1:
        wave_ = np.asarray(arr, dtype=np.float32)
    else:
        wave_ = render(x, **kw)
    fmt = resolve_format(format)
    # no normalization: render() already peak-normalises, and silence stays silent
    player = Audio(data=encode(wave_, sample_rate, fmt), autoplay=False)
    player.mimetype = AUDIO_FORMATS[fmt]
    return player


def side_by_side(clips: list[tuple[str, Any]], *, per_row: int = 2, **kw: Any) -> Any:
    """Players side by side, each under its name, at most ``per_row`` to a row (so that a row of
    players fits a book page: an HTML5 player is about 300 px wide). ``clips`` are ``(name, window)``
    pairs, rendered by :func:`to_audio` with ``kw``; returns an :class:`IPython.display.HTML` table,
    the clips in order, row by row."""
    from html import escape

    from IPython.display import HTML

    if isinstance(per_row, bool) or not isinstance(per_row, (int, np.integer)) or per_row < 1:
        raise ValueError(f"per_row: expected a positive integer, got {per_row!r}")
    cells = [f'<td style="text-align:center"><b>{escape(name)}</b><br>{to_audio(x, **kw)._repr_html_()}</td>'
             for name, x in clips]
    rows = "".join(f"<tr>{''.join(cells[i:i + per_row])}</tr>" for i in range(0, len(cells), per_row))
    return HTML(f"<table>{rows}</table>")


def write_wav(x: Any, path: str | os.PathLike, **kw: Any) -> Path:
    """Render ``x`` and write it as a 16-bit PCM mono WAV file (atomically).

    Parameters
    ----------
    x : array-like, pypianoroll.Multitrack or pretty_midi.PrettyMIDI
        Anything :func:`render` accepts, or a 1-D float waveform in [-1, 1].
    path : path
        Destination ``.wav`` file; its folder must exist.
    **kw
        Passed on to :func:`render`; ``sample_rate`` is also the file's rate.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: folder {path.parent} does not exist")
    sample_rate = int(kw.get("sample_rate", 22050))
    arr = None if hasattr(x, "instruments") or hasattr(x, "tracks") else np.asarray(x)
    wave_ = arr.astype(np.float32) if arr is not None and arr.ndim == 1 else render(x, **kw)
    data = encode(wave_, sample_rate, "wav")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
