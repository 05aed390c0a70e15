"""Tests of b2b.music.data: LPD reader, resampling, windows, MIDI round trip, compact store.

Expected values are worked out by hand in the comments (LPD: 24 ticks per beat = 6 ticks per
step at 4 steps per beat; rows are MIDI pitch - 24).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pretty_midi
import pypianoroll
import pytest
import torch

from b2b import cli
from b2b.music import data
from b2b.datasets import catalog as datasets, store
from b2b.music.data import DataError

# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------

# One LPD song, 480 ticks = 80 steps = 5 bars, downbeats every 96 ticks from 0.
# (pitch, on tick, off tick, velocity) per track (LPD file order).
LPD_NOTES = {
    0: [(36, 0, 1, 100), (36, 24, 25, 100), (36, 48, 49, 100), (36, 72, 73, 100),  # kick: steps 0 4 8 12
        (38, 27, 28, 90),  # snare at 4.5 steps -> rounds up to 5
        (22, 30, 31, 80)],  # drum below MIDI 24: dropped
    1: [(60, 0, 47, 80), (60, 48, 96, 80),  # repeat, LPD gap: [0, 8)->cut to [0, 7), [8, 16)
        (24, 90, 102, 70),  # lowest pitch, crosses the bar line at step 16: [15, 17)
        (95, 100, 102, 70),  # highest pitch, shorter than a 16th: [17, 18)
        (100, 120, 144, 70),  # above 95: folded an octave down to 88: [20, 24)
        (12, 192, 216, 70)],  # below 24: folded up to 24: [32, 36)
    5: [(36, 3, 21, 90)],  # 0.5 -> 1, 3.5 -> 4: [1, 4)
    6: [(67, 96, 400, 60)],  # [16, 66.67 -> 67)
    16: [(50, 450, 474, 50)],  # [75, 79)
}
LPD_TICKS = 480


def lpd_expected_roll() -> np.ndarray:
    r = np.zeros((17, 80, 72), bool)
    r[0, [0, 4, 8, 12], 36 - 24] = True
    r[0, 5, 38 - 24] = True
    r[1, 0:7, 60 - 24] = True
    r[1, 8:16, 60 - 24] = True
    r[1, 15:17, 0] = True
    r[1, 17, 71] = True
    r[1, 20:24, 88 - 24] = True
    r[1, 32:36, 0] = True
    r[5, 1:4, 36 - 24] = True
    r[6, 16:67, 67 - 24] = True
    r[16, 75:79, 50 - 24] = True
    return r


@pytest.fixture
def lpd_file(tmp_path, lpd_npz_writer):
    # the piano track is stored only up to its last note (216 ticks), the others are (0, 128)
    return lpd_npz_writer(tmp_path / "song.npz", LPD_NOTES, LPD_TICKS, lengths={1: 216})


def roundtrip_window() -> np.ndarray:
    """Asymmetric window: drums with adjacent hits, repeated notes, bar-crossing notes, 24 and 95."""
    w = np.zeros(data.SAMPLE_SHAPE, bool)
    w[0, 0:64:4, 36 - 24] = True  # kick on beats
    w[0, 4:64:8, 38 - 24] = True  # snare on 2 and 4
    w[0, 40:44, 42 - 24] = True  # four adjacent hi-hat hits
    w[1, 0:3, 60 - 24] = True  # repeated C4: [0,3) [4,7) [8,9)
    w[1, 4:7, 60 - 24] = True
    w[1, 8, 60 - 24] = True
    w[1, 14:18, 64 - 24] = True  # crosses the bar line at 16
    w[1, 30:34, 0] = True  # MIDI 24, crosses the bar line at 32
    w[1, 62:64, 71] = True  # MIDI 95, ends with the window
    w[5, 0:15, 36 - 24] = True  # bass
    w[5, 16:31, 36 - 24] = True
    w[5, 32:63, 43 - 24] = True
    w[6, 8:56, 67 - 24] = True  # strings, long
    w[7, 32:48, [48 - 24, 52 - 24, 55 - 24]] = True  # ensemble chord
    w[16, 63, 70] = True  # one step at the very end
    return w


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------


def test_geometry_and_tracks():
    assert data.SAMPLE_SHAPE == (17, 64, 72)
    assert (data.STEPS_PER_BAR, data.N_STEPS, data.LOWEST_PITCH, data.N_PITCHES) == (16, 64, 24, 72)
    assert len(data.TRACKS) == 17
    assert data.TRACKS[0] == data.Track("Drums", 0, True)
    assert [t.program for t in data.TRACKS[1:]] == list(range(0, 128, 8))
    assert data.TRACKS[7].name == "Ensemble" and data.TRACKS[16].name == "Sound Effects"
    assert data.track_family(52, False) == 7  # choir aahs -> Ensemble
    assert data.track_family(33, False) == 5 and data.track_family(33, True) == 0


# ---------------------------------------------------------------------------------------------
# LPD reader and resampling
# ---------------------------------------------------------------------------------------------


def test_load_lpd_reads_layout(lpd_file):
    mt = data.load_lpd(lpd_file)
    assert mt.resolution == 24 and len(mt.tracks) == 17
    assert all(t.pianoroll.shape == (LPD_TICKS, 128) for t in mt.tracks)  # empty & short tracks padded
    assert mt.tracks[0].is_drum and not mt.tracks[1].is_drum and mt.tracks[5].program == 32
    assert mt.tracks[1].pianoroll[47, 60] == 0 and mt.tracks[1].pianoroll[46, 60] == 80
    assert mt.tracks[2].pianoroll.sum() == 0
    assert np.flatnonzero(mt.downbeat).tolist() == [0, 96, 192, 288, 384]


def test_multitrack_to_roll_hand_computed(lpd_file):
    roll = data.multitrack_to_roll(data.load_lpd(lpd_file))
    expected = lpd_expected_roll()
    assert roll.dtype == bool and roll.shape == expected.shape
    for k in range(17):
        assert np.array_equal(roll[k], expected[k]), f"track {k}: {np.argwhere(roll[k] != expected[k])[:5]}"


def test_windows_and_rule(lpd_file):
    mt = data.load_lpd(lpd_file)
    windows = data.multitrack_to_windows(mt)
    # window at 0 has 13 onsets; the one at 16 has 6 (5 + the 24 sustained into step 16)
    assert windows.shape == (1, 17, 64, 72)
    assert np.array_equal(windows[0], lpd_expected_roll()[:, :64])
    roll = data.multitrack_to_roll(mt)
    assert data.roll_window_starts(roll, min_onsets=6).tolist() == [0, 16]
    assert data.roll_window_starts(roll, min_onsets=7).tolist() == [0]
    assert data.roll_window_starts(roll, min_onsets=1, hop_bars=4).tolist() == [0]
    # active bars: window 0 has all 4; a roll with notes in 2 bars only is dropped at 3
    two = np.zeros((17, 64, 72), bool)
    two[1, 0:16:2, 10] = True
    two[1, 48:64:2, 10] = True
    assert data.roll_window_starts(two).tolist() == []
    assert data.roll_window_starts(two, min_active_bars=2).tolist() == [0]


def test_pickup_aligned_to_first_downbeat(tmp_path, lpd_npz_writer):
    # first downbeat at tick 24 (a one-beat pickup): 12 steps of silence are added before it
    notes = {1: [(60, 0, 24, 80), (62, 24, 48, 80)]}
    path = lpd_npz_writer(tmp_path / "pickup.npz", notes, 24 + 4 * 96, downbeats=(24,))
    roll = data.multitrack_to_roll(data.load_lpd(path))
    assert roll.shape == (17, 80, 72)
    assert np.flatnonzero(roll[1, :, 60 - 24]).tolist() == [12, 13, 14, 15]
    assert np.flatnonzero(roll[1, :, 62 - 24]).tolist() == [16, 17, 18, 19]
    assert roll.sum() == 8


def test_not_four_four_rejected(tmp_path, lpd_npz_writer):
    path = lpd_npz_writer(tmp_path / "waltz.npz", {1: [(60, 0, 24, 80)]}, 432, bar_ticks=72)
    with pytest.raises(DataError, match=r"waltz\.npz.*4/4"):
        data.multitrack_to_roll(data.load_lpd(path))
    assert data.multitrack_to_roll(data.load_lpd(path), check_time_signature=False).shape[1] == 64  # 72 steps, silent tail


def test_trailing_partial_bar(tmp_path, lpd_npz_writer):
    # 70 steps: the partial 5th bar is silent -> dropped; with a note in it -> padded to 80
    path = lpd_npz_writer(tmp_path / "a.npz", {1: [(60, 0, 24, 80)]}, 420)
    assert data.multitrack_to_roll(data.load_lpd(path)).shape[1] == 64
    path = lpd_npz_writer(tmp_path / "b.npz", {1: [(60, 396, 402, 80)]}, 420)
    roll = data.multitrack_to_roll(data.load_lpd(path))
    assert roll.shape[1] == 80 and np.flatnonzero(roll[1, :, 36]).tolist() == [66]


def test_tracks_mapped_by_program():
    # a Multitrack not in LPD order: an organ (19), a drum track and a second piano (2) merged
    res = 4
    organ = np.zeros((64, 128), np.uint8)
    organ[0:4, 50] = 90
    drums = np.zeros((64, 128), np.uint8)
    drums[8:10, 40] = 100  # two adjacent hits
    piano_a = np.zeros((64, 128), np.uint8)
    piano_a[16:20, 70] = 100
    piano_b = np.zeros((64, 128), np.uint8)
    piano_b[18:24, 70] = 100  # overlaps: the later onset is kept, the first cut before it
    mt = pypianoroll.Multitrack(resolution=res, tracks=[
        pypianoroll.StandardTrack(program=19, pianoroll=organ),
        pypianoroll.StandardTrack(program=0, is_drum=True, pianoroll=drums),
        pypianoroll.StandardTrack(program=0, pianoroll=piano_a),
        pypianoroll.StandardTrack(program=2, pianoroll=piano_b),
    ])
    roll = data.multitrack_to_roll(mt)
    assert roll.shape == (17, 64, 72)
    assert np.flatnonzero(roll[3, :, 26]).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(roll[0, :, 16]).tolist() == [8, 9]
    assert np.flatnonzero(roll[1, :, 46]).tolist() == [16, 18, 19, 20, 21, 22, 23]
    assert roll.sum() == 4 + 2 + 7


def test_lpd_order_kept_by_name():
    # 17 tracks named as in LPD-17 keep their order even if the programs say otherwise
    tracks = []
    for k, tr in enumerate(data.TRACKS):
        roll = np.zeros((64, 128), np.uint8)
        roll[k, 30 + k] = 100
        tracks.append(pypianoroll.StandardTrack(name=tr.name, program=0, is_drum=tr.is_drum, pianoroll=roll))
    roll = data.multitrack_to_roll(pypianoroll.Multitrack(resolution=4, tracks=tracks))
    assert [tuple(x) for x in np.argwhere(roll)] == [(k, k, 6 + k) for k in range(17)]


def test_notes_to_roll_rules():
    # repeated 1-step note followed by the same pitch cannot be separated: documented merge
    r = data.notes_to_roll([1, 1, 1], [60, 60, 60], [0, 1, 4], [1, 3, 5])
    assert np.flatnonzero(r[1, :, 36]).tolist() == [0, 1, 2, 4]
    # same onset twice: one note, the longer one
    r = data.notes_to_roll([1, 1], [60, 60], [0, 0], [2, 6])
    assert np.flatnonzero(r[1, :, 36]).tolist() == [0, 1, 2, 3, 4, 5]
    # drums out of range dropped, pitched folded (23 -> 35, 96 -> 84, 130 -> 94)
    r = data.notes_to_roll([0, 1, 1, 1], [23, 23, 96, 130], [0, 0, 0, 0], [1, 1, 1, 1], [True, False, False, False])
    assert r[0].sum() == 0 and sorted(np.flatnonzero(r[1, 0]) + 24) == [35, 84, 94]


# ---------------------------------------------------------------------------------------------
# bad LPD files
# ---------------------------------------------------------------------------------------------


def test_lpd_bad_files(tmp_path, lpd_file, lpd_npz_writer):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(DataError, match="garbage.npz"):
        data.load_lpd(garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(lpd_file.read_bytes()[: lpd_file.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.npz"):
        data.load_lpd(truncated)
    with pytest.raises(DataError, match="missing.npz"):
        data.load_lpd(tmp_path / "missing.npz")
    no_info = tmp_path / "noinfo.npz"
    np.savez(no_info, tempo=np.ones(4))
    with pytest.raises(DataError, match="noinfo.npz.*info.json"):
        data.load_lpd(no_info)
    # wrong shape: a track of 127 pitches
    import zipfile

    src = dict(np.load(lpd_file))
    src.pop("info.json")
    src["pianoroll_1_csc_shape"] = np.array([216, 127])
    bad = tmp_path / "shape.npz"
    np.savez(bad, **src)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("info.json", json.dumps({"beat_resolution": 24}))
    with pytest.raises(DataError, match=r"shape.npz.*track 1.*\(T, 128\)"):
        data.load_lpd(bad)
    src["pianoroll_1_csc_shape"] = np.array([216, 128])
    del src["pianoroll_5_csc_indptr"]
    bad = tmp_path / "keys.npz"
    np.savez(bad, **src)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("info.json", json.dumps({"beat_resolution": 24}))
    with pytest.raises(DataError, match=r"keys.npz.*track 5 lacks pianoroll_5_csc_indptr"):
        data.load_lpd(bad)


@pytest.mark.parametrize("info, why", [
    ("[" * 5000 + "]" * 5000, "nested 5000 levels"),  # Python's parser alone ends in RecursionError
    ("[1, 2]", "an array, expected an object"),
    ('{"x": "' + "a" * (2**20) + '"}', "larger than"),
])
def test_hostile_info_json_is_one_line(tmp_path, lpd_file, info, why):
    """info.json is read bounded (size, depth, an object) before any of its fields is used."""
    import zipfile

    src = dict(np.load(lpd_file))
    src.pop("info.json")
    bad = tmp_path / "hostile.npz"
    np.savez(bad, **src)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("info.json", info)
    with pytest.raises(DataError, match=f"hostile.npz.*info.json.*{why}") as e:
        data.load_lpd(bad)
    assert "\n" not in str(e.value)


def test_song_shorter_than_window(tmp_path, lpd_npz_writer):
    path = lpd_npz_writer(tmp_path / "short.npz", {1: [(60, 0, 96, 80)]}, 192)
    with pytest.raises(DataError, match=r"short.npz.*shorter than one window"):
        data.multitrack_to_windows(data.load_lpd(path))


# ---------------------------------------------------------------------------------------------
# windows -> MIDI -> windows
# ---------------------------------------------------------------------------------------------


def test_track_notes_by_hand():
    # pitch column 0: steps 0-1 and 3; column 2: steps 1-3 and 5; column 1 silent
    roll = np.zeros((6, 3), bool)
    roll[[0, 1, 3], 0] = True
    roll[[1, 2, 3, 5], 2] = True
    pitch, onset, offset = data.track_notes(roll, is_drum=False)          # a note per run
    assert list(zip(pitch.tolist(), onset.tolist(), offset.tolist())) == [(0, 0, 2), (2, 1, 4), (0, 3, 4), (2, 5, 6)]
    pitch, onset, offset = data.track_notes(roll, is_drum=True)           # a hit per active step
    assert list(zip(pitch.tolist(), onset.tolist())) == [(0, 0), (0, 1), (2, 1), (2, 2), (0, 3), (2, 3), (2, 5)]
    assert (offset == onset + 1).all()
    assert [len(x) for x in data.track_notes(np.zeros((4, 3)), is_drum=True)] == [0, 0, 0]


def test_check_roll_names_the_song_and_what_was_expected():
    good = np.zeros((17, 32, 72), bool)
    assert data.check_roll(good, "song 'a'") is good
    for bad, expected in [(np.zeros((17, 32, 71), bool), r"\(17, T, 72\)"), (np.zeros((17, 32, 72)), "bool"),
                          (np.zeros((17, 20, 72), bool), "multiple of 16")]:
        with pytest.raises(DataError, match=f"song 'a'.*{expected}"):
            data.check_roll(bad, "song 'a'")


def test_midi_round_trip(tmp_path):
    w = roundtrip_window()
    path = data.write_midi(w, tmp_path / "w.mid", tempo=97.0)
    back = data.multitrack_to_windows(pypianoroll.read(path, resolution=4))
    assert back.shape == (1, 17, 64, 72)
    assert np.array_equal(back[0], w), np.argwhere(back[0] != w)[:5]
    assert not [p for p in os.listdir(tmp_path) if p != "w.mid"]  # no temp file left
    # the same through read_midi
    assert np.array_equal(data.multitrack_to_windows(data.read_midi(path))[0], w)


def test_midi_round_trip_batch_of_probabilities(tmp_path):
    w = roundtrip_window()
    w2 = w[:, ::-1].copy()  # time-reversed: different notes
    probs = torch.from_numpy(np.stack([w, w2])).float() * 0.6 + 0.3  # 0.9 on, 0.3 off
    path = data.write_midi(probs, tmp_path / "b.mid", threshold=0.5)
    back = data.multitrack_to_windows(pypianoroll.read(path, resolution=4), hop_bars=4)
    assert back.shape == (2, 17, 64, 72)
    assert np.array_equal(back[0], w) and np.array_equal(back[1], w2)
    # at threshold 0.95 nothing is on
    mt = data.windows_to_multitrack(probs, threshold=0.95)
    assert not any(t.pianoroll.any() for t in mt.tracks)


def test_windows_to_multitrack():
    w = roundtrip_window()
    mt = data.windows_to_multitrack(w, tempo=100.0, name="x")
    assert mt.resolution == 4 and mt.name == "x" and len(mt.tracks) == 17
    assert [(t.name, t.program, t.is_drum) for t in mt.tracks] == [(t.name, t.program, t.is_drum) for t in data.TRACKS]
    assert mt.tracks[1].pianoroll.shape == (64, 128) and mt.tracks[1].pianoroll[62, 95]
    assert mt.tracks[1].pianoroll[30, 24] and mt.tracks[1].pianoroll.sum() == w[1].sum()
    assert np.flatnonzero(mt.downbeat).tolist() == [0, 16, 32, 48] and mt.tempo[0] == 100.0
    assert np.array_equal(data.multitrack_to_roll(mt), w)
    with pytest.raises(ValueError, match="shape"):
        data.windows_to_multitrack(np.zeros((17, 64, 71)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.windows_to_multitrack(np.full(data.SAMPLE_SHAPE, 3.0))


def test_read_midi_errors(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0.0))
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(100, 60, 0.0, 1.0))
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "waltz.mid"))
    with pytest.raises(DataError, match=r"waltz.mid.*3/4"):
        data.read_midi(tmp_path / "waltz.mid")
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    empty.write(str(tmp_path / "empty.mid"))
    with pytest.raises(DataError, match=r"empty.mid.*no notes"):
        data.read_midi(tmp_path / "empty.mid")
    # no time signature and a rest first: beats still start at time 0
    late = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(100, 60, 0.375, 0.5), pretty_midi.Note(100, 62, 7.5, 8.0)]
    late.instruments.append(inst)
    late.write(str(tmp_path / "late.mid"))
    roll = data.multitrack_to_roll(data.read_midi(tmp_path / "late.mid"))
    assert roll.shape == (17, 64, 72) and np.argwhere(roll).tolist() == [[1, 3, 36], [1, 60, 38], [1, 61, 38], [1, 62, 38], [1, 63, 38]]
    (tmp_path / "junk.mid").write_bytes(b"MThd junk")
    with pytest.raises(DataError, match="junk.mid"):
        data.read_midi(tmp_path / "junk.mid")
    # a two-bar MIDI file is shorter than a window
    short = np.zeros((17, 32, 72), bool)
    short[1, 0:8, 10] = True
    data.write_midi(short, tmp_path / "short.mid")
    with pytest.raises(DataError, match=r"short.mid.*shorter than one window"):
        data.multitrack_to_windows(data.read_midi(tmp_path / "short.mid"))


# ---------------------------------------------------------------------------------------------
# compact store and dataset
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def songs(lpd_file):
    a = data.multitrack_to_roll(data.load_lpd(lpd_file))  # 80 steps, windows [0]
    w = roundtrip_window()
    b = np.concatenate([w, w[:, ::-1]], axis=1)  # 128 steps
    c = np.zeros((17, 16, 72), bool)  # one empty bar: no window
    return [("a", a), ("b", b), ("c", c)]


def test_store_round_trip(tmp_path, songs):
    tmp_path = tmp_path / "out"
    path = store.write_store(tmp_path / "store", songs, {"source": "test", "mapping": "identity"})
    assert sorted(os.listdir(tmp_path)) == ["store"]
    assert sorted(os.listdir(path)) == ["meta.json", "store.npz"]
    ds = store.WindowDataset(path)
    starts_b = data.roll_window_starts(songs[1][1]).tolist()
    assert ds.index.tolist() == [[0, 0]] + [[1, s] for s in starts_b]
    assert ds.songs == ["a", "b", "c"] and len(ds) == 1 + len(starts_b)
    assert ds.meta["source"] == "test" and ds.meta["n_windows"] == len(ds)
    assert ds.meta["songs"][0]["tracks"] == ["Drums", "Piano", "Bass", "Strings", "Sound Effects"]
    assert ds.meta["window_rule"]["min_onsets"] == data.DEFAULT_MIN_ONSETS
    # only non-empty tracks stored, 9 bytes per step
    with np.load(path / "store.npz") as z:
        # song a: 5 tracks x 80 steps; song b: 6 tracks x 128 steps; song c: none
        assert z["bits"].shape == (5 * 80 + 6 * 128, 9) and z["bits"].dtype == np.uint8
        assert (z["track_rows"][2] == -1).all()
    item = ds[0]
    assert item.dtype == torch.float32 and item.shape == (17, 64, 72)
    assert set(item.unique().tolist()) == {0.0, 1.0}
    assert np.array_equal(item.numpy().astype(bool), lpd_expected_roll()[:, :64])
    for i, (s, start) in enumerate(ds.index):
        assert np.array_equal(ds[i].numpy().astype(bool), songs[s][1][:, start:start + 64])
    t = ds.tensor()
    assert t.shape == (len(ds), 17, 64, 72) and t.dtype == torch.float32
    assert torch.equal(t, torch.stack([ds[i] for i in range(len(ds))]))
    assert torch.equal(ds.tensor(torch.uint8), t.to(torch.uint8))
    assert torch.equal(ds.tensor(torch.bool), t.bool())
    assert np.array_equal(ds.song_roll("b"), songs[1][1])
    assert torch.equal(ds[-1], ds[len(ds) - 1])
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert torch.utils.data.DataLoader(ds, batch_size=4).__iter__().__next__().shape[1:] == (17, 64, 72)


def test_store_hop_and_reserved(tmp_path, songs):
    ds = store.WindowDataset(store.write_store(tmp_path / "s", songs[:2], {}, hop_bars=4, min_onsets=1))
    assert ds.index.tolist() == [[0, 0], [1, 0], [1, 64]]
    with pytest.raises(ValueError, match="reserved"):
        store.write_store(tmp_path / "t", songs, {"songs": 1})
    with pytest.raises(DataError, match="song 'bad'.*dtype"):
        store.write_store(tmp_path / "t", [("bad", songs[0][1].astype(np.uint8))], {})
    with pytest.raises(DataError, match="song 'odd'.*multiple of 16"):
        store.write_store(tmp_path / "t", [("odd", np.zeros((17, 20, 72), bool))], {})
    assert not (tmp_path / "t").exists()


def test_store_failure_leaves_nothing(tmp_path, songs):
    def failing():
        yield songs[0]
        raise RuntimeError("disk on fire")

    tmp_path = tmp_path / "out"
    with pytest.raises(RuntimeError):
        store.write_store(tmp_path / "store", failing(), {})
    assert os.listdir(tmp_path) == []
    # replacing a good store: a failure keeps the old one intact
    path = store.write_store(tmp_path / "store", songs, {"v": 1})
    with pytest.raises(RuntimeError):
        store.write_store(path, failing(), {"v": 2})
    assert os.listdir(tmp_path) == ["store"]
    assert store.WindowDataset(path).meta["v"] == 1
    store.write_store(path, songs[:1], {"v": 3})
    assert os.listdir(tmp_path) == ["store"] and store.WindowDataset(path).meta["v"] == 3


def test_store_bad_files(tmp_path, songs):
    path = store.write_store(tmp_path / "store", songs, {})
    npz = path / "store.npz"
    good = npz.read_bytes()
    npz.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"store.npz.*corrupt"):
        store.WindowDataset(path)
    with np.load(_write(npz, good)) as z:
        arrays = dict(z)
    arrays["bits"] = arrays["bits"][:, :8]
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match=r"store.npz.*bits.*\(R, 9\)"):
        store.WindowDataset(path)
    with np.load(_write(npz, good)) as z:
        arrays = dict(z)
    arrays["windows"] = arrays["windows"] + [0, 64]
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match="outside its song"):
        store.WindowDataset(path)
    _write(npz, good)
    (path / "meta.json").unlink()
    with pytest.raises(DataError, match="meta.json"):
        store.WindowDataset(path)
    with pytest.raises(DataError, match="nowhere"):
        store.WindowDataset(tmp_path / "nowhere")


def test_store_meta_is_validated(tmp_path, songs, capsys):
    path = store.write_store(tmp_path / "store", songs, {})
    meta_file = path / "meta.json"
    good = json.loads(meta_file.read_text())

    def broken(**change):
        meta = json.loads(json.dumps(good))
        for k, v in change.items():
            if v is None:
                meta.pop(k)
            else:
                meta[k] = v
        meta_file.write_text(json.dumps(meta))

    no_id = [dict(s) for s in good["songs"]]
    del no_id[1]["id"]
    cases = [
        ({"songs": no_id}, r"meta.json: song 1 has no 'id'"),
        ({"songs": {"a": 1}}, r"meta.json: 'songs' is dict, expected a list"),
        ({"songs": None}, r"meta.json: 'songs' is NoneType"),
        ({"sample_shape": 5}, r"meta.json: sample_shape is 5, expected \[17, 64, 72\]"),
        ({"sample_shape": [17, 64, 71]}, r"sample_shape is \[17, 64, 71\]"),
        ({"version": 99}, r"meta.json: store version 99 is not known to this b2b \(it reads version 1\)"),
        ({"version": None}, r"store version None is not known"),
        ({"songs": good["songs"][:1] * 3}, "song ids are not unique"),
    ]
    for change, message in cases:
        broken(**change)
        with pytest.raises(DataError, match=message):
            store.WindowDataset(path)
    # through the command line: one line, exit 2, no traceback
    broken(version=99)
    assert cli.main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "version 99" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    broken()
    assert len(store.WindowDataset(path)) == 1 + len(data.roll_window_starts(songs[1][1]))


def _write(path, content):
    path.write_bytes(content)
    return path


def test_open_dataset(tmp_path, songs, monkeypatch):
    monkeypatch.setenv("B2B_DATA", str(tmp_path / "root"))
    assert store.default_root() == tmp_path / "root"
    monkeypatch.delenv("B2B_DATA")
    assert store.default_root() == __import__("pathlib").Path.home() / "b2b-data"
    with pytest.raises(DataError, match="b2b data lpd17"):
        datasets.open_dataset("lpd17", root=tmp_path)
    store.write_store(tmp_path / "lpd17", songs, {})
    assert len(datasets.open_dataset("lpd17", root=tmp_path)) == len(datasets.open_dataset(tmp_path / "lpd17"))
    with pytest.raises(DataError, match="no such dataset"):
        datasets.open_dataset(str(tmp_path / "nope"))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_imports_only_the_chosen_source(monkeypatch):
    monkeypatch.setitem(datasets.DATA_SOURCES, "lpd17", "b2b._not_a_module")
    args = cli.build_parser("data").parse_args(["data", "bach", "--root", "/tmp/x", "--workers", "3"])
    assert args.source == "bach" and args.workers == 3 and str(args.root) == "/tmp/x"
    assert "b2b._not_a_module" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser("data").parse_args(["data", "lpd17"])
