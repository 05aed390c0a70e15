"""Writing files atomically.

A reader of a file that b2b writes sees either the previous complete file or the new complete
one, never a half-written one: the data goes to a temporary name in the same folder, is flushed
to disk, and is then moved onto the final name with ``os.replace`` (atomic on POSIX and
Windows). If writing fails, the temporary file is removed and the old file is left untouched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    finally:
        tmp.unlink(missing_ok=True)


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
