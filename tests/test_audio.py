"""Tests for b2b.music.audio: pitch, timing, silence, drums, WAV files and input checks.

Expected values are worked out by hand: MIDI pitch p sounds at 440 * 2 ** ((p - 69) / 12) Hz;
at 4 steps per beat, step s starts at s * 60 / tempo / 4 seconds (0.125 s at 120 bpm).
"""

from __future__ import annotations

import io
import re
import wave

import numpy as np
import pretty_midi
import pypianoroll
import pytest
import torch

from b2b.music import audio, data

SR = 22050
HAVE_SF = audio.have_soundfont()
BACKENDS = [
    "numpy",
    pytest.param("soundfont", marks=pytest.mark.skipif(not HAVE_SF, reason="no tinysoundfont")),
]
TRACK = {t.name: i for i, t in enumerate(data.TRACKS)}


def hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def window(*notes: tuple[str, int, int, int]) -> np.ndarray:
    """A float window with notes ``(track name, first step, n steps, MIDI pitch)``."""
    w = np.zeros(data.SAMPLE_SHAPE, dtype=np.float32)
    for name, step, length, pitch in notes:
        w[TRACK[name], step : step + length, pitch - data.LOWEST_PITCH] = 1.0
    return w


def one_note(program: int, pitch: int, start: float, end: float, drum: bool = False):
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program, is_drum=drum)
    inst.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=start, end=end))
    midi.instruments.append(inst)
    return midi


def peak_frequency(x: np.ndarray, t0: float, t1: float) -> float:
    """Frequency (Hz) of the strongest spectral peak of x[t0:t1], zero-padded 8 times."""
    seg = x[int(t0 * SR) : int(t1 * SR)].astype(np.float64)
    n = 8 * len(seg)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))
    return float(np.fft.rfftfreq(n, 1.0 / SR)[np.argmax(spec)])


def onset(x: np.ndarray, rel: float = 0.01) -> float:
    """Seconds until |x| first exceeds ``rel`` times its peak."""
    return float(np.argmax(np.abs(x) > rel * np.abs(x).max()) / SR)


# ---------------------------------------------------------------------------------- pitch


@pytest.mark.parametrize(("program", "pitch"), [(0, 69), (32, 43), (40, 74), (80, 58)])
def test_numpy_backend_peak_is_the_fundamental(program, pitch):
    x = audio.render(one_note(program, pitch, 0.1, 1.1), backend="numpy", sample_rate=SR)
    # bin spacing of the padded spectrum is 22050 / (8 * 17640) = 0.16 Hz
    assert peak_frequency(x, 0.2, 1.0) == pytest.approx(hz(pitch), abs=0.5)


def test_numpy_backend_pitch_from_a_window():
    # Bass track, E2 = MIDI 40 = 82.41 Hz, held for a whole bar from step 16 (2.0 s)
    x = audio.render(window(("Bass", 16, 16, 40)), backend="numpy", sample_rate=SR)
    assert peak_frequency(x, 2.1, 3.9) == pytest.approx(hz(40), abs=0.5)


@pytest.mark.skipif(not HAVE_SF, reason="no tinysoundfont")
@pytest.mark.parametrize("pitch", [43, 55, 67, 79])
def test_soundfont_strings_peak_is_the_fundamental(pitch):
    # TimGM6mb's strings have their strongest partial at the fundamental at every pitch
    x = audio.render(one_note(40, pitch, 0.0, 1.0), backend="soundfont", sample_rate=SR)
    semitones = 12 * np.log2(peak_frequency(x, 0.1, 0.9) / hz(pitch))
    assert abs(semitones) < 0.5


@pytest.mark.skipif(not HAVE_SF, reason="no tinysoundfont")
@pytest.mark.parametrize("pitch", [36, 48, 57, 64, 76, 88])
def test_soundfont_piano_peak_is_a_harmonic_of_the_note(pitch):
    # the sampled piano's strongest partial is an overtone for low notes: it must still be
    # one of the first 8 harmonics k * f0, within a third of a semitone
    x = audio.render(one_note(0, pitch, 0.0, 1.0), backend="soundfont", sample_rate=SR)
    ratio = peak_frequency(x, 0.1, 0.9) / hz(pitch)
    k = max(1, round(ratio))
    assert k <= 8
    assert abs(12 * np.log2(ratio / k)) < 0.33


# ---------------------------------------------------------------------------------- timing


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("tempo", "step"), [(120.0, 32), (120.0, 37), (90.0, 35)])
def test_note_starts_at_its_step(backend, tempo, step):
    # bar 3 spans steps 32..47; step s starts at s * 15 / tempo seconds
    x = audio.render(window(("Piano", step, 2, 60)), backend=backend, tempo=tempo, sample_rate=SR)
    expected = step * 15.0 / tempo
    assert expected - 0.005 <= onset(x) <= expected + 0.03
    assert np.abs(x[: int((expected - 0.005) * SR)]).max() < 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_silence_where_the_roll_is_empty(backend):
    # a short note in bar 1 (0.0-0.25 s) and one at bar 4 (6.0 s): nothing between 1.5 and 6 s
    x = audio.render(
        window(("Piano", 0, 2, 64), ("Piano", 48, 2, 67)), backend=backend, sample_rate=SR
    )
    assert np.abs(x[: int(0.25 * SR)]).max() > 0.1
    assert np.abs(x[int(1.5 * SR) : int(5.99 * SR)]).max() < 1e-4
    assert np.abs(x[int(6.0 * SR) : int(6.25 * SR)]).max() > 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_window_is_silent_and_full_length(backend):
    x = audio.render(np.zeros(data.SAMPLE_SHAPE), backend=backend, sample_rate=SR, tail=0.5)
    assert x.dtype == np.float32
    assert len(x) == int(np.ceil(8.5 * SR))  # 64 steps * 0.125 s + tail
    assert not x.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_plays_windows_one_after_another(backend):
    batch = np.stack([np.zeros(data.SAMPLE_SHAPE), window(("Organ", 4, 4, 62))])
    x = audio.render(batch, backend=backend, sample_rate=SR, tail=0.25)
    assert len(x) == int(np.ceil(16.25 * SR))
    assert 8.5 - 0.005 <= onset(x) <= 8.5 + 0.03  # window 2 starts at 8 s, step 4 is +0.5 s


@pytest.mark.parametrize("backend", BACKENDS)
def test_song_roll_of_any_length(backend):
    # a (17, T, 72) song roll of 5 bars (80 steps) with a note on the last bar (step 70)
    roll = np.zeros((17, 80, 72), dtype=bool)
    roll[TRACK["Brass"], 70:74, 55 - data.LOWEST_PITCH] = True
    x = audio.render(roll, backend=backend, sample_rate=SR, tail=0.0)
    assert len(x) == int(np.ceil(80 * 0.125 * SR))
    assert 70 * 0.125 - 0.005 <= onset(x) <= 70 * 0.125 + 0.03


# ---------------------------------------------------------------------------------- level


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keys", [(36, 38, 42), (24,), (95,)])
def test_drums_only_is_not_silent(backend, keys):
    # 24 and 95 lie outside the General MIDI drum map: still audible (numpy fallback)
    notes = [("Drums", 4 * i + 1, 1, k) for i, k in enumerate(keys)]
    x = audio.render(window(*notes), backend=backend, sample_rate=SR)
    assert np.abs(x).max() == pytest.approx(audio.PEAK, rel=1e-5)
    assert 0.125 - 0.005 <= onset(x) <= 0.125 + 0.03


@pytest.mark.parametrize("backend", BACKENDS)
def test_peak_is_normalised_and_within_range(backend):
    w = window(*[(name, 8 * i, 8, 40 + 5 * i) for i, name in enumerate(TRACK) if i < 9])
    x = audio.render(w, backend=backend, sample_rate=SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert np.abs(x).max() == pytest.approx(audio.PEAK, rel=1e-5)


def test_input_types_give_the_same_sound():
    w = window(("Guitar", 3, 5, 52), ("Drums", 8, 1, 38))
    ref = audio.render(w, backend="numpy")
    assert np.array_equal(audio.render(w > 0.5, backend="numpy"), ref)
    assert np.array_equal(audio.render(torch.from_numpy(w), backend="numpy"), ref)
    # probabilities binarised at the threshold
    probs = w * 0.7 + 0.05
    assert np.array_equal(audio.render(probs, threshold=0.5, backend="numpy"), ref)
    assert not audio.render(probs, threshold=0.8, backend="numpy").any()


def test_multitrack_with_velocities_and_probabilities():
    roll = np.zeros((32, 128), dtype=np.float32)
    roll[8:12, 57] = 0.9  # probabilities: binarised at 0.5
    vel = np.zeros((32, 128), dtype=np.uint8)
    vel[0:2, 45] = 80  # velocities
    mt = pypianoroll.Multitrack(
        resolution=4,
        tempo=np.full(32, 100.0),
        tracks=[
            pypianoroll.Track(name="p", program=0, is_drum=False, pianoroll=roll),
            pypianoroll.StandardTrack(name="b", program=33, is_drum=False, pianoroll=vel),
        ],
    )
    midi = audio.to_midi(mt)
    assert [(n.pitch, round(n.start, 4)) for i in midi.instruments for n in i.notes] == [
        (57, round(8 * 0.15, 4)),
        (45, 0.0),
    ]
    x = audio.render(mt, backend="numpy", sample_rate=SR, tail=0.0)
    assert len(x) == int(np.ceil(32 * 0.15 * SR))  # 32 steps at 100 bpm, 4 per beat
    assert np.abs(x).max() > 0.5


# ---------------------------------------------------------------------------------- files, players


@pytest.mark.parametrize("backend", BACKENDS)
def test_wav_round_trip(tmp_path, backend):
    w = window(("Strings", 2, 20, 67), ("Drums", 0, 1, 36))
    path = audio.write_wav(w, tmp_path / "a.wav", sample_rate=16000, backend=backend)
    x = audio.render(w, sample_rate=16000, backend=backend)
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
        assert f.getnframes() == len(x)
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    assert np.abs(pcm / 32767.0 - x).max() <= 1.0 / 32767
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # no temporary left


def test_write_wav_of_a_waveform_and_missing_folder(tmp_path):
    x = np.array([0.0, 0.5, -1.0, 1.0], dtype=np.float32)
    path = audio.write_wav(x, tmp_path / "w.wav", sample_rate=8000)
    with wave.open(str(path), "rb") as f:
        pcm = np.frombuffer(f.readframes(4), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -32767, 32767]
    with pytest.raises(FileNotFoundError, match="nope"):
        audio.write_wav(x, tmp_path / "nope" / "w.wav")


def test_to_audio_does_not_autoplay_or_loop():
    player = audio.to_audio(window(("Reed", 0, 8, 70)), backend="numpy", sample_rate=SR, format="wav")
    html = player._repr_html_()
    assert "autoplay" not in html and "loop" not in html
    assert "data:audio/wav;base64," in html
    with wave.open(io.BytesIO(player.data), "rb") as f:
        assert (f.getnchannels(), f.getframerate()) == (1, SR)
        assert f.getnframes() == int(np.ceil((8.0 + audio.TAIL) * SR))


def test_side_by_side_puts_each_player_under_its_name():
    a, b = window(("Reed", 0, 8, 70)), window(("Bass", 4, 6, 30))
    html = audio.side_by_side([("Bach <real>", a), ("generated", b)], backend="numpy", sample_rate=SR,
                              format="wav").data
    assert html.count("<td") == 2 and html.count("<audio") == 2
    assert html.index("Bach &lt;real&gt;") < html.index("<audio") < html.index("generated")
    # each player is the one to_audio makes of its window
    for x in (a, b):
        player = audio.to_audio(x, backend="numpy", sample_rate=SR, format="wav")._repr_html_()
        assert player in html


def test_side_by_side_puts_at_most_two_players_in_a_row():
    ws = [window(("Reed", i, i + 2, 40 + i)) for i in range(5)]
    names = [f"clip {i}" for i in range(5)]
    html = audio.side_by_side(list(zip(names, ws)), backend="numpy", sample_rate=SR, format="wav").data
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert [r.count("<td") for r in rows] == [2, 2, 1]                     # 5 players: rows of 2, 2, 1
    assert [html.index(n) for n in names] == sorted(html.index(n) for n in names)   # in order
    one_row = audio.side_by_side(list(zip(names, ws)), per_row=5, backend="numpy", sample_rate=SR, format="wav").data
    assert one_row.count("<tr>") == 1 and one_row.count("<td") == 5
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="per_row: expected a positive integer"):
            audio.side_by_side(list(zip(names, ws)), per_row=bad)


def test_encode_wav_round_trips_to_16_bit():
    w = np.linspace(-1.2, 1.2, 1001).astype(np.float32)  # clipped at the ends
    with wave.open(io.BytesIO(audio.encode(w, 8000, "wav")), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
        assert f.getframerate() == 8000
    assert np.array_equal(pcm, np.round(np.clip(w, -1, 1) * 32767).astype("<i2"))


def _spectrum(w, n=2048):
    """Mean magnitude spectrum over frames of n samples (alignment-free, for lossy codecs)."""
    frames = w[: len(w) // n * n].reshape(-1, n) * np.hanning(n)
    return np.abs(np.fft.rfft(frames, axis=1)).mean(axis=0)


def test_mp3_is_smaller_and_sounds_the_same():
    sf = pytest.importorskip("soundfile")
    w = audio.render(window(("Reed", 0, 8, 70), ("Reed", 8, 16, 74), ("Bass", 0, 32, 40)), backend="numpy",
                     sample_rate=SR)
    player = audio.to_audio(w, sample_rate=SR, format="mp3")
    assert player.mimetype == "audio/mpeg" and "data:audio/mpeg;base64," in player._repr_html_()
    assert len(player.data) < len(audio.encode(w, SR, "wav")) / 4
    back, rate = sf.read(io.BytesIO(player.data), dtype="float32")
    assert rate == SR and back.ndim == 1
    assert abs(len(back) - len(w)) < 0.1 * SR  # an MP3 adds at most a frame or two of padding
    a, b = _spectrum(w), _spectrum(back)
    # the same spectrum: a relative error of a few percent (a pitch or octave off would be ~100%)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.1
    assert audio.encode(w, SR, "auto")[:4] != b"RIFF"  # auto picks MP3 when soundfile is there


def test_auto_format_is_mp3_only_where_soundfile_imports(monkeypatch):
    assert audio.resolve_format("wav") == "wav" and audio.resolve_format("mp3") == "mp3"
    monkeypatch.setattr(audio, "_have_soundfile", lambda: False)
    assert audio.resolve_format("auto") == "wav"
    monkeypatch.setattr(audio, "_have_soundfile", lambda: True)
    assert audio.resolve_format("auto") == "mp3"
    with pytest.raises(ValueError, match="'flac'"):
        audio.resolve_format("flac")


def test_encode_rejects_unknown_format():
    with pytest.raises(ValueError, match="format must be"):
        audio.encode(np.zeros(10), SR, "ogg")


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad",
    [np.zeros((17, 64, 71)), np.zeros((16, 64, 72)), np.zeros((64, 72)), np.zeros((2, 2, 17, 64, 72))],
)
def test_wrong_shape_names_argument_and_expected_shape(bad):
    with pytest.raises(ValueError, match=r"x: expected .*\(17, 64, 72\).*got .*shape"):
        audio.render(bad)


@pytest.mark.parametrize(
    "bad",
    [np.full(data.SAMPLE_SHAPE, "a"), np.zeros(data.SAMPLE_SHAPE, dtype=complex),
     np.full(data.SAMPLE_SHAPE, np.nan), np.full(data.SAMPLE_SHAPE, 2.0)],
)  # fmt: skip
def test_wrong_dtype_or_values(bad):
    with pytest.raises(ValueError, match="x: "):
        audio.render(bad)


def test_bad_options():
    w = window(("Piano", 0, 1, 60))
    with pytest.raises(ValueError, match="backend"):
        audio.render(w, backend="fluidsynth")
    with pytest.raises(ValueError, match="tempo"):
        audio.render(w, tempo=0)
    # inf used to divide by zero, 1e-300 to fail without naming the argument
    for tempo in (float("inf"), 1e-300, float("nan"), 19.9, 400.5, "120", True):
        with pytest.raises(ValueError, match=r"tempo: expected beats per minute in \[20, 400\]"):
            audio.render(w, tempo=tempo)
    assert audio.check_tempo(20) == 20.0 and audio.check_tempo(np.float32(400)) == 400.0
    with pytest.raises(ValueError, match="sample_rate"):
        audio.render(w, sample_rate=22050.5)
    with pytest.raises(FileNotFoundError, match="soundfont"):
        audio.render(w, soundfont="/no/such.sf2")


def test_soundfont_backend_without_soundfont_file_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "default_soundfont", lambda: None)
    w = window(("Piano", 0, 1, 60))
    with pytest.raises(FileNotFoundError, match="backend='numpy'"):
        audio.render(w, backend="soundfont")
    # auto falls back to the numpy synthesizer
    assert np.array_equal(audio.render(w), audio.render(w, backend="numpy"))


def test_auto_falls_back_without_tinysoundfont(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tinysoundfont", None)  # import fails
    assert not audio.have_soundfont()
    w = window(("Drums", 0, 1, 36), ("Piano", 4, 4, 60))
    assert np.array_equal(audio.render(w), audio.render(w, backend="numpy"))


@pytest.mark.skipif(not HAVE_SF, reason="no tinysoundfont")
def test_soundfont_rendering_is_repeatable():
    # the synthesizer is cached between calls: a note still ringing at the end of one render
    # (strings held to the last step) must not leak into the next
    w = window(("Strings", 0, 64, 60), ("Brass", 60, 4, 72))
    first = audio.render(w, backend="soundfont", tail=0.0)
    again = audio.render(w, backend="soundfont", tail=0.0)
    other = audio.render(window(("Piano", 8, 2, 48)), backend="soundfont")
    assert np.array_equal(first, again)
    assert np.abs(other[: int(0.99 * SR)]).max() == 0.0


def test_consecutive_drum_steps_are_separate_hits():
    """Four sixteenth-note hi-hats (GM 42) on steps 0-3 are four hits, not one long note."""
    w = np.zeros((17, 64, 72), bool)
    w[0, 0:4, 42 - 24] = True
    w[5, 0:4, 40 - 24] = True  # a bass note held for the same four steps stays one note
    midi = audio.to_midi(w, tempo=120.0)
    drums = [i for i in midi.instruments if i.is_drum]
    bass = [i for i in midi.instruments if not i.is_drum]
    assert [round(n.start, 3) for n in drums[0].notes] == [0.0, 0.125, 0.25, 0.375]  # 15/120 s apart
    assert len(bass[0].notes) == 1 and bass[0].notes[0].pitch == 40


def test_a_multitrack_plays_drums_as_windows_do():
    """The same hi-hat run (GM 42, steps 0-3) and bass note as a Multitrack: four hits and one note,
    at the window's onsets (one rule, :func:`b2b.music.data.track_notes`)."""
    drums, bass = np.zeros((16, 128), bool), np.zeros((16, 128), bool)
    drums[0:4, 42] = True
    bass[0:4, 40] = True
    mt = pypianoroll.Multitrack(resolution=4, tempo=np.full(16, 120.0), tracks=[
        pypianoroll.BinaryTrack(name="d", program=0, is_drum=True, pianoroll=drums),
        pypianoroll.BinaryTrack(name="b", program=33, is_drum=False, pianoroll=bass)])
    hits, held = audio.to_midi(mt).instruments
    # a step lasts 60 / 120 / 4 = 0.125 s; each hit occupies its step
    assert [(n.pitch, n.start, n.end) for n in hits.notes] == [(42, 0.0, 0.125), (42, 0.125, 0.25),
                                                               (42, 0.25, 0.375), (42, 0.375, 0.5)]
    assert [(n.pitch, n.start, n.end) for n in held.notes] == [(40, 0.0, 0.5)]
    w = np.zeros((17, 64, 72), bool)
    w[0, 0:4, 42 - 24] = True
    from_window = [i for i in audio.to_midi(w, tempo=120.0).instruments if i.is_drum][0]
    assert [n.start for n in from_window.notes] == [n.start for n in hits.notes]
