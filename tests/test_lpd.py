"""Tests of ``b2b data lpd17`` (b2b.lpd) against tiny LPD-17 files served on 127.0.0.1.

The fixture archive has the exact upstream layout (see ``tests/lpd_fixtures.py``); every song
has different content, so a wrong song, genre or order shows up as different windows. Windows
are checked against an independent reference conversion written here from the rules stated in
``b2b.data`` (reading the ``.npz`` with numpy/scipy only), and against ``b2b.data`` itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csc_matrix

import lpd_fixtures as F
from b2b import cli, datasets, lpd

ARCHIVE, IDS, LABELS = "lpd_17_cleansed.tar.gz", "cleansed_ids.txt", "labels.tar.gz"
REGISTERED = cli.COMMANDS.get("data", ("",))[0] == "b2b.data"  # `b2b data` in the CLI registry


# ------------------------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """The three downloads for 9 songs (tagtraum/Rock = songs 0, 1, 3, 4, 6, 7)."""
    return F.build_lpd(tmp_path_factory.mktemp("lpd-src"), 9)


@pytest.fixture(autouse=True)
def fast_network(monkeypatch):
    monkeypatch.setattr(lpd, "RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(lpd, "TIMEOUT_S", 10.0)
    monkeypatch.setattr(lpd, "RETRIES", 3)


@pytest.fixture
def server(src):
    with F.LoopbackServer(src["bytes"]) as s:
        yield s


@pytest.fixture(autouse=True)
def data_command(monkeypatch):
    """`b2b data` as the CLI registers it (added here only if the registry lacks it)."""
    if "data" not in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, "data", ("b2b.data", "Prepare a dataset."))


def url_args(server, archive=ARCHIVE, ids=IDS, labels=LABELS) -> list[str]:
    return ["--archive-url", server.url(archive), "--ids-url", server.url(ids),
            "--labels-url", server.url(labels)]


def b2b_lpd17(root, server, *extra, urls=None) -> int:
    argv = ["data", "lpd17", "--root", str(root), "--no-progress", "--workers", "1"]
    argv += urls if urls is not None else url_args(server)
    return cli.main(argv + [str(x) for x in extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


# ------------------------------------------------------------- an independent reference --


def ref_song_roll(path: Path) -> np.ndarray:
    """The song roll (17, T, 72) of an LPD file, computed from the rules of ``b2b.data``
    with numpy/scipy only: notes are runs of nonzero steps; onset/offset × 4/24 rounded half up;
    drums keep the onset step; pitches folded by octaves into 24..95 (drums out of range
    dropped); a note is cut one step before the next onset of the same pitch when that onset is
    at or before its end; the song is cut to whole bars, keeping a partial bar with a note."""
    z = np.load(path)
    with zipfile.ZipFile(path) as zf:
        info = json.loads(zf.read("info.json"))
    res = info["beat_resolution"]
    assert res == 24
    assert np.flatnonzero(z["downbeat"])[0] == 0  # the fixtures start on a bar line
    T24 = len(z["tempo"])
    notes: dict[tuple[int, int], list[list[int]]] = {}
    for i in range(17):
        shape = tuple(z[f"pianoroll_{i}_csc_shape"])
        if shape[0] == 0:
            continue
        roll = csc_matrix((z[f"pianoroll_{i}_csc_data"], z[f"pianoroll_{i}_csc_indices"],
                           z[f"pianoroll_{i}_csc_indptr"]), shape=shape).toarray()
        drum = info[str(i)]["is_drum"]
        padded = np.zeros((shape[0] + 2, 128), np.int8)
        padded[1:-1] = roll > 0
        for p in np.flatnonzero(padded.any(axis=0)):
            edges = np.flatnonzero(padded[1:, p] != padded[:-1, p])  # run t..u-1 -> t, u
            for t, u in zip(edges[0::2], edges[1::2]):
                on = int(np.floor(t * 4 / 24 + 0.5 + 1e-9))
                off = int(np.floor(u * 4 / 24 + 0.5 + 1e-9))
                off = on + 1 if drum else max(off, on + 1)
                q = int(p)
                if not drum:
                    while q < 24:
                        q += 12
                    while q > 95:
                        q -= 12
                if 24 <= q <= 95:
                    notes.setdefault((i, q - 24), []).append([on, off])
    n = int(np.floor(T24 * 4 / 24 + 0.5 + 1e-9))
    end = max([off for ns in notes.values() for _, off in ns], default=0)
    T = max(n // 16 * 16, -(-end // 16) * 16)
    out = np.zeros((17, T, 72), bool)
    for (i, q), ns in notes.items():
        merged: dict[int, int] = {}
        for on, off in ns:  # same onset: one note, the longest
            merged[on] = max(off, merged.get(on, 0))
        ons = sorted(merged)
        for a, b in zip(ons, ons[1:] + [None]):
            off = merged[a]
            if b is not None and b <= off:
                off = max(a + 1, b - 1)
            out[i, a:min(off, T), q] = True
    return out


def ref_windows(roll: np.ndarray, hop_bars: int = 1) -> list[np.ndarray]:
    """4-bar windows every ``hop_bars`` bars with >= 8 onsets and >= 3 bars with notes."""
    out = []
    T = roll.shape[1]
    for s in range(0, T - 64 + 1, 16 * hop_bars):
        w = roll[:, s:s + 64]
        prev = np.zeros_like(w)
        prev[:, 1:] = w[:, :-1]
        onsets = int((w & ~prev).sum())
        active = sum(bool(w[:, 16 * b:16 * b + 16].any()) for b in range(4))
        if onsets >= 8 and active >= 3:
            out.append(w)
    return out


def store_windows(root: Path) -> tuple[list[str], np.ndarray]:
    ds = datasets.open_dataset("lpd17", root=root)
    return ds.songs, np.stack([ds.window(i) for i in range(len(ds))]) if len(ds) else np.zeros(
        (0, 17, 64, 72), bool)


def expected_windows(src, chosen_ks: list[int], hop_bars: int = 1) -> np.ndarray:
    ws = [w for k in chosen_ks for w in ref_windows(ref_song_roll(src["npz"][k]), hop_bars)]
    return np.stack(ws)


def k_of(src) -> dict[str, int]:
    return {msd: k for k, (msd, _) in src["songs"].items()}


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
    # ... and b2b.data's own conversion of the same files
    from b2b import data
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
    man = lpd.read_manifest(root)
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
               "('b2b.data', '')); sys.exit(c.main())", *args]
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


# ------------------------------------------------------------------------ downloads ------


def test_cut_download_resumes_with_range(tmp_path, server, src):
    n = len(src["bytes"][ARCHIVE])
    server.cut["/" + ARCHIVE] = [n // 3, 2]  # two responses cut after n // 3 bytes each
    sha, size = lpd.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == src["bytes"][ARCHIVE] and size == n
    ranges = [r for p, r in server.requests if p == "/" + ARCHIVE]
    assert ranges == [None, f"bytes={n // 3}-", f"bytes={2 * (n // 3)}-"]
    assert not (tmp_path / "a.tgz.part").exists()


def test_interrupted_run_resumes_next_time(tmp_path, server, src, capsys):
    root = tmp_path / "data"
    server.cut["/" + ARCHIVE] = [1000, 4]  # every attempt of this run is cut (1 + 3 retries)
    assert b2b_lpd17(root, server, "--songs", 2) == 2
    msg = error_line(capsys)
    assert "interrupted 4 times" in msg and "run the same command again to resume" in msg
    part = root / "lpd17-raw" / (ARCHIVE + ".part")
    assert part.stat().st_size == 4000
    assert not (root / "lpd17-raw" / ARCHIVE).exists() and not (root / "lpd17").exists()
    assert "archive" not in lpd.read_manifest(root).get("downloads", {})
    server.requests.clear()
    assert b2b_lpd17(root, server, "--songs", 2) == 0
    assert server.requests == [("/" + ARCHIVE, "bytes=4000-")]  # ids and labels were kept
    assert (root / "lpd17-raw" / ARCHIVE).read_bytes() == src["bytes"][ARCHIVE]
    assert not part.exists()


def test_complete_part_is_not_downloaded_again(tmp_path, server, src):
    """A run stopped between the last byte and the rename: the server answers 416."""
    (tmp_path / "a.tgz.part").write_bytes(src["bytes"][ARCHIVE])
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": server.url(ARCHIVE)}))
    lpd.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert server.requests == [("/" + ARCHIVE, f"bytes={len(src['bytes'][ARCHIVE])}-")]
    assert (tmp_path / "a.tgz").read_bytes() == src["bytes"][ARCHIVE]


def test_file_urls_work(tmp_path, server, src):
    urls = url_args(server)
    urls[urls.index("--ids-url") + 1] = src["ids"].as_uri()
    urls[urls.index("--labels-url") + 1] = src["labels"].as_uri()
    assert b2b_lpd17(tmp_path / "data", server, "--songs", 1, urls=urls) == 0
    assert server.count() == 1  # only the archive came over HTTP
    assert lpd.read_manifest(tmp_path / "data")["downloads"]["ids"]["url"] == src["ids"].as_uri()


def test_server_ignoring_range_restarts(tmp_path, server, src, capsys):
    dest = tmp_path / "a.tgz"
    part = tmp_path / "a.tgz.part"
    garbage = b"garbage that must not end up in the file"
    part.write_bytes(garbage)
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": server.url(ARCHIVE)}))
    server.ignore_range.add("/" + ARCHIVE)
    lpd.download(server.url(ARCHIVE), dest, progress=False)
    assert server.requests == [("/" + ARCHIVE, f"bytes={len(garbage)}-")]
    assert dest.read_bytes() == src["bytes"][ARCHIVE]
    assert "does not resume downloads" in capsys.readouterr().out


def test_part_of_another_url_is_not_resumed(tmp_path, server, src):
    dest = tmp_path / "a.tgz"
    (tmp_path / "a.tgz.part").write_bytes(src["bytes"][ARCHIVE][:100])
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": "http://elsewhere/x"}))
    lpd.download(server.url(ARCHIVE), dest, progress=False)
    assert server.requests == [("/" + ARCHIVE, None)]
    assert dest.read_bytes() == src["bytes"][ARCHIVE]


@pytest.mark.parametrize("code", [404, 500])
def test_http_error(tmp_path, server, capsys, code):
    root = tmp_path / "data"
    server.status["/" + ARCHIVE] = code
    assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert f"HTTP {code}" in msg and "--archive-url" in msg and server.url(ARCHIVE) in msg
    raw = root / "lpd17-raw"
    assert not (raw / ARCHIVE).exists() and not (raw / (ARCHIVE + ".part")).exists()
    assert not (root / "lpd17").exists()


def test_unreachable_url(tmp_path, server, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    urls = url_args(server)
    urls[urls.index("--ids-url") + 1] = f"http://127.0.0.1:{port}/{IDS}"
    assert b2b_lpd17(tmp_path / "data", server, urls=urls) == 2
    msg = error_line(capsys)
    assert msg.startswith("b2b data: error: could not reach http://127.0.0.1:")
    assert "--ids-url" in msg


def test_html_page_instead_of_file(tmp_path, server, capsys):
    server.content_type["/" + LABELS] = "text/html; charset=utf-8"
    assert b2b_lpd17(tmp_path / "data", server) == 2
    msg = error_line(capsys)
    assert "returned a web page instead of the genre labels" in msg and "--labels-url" in msg


def test_sha256_option_mismatch_and_match(tmp_path, server, src, capsys):
    import hashlib

    root = tmp_path / "data"
    wrong = "0" * 64
    assert b2b_lpd17(root, server, "--sha256", f"ids={wrong}") == 2
    msg = error_line(capsys)
    assert "checksum mismatch for the id list" in msg and wrong in msg
    assert "the download was deleted" in msg
    assert not (root / "lpd17-raw" / IDS).exists()
    assert not (root / "lpd17-raw" / (IDS + ".part")).exists()
    good = hashlib.sha256(src["bytes"][ARCHIVE]).hexdigest()
    assert b2b_lpd17(root, server, "--songs", 1, "--sha256", f"archive={good.upper()}") == 0
    assert b2b_lpd17(root, server, "--sha256", "archive=xyz") == 2
    assert "--sha256 expects KIND=HEX" in error_line(capsys)


def test_reused_download_is_verified(tmp_path, server, capsys):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 2) == 0
    (root / "lpd17-raw" / IDS).write_text("tampered\n")
    n_req = server.count()
    assert b2b_lpd17(root, server, "--songs", 3) == 2  # other args: the ids are reused
    msg = error_line(capsys)
    assert "changed since it was downloaded" in msg and IDS in msg
    assert server.count() == n_req


# ------------------------------------------------------------------------ extraction -----


@pytest.mark.parametrize("kind,reason", [
    ("dotdot", "'..' path component"),
    ("absolute", "absolute path"),
    ("symlink", "points outside the archive folder"),
    ("abs-symlink", "points to the absolute path"),
    ("hardlink", "points outside the archive folder"),
    ("device", "device file"),
])
def test_unsafe_archive_is_refused(tmp_path, src, capsys, kind, reason):
    evil = F.evil_archive(tmp_path / "evil.tar.gz", kind).read_bytes()
    with F.LoopbackServer({**src["bytes"], ARCHIVE: evil}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and reason in msg and "nothing was extracted" in msg
    raw = root / "lpd17-raw"
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    assert not (raw / ARCHIVE).exists()  # deleted, not left looking valid
    man = lpd.read_manifest(root)
    assert "extracted" not in man and "archive" not in man.get("downloads", {})
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/b2b-evil-absolute.txt").exists()


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_archive_is_refused(tmp_path, src, capsys, damage):
    bad = getattr(F, damage)(src["bytes"][ARCHIVE])
    with F.LoopbackServer({**src["bytes"], ARCHIVE: bad}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
        msg = error_line(capsys)
        assert "is truncated or corrupt" in msg and "the archive was deleted" in msg
        raw = root / "lpd17-raw"
        assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
        assert not (raw / ARCHIVE).exists() and not (root / "lpd17").exists()
        # with the right file served again, the next run works
        server.files[ARCHIVE] = src["bytes"][ARCHIVE]
        assert b2b_lpd17(root, server, "--songs", 1) == 0


@pytest.mark.parametrize("name,bad,text", [
    (LABELS, b"\x1f\x8b\x08\x00garbage", "is truncated or corrupt"),
    (IDS, b"<p>moved</p>\n", "line 1: expected 'md5    msd_id'"),
])
def test_unreadable_small_download_is_deleted(tmp_path, src, capsys, name, bad, text):
    with F.LoopbackServer({**src["bytes"], name: bad}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
        msg = error_line(capsys)
        assert text in msg and "the file was deleted" in msg
        assert not (root / "lpd17-raw" / name).exists()
        assert server.count("/" + ARCHIVE) == 0
        server.files[name] = src["bytes"][name]
        assert b2b_lpd17(root, server, "--songs", 1) == 0


def test_check_member_allows_links_inside():
    t = tarfile.TarInfo("lpd_17_cleansed/A/B/link")
    t.type, t.linkname = tarfile.SYMTYPE, "../C/file.npz"
    lpd.check_member(t)  # stays inside: fine
    t.linkname = "../../../x"  # lpd_17_cleansed/A/B/../../../x = x: still inside
    lpd.check_member(t)
    t.linkname = "../../../../x"
    with pytest.raises(ValueError, match="outside"):
        lpd.check_member(t)


def test_extract_is_recorded_and_not_repeated(tmp_path, server, src):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1, "--remove-archive") == 0
    assert not (root / "lpd17-raw" / ARCHIVE).exists()  # --remove-archive
    man = lpd.read_manifest(root)
    assert man["extracted"]["archive_sha256"] == man["downloads"]["archive"]["sha256"]
    assert man["extracted"]["cleansed_dir"] == "lpd_17/lpd_17_cleansed"  # the upstream layout
    assert man["extracted"]["n_songs"] == 9 and man["extracted"]["url"] == server.url(ARCHIVE)
    npz = list((root / "lpd17-raw" / "extracted" / "lpd_17" / "lpd_17_cleansed").rglob("*.npz"))
    assert len(npz) == 9
    assert [p.name for p in (root / "lpd17-raw" / "extracted").iterdir()] == ["lpd_17"]
    song = man["selection"]["songs"][0]  # paths relative to lpd17-raw/extracted
    assert (root / "lpd17-raw" / "extracted" / song["path"]).is_file()
    assert song["path"] == F.lpd_member(song["msd_id"], song["md5"])
    for msd, md5 in src["songs"].values():  # the upstream layout A/B/C/MSD_ID/md5.npz
        p = root / "lpd17-raw" / "extracted" / F.lpd_member(msd, md5)
        assert p.is_file() and p.parent.name == msd and p.parts[-5:-2] == tuple(msd[2:5])
    n_req = server.count()
    assert b2b_lpd17(root, server, "--songs", 2) == 0  # needs no archive: not downloaded again
    assert server.count() == n_req


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
    sel = lpd.read_manifest(root)["selection"]
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
        # nothing readable: no store, and the manifest no longer describes the old one
        assert b2b_lpd17(root, server, "--genre", "tagtraum/Pop") == 2
        assert "none of the chosen songs could be read" in error_line(capsys)
        assert not (root / "lpd17").exists() and "store" not in lpd.read_manifest(root)
        assert b2b_lpd17(root, server, "--songs", 6) == 0
        assert "nothing to do" not in capsys.readouterr().out
    msd3 = s2["songs"][3][0]
    assert f"1 of 6 chosen songs could not be read and were skipped, e.g. {msd3}" in err
    man = lpd.read_manifest(root)
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
    assert lpd.read_genre_ids(src["labels"], "tagtraum/rock") == \
        lpd.read_genre_ids(src["labels"], "tagtraum/Rock")  # one case-insensitive match
    assert b2b_lpd17(tmp_path / "data", server, "--genre", "rock") == 2
    assert "SOURCE/NAME" in error_line(capsys)


def test_bad_numbers_are_refused(tmp_path, server, capsys):
    for opt in ("--songs", "--workers", "--hop-bars"):
        assert b2b_lpd17(tmp_path / "data", server, opt, 0) == 2
        assert f"{opt} must be at least 1" in error_line(capsys)
    assert server.count() == 0


# ------------------------------------------------------------------------- unit pieces ---


def test_read_cleansed_ids(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("0123456789abcdef0123456789abcdef    TRAAAGR128F425B14B\n\n"
                 "fedcba9876543210fedcba9876543210    TRAAABD128F429CF47\n")
    assert lpd.read_cleansed_ids(p) == {"TRAAAGR128F425B14B": "0123456789abcdef0123456789abcdef",
                                        "TRAAABD128F429CF47": "fedcba9876543210fedcba9876543210"}
    p.write_text("0123456789abcdef0123456789abcdef    TRAAAGR128F425B14B\nnot an id line\n")
    with pytest.raises(ValueError, match=r"ids.txt line 2: expected 'md5    msd_id'"):
        lpd.read_cleansed_ids(p)


def test_song_path_follows_the_msd_id():
    assert lpd.song_path("TRAAAGR128F425B14B", "ab" * 16) == \
        "lpd_17_cleansed/A/A/A/TRAAAGR128F425B14B/" + "ab" * 16 + ".npz"
    assert lpd.song_path("TRXCVHQ12903CB78F3", "0" * 32).startswith("lpd_17_cleansed/X/C/V/")
    assert lpd.genre_member("amg/Pop_Rock") == "labels/amg/id_list_Pop_Rock.txt"


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


def test_manifest_keeps_other_sections(tmp_path, server):
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"bach": {"x": 1}}))
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    whole = json.loads((root / "manifest.json").read_text())
    assert whole["bach"] == {"x": 1} and whole["lpd17"]["format"] == 1
    assert not [p for p in root.iterdir() if p.name.startswith(".manifest")]


def test_help_states_the_default_root(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("B2B_DATA", str(tmp_path / "somewhere"))
    with pytest.raises(SystemExit):
        cli.main(["data", "lpd17", "--help"])
    out = capsys.readouterr().out
    assert "$B2B_DATA" in out and "~/b2b-data" in out and "tagtraum/Rock" in out
    assert "--archive-url" in out and "--sha256" in out


# ------------------------------------------------------------- archive layouts (issue 11) ---


def test_bare_lpd_17_cleansed_top_works_too(tmp_path, capsys):
    """An archive with lpd_17_cleansed/ at the top (no lpd_17/ above it) is accepted too."""
    s2 = F.build_lpd(tmp_path / "src2", 9, top=None)
    assert tarfile.open(s2["archive"]).getnames()[0] == "lpd_17_cleansed"
    with F.LoopbackServer(s2["bytes"]) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 3, "--seed", 4) == 0
    man = lpd.read_manifest(root)
    assert man["extracted"]["cleansed_dir"] == "lpd_17_cleansed"
    songs, got = store_windows(root)
    assert songs == sorted(lpd.seeded_order(
        [s2["songs"][k][0] for k in s2["genres"]["tagtraum/Rock"]], 4)[:3])
    assert np.array_equal(got, expected_windows(s2, [k_of(s2)[m] for m in songs]))
    assert [s["path"] for s in man["selection"]["songs"]] == \
        [F.lpd_member(s["msd_id"], s["md5"], top=None) for s in man["selection"]["songs"]]


def _archive_with(path: Path, names: list[str], data: bytes) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        done: set = set()
        for name in names:
            F._add_dirs(tar, [name], done)
            F._add_bytes(tar, name, data)
    return path.read_bytes()


@pytest.mark.parametrize("tops,why", [
    (["lpd_5/lpd_5_cleansed"], "holds no lpd_17_cleansed/ folder of songs"),  # LPD-5
    (["data/lpd_17/lpd_17_cleansed"], "holds no lpd_17_cleansed/ folder of songs"),  # too deep
    (["lpd_17/lpd_17_cleansed", "copy/lpd_17_cleansed"], "more than one lpd_17_cleansed folder"),
])
def test_archive_without_the_lpd_layout_is_refused(tmp_path, src, capsys, tops, why):
    msd, md5 = src["songs"][0]
    song = src["npz"][0].read_bytes()
    names = [f"{t}/{msd[2]}/{msd[3]}/{msd[4]}/{msd}/{md5}.npz" for t in tops]
    bad = _archive_with(tmp_path / "other.tar.gz", names, song)
    with F.LoopbackServer({**src["bytes"], ARCHIVE: bad}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert why in msg and "the archive was deleted" in msg
    raw = root / "lpd17-raw"
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    assert not (raw / ARCHIVE).exists() and "extracted" not in lpd.read_manifest(root)


def test_song_member_top():
    m, h = "TRAAAGR128F425B14B", "0123456789abcdef" * 2
    assert lpd.song_member_top(f"lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npz") == "lpd_17"
    assert lpd.song_member_top(f"./lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npz") == "lpd_17"
    assert lpd.song_member_top(f"lpd_17_cleansed/A/A/A/{m}/{h}.npz") == ""
    assert lpd.song_member_top(f"lpd_17_cleansed/A/A/B/{m}/{h}.npz") is None  # not msd[2:5]
    assert lpd.song_member_top(f"x/y/lpd_17_cleansed/A/A/A/{m}/{h}.npz") is None
    assert lpd.song_member_top(f"lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npy") is None


# --------------------------------------------------------------------- tar bomb (issue 12.3) ---


def test_extraction_bounds_leave_room_for_the_real_archive():
    # 21,425 files and up to 3.2 GB extracted (plus at most 21,425 + 26**3 + 26**2 + 26 + 2
    # = 39,705 folders): at least twice that is allowed
    assert lpd.EXTRACT_MAX_MEMBERS >= 2 * (21_425 + 39_705)
    assert lpd.EXTRACT_MAX_BYTES >= 2 * 3.2e9
    assert 10 * 2**20 <= lpd.EXTRACT_MAX_MEMBER_BYTES <= lpd.EXTRACT_MAX_BYTES


@pytest.mark.parametrize("members,trailing,bound,value,why,max_written", [
    ([3 << 20], 0, "EXTRACT_MAX_MEMBER_BYTES", 1 << 20, "more than 1,048,576 (EXTRACT_MAX_MEMBER",
     0),
    ([600 << 10] * 3, 0, "EXTRACT_MAX_BYTES", 1 << 20, "more than 1,048,576 bytes (EXTRACT_MAX_B",
     600 << 10),
    # song 0 brings 6 folders, each further song 3 or 4: 12 members hold 2 songs at most
    ([10] * 4, 0, "EXTRACT_MAX_MEMBERS", 12, "more than 12 members (EXTRACT_MAX_MEMBERS", 20),
    ([10], 2 << 20, "EXTRACT_MAX_TRAILING_BYTES", 1 << 16, "follow the end of its tar data", 10),
])
def test_tar_bomb_is_refused_and_removed(tmp_path, src, capsys, monkeypatch, members, trailing,
                                        bound, value, why, max_written):
    bomb = F.bomb_archive(tmp_path / "bomb.tar.gz", members, trailing_zeros=trailing)
    data = bomb.read_bytes()
    assert len(data) < 20_000  # small on the wire, megabytes once extracted
    monkeypatch.setattr(lpd, bound, value)
    written = []  # what the extraction had written when it was stopped
    real_rmtree = lpd.shutil.rmtree

    def rmtree(p, *a, **k):
        if ".extracted.extract-" in str(p):
            written.append(sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file()))
        return real_rmtree(p, *a, **k)

    monkeypatch.setattr(lpd.shutil, "rmtree", rmtree)
    with F.LoopbackServer({**src["bytes"], ARCHIVE: data}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and why in msg and "the archive was deleted" in msg
    assert written == [max_written]  # stopped before writing past the bound, then removed
    raw = root / "lpd17-raw"
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    assert not (raw / ARCHIVE).exists() and "extracted" not in lpd.read_manifest(root)


def test_extracted_size_estimate_is_the_gzip_length(src):
    import gzip

    assert lpd.extracted_size_estimate(src["archive"]) == \
        len(gzip.decompress(src["bytes"][ARCHIVE]))


def test_too_little_disk_space_keeps_the_archive(tmp_path, server, src, capsys, monkeypatch):
    root = tmp_path / "data"
    real = lpd.shutil.disk_usage
    size = len(__import__("gzip").decompress(src["bytes"][ARCHIVE]))
    need = size + size // 8 + lpd.DISK_MARGIN_BYTES  # files, folders and blocks, margin
    seen = []

    def usage(path):
        seen.append(Path(path))
        return real(path)._replace(free=need - 1)  # one byte short

    monkeypatch.setattr(lpd.shutil, "disk_usage", usage)
    assert b2b_lpd17(root, server) == 2
    seen = seen[-1:]  # the last check was the extraction's (downloads check too)
    msg = error_line(capsys)
    assert "not enough free disk space in" in msg and "to extract lpd_17_cleansed.tar.gz" in msg
    assert seen == [root / "lpd17-raw"]
    raw = root / "lpd17-raw"
    assert (raw / ARCHIVE).read_bytes() == src["bytes"][ARCHIVE]  # kept: nothing wrong with it
    assert "archive" in lpd.read_manifest(root)["downloads"]
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    monkeypatch.setattr(lpd.shutil, "disk_usage", lambda p: real(p)._replace(free=need))
    n = server.count("/" + ARCHIVE)
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    assert server.count("/" + ARCHIVE) == n  # not downloaded again


# ------------------------------------------------------- another archive URL (issue 12.6) ---


def test_new_archive_url_with_the_same_file_keeps_the_extraction(tmp_path, src, capsys):
    files = {**src["bytes"], "mirror/" + ARCHIVE: src["bytes"][ARCHIVE],
             "mirror/" + IDS: src["bytes"][IDS]}
    with F.LoopbackServer(files) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 2) == 0
        extracted = root / "lpd17-raw" / "extracted"
        ino = extracted.stat().st_ino
        store_mtime = (root / "lpd17" / "store.npz").stat().st_mtime_ns
        capsys.readouterr()
        urls = url_args(server, archive="mirror/" + ARCHIVE, ids="mirror/" + IDS)
        assert b2b_lpd17(root, server, "--songs", 2, urls=urls) == 0
        out, err = capsys.readouterr()
        assert f"came from {server.url(ARCHIVE)}, not from {server.url('mirror/' + ARCHIVE)}" \
            in err
        assert f"was downloaded from {server.url(IDS)}, not from" in err
        assert "is the one extracted in" in out and "keeping the extraction" in out
        assert "is the same file as from" in out
        assert "up to date (the same files as before)" in out
        assert server.count("mirror/" + ARCHIVE) == 1 and server.count("mirror/" + IDS) == 1
        assert extracted.stat().st_ino == ino
        assert (root / "lpd17" / "store.npz").stat().st_mtime_ns == store_mtime
        man = lpd.read_manifest(root)
        assert man["extracted"]["url"] == server.url("mirror/" + ARCHIVE)
        assert man["downloads"]["ids"]["url"] == server.url("mirror/" + IDS)
        n = server.count()
        assert b2b_lpd17(root, server, "--songs", 2, urls=urls) == 0  # now nothing to do
        assert "nothing to do" in capsys.readouterr().out and server.count() == n


def test_new_archive_url_with_another_archive_is_extracted(tmp_path, src, capsys):
    import hashlib

    other = F.build_lpd(tmp_path / "other", 9, leave_out_of_archive=(0, 1))
    assert other["bytes"][IDS] == src["bytes"][IDS]  # only the archive differs
    files = {**src["bytes"], "new/" + ARCHIVE: other["bytes"][ARCHIVE]}
    with F.LoopbackServer(files) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 6, "--remove-archive") == 0
        first = store_windows(root)[0]
        assert {src["songs"][0][0], src["songs"][1][0]} <= set(first)
        capsys.readouterr()
        urls = url_args(server, archive="new/" + ARCHIVE)
        assert b2b_lpd17(root, server, "--songs", 6, urls=urls) == 0
        out, err = capsys.readouterr()
    new_sha = hashlib.sha256(other["bytes"][ARCHIVE]).hexdigest()
    old_sha = hashlib.sha256(src["bytes"][ARCHIVE]).hexdigest()
    assert f"came from {server.url(ARCHIVE)}, not from {server.url('new/' + ARCHIVE)}" in err
    assert f"(SHA-256 {new_sha}) is not the one extracted in" in err and old_sha in err
    man = lpd.read_manifest(root)
    assert man["extracted"]["archive_sha256"] == new_sha and man["extracted"]["n_files"] == 7
    assert man["store"]["inputs"]["archive_sha256"] == new_sha
    songs, got = store_windows(root)  # built from the new archive: songs 0 and 1 are not in it
    rock = [k for k in src["genres"]["tagtraum/Rock"] if k not in (0, 1)]
    assert sorted(songs) == sorted(src["songs"][k][0] for k in rock)
    assert np.array_equal(got, expected_windows(src, [k_of(src)[m] for m in songs]))
    assert not list((root / "lpd17-raw").glob(".extracted*"))


def test_sha256_of_the_extracted_archive_keeps_it_without_downloading(tmp_path, server, src,
                                                                      capsys):
    import hashlib

    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1, "--remove-archive") == 0
    sha = hashlib.sha256(src["bytes"][ARCHIVE]).hexdigest()
    n = server.count()
    urls = url_args(server, archive="elsewhere/" + ARCHIVE)  # a 404 if it were asked for
    assert b2b_lpd17(root, server, "--songs", 2, "--sha256", f"archive={sha}", urls=urls) == 0
    assert server.count() == n


# ---------------------------------------------------------- stalling server (issue 12.7) ---


def test_stalled_download_keeps_what_arrived_and_resumes(tmp_path, server, src, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(lpd, "TIMEOUT_S", 1.5)  # the server stalls for up to 30 s
    n = len(src["bytes"][ARCHIVE])
    server.stall["/" + ARCHIVE] = [n // 2, 1]  # half the body, then silence, once
    sha, size = lpd.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == src["bytes"][ARCHIVE] and size == n
    ranges = [r for p, r in server.requests if p == "/" + ARCHIVE]
    assert ranges == [None, f"bytes={n // 2}-"]
    assert f"interrupted at {n // 2:,} bytes" in capsys.readouterr().out


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


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores folder permissions")
def test_root_without_write_permission_for_real(tmp_path, server, capsys):
    root = tmp_path / "data"
    root.mkdir(mode=0o500)
    try:
        assert b2b_lpd17(root, server) == 2
        assert "no permission to write in this folder" in error_line(capsys)
        assert b2b_lpd17(root / "sub", server) == 2
        assert "cannot create the folder (Permission denied)" in error_line(capsys)
    finally:
        root.chmod(0o700)


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
    assert "store" not in lpd.read_manifest(root)


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


def test_extraction_not_in_the_manifest_is_redone(tmp_path, server, src, capsys):
    """A run killed between renaming the extraction into place and recording it."""
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    whole = json.loads((root / "manifest.json").read_text())
    del whole["lpd17"]["extracted"]
    (root / "manifest.json").write_text(json.dumps(whole))
    assert b2b_lpd17(root, server, "--songs", 2) == 0
    out, err = capsys.readouterr()
    assert "is not recorded in" in err and "extracting the archive again" in err
    assert lpd.read_manifest(root)["extracted"]["n_songs"] == 9
    assert len(store_windows(root)[0]) == 2


def test_second_run_in_the_same_root_is_refused(tmp_path, server, capsys):
    fcntl = pytest.importorskip("fcntl")
    root = tmp_path / "data"
    root.mkdir()
    with open(root / lpd.LOCK_NAME, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `b2b data lpd17` does
        assert b2b_lpd17(root, server) == 2
        msg = error_line(capsys)
    assert f"another `b2b data lpd17` is working in {root}" in msg and server.count() == 0
    assert b2b_lpd17(root, server, "--songs", 1) == 0  # released


def test_huge_tar_header_is_refused_before_reading_it(tmp_path, src, capsys, monkeypatch):
    import io

    monkeypatch.setattr(lpd, "EXTRACT_MAX_HEADER_BYTES", 1 << 16)
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo(F.lpd_member(*src["songs"][0]))
        ti.size, ti.pax_headers = 1, {"comment": "x" * (100 << 10)}  # 100 KiB pax record
        tar.addfile(ti, io.BytesIO(b"x"))
    with F.LoopbackServer({**src["bytes"], ARCHIVE: path.read_bytes()}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and "(EXTRACT_MAX_HEADER_BYTES)" in msg
    assert not list((root / "lpd17-raw").glob("*extracted*"))


@pytest.mark.parametrize("name,bound,value,text", [
    (LABELS, "LABELS_MAX_LIST_BYTES", 100, "(LABELS_MAX_LIST_BYTES)"),
    (LABELS, "LABELS_MAX_MEMBERS", 5, "more than 5 members (LABELS_MAX_MEMBERS)"),
    (IDS, "IDS_MAX_LINES", 5, "more than 5 lines (IDS_MAX_LINES"),
])
def test_small_downloads_are_read_within_bounds(tmp_path, server, capsys, monkeypatch, name,
                                                bound, value, text):
    monkeypatch.setattr(lpd, bound, value)
    root = tmp_path / "data"
    assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert text in msg and "the file was deleted" in msg
    assert not (root / "lpd17-raw" / name).exists() and server.count("/" + ARCHIVE) == 0


@pytest.mark.parametrize("announced", [True, False])
def test_download_longer_than_its_bound_is_refused(tmp_path, server, src, monkeypatch,
                                                   announced):
    monkeypatch.setitem(lpd.DOWNLOAD_MAX_BYTES, "archive", 1000)
    monkeypatch.setattr(lpd, "CHUNK", 256)
    if not announced:  # no Content-Length: stopped while reading
        server.no_length.add("/" + ARCHIVE)
    with pytest.raises(ValueError) as e:
        lpd.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    if announced:
        n = len(src["bytes"][ARCHIVE])
        assert f"announces {n:,} bytes, more than the 1,000" in str(e.value)
    else:
        assert "is longer than the 1,000 bytes accepted" in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing kept


def test_download_checks_free_space(tmp_path, server, src, monkeypatch):
    real = lpd.shutil.disk_usage
    n = len(src["bytes"][ARCHIVE])
    monkeypatch.setattr(lpd.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=n + lpd.DISK_MARGIN_BYTES - 1))
    with pytest.raises(ValueError, match=r"not enough free disk space in .* to download a.tgz"):
        lpd.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert not (tmp_path / "a.tgz").exists()


def test_extraction_recorded_by_an_earlier_version_is_reused(tmp_path, server, capsys):
    """Manifests written before the layout and URL were recorded (format 1 as first shipped)."""
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    whole = json.loads((root / "manifest.json").read_text())
    for key in ("cleansed_dir", "url", "n_songs"):
        del whole["lpd17"]["extracted"][key]
    (root / "manifest.json").write_text(json.dumps(whole))
    n = server.count()
    capsys.readouterr()
    assert b2b_lpd17(root, server, "--songs", 3) == 0
    assert "extracting" not in capsys.readouterr().out and server.count() == n
    assert len(store_windows(root)[0]) == 3


# ------------------------------------------------ issue 25: JSON, sizes and workers bounded --
@pytest.mark.parametrize("text,message", [
    ("[" * 100_000 + "]" * 100_000, "JSON nested 100000 levels deep"),
    ('{"lpd17": "x"}', "lpd17 is a string, expected an object"),
    ('{"lpd17": {"extracted": {"url": 3}}}', "lpd17.extracted.'url' is an integer, expected a string"),
    ('{"lpd17": {"downloads": {"archive": [1]}}}', "lpd17.downloads.archive is not an object"),
    ("[1]", "holds an array, expected an object"),
])
def test_hostile_manifest_is_one_line(tmp_path, server, capsys, text, message):
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.json").write_text(text)
    assert b2b_lpd17(root, server) == 2
    line = error_line(capsys)
    assert str(root / "manifest.json") in line and message in line and "delete it to start afresh" in line


@pytest.mark.parametrize("text", ["[1]", "[" * 100_000 + "]" * 100_000, '{"url": 5}', "\xff"])
def test_junk_part_json_means_not_resumable(tmp_path, server, src, text):
    dest = tmp_path / "raw" / "cleansed_ids.txt"
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"junk that must not be resumed")
    dest.with_name(dest.name + ".part.json").write_text(text, encoding="latin-1")
    assert lpd._read_part_info(dest.with_name(dest.name + ".part.json")) == {}
    lpd.download(server.url(IDS), dest, kind="ids", progress=False)
    assert dest.read_bytes() == src["bytes"][IDS]  # downloaded afresh, not appended to the junk


def test_an_archive_extracting_to_far_more_than_its_size_is_refused(tmp_path, src, capsys, monkeypatch):
    # five members of 8 MiB: each under the per-member bound, 40 MiB in all from about 40 kB
    monkeypatch.setattr(lpd, "EXTRACT_MIN_ALLOWANCE", 16 * 2**20)
    bomb = F.bomb_archive(tmp_path / "bomb.tar.gz", [8 * 2**20] * 5)
    size = bomb.stat().st_size
    assert size < 100_000 and 8 * 2**20 < lpd.EXTRACT_MAX_MEMBER_BYTES
    with F.LoopbackServer({**src["bytes"], ARCHIVE: bomb.read_bytes()}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and f"over {lpd.EXTRACT_MAX_RATIO} times its own {size:,}" in msg
    assert "the archive was deleted" in msg
    raw = root / lpd.RAW_DIR
    assert not (raw / ARCHIVE).exists() and not (raw / lpd.EXTRACTED_DIR).exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no extraction left behind


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
    lpd.check_song_sizes(ok)  # a real song passes


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_workers_are_bounded_by_the_songs_and_the_machine(monkeypatch, tmp_path, server, capsys):
    assert lpd.usable_workers(40, 3) == min(3, os.cpu_count() or 1)
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
