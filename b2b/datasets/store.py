"""The compact window store: many songs as packed bits on disk, served as windows.

A store is a folder of two files, written atomically by :func:`write_store`:

* ``store.npz``: ``bits`` uint8 ``(R, 9)`` (each non-empty track of each song, one row per step,
  ``np.packbits`` along the 72 pitches), ``track_rows`` int64 ``(S, 17)`` (first row of each song
  track, -1 for an empty track), ``song_steps`` int64 ``(S,)``, ``windows`` int64 ``(n, 2)``
  (song, start step of every kept window);
* ``meta.json``: the format and version, the geometry, the window rule, one entry per song and
  whatever the builder adds (source, licence, build options).

:class:`WindowDataset` reads it back (checking every array against the others) and serves windows
as tensors: one at a time (a ``torch.utils.data.Dataset``) or all at once (:meth:`WindowDataset.tensor`).
:func:`default_root` is where named datasets live (``$B2B_DATA`` or ``~/b2b-data``).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.utils.data

from b2b.files.atomic import json_problem, read_json
from b2b.music.data import DEFAULT_MIN_ACTIVE_BARS, DEFAULT_MIN_ONSETS, DataError, check_roll, roll_window_starts
from b2b.music.geometry import LOWEST_PITCH, N_PITCHES, N_STEPS, N_TRACKS, SAMPLE_SHAPE, STEPS_PER_BEAT, TRACKS

__all__ = ["STORE_FORMAT", "STORE_VERSION", "is_store", "write_store", "WindowDataset", "default_root"]

_PACKED_BYTES = N_PITCHES // 8  # 9 bytes per step

STORE_FORMAT = "b2b-window-store"
STORE_VERSION = 1
#: Most an array of ``store.npz`` may declare, relative to the compressed bytes its member holds
#: (real stores compress 6-33:1; deflate itself cannot pass about 1032:1): a larger declared size
#: is refused before any memory is allocated for it.
MAX_EXPANSION = 256
_ARRAYS = ("bits", "track_rows", "song_steps", "windows")
_RESERVED = {"format", "version", "sample_shape", "steps_per_beat", "lowest_pitch", "tracks",
             "songs", "window_rule", "n_windows", "n_songs"}


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a complete store folder (both ``meta.json`` and ``store.npz``)."""
    path = Path(path)
    return (path / "meta.json").is_file() and (path / "store.npz").is_file()


def write_store(path: str | os.PathLike, songs: Iterable[tuple[str, np.ndarray]], meta: dict, *,
                hop_bars: int = 1, min_onsets: int = DEFAULT_MIN_ONSETS,
                min_active_bars: int = DEFAULT_MIN_ACTIVE_BARS) -> Path:
    """Write songs as a compact window store, atomically (a temp folder renamed into place).

    Each song ``(song_id, roll)`` has ``roll`` bool ``(17, T, 72)``, ``T`` a multiple of 16.
    Only its non-empty tracks are kept, as packed bits (``np.packbits`` along pitch: 9 bytes per
    step), with the index of its windows (:func:`roll_window_starts`). The folder holds
    ``store.npz`` (``bits`` uint8 (R, 9), ``track_rows`` int64 (S, 17) first row of each
    song track or -1, ``song_steps`` int64 (S,), ``windows`` int64 (n, 2) = song, start step) and
    ``meta.json`` (per-song ids, steps, tracks and window counts, the window rule, and the
    caller's ``meta``). An existing store at ``path`` is replaced.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    meta = dict(meta or {})
    clash = _RESERVED & set(meta)
    if clash:
        raise ValueError(f"meta: keys {sorted(clash)} are reserved by the store")
    if int(hop_bars) < 1:
        raise ValueError(f"hop_bars must be >= 1, got {hop_bars}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()  # (not tempfile.mkdtemp: its mode 0700 would stick to the store)
    try:
        bits, rows, steps, windows, song_meta = [], [], [], [], []
        n_rows, seen = 0, set()
        for song_id, roll in songs:
            song_id = str(song_id)
            if song_id in seen:
                raise ValueError(f"songs: duplicate song id {song_id!r}")
            seen.add(song_id)
            roll = check_roll(roll, f"song {song_id!r}")
            s = len(steps)
            T = roll.shape[1]
            r = np.full(N_TRACKS, -1, np.int64)
            for k in np.flatnonzero(roll.any(axis=(1, 2))):
                bits.append(np.packbits(roll[k], axis=-1))
                r[k] = n_rows
                n_rows += T
            starts = roll_window_starts(roll, hop_bars=hop_bars, min_onsets=min_onsets,
                                        min_active_bars=min_active_bars)
            windows.append(np.stack([np.full(len(starts), s, np.int64), starts], axis=1))
            rows.append(r)
            steps.append(T)
            song_meta.append({"id": song_id, "steps": T, "windows": int(len(starts)),
                              "tracks": [TRACKS[k].name for k in np.flatnonzero(r >= 0)]})
        arrays = {
            "bits": np.concatenate(bits) if bits else np.zeros((0, _PACKED_BYTES), np.uint8),
            "track_rows": np.stack(rows) if rows else np.zeros((0, N_TRACKS), np.int64),
            "song_steps": np.asarray(steps, np.int64),
            "windows": np.concatenate(windows) if windows else np.zeros((0, 2), np.int64),
        }
        np.savez_compressed(tmp / "store.npz", **arrays)
        full_meta = {
            "format": STORE_FORMAT, "version": STORE_VERSION, "sample_shape": list(SAMPLE_SHAPE),
            "steps_per_beat": STEPS_PER_BEAT, "lowest_pitch": LOWEST_PITCH,
            "tracks": [{"name": t.name, "program": t.program, "is_drum": t.is_drum} for t in TRACKS],
            "window_rule": {
                "hop_bars": int(hop_bars), "min_onsets": int(min_onsets),
                "min_active_bars": int(min_active_bars),
                "rule": (f"4-bar windows starting every {int(hop_bars)} bar(s); kept if >= "
                         f"{int(min_onsets)} note onsets and >= {int(min_active_bars)} of 4 bars with notes"),
            },
            "n_songs": len(steps), "n_windows": int(len(arrays["windows"])),
            **meta,
            "songs": song_meta,
        }
        with open(tmp / "meta.json", "w") as f:
            json.dump(full_meta, f, indent=1, default=_json_default)
        # swap into place: old store moved aside first, removed after
        old = None
        for attempt in range(3):  # another process may create ``path`` between the two renames
            if path.exists():
                old = old or path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
                os.replace(path, old)
            try:
                os.replace(tmp, path)
                break
            except OSError:
                if attempt == 2 or not path.exists():
                    raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta: {type(o).__name__} is not JSON serializable")


#: The fields of a store's ``meta.json`` that b2b reads, and their types (:func:`b2b.files.atomic.json_problem`):
#: the store's own, and those ``b2b data bach`` adds (``build``, ``pieces``, ``skipped``).
META_SCHEMA: dict[str, Any] = {
    "window_rule": {"rule": str, "hop_bars?": int, "min_onsets?": int, "min_active_bars?": int},
    "n_songs?": int, "n_windows?": int, "tracks?": list, "part_mapping?": list,
    "build?": {"options?": dict, "workers?": int, "use_cache?": bool, "seconds?": (int, float),
               "parse_seconds?": (int, float), "cpu_seconds?": (int, float)},
    "pieces?": dict, "skipped?": dict,
}


def _check_store_meta(meta: Any, meta_file: Path) -> None:
    """DataError naming ``meta_file`` unless ``meta`` is a store's meta.json of a known version."""
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise DataError(f"{meta_file}: not a b2b window store (format {STORE_FORMAT!r} expected)")
    version = meta.get("version")
    if version != STORE_VERSION:
        raise DataError(f"{meta_file}: store version {version!r} is not known to this b2b (it reads version "
                        f"{STORE_VERSION}); rebuild the store (e.g. `b2b data bach --force`)")
    shape = meta.get("sample_shape")
    if not isinstance(shape, list) or tuple(shape) != SAMPLE_SHAPE:
        raise DataError(f"{meta_file}: sample_shape is {shape!r}, expected {list(SAMPLE_SHAPE)}")
    songs = meta.get("songs")
    if not isinstance(songs, list):
        raise DataError(f"{meta_file}: 'songs' is {type(songs).__name__}, expected a list of songs")
    for i, song in enumerate(songs):
        if not isinstance(song, dict) or not isinstance(song.get("id"), (str, int)) or isinstance(song.get("id"), bool):
            raise DataError(f"{meta_file}: song {i} has no 'id' (expected {{'id': str, ...}}, got {str(song)[:60]})")
    ids = [str(song["id"]) for song in songs]
    if len(set(ids)) != len(ids):
        raise DataError(f"{meta_file}: song ids are not unique")
    problem = json_problem(meta, META_SCHEMA)
    if problem is None and not all(isinstance(v, str) for v in (meta.get("skipped") or {}).values()):
        problem = "'skipped' is not an object of strings (piece -> why)"
    if problem is not None:
        raise DataError(f"{meta_file}: {problem}; rebuild the store (e.g. `b2b data bach --force`)")


def npy_member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` an ``.npy`` member of an ``.npz`` declares, read from its header alone
    (nothing of the array is read); ValueError if it is not an ``.npy`` file."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), dtype


def _read_store_arrays(npz_file: Path, n_songs: int) -> dict[str, np.ndarray]:
    """The four arrays of ``store.npz``, each declared size bounded before it is allocated.

    Every member's ``.npy`` header is read first: its declared bytes may not pass
    :data:`MAX_EXPANSION` times the compressed bytes it holds, ``song_steps`` and ``track_rows``
    must have one row per song of ``meta.json`` (``n_songs``), and ``bits`` must have exactly the
    rows its songs' non-empty tracks need (``sum(song_steps)`` over them, as :func:`write_store`
    writes it). DataError naming the file otherwise; KeyError for a missing array.
    """
    def bad(what: str) -> DataError:
        return DataError(f"{npz_file}: {what}")

    with zipfile.ZipFile(npz_file) as zf:
        headers = {}
        for key in _ARRAYS:
            info = zf.getinfo(f"{key}.npy")
            shape, dtype = npy_member_header(zf, info)
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if dtype.hasobject or declared > MAX_EXPANSION * max(info.compress_size, 1) + 4096:
                raise bad(f"array {key!r} declares shape {shape} of {dtype} ({declared:,} bytes) but its member holds "
                          f"{info.compress_size:,} compressed bytes; not a store b2b wrote")
            headers[key] = shape
        for key in ("song_steps", "track_rows"):
            if headers[key][:1] != (n_songs,):
                raise bad(f"{key} declares shape {headers[key]}, expected {n_songs} rows (the songs of meta.json)")

        def load(key: str) -> np.ndarray:
            with zf.open(f"{key}.npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)

        arrays = {k: load(k) for k in ("song_steps", "track_rows")}
        steps, rows = arrays["song_steps"], arrays["track_rows"]
        if steps.ndim == 1 and rows.shape == (n_songs, N_TRACKS) and np.issubdtype(steps.dtype, np.integer):
            need = int((np.broadcast_to(steps.astype(object)[:, None], rows.shape)[rows >= 0]).sum())
            if headers["bits"][:1] != (need,):
                raise bad(f"bits declares shape {headers['bits']}, but its songs' tracks need {need:,} rows")
        arrays.update({k: load(k) for k in ("bits", "windows")})
    return arrays


class WindowDataset(torch.utils.data.Dataset):
    """Windows from a store folder written by :func:`write_store`.

    Items are ``float32`` tensors ``(17, 64, 72)`` in {0, 1}, unpacked from the bits on demand.

    Attributes
    ----------
    path : Path
    meta : dict
        The store's ``meta.json`` (source, mapping, window rule, per-song entries …).
    songs : list[str]
        Song ids, in store order.
    index : np.ndarray, int64, shape (n, 2)
        ``(song, start step)`` of every window.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self.path = path
        if not path.is_dir():
            raise DataError(f"{path}: no dataset store here (expected a folder with meta.json and store.npz)")
        meta_file, npz_file = path / "meta.json", path / "store.npz"
        for f in (meta_file, npz_file):
            if not f.is_file():
                raise DataError(f"{f}: missing; {path} is not a complete dataset store")
        try:
            self.meta = read_json(meta_file)
        except ValueError as e:  # names the file: too big, too deep, not JSON, not an object
            raise DataError(str(e)) from None
        except OSError as e:
            raise DataError(f"{meta_file}: not readable ({e.strerror or e})") from None
        _check_store_meta(self.meta, meta_file)
        try:
            arrays = _read_store_arrays(npz_file, len(self.meta["songs"]))
        except DataError:
            raise
        except KeyError as e:
            raise DataError(f"{npz_file}: missing array {e}") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"{npz_file}: corrupt or truncated store ({type(e).__name__}: {e})") from None
        bits, rows, steps, windows = (arrays[k] for k in ("bits", "track_rows", "song_steps", "windows"))

        def bad(what: str) -> DataError:
            return DataError(f"{npz_file}: {what}")

        if bits.dtype != np.uint8 or bits.ndim != 2 or bits.shape[1] != _PACKED_BYTES:
            raise bad(f"bits has dtype {bits.dtype} shape {bits.shape}, expected uint8 (R, {_PACKED_BYTES})")
        S = len(steps)
        if rows.shape != (S, N_TRACKS) or not np.issubdtype(rows.dtype, np.integer):
            raise bad(f"track_rows has shape {rows.shape}, expected ({S}, {N_TRACKS}) integers")
        if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
            raise bad(f"song_steps has shape {steps.shape} dtype {steps.dtype}, expected (S,) integers")
        if windows.ndim != 2 or windows.shape[1] != 2 or not np.issubdtype(windows.dtype, np.integer):
            raise bad(f"windows has shape {windows.shape} dtype {windows.dtype}, expected (n, 2) integers")
        if len(self.meta["songs"]) != S:
            raise DataError(f"{meta_file}: lists {len(self.meta['songs'])} songs, store.npz has {S}")
        if len(windows) and (windows[:, 0].min() < 0 or windows[:, 0].max() >= S or windows[:, 1].min() < 0
                             or np.any(windows[:, 1] + N_STEPS > steps[windows[:, 0]])):
            raise bad("a window lies outside its song")
        has = rows >= 0
        if np.any(rows[has] + np.broadcast_to(steps[:, None], rows.shape)[has] > len(bits)):
            raise bad("a track lies outside the bits array")
        self._bits, self._rows, self._steps = bits, rows.astype(np.int64), steps.astype(np.int64)
        self.index = windows.astype(np.int64)
        self.songs = [str(s["id"]) for s in self.meta["songs"]]

    def __len__(self) -> int:
        return len(self.index)

    def window(self, i: int) -> np.ndarray:
        """Window ``i`` as a bool array ``(17, 64, 72)``."""
        song, start = self.index[i]
        out = np.zeros(SAMPLE_SHAPE, bool)
        for k in np.flatnonzero(self._rows[song] >= 0):
            r = self._rows[song, k] + start
            out[k] = np.unpackbits(self._bits[r:r + N_STEPS], axis=-1, count=N_PITCHES).astype(bool)
        return out

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        return torch.from_numpy(self.window(int(i) % len(self)).astype(np.float32))

    def song_roll(self, song: int | str) -> np.ndarray:
        """The whole roll of a song (index or id) as bool ``(17, T, 72)``."""
        s = self.songs.index(song) if isinstance(song, str) else int(song)
        T = int(self._steps[s])
        out = np.zeros((N_TRACKS, T, N_PITCHES), bool)
        for k in np.flatnonzero(self._rows[s] >= 0):
            r = self._rows[s, k]
            out[k] = np.unpackbits(self._bits[r:r + T], axis=-1, count=N_PITCHES).astype(bool)
        return out

    def tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All windows as one tensor ``(n, 17, 64, 72)`` of ``dtype`` (float32, uint8 or bool).

        Memory: ``n × 78,336`` elements (float32: 306 KiB per window).
        """
        if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.bool):
            raise ValueError(f"dtype: {dtype}, expected torch.float32, float16, bfloat16, uint8 or bool")
        out = torch.zeros((len(self),) + SAMPLE_SHAPE, dtype=dtype)
        if not len(self):
            return out
        songs = self.index[:, 0]
        ar = np.arange(N_STEPS)
        for s in np.unique(songs):
            idx = np.flatnonzero(songs == s)
            steps = self.index[idx, 1][:, None] + ar  # (m, 64)
            for k in np.flatnonzero(self._rows[s] >= 0):
                r = self._rows[s, k]
                track = np.unpackbits(self._bits[r:r + self._steps[s]], axis=-1, count=N_PITCHES)
                out[torch.from_numpy(idx), k] = torch.from_numpy(track[steps]).to(dtype)
        return out

    def __repr__(self) -> str:
        return f"WindowDataset({str(self.path)!r}, songs={len(self.songs)}, windows={len(self)})"


def default_root() -> Path:
    """The data root: ``$B2B_DATA`` if set, else ``~/b2b-data``."""
    env = os.environ.get("B2B_DATA")
    return Path(env).expanduser() if env else Path.home() / "b2b-data"
