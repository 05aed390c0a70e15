"""Tests of b2b.datasets.fetch through ``b2b data lpd17``: downloads (resume, changed URLs, SHA-256,
bounds), safe extraction (unsafe members, tar bombs, disk space, the LPD layout) and the downloads
read within bounds (the id list, the genre labels, a song file's declared sizes).

The files are tiny LPD-17 downloads served on 127.0.0.1 (``tests/lpd_fixtures.py``); the bounds
are lowered through ``b2b.datasets.fetch``'s module attributes.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lpd_fixtures as F
from b2b.datasets import fetch, lpd
from b2b.music.data import DataError
from lpd_fixtures import (  # noqa: F401 - fixtures and helpers shared with test_lpd.py
    ARCHIVE, IDS, LABELS, b2b_lpd17, data_command, error_line, expected_windows, fast_network,
    k_of, server, src, store_windows, url_args)


def _archive_with(path: Path, names: list[str], data: bytes) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        done: set = set()
        for name in names:
            F._add_dirs(tar, [name], done)
            F._add_bytes(tar, name, data)
    return path.read_bytes()


def test_cut_download_resumes_with_range(tmp_path, server, src):
    n = len(src["bytes"][ARCHIVE])
    server.cut["/" + ARCHIVE] = [n // 3, 2]  # two responses cut after n // 3 bytes each
    sha, size = fetch.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
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
    assert "archive" not in fetch.read_manifest(root).get("downloads", {})
    server.requests.clear()
    assert b2b_lpd17(root, server, "--songs", 2) == 0
    assert server.requests == [("/" + ARCHIVE, "bytes=4000-")]  # ids and labels were kept
    assert (root / "lpd17-raw" / ARCHIVE).read_bytes() == src["bytes"][ARCHIVE]
    assert not part.exists()


def test_complete_part_is_not_downloaded_again(tmp_path, server, src):
    """A run stopped between the last byte and the rename: the server answers 416."""
    (tmp_path / "a.tgz.part").write_bytes(src["bytes"][ARCHIVE])
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": server.url(ARCHIVE)}))
    fetch.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert server.requests == [("/" + ARCHIVE, f"bytes={len(src['bytes'][ARCHIVE])}-")]
    assert (tmp_path / "a.tgz").read_bytes() == src["bytes"][ARCHIVE]


def test_file_urls_work(tmp_path, server, src):
    urls = url_args(server)
    urls[urls.index("--ids-url") + 1] = src["ids"].as_uri()
    urls[urls.index("--labels-url") + 1] = src["labels"].as_uri()
    assert b2b_lpd17(tmp_path / "data", server, "--songs", 1, urls=urls) == 0
    assert server.count() == 1  # only the archive came over HTTP
    assert fetch.read_manifest(tmp_path / "data")["downloads"]["ids"]["url"] == src["ids"].as_uri()


def test_server_ignoring_range_restarts(tmp_path, server, src, capsys):
    dest = tmp_path / "a.tgz"
    part = tmp_path / "a.tgz.part"
    garbage = b"garbage that must not end up in the file"
    part.write_bytes(garbage)
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": server.url(ARCHIVE)}))
    server.ignore_range.add("/" + ARCHIVE)
    fetch.download(server.url(ARCHIVE), dest, progress=False)
    assert server.requests == [("/" + ARCHIVE, f"bytes={len(garbage)}-")]
    assert dest.read_bytes() == src["bytes"][ARCHIVE]
    assert "does not resume downloads" in capsys.readouterr().out


def test_part_of_another_url_is_not_resumed(tmp_path, server, src):
    dest = tmp_path / "a.tgz"
    (tmp_path / "a.tgz.part").write_bytes(src["bytes"][ARCHIVE][:100])
    (tmp_path / "a.tgz.part.json").write_text(json.dumps({"url": "http://elsewhere/x"}))
    fetch.download(server.url(ARCHIVE), dest, progress=False)
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


@pytest.mark.parametrize("kind,reason", [
    ("dotdot", "'..' path component"),
    ("absolute", "absolute path"),
    ("symlink", "points outside the archive folder"),
    ("abs-symlink", "points to the absolute path"),
    ("hardlink", "points outside the archive folder"),
    ("device", "device file"),
])
def test_unsafe_archive_is_refused(tmp_path, src, capsys, kind, reason):
    # the absolute member aims into this test's own folder: a machine's /tmp may hold anything
    absolute = tmp_path / "outside" / "evil-absolute.txt"
    evil = F.evil_archive(tmp_path / "evil.tar.gz", kind, absolute=str(absolute)).read_bytes()
    with F.LoopbackServer({**src["bytes"], ARCHIVE: evil}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and reason in msg and "nothing was extracted" in msg
    raw = root / "lpd17-raw"
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    assert not (raw / ARCHIVE).exists()  # deleted, not left looking valid
    man = fetch.read_manifest(root)
    assert "extracted" not in man and "archive" not in man.get("downloads", {})
    assert not (tmp_path / "evil.txt").exists() and not absolute.exists()


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


def test_check_member_allows_links_inside():
    t = tarfile.TarInfo("lpd_17_cleansed/A/B/link")
    t.type, t.linkname = tarfile.SYMTYPE, "../C/file.npz"
    fetch.check_member(t)  # stays inside: fine
    t.linkname = "../../../x"  # lpd_17_cleansed/A/B/../../../x = x: still inside
    fetch.check_member(t)
    t.linkname = "../../../../x"
    with pytest.raises(ValueError, match="outside"):
        fetch.check_member(t)


def test_extract_is_recorded_and_not_repeated(tmp_path, server, src):
    root = tmp_path / "data"
    assert b2b_lpd17(root, server, "--songs", 1, "--remove-archive") == 0
    assert not (root / "lpd17-raw" / ARCHIVE).exists()  # --remove-archive
    man = fetch.read_manifest(root)
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


def test_manifest_keeps_other_sections(tmp_path, server):
    root = tmp_path / "data"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"bach": {"x": 1}}))
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    whole = json.loads((root / "manifest.json").read_text())
    assert whole["bach"] == {"x": 1} and whole["lpd17"]["format"] == 1
    assert not [p for p in root.iterdir() if p.name.startswith(".manifest")]


def test_bare_lpd_17_cleansed_top_works_too(tmp_path, capsys):
    """An archive with lpd_17_cleansed/ at the top (no lpd_17/ above it) is accepted too."""
    s2 = F.build_lpd(tmp_path / "src2", 9, top=None)
    assert tarfile.open(s2["archive"]).getnames()[0] == "lpd_17_cleansed"
    with F.LoopbackServer(s2["bytes"]) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server, "--songs", 3, "--seed", 4) == 0
    man = fetch.read_manifest(root)
    assert man["extracted"]["cleansed_dir"] == "lpd_17_cleansed"
    songs, got = store_windows(root)
    assert songs == sorted(lpd.seeded_order(
        [s2["songs"][k][0] for k in s2["genres"]["tagtraum/Rock"]], 4)[:3])
    assert np.array_equal(got, expected_windows(s2, [k_of(s2)[m] for m in songs]))
    assert [s["path"] for s in man["selection"]["songs"]] == \
        [F.lpd_member(s["msd_id"], s["md5"], top=None) for s in man["selection"]["songs"]]


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
    assert not (raw / ARCHIVE).exists() and "extracted" not in fetch.read_manifest(root)


def test_song_member_top():
    m, h = "TRAAAGR128F425B14B", "0123456789abcdef" * 2
    assert fetch.song_member_top(f"lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npz") == "lpd_17"
    assert fetch.song_member_top(f"./lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npz") == "lpd_17"
    assert fetch.song_member_top(f"lpd_17_cleansed/A/A/A/{m}/{h}.npz") == ""
    assert fetch.song_member_top(f"lpd_17_cleansed/A/A/B/{m}/{h}.npz") is None  # not msd[2:5]
    assert fetch.song_member_top(f"x/y/lpd_17_cleansed/A/A/A/{m}/{h}.npz") is None
    assert fetch.song_member_top(f"lpd_17/lpd_17_cleansed/A/A/A/{m}/{h}.npy") is None


def test_extraction_bounds_leave_room_for_the_real_archive():
    # 21,425 files and up to 3.2 GB extracted (plus at most 21,425 + 26**3 + 26**2 + 26 + 2
    # = 39,705 folders): at least twice that is allowed
    assert fetch.EXTRACT_MAX_MEMBERS >= 2 * (21_425 + 39_705)
    assert fetch.EXTRACT_MAX_BYTES >= 2 * 3.2e9
    assert 10 * 2**20 <= fetch.EXTRACT_MAX_MEMBER_BYTES <= fetch.EXTRACT_MAX_BYTES


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
    monkeypatch.setattr(fetch, bound, value)
    written = []  # what the extraction had written when it was stopped
    real_rmtree = fetch.shutil.rmtree

    def rmtree(p, *a, **k):
        if ".extracted.extract-" in str(p):
            written.append(sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file()))
        return real_rmtree(p, *a, **k)

    monkeypatch.setattr(fetch.shutil, "rmtree", rmtree)
    with F.LoopbackServer({**src["bytes"], ARCHIVE: data}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and why in msg and "the archive was deleted" in msg
    assert written == [max_written]  # stopped before writing past the bound, then removed
    raw = root / "lpd17-raw"
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    assert not (raw / ARCHIVE).exists() and "extracted" not in fetch.read_manifest(root)


def test_extracted_size_estimate_is_the_gzip_length(src):
    import gzip

    assert fetch.extracted_size_estimate(src["archive"]) == \
        len(gzip.decompress(src["bytes"][ARCHIVE]))


def test_too_little_disk_space_keeps_the_archive(tmp_path, server, src, capsys, monkeypatch):
    root = tmp_path / "data"
    real = fetch.shutil.disk_usage
    size = len(__import__("gzip").decompress(src["bytes"][ARCHIVE]))
    need = size + size // 8 + fetch.DISK_MARGIN_BYTES  # files, folders and blocks, margin
    seen = []

    def usage(path):
        seen.append(Path(path))
        return real(path)._replace(free=need - 1)  # one byte short

    monkeypatch.setattr(fetch.shutil, "disk_usage", usage)
    assert b2b_lpd17(root, server) == 2
    seen = seen[-1:]  # the last check was the extraction's (downloads check too)
    msg = error_line(capsys)
    assert "not enough free disk space in" in msg and "to extract lpd_17_cleansed.tar.gz" in msg
    assert seen == [root / "lpd17-raw"]
    raw = root / "lpd17-raw"
    assert (raw / ARCHIVE).read_bytes() == src["bytes"][ARCHIVE]  # kept: nothing wrong with it
    assert "archive" in fetch.read_manifest(root)["downloads"]
    assert not (raw / "extracted").exists() and not list(raw.glob(".extracted*"))
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: real(p)._replace(free=need))
    n = server.count("/" + ARCHIVE)
    assert b2b_lpd17(root, server, "--songs", 1) == 0
    assert server.count("/" + ARCHIVE) == n  # not downloaded again


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
        man = fetch.read_manifest(root)
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
    man = fetch.read_manifest(root)
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


def test_stalled_download_keeps_what_arrived_and_resumes(tmp_path, server, src, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(fetch, "TIMEOUT_S", 1.5)  # the server stalls for up to 30 s
    n = len(src["bytes"][ARCHIVE])
    server.stall["/" + ARCHIVE] = [n // 2, 1]  # half the body, then silence, once
    sha, size = fetch.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == src["bytes"][ARCHIVE] and size == n
    ranges = [r for p, r in server.requests if p == "/" + ARCHIVE]
    assert ranges == [None, f"bytes={n // 2}-"]
    assert f"interrupted at {n // 2:,} bytes" in capsys.readouterr().out


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
    assert fetch.read_manifest(root)["extracted"]["n_songs"] == 9
    assert len(store_windows(root)[0]) == 2


def test_huge_tar_header_is_refused_before_reading_it(tmp_path, src, capsys, monkeypatch):
    import io

    monkeypatch.setattr(fetch, "EXTRACT_MAX_HEADER_BYTES", 1 << 16)
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


@pytest.mark.parametrize("announced", [True, False])
def test_download_longer_than_its_bound_is_refused(tmp_path, server, src, monkeypatch,
                                                   announced):
    monkeypatch.setitem(fetch.DOWNLOAD_MAX_BYTES, "archive", 1000)
    monkeypatch.setattr(fetch, "CHUNK", 256)
    if not announced:  # no Content-Length: stopped while reading
        server.no_length.add("/" + ARCHIVE)
    with pytest.raises(ValueError) as e:
        fetch.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
    if announced:
        n = len(src["bytes"][ARCHIVE])
        assert f"announces {n:,} bytes, more than the 1,000" in str(e.value)
    else:
        assert "is longer than the 1,000 bytes accepted" in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing kept


def test_download_checks_free_space(tmp_path, server, src, monkeypatch):
    real = fetch.shutil.disk_usage
    n = len(src["bytes"][ARCHIVE])
    monkeypatch.setattr(fetch.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=n + fetch.DISK_MARGIN_BYTES - 1))
    with pytest.raises(ValueError, match=r"not enough free disk space in .* to download a.tgz"):
        fetch.download(server.url(ARCHIVE), tmp_path / "a.tgz", progress=False)
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
    assert fetch._read_part_info(dest.with_name(dest.name + ".part.json")) == {}
    fetch.download(server.url(IDS), dest, kind="ids", progress=False)
    assert dest.read_bytes() == src["bytes"][IDS]  # downloaded afresh, not appended to the junk


def test_an_archive_extracting_to_far_more_than_its_size_is_refused(tmp_path, src, capsys, monkeypatch):
    # five members of 8 MiB: each under the per-member bound, 40 MiB in all from about 40 kB
    monkeypatch.setattr(fetch, "EXTRACT_MIN_ALLOWANCE", 16 * 2**20)
    bomb = F.bomb_archive(tmp_path / "bomb.tar.gz", [8 * 2**20] * 5)
    size = bomb.stat().st_size
    assert size < 100_000 and 8 * 2**20 < fetch.EXTRACT_MAX_MEMBER_BYTES
    with F.LoopbackServer({**src["bytes"], ARCHIVE: bomb.read_bytes()}) as server:
        root = tmp_path / "data"
        assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert "unsafe archive" in msg and f"over {fetch.EXTRACT_MAX_RATIO} times its own {size:,}" in msg
    assert "the archive was deleted" in msg
    raw = root / fetch.RAW_DIR
    assert not (raw / ARCHIVE).exists() and not (raw / fetch.EXTRACTED_DIR).exists()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no extraction left behind


# ------------------------------------- reading the downloads within bounds (moved from lpd) --


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


def test_read_cleansed_ids(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("0123456789abcdef0123456789abcdef    TRAAAGR128F425B14B\n\n"
                 "fedcba9876543210fedcba9876543210    TRAAABD128F429CF47\n")
    assert fetch.read_cleansed_ids(p) == {"TRAAAGR128F425B14B": "0123456789abcdef0123456789abcdef",
                                        "TRAAABD128F429CF47": "fedcba9876543210fedcba9876543210"}
    p.write_text("0123456789abcdef0123456789abcdef    TRAAAGR128F425B14B\nnot an id line\n")
    with pytest.raises(ValueError, match=r"ids.txt line 2: expected 'md5    msd_id'"):
        fetch.read_cleansed_ids(p)


@pytest.mark.parametrize("name,bound,value,text", [
    (LABELS, "LABELS_MAX_LIST_BYTES", 100, "(LABELS_MAX_LIST_BYTES)"),
    (LABELS, "LABELS_MAX_MEMBERS", 5, "more than 5 members (LABELS_MAX_MEMBERS)"),
    (IDS, "IDS_MAX_LINES", 5, "more than 5 lines (IDS_MAX_LINES"),
])
def test_small_downloads_are_read_within_bounds(tmp_path, server, capsys, monkeypatch, name,
                                                bound, value, text):
    monkeypatch.setattr(fetch, bound, value)
    root = tmp_path / "data"
    assert b2b_lpd17(root, server) == 2
    msg = error_line(capsys)
    assert text in msg and "the file was deleted" in msg
    assert not (root / "lpd17-raw" / name).exists() and server.count("/" + ARCHIVE) == 0


def test_an_array_declaring_far_more_than_it_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.npz"
    F.write_lpd_npz(path, {1: np.zeros((96, 128), np.uint8)}, 96)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    header = io.BytesIO()  # a header declaring 16 MiB of velocities followed by 16 bytes
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (16 * 2**20,)})
    members["pianoroll_1_csc_data.npy"] = header.getvalue() + bytes(16)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(DataError, match=r"pianoroll_1_csc_data.npy declares 16,777,216 bytes in "
                                        r"\d+ compressed ones; not an LPD file"):
        fetch.check_song_sizes(path)
