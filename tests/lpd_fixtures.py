"""Test helpers for ``b2b.datasets.lpd`` and ``b2b.datasets.fetch``: tiny archives in the exact LPD-17 layout and a
loopback server; the fixtures and helpers test_lpd.py and test_fetch.py share (below).

* :func:`write_lpd_npz` writes one song the way pypianoroll 0.3.0 ``Multitrack.save`` did for
  LPD: ``tempo.npy``, ``downbeat.npy``, ``pianoroll_{i}_csc_{data,indices,indptr,shape}.npy``
  for all 17 tracks (an absent family is an empty ``(0, 128)`` matrix) and an ``info.json``
  with ``beat_resolution`` and per-track ``program``/``is_drum``/``name``.
* :func:`song_tracks` makes asymmetric content per song (pitches, lengths, active tracks and
  velocities depend on the song index), with LPD's one-step pause between repeated notes.
* :func:`build_lpd` writes ``lpd_17_cleansed.tar.gz`` in the upstream layout (top folder
  ``lpd_17/`` holding ``lpd_17_cleansed/``, files at ``A/B/C/MSD_ID/md5.npz``; ``top=None``
  gives a bare ``lpd_17_cleansed/`` top), ``cleansed_ids.txt`` (``md5    msd_id``) and
  ``labels.tar.gz`` (``labels/<source>/id_list_<Genre>.txt`` with folder entries
  ``labels/<source>/`` and mode 0777, as in the real labels archive).
* :func:`bomb_archive` writes a small ``.tar.gz`` that extracts to much more (zeros).
* :func:`evil_archive` writes archives with ``..`` paths, absolute paths, links leaving the
  folder or device files; :func:`truncated` and :func:`corrupted` damage bytes.
* :class:`LoopbackServer` serves bytes on 127.0.0.1 with ``Range`` support and can cut a
  response, stall in the middle of one (send part of the body, then nothing), answer 404/500,
  or ignore ``Range``; it counts requests, refuses more than
  ``max_requests``, and shuts itself down after ``lifetime_s``.
* :func:`realistic_song` makes a song the size of a real LPD song (for the speed measurement).
* The pytest fixtures ``src``, ``server``, ``fast_network`` (lowers b2b.datasets.fetch's network
  settings) and ``data_command``, the command helpers :func:`b2b_lpd17` and :func:`error_line`,
  and an independent reference conversion :func:`ref_song_roll` (numpy/scipy only) with
  :func:`expected_windows`, imported by name into both test files.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csc_matrix

from b2b import cli
from b2b.datasets import catalog as datasets, fetch

RES = 24  # LPD steps per beat
TRACKS = [  # (name, program, is_drum) in LPD-17 file order
    ("Drums", 0, True), ("Piano", 0, False), ("Chromatic Percussion", 8, False),
    ("Organ", 16, False), ("Guitar", 24, False), ("Bass", 32, False), ("Strings", 40, False),
    ("Ensemble", 48, False), ("Brass", 56, False), ("Reed", 64, False), ("Pipe", 72, False),
    ("Synth Lead", 80, False), ("Synth Pad", 88, False), ("Synth Effects", 96, False),
    ("Ethnic", 104, False), ("Percussive", 112, False), ("Sound Effects", 120, False),
]


# ------------------------------------------------------------------------------------ songs --


def write_lpd_npz(path: Path, tracks: dict[int, np.ndarray], n_steps: int, *,
                  tempo: float = 120.0, name: str = "song") -> None:
    """Write one LPD-17 file in the pypianoroll 0.3.0 layout.

    ``tracks`` maps track index (0..16) to a ``uint8 (n_steps, 128)`` velocity roll; the other
    tracks are stored as empty ``(0, 128)`` matrices, as LPD does.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "tempo": np.full(n_steps, tempo, dtype=np.float64),
        "downbeat": (np.arange(n_steps) % (4 * RES)) == 0,
    }
    info: dict = {"beat_resolution": RES, "name": name}
    for i, (tname, program, is_drum) in enumerate(TRACKS):
        roll = tracks.get(i)
        if roll is None:
            roll = np.zeros((0, 128), dtype=np.uint8)
        csc = csc_matrix(roll)
        arrays[f"pianoroll_{i}_csc_data"] = csc.data
        arrays[f"pianoroll_{i}_csc_indices"] = csc.indices
        arrays[f"pianoroll_{i}_csc_indptr"] = csc.indptr
        arrays[f"pianoroll_{i}_csc_shape"] = np.array(csc.shape)
        info[str(i)] = {"program": program, "is_drum": is_drum, "name": tname}
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("info.json", json.dumps(info), zipfile.ZIP_DEFLATED)


def _notes(roll: np.ndarray, onsets, pitches, length: int, velocity: int) -> None:
    """Put notes of ``length`` steps with LPD's rule: the last step before the next onset of the
    same pitch is left empty (a one-step pause), so repeats stay distinguishable."""
    for on, p in zip(onsets, pitches):
        roll[on:on + length - 1, p] = velocity


def song_tracks(k: int) -> tuple[dict[int, np.ndarray], int]:
    """Asymmetric content for song ``k``: ``({track: uint8 (T, 128)}, T)`` at 24 steps/beat.

    Song ``k`` lasts ``8 + 3 * (k % 4)`` bars plus a partial bar; its bass plays repeated
    sixteenth notes on pitch ``28 + k`` (one-step pauses between them), the guitar (even ``k``)
    a chord rooted at ``50 + 2k`` on beats 1 and 3 only (3 steps late, i.e. half a sixteenth),
    drums kick/snare on alternating beats, every third song a piano line partly outside the
    24..95 window, some songs a synth pad. Track sets differ between songs.
    """
    n_bars = 8 + 3 * (k % 4)
    T = n_bars * 4 * RES + RES + 5  # a partial bar at the end
    tr: dict[int, np.ndarray] = {}
    bass = np.zeros((T, 128), np.uint8)
    on = np.arange(0, T - RES // 4, RES // 4)  # sixteenths
    _notes(bass, on, [28 + k] * len(on), RES // 4, 90 + k)
    tr[5] = bass
    drums = np.zeros((T, 128), np.uint8)
    beats = np.arange(0, T - RES, RES)
    _notes(drums, beats[0::2], [36] * len(beats[0::2]), 3, 100)
    _notes(drums, beats[1::2], [38] * len(beats[1::2]), 3, 110)
    tr[0] = drums
    if k % 2 == 0:
        guitar = np.zeros((T, 128), np.uint8)
        bars = np.arange(3, T - 2 * RES, 2 * RES)  # 3 steps late: onsets on half sixteenths
        for p in (50 + 2 * k, 54 + 2 * k, 57 + 2 * k):
            _notes(guitar, bars, [p] * len(bars), RES + RES // 2, 70)
        tr[4] = guitar
    if k % 3 == 0:
        piano = np.zeros((T, 128), np.uint8)
        on = np.arange(RES // 2, T - RES, RES)
        ps = [(20 + 7 * i + k) % 110 for i in range(len(on))]  # some below 24 or above 95
        _notes(piano, on, ps, RES // 2, 60)
        tr[1] = piano
    if k % 5 == 1:
        pad = np.zeros((T, 128), np.uint8)
        pad[RES * 4: RES * 12 - 1, 60 + k % 12] = 40
        tr[12] = pad
    return tr, T


def realistic_song(rng: np.random.Generator,
                   n_beats: int = 400) -> tuple[dict[int, np.ndarray], int]:
    """A song the size of a real LPD song: ``n_beats`` beats at 24 steps/beat (9,600 steps for
    400 beats, 3:20 at 120 bpm) with drums, bass, guitar, piano, strings and a lead (about
    6,000 to 7,000 notes), varied from bar to bar (random drum patterns, chord roots, rhythms and
    velocities) so that file sizes are not flattered by repetition."""
    T = n_beats * RES
    bar = 4 * RES
    n_bars = -(-T // bar)
    tr: dict[int, np.ndarray] = {}
    six = RES // 4
    drums = np.zeros((T, 128), np.uint8)
    for b in range(n_bars):
        hats = rng.random(16) < 0.8
        kicks = rng.random(16) < 0.25
        kicks[0] = True
        for s16 in range(16):
            on = b * bar + s16 * six
            if on >= T:
                break
            if hats[s16]:
                drums[on:on + 2, 42 if rng.random() < 0.85 else 46] = rng.integers(50, 100)
            if kicks[s16]:
                drums[on:on + 2, 36] = rng.integers(90, 127)
            if s16 in (4, 12) or rng.random() < 0.05:
                drums[on:on + 2, 38] = rng.integers(90, 127)
    tr[0] = drums
    roots = rng.integers(36, 48, size=n_bars)
    bass = np.zeros((T, 128), np.uint8)
    for b in range(n_bars):
        step = int(rng.choice([six * 2, RES, six]))
        for on in range(b * bar, min(T, (b + 1) * bar), step):
            p = int(roots[b] + rng.choice([0, 0, 7, 12]))
            bass[on:on + step - 1, p] = rng.integers(70, 110)
    tr[5] = bass
    for idx, base in ((4, 52), (1, 60), (6, 64)):
        roll = np.zeros((T, 128), np.uint8)
        for b in range(n_bars):
            dur = int(rng.choice([RES // 2, RES, 2 * RES, 4 * RES]))
            chord = roots[b] % 12 + base + np.array([0, int(rng.choice([3, 4])), 7])
            for on in range(b * bar, min(T, (b + 1) * bar), dur):
                roll[on:on + dur - 1, chord] = rng.integers(50, 100)
        tr[idx] = roll
    lead = np.zeros((T, 128), np.uint8)
    for on in range(0, T, six * 2):
        if rng.random() < 0.6:
            length = six * int(rng.integers(1, 4)) - 1
            lead[on:on + length, rng.integers(60, 90)] = rng.integers(60, 120)
    tr[11] = lead
    return tr, T


def msd_id(k: int) -> str:
    """A plausible, deterministic MSD id (``TR`` + 16 of A-Z0-9) for song ``k``."""
    h = hashlib.sha1(f"song{k}".encode()).hexdigest().upper()
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "TR" + "".join(alnum[int(c, 16) * 2 % 36 + (k % 2)] for c in h[:16])


def md5_of(k: int) -> str:
    return hashlib.md5(f"midi{k}".encode()).hexdigest()


#: The folder above ``lpd_17_cleansed/`` in the upstream archive.
TOP = "lpd_17"


def lpd_member(msd: str, md5: str, top: str | None = TOP) -> str:
    """Member name of a song: ``[top/]lpd_17_cleansed/A/B/C/MSD_ID/md5.npz``."""
    prefix = f"{top}/" if top else ""
    return f"{prefix}lpd_17_cleansed/{msd[2]}/{msd[3]}/{msd[4]}/{msd}/{md5}.npz"


def _add_dirs(tar: tarfile.TarFile, names, done: set) -> None:
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in done:
                done.add(d)
                ti = tarfile.TarInfo(d + "/")
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 1_500_000_000
    tar.addfile(ti, io.BytesIO(data))


def build_lpd(out: Path, n_songs: int = 9, *, genres: dict[str, list[int]] | None = None,
              extra_ids: dict[str, list[str]] | None = None,
              leave_out_of_archive: tuple[int, ...] = (), broken: tuple[int, ...] = (),
              top: str | None = TOP) -> dict:
    """Write the three LPD downloads for ``n_songs`` songs into ``out``.

    ``genres`` maps ``source/Genre`` to song indices (default: tagtraum/Rock = 0, 1, 3, 4, 6, 7;
    tagtraum/Pop = 2, 5, 8; lastfm/rock = 0, 3, 6; amg/Pop_Rock = all). ``extra_ids`` adds MSD
    ids to a genre list that are not in the archive; songs in ``leave_out_of_archive`` are listed
    in ``cleansed_ids.txt`` but have no file; songs in ``broken`` are stored as bytes that are
    not an ``.npz``. ``top`` is the folder above ``lpd_17_cleansed/`` (``lpd_17`` upstream;
    None: ``lpd_17_cleansed/`` at the top).

    Returns
    -------
    dict
        ``archive``/``ids``/``labels`` (paths), ``songs`` (``k -> (msd_id, md5)``),
        ``genres``, ``npz`` (``k -> local npz path``), ``bytes`` (name -> content).
    """
    out.mkdir(parents=True, exist_ok=True)
    genres = genres or {
        "tagtraum/Rock": [k for k in range(n_songs) if k % 3 != 2],
        "tagtraum/Pop": [k for k in range(n_songs) if k % 3 == 2],
        "lastfm/rock": [k for k in range(n_songs) if k % 3 == 0],
        "amg/Pop_Rock": list(range(n_songs)),
    }
    songs = {k: (msd_id(k), md5_of(k)) for k in range(n_songs)}
    npz_dir = out / "npz"
    npz = {}
    for k, (msd, md5) in songs.items():
        tracks, T = song_tracks(k)
        p = npz_dir / f"{k}_{md5}.npz"
        write_lpd_npz(p, tracks, T, tempo=100.0 + k, name=md5)
        npz[k] = p
    # the archive: top folders, nested folders, then files (like `tar czf` of the folder)
    archive = out / "lpd_17_cleansed.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        names = {k: lpd_member(*songs[k], top=top) for k in songs
                 if k not in leave_out_of_archive}
        done: set = set()
        _add_dirs(tar, [f"{top}/lpd_17_cleansed/x" if top else "lpd_17_cleansed/x"], done)
        for k in sorted(names, key=lambda k: names[k]):
            _add_dirs(tar, [names[k]], done)
            _add_bytes(tar, names[k], b"not a zip file" if k in broken else npz[k].read_bytes())
    ids = out / "cleansed_ids.txt"
    ids.write_text("".join(f"{md5}    {msd}\n" for msd, md5 in songs.values()))
    labels = out / "labels.tar.gz"
    with tarfile.open(labels, "w:gz") as tar:
        done = {"labels"}  # the real archive has entries labels/<source>/ but no labels/
        for g, ks in genres.items():
            src, name = g.split("/")
            member = f"labels/{src}/id_list_{name}.txt"
            lines = [songs[k][0] for k in ks] + list((extra_ids or {}).get(g, []))
            _add_dirs(tar, [member], done)
            _add_bytes(tar, member, "".join(x + "\n" for x in lines).encode(), mode=0o777)
        _add_dirs(tar, ["labels/amg/masd_labels.txt"], done)
        _add_bytes(tar, "labels/amg/masd_labels.txt", b"# msd_id, label_num\n", mode=0o777)
    return {
        "archive": archive, "ids": ids, "labels": labels, "songs": songs, "genres": genres,
        "npz": npz,
        "bytes": {p.name: p.read_bytes() for p in (archive, ids, labels)},
    }


# --------------------------------------------------------------------------- bad archives --


def evil_archive(path: Path, kind: str, good_npz: bytes = b"x", absolute: str = "/tmp/b2b-evil-absolute.txt") -> Path:
    """An LPD-looking archive with one unsafe member: ``kind`` is ``dotdot``, ``absolute``,
    ``symlink`` (to ``../../../../outside``), ``abs-symlink``, ``hardlink`` (to ``../x``) or
    ``device`` (a character device)."""
    with tarfile.open(path, "w:gz") as tar:
        _add_dirs(tar, [f"{TOP}/lpd_17_cleansed/A/x"], set())
        _add_bytes(tar, f"{TOP}/lpd_17_cleansed/A/ok.npz", good_npz)
        ti = tarfile.TarInfo(f"{TOP}/lpd_17_cleansed/A/evil")
        if kind == "dotdot":
            _add_bytes(tar, "lpd_17_cleansed/../../evil.txt", b"pwned")
            return path
        if kind == "absolute":
            _add_bytes(tar, absolute, b"pwned")
            return path
        if kind == "symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, "../../../../outside"
        elif kind == "abs-symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            ti.type, ti.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "device":
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        else:
            raise ValueError(kind)
        tar.addfile(ti)
    return path


def bomb_archive(path: Path, member_bytes: list[int], *, trailing_zeros: int = 0,
                 top: str | None = TOP) -> Path:
    """A small ``.tar.gz`` whose song files (in the LPD layout) are ``member_bytes`` zeros each
    (1 MiB of zeros compresses to about 1 KiB), optionally followed by ``trailing_zeros`` zero
    bytes after the tar data inside the gzip stream."""
    import gzip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        done: set = set()
        for k, n in enumerate(member_bytes):
            name = lpd_member(msd_id(k), md5_of(k), top=top)
            _add_dirs(tar, [name], done)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = n, 0o644
            tar.addfile(ti, _Zeros(n))
    with gzip.open(path, "wb") as gz:
        gz.write(buf.getvalue())
        for i in range(0, trailing_zeros, 1 << 20):
            gz.write(bytes(min(1 << 20, trailing_zeros - i)))
    return path


class _Zeros:
    """A file-like object of ``n`` zero bytes."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def truncated(data: bytes, fraction: float = 0.6) -> bytes:
    return data[: int(len(data) * fraction)]


def corrupted(data: bytes) -> bytes:
    """Flip bytes in the middle of a gzip stream (CRC/inflate errors)."""
    b = bytearray(data)
    mid = len(b) // 2
    for i in range(mid, min(mid + 64, len(b) - 8)):
        b[i] ^= 0xA5
    return bytes(b)


# ------------------------------------------------------------------------- loopback server --


class LoopbackServer:
    """HTTP server on 127.0.0.1 (random port) in a daemon thread, for download tests.

    Attributes you set: ``files`` (url path → bytes), ``status`` (path → HTTP code to answer,
    e.g. 404/500), ``cut`` (path → [bytes to send before dropping the connection, times]),
    ``stall`` (path → [bytes to send before sending nothing more, times]: the connection stays
    open, silent, until the server closes or ``stall_s`` passes),
    ``ignore_range`` (paths answered 200 with the whole file even to a Range request),
    ``content_type`` (path → Content-Type), ``no_length`` (paths sent without Content-Length,
    the end marked by closing the connection). Recorded: ``requests`` (list of
    ``(path, Range header or None)``). More than ``max_requests`` requests get 503, and the
    server shuts itself down ``lifetime_s`` seconds after starting.
    """

    def __init__(self, files: dict[str, bytes] | None = None, max_requests: int = 200,
                 lifetime_s: float = 120.0) -> None:
        self.files = dict(files or {})
        self.status: dict[str, int] = {}
        self.cut: dict[str, list[int]] = {}
        self.stall: dict[str, list[int]] = {}
        self.no_length: set[str] = set()
        self.stall_s = 30.0
        self._closing = threading.Event()
        self.ignore_range: set[str] = set()
        self.content_type: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.close)
        self._timer.daemon = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def count(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.requests if path is None or p == "/" + path.lstrip("/"))

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # ends stalled responses
        self._timer.cancel()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append((path, rng))
            n = len(self.requests)
        h.close_connection = True
        if n > self.max_requests:
            return self._plain(h, 503, b"too many requests")
        if path in self.status:
            return self._plain(h, self.status[path], b"error page")
        data = self.files.get(path.lstrip("/"))
        if data is None:
            return self._plain(h, 404, b"not found")
        start, code = 0, 200
        m = re.match(r"^bytes=(\d+)-$", rng or "")
        if m and path not in self.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            code = 206
        body = data[start:]
        h.send_response(code)
        h.send_header("Content-Type", self.content_type.get(path, "application/octet-stream"))
        if path not in self.no_length:
            h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
        if code == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        cut = self.cut.get(path)
        if cut and cut[1] > 0:
            with self._lock:
                cut[1] -= 1
            h.wfile.write(body[: cut[0]])
            h.wfile.flush()
            return  # connection closes with the body incomplete
        stall = self.stall.get(path)
        if stall and stall[1] > 0:
            with self._lock:
                stall[1] -= 1
            h.wfile.write(body[: stall[0]])
            h.wfile.flush()
            self._closing.wait(self.stall_s)  # silent, the connection open
            return
        h.wfile.write(body)

    @staticmethod
    def _plain(h, code: int, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


# ---------------------------------------------------------------------- speed measurement --


def measure(n_songs: int = 40, workers: tuple[int, ...] = (1, 2), out: Path | None = None) -> dict:
    """Measure sizes and preprocessing speed on ``n_songs`` songs the size of real LPD songs.

    Writes the songs in the LPD layout, packs them as ``lpd_17_cleansed.tar.gz`` (top folder
    ``lpd_17/``), extracts it
    with :func:`b2b.datasets.fetch.extract_archive`, then converts the songs with
    :func:`b2b.datasets.lpd.convert_songs` into a store with each number of ``workers`` (pool start-up
    included, as a user sees it). Run ``python tests/lpd_fixtures.py [N_SONGS]``.
    """
    import tempfile
    import time

    from b2b.music import data
    from b2b.datasets import catalog as datasets, lpd
    from b2b.datasets import store as bstore

    tmp = Path(out or tempfile.mkdtemp(prefix="lpd-measure-"))
    rng = np.random.default_rng(0)
    src = tmp / "src"
    t0 = time.perf_counter()
    names = []
    for k in range(n_songs):
        tracks, T = realistic_song(rng)
        name = lpd_member(msd_id(k), md5_of(k))
        write_lpd_npz(src / name, tracks, T)
        names.append(name)
    npz_bytes = sum((src / n).stat().st_size for n in names)
    n_notes = sum(int(np.diff(np.concatenate([np.zeros((1, 128)), tr > 0, np.zeros((1, 128))]),
                               axis=0).clip(0).sum()) for tr in realistic_song(
        np.random.default_rng(0))[0].values())
    archive = tmp / "lpd_17_cleansed.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / TOP, arcname=TOP)
    t1 = time.perf_counter()
    stats = fetch.extract_archive(archive, tmp / "extracted", progress=False)
    extract_s = time.perf_counter() - t1
    paths = [str(tmp / "extracted" / n) for n in names]
    res: dict = {
        "n_songs": n_songs, "steps_per_song_at_24": realistic_song(np.random.default_rng(0))[1],
        "notes_per_song": n_notes, "npz_bytes_per_song": npz_bytes / n_songs,
        "archive_bytes_per_song": archive.stat().st_size / n_songs,
        "extract_s_per_song": extract_s / n_songs, "extracted_files": stats["n_files"],
        "generate_s": t1 - t0,
    }
    c = time.process_time()
    for p in paths:  # CPU time of one conversion, free of other processes' load
        data.multitrack_to_roll(data.load_lpd(p))
    res["cpu_s_per_song"] = (time.process_time() - c) / n_songs
    for w in workers:
        t, c = time.perf_counter(), time.process_time()
        first = []

        def songs():
            for i, roll, err in lpd.convert_songs(paths, w, progress=False):
                if not first:
                    first.append(time.perf_counter())
                yield msd_id(i), roll

        store = bstore.write_store(tmp / f"store{w}", songs(), {"measure": True})
        s = time.perf_counter() - t
        res[f"songs_per_s_{w}_workers"] = n_songs / s
        res[f"first_song_s_{w}_workers"] = first[0] - t  # pool start-up + one song
        res[f"songs_per_s_after_first_{w}_workers"] = (n_songs - 1) / (t + s - first[0])
        res[f"main_cpu_s_per_song_{w}_workers"] = (time.process_time() - c) / n_songs
        size = sum(p.stat().st_size for p in store.iterdir())
        res["store_bytes_per_song"] = size / n_songs
        res["windows_per_song"] = len(datasets.open_dataset(store)) / n_songs
    return res


# ------------------------------------ shared by test_lpd.py and test_fetch.py: the command --

ARCHIVE, IDS, LABELS = "lpd_17_cleansed.tar.gz", "cleansed_ids.txt", "labels.tar.gz"
REGISTERED = cli.COMMANDS.get("data", ("",))[0] == "b2b.music.data"  # `b2b data` in the CLI registry


# ------------------------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """The three downloads for 9 songs (tagtraum/Rock = songs 0, 1, 3, 4, 6, 7)."""
    return build_lpd(tmp_path_factory.mktemp("lpd-src"), 9)


@pytest.fixture(autouse=True)
def fast_network(monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(fetch, "TIMEOUT_S", 10.0)
    monkeypatch.setattr(fetch, "RETRIES", 3)


@pytest.fixture
def server(src):
    with LoopbackServer(src["bytes"]) as s:
        yield s


@pytest.fixture(autouse=True)
def data_command(monkeypatch):
    """`b2b data` as the CLI registers it (added here only if the registry lacks it)."""
    if "data" not in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, "data", ("b2b.music.data", "Prepare a dataset."))


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
    """The song roll (17, T, 72) of an LPD file, computed from the rules of ``b2b.music.data``
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


if __name__ == "__main__":
    import sys

    for key, value in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 40).items():
        print(f"{key}: {value:,.3f}" if isinstance(value, float) else f"{key}: {value}")
