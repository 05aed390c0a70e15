"""Writing files atomically.

A reader of a file that b2b writes sees either the previous complete file or the new complete
one, never a half-written one: the data goes to a temporary name in the same folder, is flushed
to disk, and is then moved onto the final name with ``os.replace`` (atomic on POSIX and
Windows). If writing fails, the temporary file is removed and the old file is left untouched,
and an OSError names the file being written (e.g. ``ENOSPC`` on a full disk).

:class:`FolderLock` gives one process at a time a folder (training runs, dataset builds), and
:func:`remove_leftovers` clears the temporaries of writers that were killed (``kill -9``) before
they could clean up, once the folder's lock shows that nobody else is writing there.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
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
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data is on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # name the file being written (not the temporary) in the message
        if e.errno is not None and (e.filename is None or str(e.filename) == str(tmp)):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


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
                f = open(self.path, "a+", encoding="utf-8")
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
