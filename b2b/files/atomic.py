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
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
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
                 pattern: str | re.Pattern | None = None, name: str = ".lock", wait: bool = False,
                 on_wait: Callable[[str], Any] | None = None, required: bool = True,
                 also: Iterable[tuple[str | os.PathLike, str | re.Pattern]] = (),
                 hint: str | None = None, inputs: Iterable[str | os.PathLike | None] = (),
                 restore: Iterable[str | os.PathLike] = ()) -> "FolderLock":
    """Lock a command's output and remove what killed runs of it left; return the held lock.

    The one lock-and-leftovers call of every b2b command (train's run folder, generate, evaluate,
    export, ``data bach``, ``data lpd17``). The removed leftovers are the lock's ``removed``.

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
    name : str
        The lock file's name in the folder (not with ``file``).
    wait, on_wait : bool, callable
        Wait for a holder instead of refusing (:meth:`FolderLock.acquire`).
    required : bool
        False: go on without a lock where the file system has none (leftovers are then kept).
    also : iterable of (folder, pattern)
        Leftovers of other folders the same lock guards.
    hint : str, optional
        Appended to the refusal's message (what to do).
    inputs : iterable of paths
        The command's inputs: an output that is one of them is refused (ValueError), so no command
        ever replaces what it reads (``export --out`` equal to ``--checkpoint``).
    restore : iterable of paths
        Output folders whose swap a killed run may have left half done: put back
        (:func:`restore_replaced`) before the leftovers are removed.

    Raises
    ------
    FolderLocked
        Another process holds it (the message names ``what`` and the holder).
    ValueError
        The output is one of ``inputs``.
    """
    path = Path(path)
    check_not_input(path, inputs, what)
    if file:
        check_output(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "folder does not exist", str(path.parent))
        folder, lock = path.parent, FolderLock(path.parent, f".{path.name}.lock", what, required=required)
        rx = pattern or temporary_re(path.name)
    else:
        folder, lock = path, FolderLock(path, name, what=what, required=required)
        rx = pattern or TEMPORARY_RE
    try:
        lock.acquire(wait=True, on_wait=on_wait) if wait else lock.acquire()
    except FolderLocked as e:
        if hint is None:
            raise
        raise FolderLocked(e.errno, f"{e.strerror}; {hint}") from None
    try:
        removed: list[Path] = []
        if lock.exclusive or fcntl_missing():  # without the lock a leftover may be another run's work
            for kept in restore:
                restore_replaced(kept)
            for where, rx_ in ((folder, rx), *also):
                removed += remove_leftovers(where, rx_, older_than=lock.since)
        lock.removed = removed
    except BaseException:
        lock.release()
        raise
    return lock


def fcntl_missing() -> bool:
    """Whether this system has no ``fcntl`` (Windows): locks are then no-ops."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return True
    return False


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], what: str) -> None:
    """ValueError naming ``what`` if the output ``out`` is one of ``inputs`` (the same file, also
    through another name or a link): a command never replaces what it reads."""
    out = Path(out)
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        try:
            same = os.path.samefile(out, inp)
        except OSError:
            same = False
        if same:
            raise ValueError(f"{what}: {out} is also an input of this command ({inp}); it would be "
                             "replaced while read: choose another output")


def publish(stage: str | os.PathLike, out: str | os.PathLike, names: Sequence[str],
            remove: Iterable[str] = ()) -> list[Path]:
    """Swap a staged set of files into ``out`` as a whole: all of them or none.

    Every ``stage/<name>`` (names may hold a sub-folder, ``figures/a.png``) replaces
    ``out/<name>``, in order (put the file that says a set is complete last); ``remove`` names
    earlier outputs that the new set does not have (a larger batch's numbered files). The files
    they replace are first moved into a private ``.b2b-old.<random>.tmp`` folder, then the new
    ones are moved in, then the old ones are deleted. If anything fails or interrupts it (a folder
    or an immutable file at a name, a full disk, Ctrl-C, SIGTERM) every move is undone: ``out``
    holds exactly what it held before, byte for byte, and the error is raised. Renames within a
    folder are atomic, so only ``kill -9`` in the middle of the few renames can split a set.

    Returns
    -------
    list of Path
        ``out/<name>`` for each of ``names``.
    """
    stage, out = Path(stage), Path(out)
    backup = out / f".b2b-old.{uuid.uuid4().hex[:8]}.tmp"
    moved: list[str] = []  # old files moved into backup
    placed: list[str] = []  # new files moved into out
    made: list[Path] = []  # folders this call created in out
    try:
        backup.mkdir()
        for name in dict.fromkeys([*names, *remove]):
            dst = out / name
            check_output(dst)  # a folder, link, FIFO or device at a name: refused, nothing moved
            if os.path.lexists(dst):
                (backup / name).parent.mkdir(parents=True, exist_ok=True)
                os.rename(dst, backup / name)
                moved.append(name)
        for name in names:
            dst = out / name
            if not dst.parent.is_dir():
                dst.parent.mkdir(parents=True)
                made.append(dst.parent)
            os.rename(stage / name, dst)
            placed.append(name)
    except BaseException:
        for name in reversed(placed):
            with suppress(OSError):
                os.rename(out / name, stage / name)
        for name in reversed(moved):
            with suppress(OSError):
                os.rename(backup / name, out / name)
        for folder in reversed(made):
            with suppress(OSError):
                folder.rmdir()
        shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return [out / name for name in names]


def restore_replaced(path: str | os.PathLike) -> Path | None:
    """Put back a folder whose swap was killed between its two renames.

    Folder writers (:func:`b2b.datasets.store.write_store`) move the old ``<name>`` aside to
    ``.<name>.<8 hex>.old``, rename the new one into place, then delete the old one. If ``path``
    is missing and such a folder exists beside it, the newest is renamed back (call it holding
    the folder's lock, before the leftovers are removed); returns it, or None.
    """
    path = Path(path)
    if os.path.lexists(path):
        return None
    rx = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.old")
    try:
        aside = [p for p in path.parent.iterdir() if rx.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return None
    if not aside:
        return None
    newest = max(aside, key=lambda p: p.stat().st_mtime)
    with suppress(OSError):
        os.rename(newest, path)
        return newest
    return None


#: Leftovers of :func:`publish` (its folder of replaced files) in an output folder.
PUBLISH_LEFTOVER_RE = re.compile(r"\.b2b-old\.[0-9a-f]{8}\.tmp")


#: Largest JSON file :func:`read_json` reads (bytes) and deepest nesting it accepts, by default.
JSON_MAX_BYTES = 64 * 2**20
JSON_MAX_DEPTH = 32


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] = dict, *,
              max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH,
              what: str | None = None, schema: dict[str, Any] | None = None) -> Any:
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
    schema : dict, optional
        The fields the top-level object must have, checked by :func:`json_problem` (types by key,
        ``key?`` optional, a dict value a nested object's schema).

    Raises
    ------
    ValueError
        One line naming the file: not a regular file (a FIFO or device is never opened for
        reading, so it cannot block), too big, too deep, not UTF-8 JSON, of the wrong type, or a
        field of the wrong type (``schema``).
    OSError
        It cannot be read (the message names it).
    """
    name = what or str(path)
    try:
        with open_regular(path) as f:
            raw = f.read(max_bytes + 1)
    except NotARegularFile as e:
        raise ValueError(f"{name}: {e.strerror}") from None
    except OSError as e:
        raise _with_path(e, path) from None
    value = parse_json(raw, expect, max_bytes=max_bytes, max_depth=max_depth, what=name)
    if schema is not None:
        problem = json_problem(value, schema)
        if problem is not None:
            raise ValueError(f"{name}: {problem}")
    return value


def open_regular(path: str | os.PathLike, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for reading only if it is a regular file; :class:`NotARegularFile` (an OSError
    naming it) for a folder, FIFO, socket or device, which is never left open.

    The file is opened non-blocking and checked with ``fstat`` before anything is read, so a FIFO
    at the name (whose plain ``open`` waits for a writer forever) or a device cannot block the
    reader; the regular file is then read normally. ``mode`` is ``"rb"`` or ``"r"`` (``kwargs``:
    ``encoding``, ``errors``).
    """
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular reads only, got mode {mode!r}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise NotARegularFile(errno.EISDIR, "is a folder, expected a regular file", str(path)) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotARegularFile(errno.EINVAL, f"is {kind}, expected a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


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
    a key ending in ``?`` may be missing or null; a dict is the schema of a nested object), or
    None. ``bool`` never passes for a number. The one field check of every JSON file b2b reads."""
    if not isinstance(value, dict):
        return f"{where.rstrip('.') or 'the top level'} is {_JSON_NAMES.get(type(value), type(value).__name__)}, expected an object"
    for key, types in schema.items():
        optional = key.endswith("?")
        key = key.rstrip("?")
        nested = types if isinstance(types, dict) else None
        types = (dict,) if nested is not None else types if isinstance(types, tuple) else (types,)
        v = value.get(key)
        if v is None and optional:
            continue
        if key not in value:
            return f"{where}{key!r} is missing"
        if nested is not None and isinstance(v, dict):
            problem = json_problem(v, nested, f"{where}{key}.")
            if problem is not None:
                return problem
            continue
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
    text = "b" not in mode  # a path's undecodable bytes (surrogates) are written back as those bytes
    with atomic_path(path) as tmp, open(tmp, mode, encoding="utf-8" if text else None,
                                         errors="surrogateescape" if text else None) as f:
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
        self._child = False  # a forked copy in a worker: never releases (removes) the parent's lock
        self.since: float | None = None
        #: Whether the held lock really excludes other processes (False without ``flock``).
        self.exclusive = False
        #: What :func:`claim_output` removed (leftovers of killed runs) when it took the lock.
        self.removed: list[Path] = []

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
                f = open(self.path, "a+", encoding="utf-8", errors="backslashreplace", opener=_no_follow)
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
            _HELD.add(self)
            return self

    def release(self) -> None:
        """Release the lock and remove the lock file; no-op if not held."""
        f, self._file = self._file, None
        self.exclusive = False
        _HELD.discard(self)
        if f is None or self._child:
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


#: The locks this process holds, so that a forked child (a worker) drops its copies at once.
_HELD: "weakref.WeakSet[FolderLock]" = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    """In a forked child: close the inherited descriptors of the parent's locks, so that only the
    parent holds them (a worker that outlives a killed parent never keeps a folder locked), and
    mark the copies so that the child never removes the parent's lock file."""
    for lock in list(_HELD):
        f, lock._file, lock._child = lock._file, None, True
        if f is not None:
            with suppress(OSError, ValueError):
                os.close(f.fileno())
            with suppress(Exception):
                f.close()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


def die_with_parent(parent: int | None = None) -> None:
    """Worker initializer: end this process when its parent ends (even by ``kill -9``).

    On Linux the kernel sends SIGKILL to the worker when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``); a parent already gone (pid ``parent`` is no longer this
    process's parent) ends the worker at once. Elsewhere it does nothing: the pool's own
    shutdown ends the workers.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


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
