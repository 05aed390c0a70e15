"""Tests of b2b.datasets.bach on a handful of chorales (the full build is exercised by the set-up script)."""

from __future__ import annotations

import numpy as np
import pytest

from b2b.datasets import bach, catalog as datasets, store
from b2b import cli
from b2b.music import data

ENSEMBLE, STRINGS, ORGAN, PIANO, BRASS, REED, PIPE = 7, 6, 3, 1, 8, 9, 10
NAMES = ["bach/bwv1.6", "bach/bwv281", "bach/bwv269", "bach/bwv324"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    return bach.build(root=root, workers=1, names=NAMES)


def test_part_mapping():
    assert bach.part_track("Soprano")[0] == ENSEMBLE
    assert bach.part_track("Bass")[0] == ENSEMBLE  # the sung bass voice, not a bass instrument
    assert bach.part_track("Bass Continuo")[0] == ENSEMBLE  # first keyword wins: a sung part
    assert bach.part_track("Soprano Oboe 1 Violin1")[0] == ENSEMBLE
    assert bach.part_track("Continuo", "Instrument 5")[0] == ORGAN
    assert bach.part_track("Continuo", "Harpsichord")[0] == PIANO
    assert bach.part_track("Violin 2")[0] == STRINGS and bach.part_track("Viola")[0] == STRINGS
    assert bach.part_track("Timpani")[0] == STRINGS  # General MIDI 47
    assert bach.part_track("Oboe d'amore")[0] == REED and bach.part_track("Oboe da caccia")[0] == REED
    assert bach.part_track("Horn 2")[0] == BRASS and bach.part_track("Cornet 1")[0] == BRASS
    assert bach.part_track("Trumpet 1,2")[0] == BRASS
    assert bach.part_track("Flutes")[0] == PIPE and bach.part_track("Recorders")[0] == PIPE
    assert bach.part_track(None) == (ENSEMBLE, "unnamed part: a chorale voice")
    assert bach.part_track("Mystery", None, 68)[0] == REED


def _score(ts="4/4"):
    from music21 import chord, meter, note, stream, tie

    def n(pitch, ql, t=None):
        x = note.Note(pitch, quarterLength=ql)
        if t:
            x.tie = tie.Tie(t)
        return x

    def part(name, measures):
        p = stream.Part()
        p.partName = name
        for i, els in enumerate(measures):
            m = stream.Measure(number=i)
            if i == 0:
                m.append(meter.TimeSignature(ts))
            for e in els:
                m.append(e)
            p.append(m)
        return p

    soprano = part("Soprano", [
        [n("C5", 1)],  # pickup
        [n("D5", 2), n("F5", 1), n("E5", 1, "start")],
        [n("E5", 1, "stop"), chord.Chord(["C4", "E4", "G4"], quarterLength=2), note.Rest(quarterLength=1)],
    ])
    violin = part("Violin 1", [
        [note.Rest(quarterLength=1)],
        [n("G4", 0.5), n("G4", 0.5), n("A4", 3)],
        [n("B3", 4)],
    ])
    s = stream.Score()
    s.insert(0, soprano)
    s.insert(0, violin)
    return s


def test_chorale_events_hand_computed():
    ev = bach.chorale_events(_score())
    assert ev["skip"] is None and ev["pickup_beats"] == 1.0
    assert ev["parts"] == [["Soprano", "Ensemble", "keyword 'soprano'"], ["Violin 1", "Strings", "keyword 'violin'"]]
    roll = bach.chorale_roll(ev)
    # a one-beat pickup: 3 silent beats (12 steps) are added, bar lines at 16 and 32
    expected = np.zeros((17, 48, 72), bool)
    expected[ENSEMBLE, 12:16, 72 - 24] = True  # C5 pickup
    expected[ENSEMBLE, 16:24, 74 - 24] = True  # D5 half
    expected[ENSEMBLE, 24:28, 77 - 24] = True  # F5
    expected[ENSEMBLE, 28:36, 76 - 24] = True  # E5 tied across the bar line: one note
    expected[ENSEMBLE, 36:44, [60 - 24, 64 - 24, 67 - 24]] = True  # chord
    expected[STRINGS, 16:17, 67 - 24] = True  # repeated G4 eighths: the first cut one step short
    expected[STRINGS, 18:20, 67 - 24] = True
    expected[STRINGS, 20:32, 69 - 24] = True
    expected[STRINGS, 32:48, 59 - 24] = True
    assert roll.shape == expected.shape
    assert np.array_equal(roll, expected), np.argwhere(roll != expected)[:5]
    # transposition moves every note
    assert np.array_equal(bach.chorale_roll(ev, 2)[:, :, 2:], expected[:, :, :-2])
    assert bach.chorale_events(_score("3/4"))["skip"] == "time signature 3/4"


def test_known_chorale_against_music21(built):
    """bwv1.6 against music21's own note list (stripTies), the independent method."""
    from music21 import corpus

    ds = store.WindowDataset(built)
    roll = ds.song_roll("bwv1.6")
    score = corpus.parse("bach/bwv1.6").stripTies()
    shift = 3  # a one-beat pickup
    painted = np.zeros_like(roll)
    onsets = set()
    for part in score.parts:
        k = BRASS if part.partName.startswith("Horn") else ENSEMBLE
        for nt in part.flatten().notes:
            on = int(round((float(nt.offset) + shift) * 4))
            off = int(round((float(nt.offset) + float(nt.quarterLength) + shift) * 4))
            painted[k, on:off, nt.pitch.midi - 24] = True
            onsets.add((k, on, nt.pitch.midi - 24))
    assert roll.shape == painted.shape
    assert not (roll & ~painted).any()  # nothing invented
    assert all(roll[k, t, p] for k, t, p in onsets)  # every note starts where music21 says
    missing = np.argwhere(painted & ~roll)  # only the steps cut before a repeated note
    assert all((k, t + 1, p) in onsets for k, t, p in missing)
    # the soprano opens with F4 on the pickup beat (step 12), the first bar line at 16
    assert roll[ENSEMBLE, 12, 65 - 24] and not roll[:, :12].any()
    assert roll[BRASS, 12, 65 - 24]


def test_build_meta_and_windows(built):
    ds = store.WindowDataset(built)
    meta = ds.meta
    assert ds.songs == ["bwv1.6", "bwv281"]
    assert meta["skipped"] == {"bwv269": "time signature 3/4", "bwv324": "irregular bar lines"}
    piece = meta["pieces"]["bwv1.6"]
    assert piece["corpus_path"] == "bach/bwv1.6" and piece["bwv"] == "1.6" and piece["pickup_beats"] == 1.0
    assert [p[:2] for p in piece["parts"]] == [["Horn 2", "Brass"], ["Soprano", "Ensemble"], ["Alto", "Ensemble"],
                                               ["Tenor", "Ensemble"], ["Bass", "Ensemble"]]
    assert {p[1] for p in meta["pieces"]["bwv281"]["parts"]} == {"Ensemble"}
    assert meta["build"]["options"]["transpose"] == 0 and meta["window_rule"]["hop_bars"] == 1
    for i, (s, start) in enumerate(ds.index):
        assert start % 16 == 0
        assert np.array_equal(ds[i].numpy().astype(bool), ds.song_roll(int(s))[:, start:start + 64])
    starts = data.roll_window_starts(ds.song_roll("bwv1.6"))
    assert ds.index[ds.index[:, 0] == 0, 1].tolist() == starts.tolist() and len(starts) > 10
    text = bach.summary(ds)
    assert "2 pieces" in text and "time signature 3/4 (1)" in text and "Ensemble" in text


def test_build_is_cached(built, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(bach, "_convert", fail)
    assert bach.build(root=built.parent, workers=1, names=NAMES) == built


def test_cli_data_bach(built, monkeypatch, capsys):
    calls = []

    def fake_build(root=None, workers=2, force=False, **kw):
        calls.append((root, workers, force, kw))
        return built

    monkeypatch.setattr(bach, "build", fake_build)
    assert cli.main(["data", "bach", "--root", str(built.parent), "--workers", "1", "--force"]) == 0
    assert calls[0][1:3] == (1, True) and calls[0][3]["transpose"] == 0
    assert "2 pieces" in capsys.readouterr().out
    assert cli.main(["data", "bach", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_open_dataset_bach(built, tmp_path, monkeypatch):
    import shutil

    calls = []

    def fake_build(root=None, **kw):
        calls.append(root)
        shutil.copytree(built, root / "bach")
        return root / "bach"

    monkeypatch.setattr(bach, "build", fake_build)
    monkeypatch.setattr(bach, "shipped_store", lambda: None)  # an installation without the prebuilt store
    first = datasets.open_dataset("bach", root=tmp_path)  # missing: built
    second = datasets.open_dataset("bach", root=tmp_path)  # present: opened
    assert calls == [tmp_path] and len(first) == len(second) == len(store.WindowDataset(built))


# --- issue 12 / issue 11: bounds, bad roots, progress, leftovers -----------------------------------


def _no_parsing(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("chorales were parsed")

    monkeypatch.setattr(bach, "_convert", fail)
    monkeypatch.setattr(bach, "chorale_names", fail)


def test_transpose_is_bounded(tmp_path, monkeypatch, capsys):
    _no_parsing(monkeypatch)
    for k in (7, -1, 100):
        with pytest.raises(ValueError, match=r"transpose \(--transpose\) must be 0..6"):
            bach.build(root=tmp_path, transpose=k)
    assert cli.main(["data", "bach", "--root", str(tmp_path), "--transpose", "100"]) == 2
    err = capsys.readouterr().err
    assert "--transpose must be 0..6 semitones" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_root_that_is_a_file(tmp_path, monkeypatch, capsys):
    _no_parsing(monkeypatch)
    f = tmp_path / "root"
    f.write_text("not a folder")
    assert cli.main(["data", "bach", "--root", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: the data root (--root) exists and is not a folder" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(NotADirectoryError):
        datasets.open_dataset("bach", root=f)


def test_build_shows_progress_and_removes_leftovers(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / ".bach.0badc0de.tmp").mkdir()  # a build killed while writing its store
    (root / ".bach.0badc0de.tmp" / "store.npz").write_bytes(b"partial")
    (root / ".bach.12345678.old").mkdir()
    (root / ".other.0badc0de.tmp").mkdir()  # not ours
    monkeypatch.setattr(bach, "chorale_names", lambda: NAMES[:1])
    monkeypatch.setattr(bach, "shipped_store", lambda: None)  # an installation without the prebuilt store
    ds = datasets.open_dataset("bach", root=root)  # what a notebook calls: it builds, visibly
    err = capsys.readouterr().err
    assert "building the Bach chorale dataset" in err and "parsing chorales" in err and "1/1" in err
    assert ds.songs == ["bwv1.6"]
    assert sorted(p.name for p in root.iterdir()) == [".other.0badc0de.tmp", "bach"]
    datasets.open_dataset("bach", root=root)  # built: opened without a word
    assert capsys.readouterr().err == ""


# --- the prebuilt store shipped with the package ------------------------------------------------


def test_open_dataset_installs_the_shipped_store(tmp_path, monkeypatch, capsys):
    shipped = bach.shipped_store()
    assert shipped is not None and shipped == data.asset("bach/store.npz").parent
    _no_parsing(monkeypatch)
    ds = datasets.open_dataset("bach", root=tmp_path)
    assert "installed the prebuilt Bach store" in capsys.readouterr().err
    assert ds.path == tmp_path / "bach" and len(ds) == len(store.WindowDataset(shipped))
    assert (tmp_path / "bach" / "store.npz").read_bytes() == (shipped / "store.npz").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bach.") and p.name.endswith(".tmp")]
    datasets.open_dataset("bach", root=tmp_path)  # present: opened, not copied again
    assert "installed" not in capsys.readouterr().err


def test_shipped_store_equals_a_fresh_build(tmp_path):
    """The shipped store is what `b2b data bach` builds from the corpus with this code."""
    shipped = store.WindowDataset(bach.shipped_store())
    fresh = store.WindowDataset(bach.build(root=tmp_path, workers=2, progress=False))
    assert fresh.songs == shipped.songs
    assert np.array_equal(fresh.index, shipped.index)
    assert np.array_equal(fresh._bits, shipped._bits) and np.array_equal(fresh._rows, shipped._rows)
    for key in ("window_rule", "tracks", "sample_shape", "skipped"):
        assert fresh.meta.get(key) == shipped.meta.get(key), key
    assert fresh.meta["build"]["options"] == shipped.meta["build"]["options"]


# --- issue 25: leftovers, an interrupted --force, bounded workers ---------------------------------


def test_a_plain_run_on_a_built_store_removes_leftovers(tmp_path, capsys):
    root = tmp_path / "root"
    bach.build(root=root, workers=1, names=NAMES[:1], progress=False)
    (root / ".bach.0badc0de.tmp").mkdir()  # what a killed `b2b data bach --force` left
    (root / ".bach.0badc0de.tmp" / "store.npz").write_bytes(b"partial")
    (root / ".bach.12345678.old").mkdir()
    (root / ".other.0badc0de.tmp").mkdir()  # not ours
    bach.build(root=root, workers=1, names=NAMES[:1], progress=False, verbose=True)
    assert "already built" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == [".other.0badc0de.tmp", "bach"]


def test_an_interrupted_force_keeps_the_old_store_byte_for_byte(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    path = bach.build(root=root, workers=1, names=NAMES[:1], progress=False)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    real_convert = bach._convert

    def killed(*a, **k):  # the rebuild is interrupted while parsing (Ctrl-C, SIGTERM)
        raise KeyboardInterrupt

    monkeypatch.setattr(bach, "_convert", killed)
    with pytest.raises(KeyboardInterrupt):
        bach.build(root=root, workers=1, names=NAMES[:1], force=True, progress=False)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    monkeypatch.setattr(bach, "_convert", real_convert)
    real_write = bach.store.np.savez_compressed

    def full(*a, **k):  # the disk fills while the new store is written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bach.store.np, "savez_compressed", full)
    with pytest.raises(OSError):
        bach.build(root=root, workers=1, names=NAMES[:1], force=True, progress=False)
    monkeypatch.setattr(bach.store.np, "savez_compressed", real_write)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in root.iterdir()) == ["bach"]  # no temporaries, no lock
    bach.build(root=root, workers=1, names=NAMES[:1], progress=False, verbose=True)
    assert "already built" in capsys.readouterr().out


def test_a_swap_killed_between_its_renames_is_put_back(tmp_path):
    root = tmp_path / "root"
    path = bach.build(root=root, workers=1, names=NAMES[:1], progress=False)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    path.rename(root / ".bach.0123abcd.old")  # kill -9 after write_store moved the old store aside
    (root / ".bach.89abcdef.tmp").mkdir()  # and before the new one was renamed into place
    bach.build(root=root, workers=1, names=NAMES[:1], progress=False)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in root.iterdir()) == ["bach"]


def test_workers_are_bounded_by_the_work_and_the_machine(tmp_path, monkeypatch):
    started = []
    real_get_context = bach.multiprocessing.get_context

    def spy(method=None):
        ctx = real_get_context(method)

        class Ctx:
            def Pool(self, n, **kw):  # noqa: N802 - multiprocessing's name
                started.append(n)
                return ctx.Pool(n, **kw)
        return Ctx()

    monkeypatch.setattr(bach.multiprocessing, "get_context", spy)
    monkeypatch.setattr(bach.os, "cpu_count", lambda: 16)
    path = bach.build(root=tmp_path, workers=40, names=NAMES[:2], progress=False)
    assert started == [2]  # two chorales: two processes, not 40
    assert store.WindowDataset(path).meta["build"]["workers"] == 2
