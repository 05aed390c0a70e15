"""Tests of ``b2b data lpd17`` (b2b.datasets.lpd): choosing and converting songs, and the command.

Tiny LPD-17 files are served on 127.0.0.1 (the fixture archive has the exact upstream layout, see
``tests/lpd_fixtures.py``); every song has different content, so a wrong song, genre or order
shows up as different windows. Windows are checked against an independent reference conversion
(``lpd_fixtures.ref_song_roll``, written from the rules stated in ``b2b.music.data`` with numpy/scipy
only), and against ``b2b.music.data`` itself. Downloading and extracting are tested in test_fetch.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lpd_fixtures as F
from b2b import cli
from b2b.datasets import fetch, lpd
from lpd_fixtures import (  # noqa: F401 - fixtures and helpers shared with test_fetch.py
    ARCHIVE, IDS, LABELS, REGISTERED, b2b_lpd17, data_command, error_line, expected_windows,
    fast_network, files_under, k_of, ref_song_roll, server, src, store_windows, url_args)


# ----------------------------------------------------------------------- the happy path --


def test_lpd17_end_to_end_then_nothing_to_do(tmp_path, server, src, capsys):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 4, "--seed", 3) == 0
    out = capsys.readouterr().out
    assert "preprocessed 4 songs" in out and "songs/s" in out
    assert server.count() == 3  # one request per file

    man = json.loads((root / "manifest.json").read_text())["lpd17"]
    sel = man["selection"]
    rock = {src["songs"][k][0] for k in src["genres"]["tagtraum/Rock"]}
    chosen = [s["msd_id"] for s in sel["songs"]]
    assert len(chosen) == 4 and set(chosen) <= rock and chosen == sorted(chosen)
    assert sel["list"] == "labels/tagtraum/id_list_Rock.txt" and sel["seed"] == 3
    # the chosen songs are the seeded shuffle of the sorted rock list, cut to 4
    assert chosen == sorted(lpd.seeded_order(sorted(rock), 3)[:4])
    assert [s["md5"] for s in sel["songs"]] == [src["songs"][k_of(src)[m]][1] for m in chosen]
    for kind, name in (("archive", ARCHIVE), ("ids", IDS), ("labels", LABELS)):
        d = man["downloads"][kind]
        import hashlib
        assert d["sha256"] == hashlib.sha256(src["bytes"][name]).hexdigest()
        assert d["bytes"] == len(src["bytes"][name]) and d["url"] == server.url(name)
    assert man["extracted"]["n_files"] == 9
    assert man["store"]["request"] == {"genre": "tagtraum/Rock", "songs": 4, "seed": 3,
                                       "hop_bars": 1}

    # windows equal an independent conversion of the chosen songs, in order
    songs, got = store_windows(root)
    assert songs == chosen
    ks = [k_of(src)[m] for m in chosen]
    want = expected_windows(src, ks)
    assert got.shape == want.shape and np.array_equal(got, want)
    # ... and b2b.music.data's own conversion of the same files
    from b2b.music import data
    own = np.concatenate([data.multitrack_to_windows(data.load_lpd(src["npz"][k])) for k in ks])
    assert np.array_equal(got, own)
    assert man["store"]["n_windows"] == len(want)

    # a second run with the same arguments does no work
    before, n_req = files_under(root), server.count()
    assert b2b_lpd17(root, server, "--songs", 4, "--seed", 3) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert server.count() == n_req
    assert files_under(root) == before


def test_other_arguments_rebuild_without_downloading_or_extracting(tmp_path, server, src, capsys):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 2, "--seed", 1) == 0
    extracted = root / "lpd17-raw" / "extracted"
    ino, n_req = extracted.stat().st_ino, server.count()
    first = store_windows(root)[0]
    capsys.readouterr()
    assert b2b_lpd17(root, server, "--songs", 3, "--seed", 2, "--genre", "tagtraum/Pop") == 0
    out = capsys.readouterr().out
    assert "extracting" not in out and "downloading" not in out
    assert server.count() == n_req and extracted.stat().st_ino == ino
    songs, got = store_windows(root)
    pop = [src["songs"][k][0] for k in src["genres"]["tagtraum/Pop"]]
    assert sorted(songs) == sorted(pop) and songs != first
    assert np.array_equal(got, expected_windows(src, [k_of(src)[m] for m in songs]))
    man = fetch.read_manifest(root)
    assert man["store"]["request"]["genre"] == "tagtraum/Pop"
    assert not list(root.glob(".lpd17*"))  # no temporary store left


def test_python_m_b2b_subprocess_two_workers_hop_bars(tmp_path, server, src):
    root = tmp_path / "data"
    args = ["data", "lpd17", "--root", str(root), "--workers", "2", "--songs", "7", "--seed",
            "5", "--genre", "amg/Pop_Rock", "--hop-bars", "2", *url_args(server)]
    if REGISTERED:
        cmd = [sys.executable, "-m", "b2b", *args]
    else:  # pragma: no cover - the registry line is not there yet
        cmd = [sys.executable, "-c", "import sys, b2b.cli as c; c.COMMANDS.setdefault('data', "
               "('b2b.music.data', '')); sys.exit(c.main())", *args]
    env = {**os.environ, "PYTHONPATH": str(Path(lpd.__file__).parents[1])}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "preprocessed 7 songs" in r.stdout and "2 workers" in r.stdout
    songs, got = store_windows(root)  # two processes give what the reference gives
    assert len(songs) == 7 and songs == sorted(lpd.seeded_order(
        [src["songs"][k][0] for k in src["genres"]["amg/Pop_Rock"]], 5)[:7])
    assert np.array_equal(got, expected_windows(src, [k_of(src)[m] for m in songs], 2))


def test_workers_next_to_threads_use_forkserver(src):
    """With other threads alive (here: the test server's), workers must not be forked."""
    import threading

    t = threading.Thread(target=threading.Event().wait, args=(30,), daemon=True)
    t.start()
    assert lpd._pool_context().get_start_method() == "forkserver"
    paths = [str(src["npz"][k]) for k in (4, 1, 7)]
    two = list(lpd.convert_songs(paths, workers=2, progress=False))
    one = list(lpd.convert_songs(paths, workers=1, progress=False))
    assert [i for i, _, _ in two] == [0, 1, 2] and all(e is None for _, _, e in two)
    for (_, a, _), (_, b, _), k in zip(two, one, (4, 1, 7)):
        assert np.array_equal(a, b) and np.array_equal(a, ref_song_roll(src["npz"][k]))


# ------------------------------------------------------------------ selection problems ---


def test_genre_ids_missing_from_archive_warn(tmp_path, src, capsys):
    extra = ["TRZZZZZZ12345678AB", "TRYYYYYY12345678AB"]
    s2 = F.build_lpd(tmp_path / "src2", 9, extra_ids={"tagtraum/Rock": extra},
                     leave_out_of_archive=(0,))
    with F.LoopbackServer(s2["bytes"]) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 100) == 0
    err = capsys.readouterr().err
    assert "3 of 8 MSD ids in labels/tagtraum/id_list_Rock.txt are not in the archive" in err
    assert "skipped them and sampled from the remaining 5" in err
    assert ("--songs 100 is more than the 5 songs of tagtraum/Rock in the archive; "
            "using all 5") in err
    sel = fetch.read_manifest(root)["selection"]
    assert sorted(sel["missing_msd_ids"]) == sorted(extra + [s2["songs"][0][0]])
    songs, got = store_windows(root)
    want_ks = [k for k in s2["genres"]["tagtraum/Rock"] if k != 0]
    assert sorted(songs) == sorted(s2["songs"][k][0] for k in want_ks)
    assert np.array_equal(got, expected_windows(s2, [k_of(s2)[m] for m in songs]))


def test_unreadable_song_is_skipped_with_a_warning(tmp_path, capsys):
    s2 = F.build_lpd(tmp_path / "src2", 9, broken=(3, 2, 5, 8))  # all of tagtraum/Pop too
    with F.LoopbackServer(s2["bytes"]) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 6) == 0
        err = capsys.readouterr().err
        before = {p.name: p.read_bytes() for p in (root / "lpd17").iterdir()}
        record = fetch.read_manifest(root)["store"]
        # nothing readable: the earlier store and the manifest's record of it stay as they were
        assert b2b_lpd17(root, server, "--genre", "tagtraum/Pop") == 2
        assert "none of the chosen songs could be read" in error_line(capsys)
        assert {p.name: p.read_bytes() for p in (root / "lpd17").iterdir()} == before
        assert fetch.read_manifest(root)["store"] == record
        assert b2b_lpd17(root, server, "--songs", 6) == 0
        assert "nothing to do" in capsys.readouterr().out
    msd3 = s2["songs"][3][0]
    assert f"1 of 6 chosen songs could not be read and were skipped, e.g. {msd3}" in err
    man = fetch.read_manifest(root)
    assert [f["msd_id"] for f in man["store"]["failed"]] == [msd3]
    assert man["store"]["n_songs"] == 5
    songs, got = store_windows(root)
    assert msd3 not in songs and len(songs) == 5
    assert np.array_equal(got, expected_windows(s2, [k_of(s2)[m] for m in songs]))


def test_unknown_genre_lists_the_available_ones(tmp_path, server, src, capsys):
    assert b2b_lpd17(tmp_path / "data", server, "--genre", "tagtraum/Rok") == 2
    msg = error_line(capsys)
    assert "genre 'tagtraum/Rok'" in msg and "tagtraum genres: Pop, Rock" in msg
    assert server.count("/" + ARCHIVE) == 0  # refused before the big download
    assert fetch.read_genre_ids(src["labels"], "tagtraum/rock") == \
        fetch.read_genre_ids(src["labels"], "tagtraum/Rock")  # one case-insensitive match
    assert b2b_lpd17(tmp_path / "data", server, "--genre", "rock") == 2
    assert "SOURCE/NAME" in error_line(capsys)


def test_bad_numbers_are_refused(tmp_path, server, capsys):
    for opt in ("--songs", "--workers", "--hop-bars"):
        assert b2b_lpd17(tmp_path / "data", server, opt, 0) == 2
        assert f"{opt} must be at least 1" in error_line(capsys)
    assert server.count() == 0


# ------------------------------------------------------------------------- unit pieces ---


def test_song_path_follows_the_msd_id():
    assert lpd.song_path("TRAAAGR128F425B14B", "ab" * 16) == \
        "lpd_17_cleansed/A/A/A/TRAAAGR128F425B14B/" + "ab" * 16 + ".npz"
    assert lpd.song_path("TRXCVHQ12903CB78F3", "0" * 32).startswith("lpd_17_cleansed/X/C/V/")
    assert fetch.genre_member("amg/Pop_Rock") == "labels/amg/id_list_Pop_Rock.txt"


def test_seeded_order_is_a_reproducible_permutation():
    items = [f"TR{i:016d}" for i in range(50)]
    a = lpd.seeded_order(list(reversed(items)), 7)
    assert sorted(a) == items and a == lpd.seeded_order(items, 7)  # input order is irrelevant
    assert a != lpd.seeded_order(items, 8) and a != items
    # by hand: 3 items, seed 0. random.Random(0).random() gives 0.8444..., 0.7579...:
    # i=2: j=int(0.844*3)=2 (no swap); i=1: j=int(0.758*2)=1 (no swap) -> unchanged
    assert lpd.seeded_order(["c", "a", "b"], 0) == ["a", "b", "c"]
    # seed 1: 0.1343..., 0.8474...: i=2: j=0 -> [c, b, a]; i=1: j=1 -> unchanged
    assert lpd.seeded_order(["a", "b", "c"], 1) == ["c", "b", "a"]


def test_help_states_the_default_root(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("B2B_DATA", str(tmp_path / "somewhere"))
    with pytest.raises(SystemExit):
        cli.main(["data", "lpd17", "--help"])
    out = capsys.readouterr().out
    assert "$B2B_DATA" in out and "~/b2b-data" in out and "tagtraum/Rock" in out
    assert "--archive-url" in out and "--sha256" in out


# ------------------------------------------------ bad roots and leftovers (issue 12.4, 10) ---


def test_root_that_is_a_file(tmp_path, server, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert b2b_lpd17(f, server) == 2
    assert error_line(capsys) == f"b2b data: error: --root {f} is a file, not a folder: " \
                                 f"choose a folder"
    assert b2b_lpd17(f / "below", server) == 2
    msg = error_line(capsys)
    assert f"--root {f / 'below'}: cannot create the folder (Not a directory)" in msg
    assert f.read_text() == "x" and server.count() == 0


def test_root_without_write_permission(tmp_path, server, capsys, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    real = os.access
    monkeypatch.setattr(lpd.os, "access", lambda p, m: False if Path(p) == root else real(p, m))
    assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert f"--root {root}: no permission to write in this folder" in msg
    assert server.count() == 0 and list(root.iterdir()) == []


def test_root_without_write_permission_for_real(unprivileged, server, capsys):
    """As a user whom permissions bind (dropped from root in a child where the tests run as root,
    as in CI): a --root without write permission, and one that cannot be created, are refused
    with one line each before anything is downloaded."""
    root = unprivileged.folder / "data"

    def check():
        root.mkdir(mode=0o500)
        capsys.readouterr()
        results = []
        for where in (root, root / "sub"):
            rc = b2b_lpd17(where, server)
            results.append((rc, capsys.readouterr().err))
        return results

    (rc, err), (rc_sub, err_sub) = unprivileged.run(check)
    assert rc == 2 and "Traceback" not in err, err
    assert f"--root {root}: no permission to write in this folder" in err.strip().splitlines()[-1], err
    assert rc_sub == 2 and "Traceback" not in err_sub, err_sub
    assert "cannot create the folder (Permission denied)" in err_sub.strip().splitlines()[-1], err_sub
    assert server.count() == 0 and list(root.iterdir()) == []


def test_os_errors_are_one_line(tmp_path, server, capsys, monkeypatch):
    import errno

    root = tmp_path / "data"
    root.mkdir()
    (root / "lpd17-raw").write_text("a file where a folder should be")
    assert b2b_lpd17(root, server) == 2
    assert error_line(capsys) == f"b2b data: error: {root / 'lpd17-raw'}: File exists"
    (root / "lpd17-raw").unlink()

    def full(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(lpd, "write_store", full)
    assert b2b_lpd17(root, server, "--songs", 1) == 2
    msg = error_line(capsys)
    assert msg.startswith(f"b2b data: error: {root / 'lpd17'}: No space left on device; free")
    assert "store" not in fetch.read_manifest(root)


def test_leftovers_of_killed_runs_are_removed(tmp_path, server, capsys):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    raw = root / "lpd17-raw"
    leftovers = [root / ".manifest.json.0a1b2c3d.tmp", root / ".lpd17.0a1b2c3d.tmp",
                 root / ".lpd17.0a1b2c3d.old",
                 raw / ".lpd_17_cleansed.tar.gz.part.json.1a2b3c4d.tmp",
                 raw / ".extracted.extract-abc123", raw / ".extracted.old-12-34"]
    for p in leftovers:
        if p.suffix == ".tmp" and "lpd17." not in p.name:
            p.write_text("half")
        else:
            p.mkdir()
            (p / "store.npz").write_bytes(b"half")
    others = [root / ".bach.0a1b2c3d.tmp", root / "notes.txt", raw / "mine.tmp"]
    for p in others:
        p.write_text("not ours")
    capsys.readouterr()
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    out = capsys.readouterr().out
    assert "removed 6 temporary file(s) left by an interrupted run" in out
    assert "nothing to do" in out
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in others)


def test_second_run_in_the_same_root_is_refused(tmp_path, server, capsys):
    fcntl = pytest.importorskip("fcntl")
    root = tmp_path / "data"
    root.mkdir()
    with open(root / fetch.LOCK_NAME, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `b2b data lpd17` does
        assert b2b_lpd17(root, server) == 2
        msg = error_line(capsys)
    assert f"another `b2b data lpd17` is working in {root}" in msg and server.count() == 0
    assert b2b_lpd17(root, server, "--songs", 1) == 0  # released


# ------------------------------------------------ issue 25: JSON, sizes and workers bounded --
def test_a_song_declaring_an_absurd_length_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "long.npz"
    F.write_lpd_npz(path, {1: np.zeros((96, 128), np.uint8)}, 96)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members["pianoroll_1_csc_shape.npy"] = _npy(np.array([2_000_000, 128]))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    called = []
    monkeypatch.setattr(lpd, "load_lpd", lambda p: called.append(p))
    roll, err = lpd._convert_one(str(path))
    assert roll is None and called == []
    assert "pianoroll_1_csc_shape.npy declares 2,000,000 time steps, more than 131,072" in err
    ok = tmp_path / "ok.npz"
    F.write_lpd_npz(ok, {1: np.zeros((96, 128), np.uint8)}, 96)
    fetch.check_song_sizes(ok)  # a real song passes


def test_a_long_song_with_one_tempo_is_converted(tmp_path):
    # a 4-minute song at 24 steps per beat (120 bpm): 11,520 steps, its tempo one constant value
    # per step (92,160 bytes that deflate to a few hundred: more than MAX_EXPANSION to one)
    n = 4 * 60 * 2 * 24
    path = tmp_path / "long.npz"
    notes = np.zeros((n, 128), np.uint8)
    notes[0:96, 60] = 100
    F.write_lpd_npz(path, {1: notes}, n)
    with zipfile.ZipFile(path) as z:
        tempo = z.getinfo("tempo.npy")
    assert tempo.file_size > 256 * tempo.compress_size + 4096  # beyond the store's bound
    fetch.check_song_sizes(path)
    roll, err = lpd._convert_one(str(path))
    assert err is None and roll.shape == (17, n * 4 // 24, 72)
    assert roll[1, :16, 60 - 24].all() and roll.sum() == 16  # one note of 96/6 = 16 steps


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_workers_are_bounded_by_the_songs_and_the_machine(monkeypatch, tmp_path, server, capsys):
    monkeypatch.setattr(lpd.os, "cpu_count", lambda: 16)  # machines of each kind, on every machine
    assert lpd.usable_workers(40, 3) == 3 and lpd.usable_workers(2, 3) == 2
    monkeypatch.setattr(lpd.os, "cpu_count", lambda: None)  # unknown: one
    assert lpd.usable_workers(40, 3) == 1
    monkeypatch.setattr(lpd.os, "cpu_count", lambda: 2)
    assert lpd.usable_workers(40, 3) == 2 and lpd.usable_workers(1, 3) == 1 and lpd.usable_workers(5, 0) == 1
    started = []
    real_pool = lpd.concurrent.futures.ProcessPoolExecutor
    monkeypatch.setattr(lpd.concurrent.futures, "ProcessPoolExecutor",
                        lambda max_workers, **k: started.append(max_workers) or real_pool(max_workers, **k))
    songs = [str(F_song) for F_song in (tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz")]
    for p in songs:
        F.write_lpd_npz(Path(p), {1: np.zeros((96, 128), np.uint8)}, 96)
    assert len(list(lpd.convert_songs(songs, workers=40, progress=False))) == 3
    assert started == [2]
    assert cli.main(["data", "lpd17", "--root", str(tmp_path / "r"), "--workers", "100000"]) == 2
    assert "--workers must be at most 256" in error_line(capsys)
