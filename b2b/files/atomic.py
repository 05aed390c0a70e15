"""Writing files atomically.

A reader of a file that b2b writes sees either the previous complete file or the new complete
one, never a half-written one: the data goes to a temporary name in the same folder, is flushed
to disk, and is then moved onto the final name with ``os.replace`` (atomic on POSIX and
Windows). If writing fails, the temporary file is removed and the old file is left untouched,
and an OSError names the file being written (e.g. ``ENOSPC`` on a full disk).

:class:`FolderLock` gives one process at a time a folder (training runs, dataset builds), and
:func:`remove_leftovers` clears the temporaries of writers that were killed (``kill -9``) before
they could clean up, once the folder's lock shows that nobody else is writing there;
:func:`claim_output` does both for a command's output folder or file.

Outputs are only ever regular files: :func:`check_output` refuses a final name that is a
symlink, a folder, a device node, a FIFO or a socket (``os.replace`` would replace the link or
the device node itself), and every writer here checks it before writing and again before the
move. :func:`read_json` is the one way b2b reads a JSON file: bounded in size and nesting depth
and checked against the type it must have, so a hostile file gives one line naming it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Use it for writers that take a file name (``pretty_midi.PrettyMIDI.write``, ``wave.open``).
    The temporary file is removed if the block raises.

    Parameters
    ----------
    path : str or PathLike
        The final file name. Its folder must exist.

    Yields
    ------
    pathlib.Path
        ``.<name>.<random>.tmp`` in the same folder.
    """
    path = Path(path)
    check_output(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data is on disk before the name points at it
            os.fsync(f.fileno())
        check_output(path)  # nothing may have put a link or a device at the name meanwhile
        os.replace(tmp, path)
    except OSError as e:  # name the file being written (not the temporary) in the message
        if e.errno is not None and (e.filename is None or str(e.filename) == str(tmp)):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


class NotARegularFile(OSError):
    """An output name holds something other than a regular file (a symlink, folder, device, FIFO)."""


def _kind(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is, when it is not a regular file (else None)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_output(path: str | os.PathLike) -> Path:
    """``path`` if it is free or a regular file that may be replaced; :class:`NotARegularFile`
    (an OSError naming ``path``) if it is a symlink, folder, device node, FIFO or socket: b2b
    writes only regular files and never replaces (or writes through) anything else."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as e:
        raise _with_path(e, path) from None
    kind = _kind(mode)
    if kind is not None:
        raise NotARegularFile(errno.EEXIST, f"exists and is {kind}; b2b writes only regular files "
                              "(remove it or choose another name)", str(path))
    return path


#: The temporary names of :func:`atomic_path` (``.<name>.<8 hex>.tmp``), of any name.
TEMPORARY_RE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


def temporary_re(name: str | None = None) -> re.Pattern:
    """The temporaries :func:`atomic_path` makes for the final name ``name`` (any name if None)."""
    return TEMPORARY_RE if name is None else re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{8}}\.tmp")


def claim_output(path: str | os.PathLike, what: str, *, file: bool = False,
                 pattern: str | re.Pattern | None = None) -> "FolderLock":
    """Lock a command's output and remove what killed runs of it left; return the held lock.

    Parameters
    ----------
    path : str or PathLike
        The output folder (created if missing), or with ``file`` the output file, whose folder
        must exist: the lock is then ``<folder>/.<name>.lock``, so that other files of the folder
        (a training run's, another export's) are not blocked.
    what : str
        How messages call it (e.g. ``"--out samples"``).
    pattern : str or re.Pattern, optional
        The leftovers to remove (default: every :func:`atomic_path` temporary in the folder; for
        a file, those of its name).

    Raises
    ------
    FolderLocked
        Another process holds it (the message names ``what`` and the holder).
    """
    path = Path(path)
    if file:
        check_output(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "folder does not exist", str(path.parent))
        folder, lock = path.parent, FolderLock(path.parent, f".{path.name}.lock", what)
        rx = pattern or temporary_re(path.name)
    else:
        folder, lock = path, FolderLock(path, what=what)
        rx = pattern or TEMPORARY_RE
    lock.acquire()
    try:
        remove_leftovers(folder, rx, older_than=lock.since)
    except BaseException:
        lock.release()
        raise
    return lock


#: Largest JSON file :func:`read_json` reads (bytes) and deepest nesting it accepts, by default.
JSON_MAX_BYTES = 64 * 2**20
JSON_MAX_DEPTH = 32


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] = dict, *,
              max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH,
              what: str | None = None) -> Any:
    """Read a JSON file that b2b or a download wrote, bounded and type-checked.

    Parameters
    ----------
    path : str or PathLike
        The file.
    expect : type or tuple of types
        What the top level must be (``dict`` by default; ``list``, ...).
    max_bytes, max_depth : int
        The file's size in bytes and its nesting depth (``[[1]]`` is 2) are bounded: the size
        before anything is read, the depth before it is parsed (Python's parser would end in a
        ``RecursionError``).
    what : str, optional
        How to name the file in messages (default: its path).

    Raises
    ------
    ValueError
        One line naming the file: too big, too deep, not UTF-8 JSON, or of the wrong type. The
        caller checks the fields it reads (:func:`json_problem` helps).
    OSError
        It cannot be read (the message names it).
    """
    name = what or str(path)
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"{name}: not a regular file")
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise _with_path(e, path) from None
    return parse_json(raw, expect, max_bytes=max_bytes, max_depth=max_depth, what=name)


def parse_json(raw: bytes, expect: type | tuple[type, ...] = dict, *, max_bytes: int = JSON_MAX_BYTES,
               max_depth: int = JSON_MAX_DEPTH, what: str = "JSON") -> Any:
    """:func:`read_json`'s checks on bytes already in memory (e.g. ``info.json`` inside an LPD
    ``.npz``): size, UTF-8, nesting depth and top-level type; ValueError naming ``what``."""
    name = what
    if len(raw) > max_bytes:
        raise ValueError(f"{name}: larger than {max_bytes:,} bytes; not a file b2b wrote")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not UTF-8 text (expected JSON)") from None
    depth = _json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{name}: JSON nested {depth} levels deep, more than the {max_depth} expected")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{name}: not valid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(value, expect):
        want = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise ValueError(f"{name}: holds {_JSON_NAMES.get(type(value), type(value).__name__)}, expected {want}")
    return value


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


def json_problem(value: Any, schema: dict[str, type | tuple[type, ...]], where: str = "") -> str | None:
    """What is wrong with the JSON object ``value`` against ``schema`` (key -> required type(s);
    a key ending in ``?`` may be missing or null), or None. ``bool`` never passes for a number."""
    if not isinstance(value, dict):
        return f"{where.rstrip('.') or 'the top level'} is {_JSON_NAMES.get(type(value), type(value).__name__)}, expected an object"
    for key, types in schema.items():
        optional = key.endswith("?")
        key = key.rstrip("?")
        types = types if isinstance(types, tuple) else (types,)
        v = value.get(key)
        if v is None and optional:
            continue
        if key not in value:
            return f"{where}{key!r} is missing"
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            want = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)
            return f"{where}{key!r} is {_JSON_NAMES.get(type(v), type(v).__name__)}, expected {want}"
    return None


_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS_RE = re.compile(r"[\[\]{}]")


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets in JSON ``text`` (strings removed first)."""
    depth = deepest = 0
    for ch in _BRACKETS_RE.findall(_JSON_STRING_RE.sub("", text)):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the file system that holds ``path``, or would hold it once created (the
    nearest existing folder above it is asked)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        p = p.parent
    return shutil.disk_usage(p).free


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], Any], mode: str = "wb") -> Path:
    """Call ``write(f)`` on a file opened with ``mode`` at a temporary name, then move it onto ``path``.

    Parameters
    ----------
    path : str or PathLike
        The final file name. Its folder must exist.
    write : callable
        Writes the contents to the open file object ``f`` (e.g. ``lambda f: np.save(f, x)``).
    mode : str
        ``"wb"`` (bytes) or ``"w"`` (text, UTF-8).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
        write(f)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return atomic_write(path, lambda f: f.write(text), mode="w")


# --------------------------------------------------------------------------- folder locks
class FolderLocked(OSError):
    """Another process holds the lock of a folder; the message names the folder and the holder."""

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


class FolderLock:
    """An exclusive advisory lock on a folder, held through ``<folder>/<name>`` (``fcntl.flock``).

    The lock belongs to the open file, so the kernel releases it when the holder exits, even on
    ``kill -9``: a lock file left behind by a dead process never blocks (a clean release removes
    the file). While held, the file records the holder (pid, host, start time, command) so that a refused caller can say who
    holds it. On systems without ``fcntl`` (Windows) the lock is a no-op.

    Parameters
    ----------
    folder : str or PathLike
        The folder to lock; created (with parents) if missing.
    name : str
        The lock file's name inside ``folder``.
    what : str
        How to call the folder in messages (e.g. ``"--out runs/seed"``).
    required : bool
        False: where the file system refuses ``flock`` itself (e.g. ENOLCK on some network file
        systems) go on without the lock instead of failing; :attr:`exclusive` then says so.
    """

    def __init__(self, folder: str | os.PathLike, name: str = ".lock", what: str | None = None,
                 required: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what = what or str(self.folder)
        self.required = required
        self._file: IO[Any] | None = None
        self.since: float | None = None
        #: Whether the held lock really excludes other processes (False without ``flock``).
        self.exclusive = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def holder(self) -> str:
        """What the lock file says about its holder (one line; ``"unknown"`` if unreadable)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return " ".join(text.split()) or "unknown"

    def acquire(self, wait: bool = False, on_wait: Callable[[str], Any] | None = None) -> "FolderLock":
        """Take the lock; :class:`FolderLocked` if another process holds it and ``wait`` is False.

        With ``wait`` True, block until the holder releases it (calling ``on_wait(holder)`` once
        first). OSError (one line naming the folder) if the folder cannot be created or written.
        """
        if self._file is not None:
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(self.folder))
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            fcntl = None
        told = False
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                f = open(self.path, "a+", encoding="utf-8", opener=_no_follow)
            except OSError as e:
                raise _with_path(e, self.folder, "cannot write here") from None
            try:
                exclusive = fcntl is not None
                if fcntl is not None:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        if not wait:
                            raise FolderLocked(
                                errno.EWOULDBLOCK, f"{self.what} is in use by another process ({self.holder()})"
                            ) from None
                        if on_wait is not None and not told:
                            told = True
                            on_wait(self.holder())
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                    except OSError:  # the file system has no locks (ENOLCK, ...)
                        if self.required:
                            raise
                        exclusive = False
                # the holder we waited for removes the file when it is done: lock the file that is there
                try:
                    same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    f.close()
                    continue
                self.since = time.time()
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
                cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {cmd}\n")
                f.flush()
            except BaseException:
                f.close()
                raise
            self._file = f
            self.exclusive = exclusive
            return self

    def release(self) -> None:
        """Release the lock and remove the lock file; no-op if not held."""
        f, self._file = self._file, None
        self.exclusive = False
        if f is None:
            return
        try:
            with suppress(OSError):
                self.path.unlink()  # still locked: whoever waits on this file retries on the new one
        finally:
            f.close()  # closing the file drops the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # a lock that is dropped while held is released (file removed)
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit modules may be gone
            pass


def _no_follow(path: str, flags: int) -> int:
    """``open``'s opener that never follows a symlink at the last component (ELOOP instead)."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)


def remove_leftovers(folder: str | os.PathLike, pattern: str | re.Pattern, older_than: float | None = None) -> list[Path]:
    """Remove temporary files/folders in ``folder`` whose names match ``pattern`` (``re.fullmatch``).

    Call it only while holding the folder's :class:`FolderLock`: every writer of that folder
    holds the lock, so matching temporaries belong to dead runs. ``older_than`` (a
    ``time.time()``) additionally spares anything modified after it.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not rx.fullmatch(p.name):
            continue
        try:
            if older_than is not None and p.lstat().st_mtime > older_than:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _with_path(e: OSError, path: str | os.PathLike, context: str | None = None) -> OSError:
    """``e`` as an OSError naming ``path`` (kept if ``e`` already names a file), for one-line messages."""
    if e.errno is None:
        return e
    strerror = e.strerror or str(e)
    if context:
        strerror = f"{context} ({strerror})"
    return OSError(e.errno, strerror, str(e.filename if e.filename is not None else path))
