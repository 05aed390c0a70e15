"""Getting LPD-17-cleansed onto disk: download, verify, extract and read safely (steps 1-2 of ``b2b data lpd17``).

:mod:`b2b.datasets.lpd` chooses and converts songs; this module only brings the three upstream files into
``<root>/lpd17-raw`` and the archive's songs into ``<root>/lpd17-raw/extracted``, and knows
nothing about pianorolls:

1. **Download** three files (URLs in :data:`DEFAULT_URLS`, each overridable): the archive
   ``lpd_17_cleansed.tar.gz``, the id list ``cleansed_ids.txt`` (``md5    msd_id`` per line) and
   the genre labels ``labels.tar.gz``. Downloads go to ``name.part`` and resume with an HTTP
   ``Range`` request after an interruption (a server that ignores ``Range`` restarts them);
   the SHA-256 of each finished download is recorded in ``<root>/manifest.json`` and checked
   again whenever the file is reused, or checked against ``--sha256 KIND=HEX``.
2. **Extract** the archive safely (no absolute paths, no ``..``, no links leaving the folder, no
   device or sparse files; plus the ``"data"`` extraction filter), within bounds on what it may
   write (:data:`EXTRACT_MAX_MEMBERS`, :data:`EXTRACT_MAX_BYTES`,
   :data:`EXTRACT_MAX_MEMBER_BYTES`, :data:`EXTRACT_MAX_RATIO`) and after checking the free disk
   space, into a temporary folder renamed into place, once: the manifest records which archive
   (SHA-256 and URL) was extracted. A different archive (another ``--archive-url`` whose file
   differs, or ``--sha256 archive=...``) is extracted again, with a warning. The
   ``lpd_17_cleansed`` folder is found by structure: the upstream archive holds
   ``lpd_17/lpd_17_cleansed/...``; a bare ``lpd_17_cleansed/...`` top works too.

It also reads what it brought within bounds, so that :mod:`b2b.datasets.lpd` selects and
converts without checking files itself: the id list (:func:`read_cleansed_ids`,
:data:`IDS_MAX_LINES`), one genre's list from the labels archive without extracting it
(:func:`read_genre_list`, :data:`LABELS_MAX_MEMBERS`, :data:`LABELS_MAX_LIST_BYTES`), and the sizes a
song file declares before it is read (:func:`check_song_sizes`); a download in the wrong format is
deleted (:func:`read_download`). And it holds the data root for one run at a time
(:func:`claim_root`: the lock, the leftovers of killed runs, operating-system errors in one line).

The bounds and network settings are module attributes so that tests can lower them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import gzip
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from b2b.datasets.store import MAX_EXPANSION, npy_member_header
from b2b.files.atomic import (FolderLocked, NotARegularFile, check_output, claim_output, free_bytes, json_problem,
                              open_regular, read_json, write_text)
from b2b.music.data import DataError

# --------------------------------------------------------------------------------------------
# Where the files come from: the ONE place to change when the upstream links move again.
# --------------------------------------------------------------------------------------------

#: Default download URLs. The archive and id-list links are the ones the upstream dataset page
#: (https://salu133445.github.io/lakh-pianoroll-dataset/dataset, source ``docs/dataset.md`` of
#: github.com/salu133445/lakh-pianoroll-dataset) gave for LPD-17-cleansed and
#: ``cleansed_ids.txt``; the labels archive is ``data/labels.tar.gz`` of the same repository.
#: These links have moved before (Google Drive, then SharePoint); if one fails, find the current
#: link on the dataset page and pass it with ``--archive-url``/``--ids-url``/``--labels-url``
#: (``file://`` URLs of files you downloaded yourself work too).
DEFAULT_URLS: dict[str, str] = {
    "archive": "https://drive.google.com/uc?id=1ycvALTnMNWnXcwXDjS7YeNC6mQtANvMK&export=download&confirm=t",
    "ids": "https://drive.google.com/uc?id=1EmCZQvc5Yqtz4y8TO5Ms_JpzDT6WRPEO&export=download&confirm=t",
    "labels": "https://github.com/salu133445/lakh-pianoroll-dataset/raw/HEAD/data/labels.tar.gz",
}
#: The dataset page to look for moved links.
DATASET_PAGE = "https://salu133445.github.io/lakh-pianoroll-dataset/dataset"
#: File names of the three downloads (inside ``<root>/lpd17-raw``).
FILENAMES: dict[str, str] = {
    "archive": "lpd_17_cleansed.tar.gz",
    "ids": "cleansed_ids.txt",
    "labels": "labels.tar.gz",
}
_WHAT = {"archive": "LPD-17-cleansed archive", "ids": "id list", "labels": "genre labels"}
URL_OPTION = {"archive": "--archive-url", "ids": "--ids-url", "labels": "--labels-url"}

RAW_DIR = "lpd17-raw"
EXTRACTED_DIR = "extracted"
TOP_FOLDER = "lpd_17_cleansed"
MANIFEST_NAME = "manifest.json"
MANIFEST_KEY = "lpd17"
MANIFEST_FORMAT = 1
N_CLEANSED = 21_425
#: The lock file that allows one ``b2b data lpd17`` run per data root.
LOCK_NAME = ".b2b-lpd17.lock"

#: Bounds on what extracting the archive may write: an archive beyond them (a "tar bomb") is
#: refused and what it wrote removed. The upstream archive holds N_CLEANSED = 21,425 ``.npz``
#: files (plus under 45,000 folders) and extracts to about 2.3-3.2 GB; the bounds leave a wide
#: margin (module attributes so tests can lower them).
EXTRACT_MAX_MEMBERS = 250_000
EXTRACT_MAX_BYTES = 8 * 2**30
EXTRACT_MAX_MEMBER_BYTES = 256 * 2**20
#: An archive may extract to at most this many times its own size (at least
#: EXTRACT_MIN_ALLOWANCE bytes): the upstream one, of already-compressed ``.npz`` files, about
#: 1.4 GB, extracts to about 2.3-3.2 GB (about 2x); a 1 MB archive of 1 GB is a bomb.
EXTRACT_MAX_RATIO = 32
EXTRACT_MIN_ALLOWANCE = 64 * 2**20
#: Decompressed bytes allowed after the end of the tar data (tar pads with zeros to 10 KiB).
EXTRACT_MAX_TRAILING_BYTES = 16 * 2**20
#: Data of one pax/GNU long-name header (read into memory by tarfile): real ones are < 1 KiB.
EXTRACT_MAX_HEADER_BYTES = 2**20
#: Free disk space demanded on top of what a step writes. Extracting also needs 1/8 of the
#: estimated size for folders and file-system blocks (about 0.2 GB for the upstream archive).
DISK_MARGIN_BYTES = 64 * 2**20
#: Largest download accepted per kind (the upstream files: about 1.4 GB, 1.1 MB, 0.9 MB).
DOWNLOAD_MAX_BYTES: dict[str, int] = {"archive": 8 * 2**30, "ids": 64 * 2**20,
                                      "labels": 64 * 2**20}

#: Network settings (module attributes so tests can shorten them).
TIMEOUT_S = 60.0
RETRIES = 5
RETRY_WAIT_S = 2.0
CHUNK = 1 << 20


def warn(msg: str) -> None:
    """Print a ``b2b data lpd17`` warning to stderr."""
    print(f"b2b data lpd17: warning: {msg}", file=sys.stderr)


def say(msg: str) -> None:
    """Print a progress message to stdout."""
    print(msg, flush=True)


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second (the manifest's time stamps)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


_BAR_CLASS = None


def progress_bar(**kwargs: Any):
    """A tqdm progress bar without tqdm's monitor thread (a live thread rules out ``fork``)."""
    global _BAR_CLASS
    if _BAR_CLASS is None:
        from tqdm.auto import tqdm

        _BAR_CLASS = type("Bar", (tqdm,), {"monitor_interval": 0})
    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("file", sys.stderr)
    return _BAR_CLASS(**kwargs)


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def read_manifest(root: str | os.PathLike) -> dict:
    """The LPD-17 section of ``<root>/manifest.json`` (empty dict when there is none).

    Parameters
    ----------
    root : path
        The data root.

    Returns
    -------
    dict
        Keys ``downloads``, ``extracted``, ``selection``, ``store`` as they were recorded.
    """
    return _read_whole_manifest(Path(root)).get(MANIFEST_KEY, {})


#: What each entry of the manifest's LPD-17 section must be (see :func:`b2b.files.atomic.json_problem`).
_MANIFEST_SCHEMA = {"format?": int, "downloads?": dict, "extracted?": dict, "selection?": dict, "store?": dict}
_DOWNLOAD_SCHEMA = {"file?": str, "url?": str, "sha256?": str, "bytes?": int, "time?": str}
_MANIFEST_PARTS = {
    "extracted": {"url?": str, "archive_sha256?": str, "cleansed_dir?": str},
    "store": {"request?": dict, "inputs?": dict},
}


def _read_whole_manifest(root: Path) -> dict:
    path = root / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        data = read_json(path)
    except ValueError as e:
        raise ValueError(f"{e}; delete it to start afresh") from None
    section = data.get(MANIFEST_KEY, {})
    problem = json_problem(section, _MANIFEST_SCHEMA, f"{MANIFEST_KEY}.")
    if problem is None:
        downloads = section.get("downloads") or {}
        bad = [k for k, v in downloads.items() if not (v is None or isinstance(v, dict))]
        problem = f"{MANIFEST_KEY}.downloads.{bad[0]} is not an object" if bad else None
        for kind, entry in downloads.items():  # each download's fields, typed like the others
            if problem is None and isinstance(entry, dict):
                problem = json_problem(entry, _DOWNLOAD_SCHEMA, f"{MANIFEST_KEY}.downloads.{kind}.")
        for key, schema in _MANIFEST_PARTS.items():
            if problem is None and section.get(key) is not None:
                problem = json_problem(section[key], schema, f"{MANIFEST_KEY}.{key}.")
    if problem is not None:
        raise ValueError(f"{path}: {problem}; delete it to start afresh")
    for key in ("downloads", "extracted", "selection", "store"):  # null reads as absent
        if key in section and section[key] is None:
            del section[key]
    return data


def update_manifest(root: Path, change: Callable[[dict], None]) -> dict:
    """Read the manifest, apply ``change`` to its LPD-17 section, write it back atomically."""
    whole = _read_whole_manifest(root)
    section = whole.setdefault(MANIFEST_KEY, {})
    section["format"] = MANIFEST_FORMAT
    change(section)
    write_text(root / MANIFEST_NAME, json.dumps(whole, indent=1, sort_keys=True) + "\n")
    return section


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file as 64 lowercase hex digits (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open_regular(path) as f:  # a FIFO or device at the name is refused, never waited on
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _moved_hint(kind: str) -> str:
    return (
        f"the LPD download links have moved before: find the current link for the "
        f"{_WHAT[kind]} on {DATASET_PAGE} and pass it with {URL_OPTION[kind]}"
    )


_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


def _read_part_info(info_path: Path) -> dict:
    """What a partial download recorded (``url``, ``validator``); ``{}`` (not resumable) when
    the file is missing, unreadable, too big or deep, or not of that shape."""
    try:
        info = read_json(info_path, max_bytes=2**16)
    except (OSError, ValueError):
        return {}
    return info if json_problem(info, {"url": str, "validator?": str}) is None else {}


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    kind: str = "archive",
    expected_sha256: str | None = None,
    progress: bool = True,
) -> tuple[str, int]:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming an interrupted download.

    An existing ``dest.part`` left by an earlier attempt at the same URL is resumed with an HTTP
    ``Range`` request (``If-Range`` carries the server's ETag/Last-Modified when known); a server
    that answers 200 instead of 206 restarts the file. A connection cut before the announced
    length is retried from where it stopped, up to :data:`RETRIES` times. Only a complete file
    whose SHA-256 matches ``expected_sha256`` (when given) is renamed to ``dest``. Bytes that
    arrived before a read timeout (a stalled server) are kept and resumed from.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``file://`` URL.
    dest : path
        Final file name; ``dest.part`` and ``dest.part.json`` are used while downloading.
    kind : str
        ``"archive"``, ``"ids"`` or ``"labels"`` (for messages).
    expected_sha256 : str, optional
        64 hex digits the download must match.

    Returns
    -------
    (sha256, size) : (str, int)
        Hex digest and size in bytes of ``dest``.

    Raises
    ------
    ValueError
        Unreachable URL, HTTP error, an HTML page instead of the file, a file longer than
        :data:`DOWNLOAD_MAX_BYTES` for ``kind`` (deleted), too little free disk space for the
        announced length, a download still cut after all retries (``dest.part`` is kept for the
        next run), or a checksum mismatch (the download is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    info_path = dest.with_name(dest.name + ".part.json")
    what = _WHAT.get(kind, kind)
    failures = 0
    for name in (dest, part, info_path):  # a FIFO or device there would block the write (or read)
        check_output(name)
    while True:
        info = _read_part_info(info_path) if part.exists() else {}
        if part.exists() and info.get("url") != url:
            part.unlink()  # a leftover of another URL: cannot be resumed
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "b2b-lpd17/1 (python urllib)", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if info.get("validator"):
                headers["If-Range"] = info["validator"]
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:
                m = re.match(r"^bytes\s+\*/(\d+)$", e.headers.get("Content-Range", "") or "")
                if m and int(m.group(1)) == offset:
                    break  # the part was already complete
                part.unlink()  # the part does not fit this file: start again
                continue
            raise ValueError(
                f"could not download the {what} from {url}: HTTP {e.code} {e.reason}; "
                + _moved_hint(kind)
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            if failures and failures <= RETRIES:  # reconnecting after a cut: try again
                failures += 1
                say(f"reconnecting to {url} failed ({reason}); trying again")
                time.sleep(RETRY_WAIT_S * failures)
                continue
            raise ValueError(
                f"could not reach {url} for the {what}: {reason}; check the network or "
                + _moved_hint(kind)
            ) from None
        with response:
            status = getattr(response, "status", None) or 200
            ctype = (response.headers.get("Content-Type") or "").lower()
            if ctype.startswith("text/html"):
                raise ValueError(
                    f"{url} returned a web page instead of the {what} (a sign-in or "
                    f"download-confirmation page, or a moved link); " + _moved_hint(kind)
                )
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if status == 206 and offset:
                m = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "") or "")
                if not m or int(m.group(1)) != offset:
                    part.unlink()  # a range we did not ask for: start again
                    continue
                total = int(m.group(3)) if m.group(3) != "*" else None
                mode = "ab"
            else:
                if offset:
                    say(f"{url} does not resume downloads; starting the {what} again")
                offset, mode = 0, "wb"
                total = length
            limit = DOWNLOAD_MAX_BYTES.get(kind)
            if limit is not None and total is not None and total > limit:
                part.unlink(missing_ok=True)
                raise ValueError(
                    f"{url} announces {total:,} bytes, more than the {limit:,} accepted for the "
                    f"{what} (DOWNLOAD_MAX_BYTES); " + _moved_hint(kind))
            if total is not None:
                check_free_space(dest.parent, total - offset + DISK_MARGIN_BYTES,
                                 f"download {dest.name}")
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            write_text(info_path, json.dumps({"url": url, "validator": validator}))
            cut = None
            # read1 returns what has arrived (up to CHUNK) instead of waiting for a full CHUNK:
            # bytes that came before a read timeout are already written, and the next try
            # resumes after them (read(CHUNK) dropped a partly filled chunk on timeout).
            read = getattr(response, "read1", None) or response.read
            with open(part, mode) as f, progress_bar(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"{dest.name}", disable=not progress,
            ) as bar:
                while True:
                    try:
                        chunk = read(CHUNK)
                    except (http.client.HTTPException, OSError) as e:
                        cut = f"{type(e).__name__}: {e}"
                        break
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
                    if limit is not None and f.tell() > limit:
                        cut = "too long"
                        break
            size = part.stat().st_size
        if limit is not None and size > limit:
            part.unlink()
            info_path.unlink(missing_ok=True)
            raise ValueError(
                f"the {what} from {url} is longer than the {limit:,} bytes accepted "
                f"(DOWNLOAD_MAX_BYTES); the download was deleted; " + _moved_hint(kind))
        if total is not None and size > total:
            part.unlink()
            raise ValueError(
                f"the {what} from {url} is longer than the server announced "
                f"({size} > {total} bytes); the download was deleted, try again"
            )
        if total is not None and size < total:
            cut = cut or "connection closed early"
        if cut is None:
            break
        failures += 1
        if failures > RETRIES:
            raise ValueError(
                f"the download of the {what} from {url} was interrupted {failures} times "
                f"({cut}); {size:,} of {total if total is not None else '?'} bytes are kept in "
                f"{part}: run the same command again to resume"
            )
        say(f"download of {dest.name} interrupted at {size:,} bytes ({cut}); resuming")
        time.sleep(RETRY_WAIT_S * failures)
    digest = sha256_file(part)
    size = part.stat().st_size
    if expected_sha256 and digest != expected_sha256.lower():
        part.unlink()
        info_path.unlink(missing_ok=True)
        raise ValueError(
            f"checksum mismatch for the {what} downloaded from {url}: SHA-256 is {digest}, "
            f"expected {expected_sha256.lower()} (--sha256 {kind}=...); the download was deleted"
        )
    os.replace(part, dest)
    info_path.unlink(missing_ok=True)
    return digest, size


def ensure_download(root: Path, kind: str, url: str, expected: str | None,
                     progress: bool) -> tuple[Path, str]:
    """Return (path, sha256) of a verified download of ``kind``, downloading it if needed.

    A file in place is reused when it still has the SHA-256 the manifest recorded and came from
    ``url``; a file that came from another URL is downloaded again from ``url`` and compared
    (a warning says which URL changed and whether the file did).
    """
    path = root / RAW_DIR / FILENAMES[kind]
    what = _WHAT[kind]
    recorded = read_manifest(root).get("downloads", {}).get(kind)
    previous = None  # (url, sha256) of a file replaced because the URL changed
    if path.exists():
        old_url = recorded.get("url") if recorded else None
        if old_url is not None and old_url != url:
            previous = (old_url, recorded.get("sha256"))
            warn(f"{path} was downloaded from {old_url}, not from {url} "
                  f"({URL_OPTION[kind]}): downloading it again to compare")
        else:
            digest = sha256_file(path)
            if recorded and recorded.get("sha256") and digest != recorded["sha256"]:
                raise ValueError(
                    f"{path} changed since it was downloaded: SHA-256 {digest}, the manifest "
                    f"recorded {recorded['sha256']}; delete it to download it again"
                )
            if expected and digest != expected:
                raise ValueError(
                    f"checksum mismatch for the {what} {path}: SHA-256 is {digest}, expected "
                    f"{expected} (--sha256 {kind}=...); delete it to download it again"
                )
            if not recorded or recorded.get("sha256") != digest:
                size = path.stat().st_size
                update_manifest(root, lambda s: s.setdefault("downloads", {}).__setitem__(
                    kind, {"file": f"{RAW_DIR}/{FILENAMES[kind]}", "url": None,
                           "sha256": digest, "bytes": size, "time": utc_now(),
                           "note": "found in place, not downloaded"}))
            return path, digest
    say(f"downloading the {what} from {url}")
    digest, size = download(url, path, kind=kind, expected_sha256=expected, progress=progress)
    update_manifest(root, lambda s: s.setdefault("downloads", {}).__setitem__(
        kind, {"file": f"{RAW_DIR}/{FILENAMES[kind]}", "url": url, "sha256": digest,
               "bytes": size, "time": utc_now()}))
    say(f"{FILENAMES[kind]}: {size:,} bytes, SHA-256 {digest}")
    if previous is not None:
        if digest == previous[1]:
            say(f"{FILENAMES[kind]} from {url} is the same file as from {previous[0]}")
        else:
            warn(f"{FILENAMES[kind]} from {url} differs from the one from {previous[0]} "
                  f"(SHA-256 {digest}, was {previous[1]}); using the new one")
    return path, digest


# --------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------


def check_member(member: tarfile.TarInfo) -> None:
    """Raise ValueError if extracting ``member`` could write outside the destination.

    Refused: absolute names, names with a ``..`` component, symbolic links whose target leaves
    the destination (absolute or climbing above it), hard links to such names, device files,
    FIFOs and any other special member. Regular files and folders pass.
    """
    name = member.name
    if "\x00" in name:
        raise ValueError(f"member {name!r} has a NUL byte in its name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"member {name!r} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValueError(f"member {name!r} has a '..' path component")
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
            raise ValueError(f"link {name!r} points to the absolute path {member.linkname!r}")
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            raise ValueError(f"link {name!r} points outside the archive folder "
                             f"({member.linkname!r})")
        return
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"member {name!r} is a device file, FIFO or other special file")


class HugeHeader(ValueError):
    """A tar header whose extended data would exceed :data:`EXTRACT_MAX_HEADER_BYTES`."""


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses pax and GNU long-name headers larger than
    :data:`EXTRACT_MAX_HEADER_BYTES` before tarfile reads their data into memory."""

    def _proc_member(self, tarfile_):  # noqa: D401 - tarfile's hook for every header
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
                and self.size > EXTRACT_MAX_HEADER_BYTES:
            raise HugeHeader(f"a header of {self.size:,} bytes, more than "
                              f"{EXTRACT_MAX_HEADER_BYTES:,} (EXTRACT_MAX_HEADER_BYTES)")
        return super()._proc_member(tarfile_)


class _CountingReader:
    """A read-only file wrapper that reports the bytes read to a progress bar."""

    def __init__(self, f, bar) -> None:
        self.f, self.bar = f, bar

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bar.update(len(data))
        return data


_SONG_MEMBER_RE = re.compile(
    rf"^(?:([^/]+)/)?{TOP_FOLDER}/([A-Z0-9])/([A-Z0-9])/([A-Z0-9])/(TR[A-Z0-9]{{16}})/"
    r"[0-9a-f]{32}\.npz$")


def song_member_top(name: str) -> str | None:
    """The folder holding ``lpd_17_cleansed/`` if ``name`` is a song file of an LPD-17-cleansed
    archive, else None.

    A song is ``[TOP/]lpd_17_cleansed/<A>/<B>/<C>/<MSD_ID>/<md5>.npz`` with A, B, C the
    characters 2, 3, 4 of the MSD id: the upstream archive has ``TOP = lpd_17``; a bare
    ``lpd_17_cleansed/`` top (``TOP`` absent) gives ``""``.

    >>> song_member_top("lpd_17/lpd_17_cleansed/A/A/A/TRAAAGR128F425B14B/" + "0" * 32 + ".npz")
    'lpd_17'
    >>> song_member_top("lpd_17_cleansed/A/A/A/TRAAAGR128F425B14B/" + "0" * 32 + ".npz")
    ''
    """
    name = name[2:] if name.startswith("./") else name
    m = _SONG_MEMBER_RE.match(name)
    if not m or m.group(5)[2:5] != m.group(2) + m.group(3) + m.group(4):
        return None
    return m.group(1) or ""


def extracted_size_estimate(archive: str | os.PathLike) -> int:
    """Bytes a ``.tar.gz`` holds once decompressed, from its gzip trailer (ISIZE).

    ISIZE is the decompressed size modulo 2**32; it is taken as at least the compressed size
    (``.npz`` files barely compress), adding 4 GiB as needed. Exact for the upstream archive
    (under 4 GiB decompressed); only an estimate for others, which the extraction bounds cover.
    """
    archive = Path(archive)
    with open_regular(archive) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(size - 4, 0))
        isize = int.from_bytes(f.read(4).ljust(4, b"\0"), "little")
    while isize < size:
        isize += 2**32
    return isize


class _NoSpace(ValueError):
    """Too little free disk space for a step (the inputs are fine)."""


def check_free_space(folder: str | os.PathLike, need: int, what: str) -> None:
    """Raise ValueError unless ``folder`` (or the nearest existing folder above it) has ``need``
    bytes free."""
    free = free_bytes(folder)
    if free < need:
        raise _NoSpace(
            f"not enough free disk space in {folder} to {what}: {free / 2**30:.2f} GiB free, "
            f"about {need / 2**30:.2f} GiB needed; free some space (or choose another --root) "
            f"and run again")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike,
                    progress: bool = True) -> dict:
    """Extract an LPD-17-cleansed ``.tar.gz`` safely into the new folder ``dest`` (atomically).

    Every member is checked with :func:`check_member` (and sparse files are refused) and
    extracted with the ``"data"`` filter where Python has it. What the archive may write is
    bounded before each member is written: :data:`EXTRACT_MAX_MEMBERS` members,
    :data:`EXTRACT_MAX_MEMBER_BYTES` per file, :data:`EXTRACT_MAX_BYTES` in all and at most
    :data:`EXTRACT_MAX_RATIO` times the archive's size (:data:`EXTRACT_MIN_ALLOWANCE` at least), and
    :data:`EXTRACT_MAX_TRAILING_BYTES` of data after the tar's end. The free disk space must
    hold :func:`extracted_size_estimate` plus :data:`DISK_MARGIN_BYTES`. The archive must hold
    song files in the LPD layout (:func:`song_member_top`), all under one ``lpd_17_cleansed``
    folder. Everything goes to a temporary folder next to ``dest`` that is renamed to ``dest``
    only when the whole archive was read without error; on any error (or interruption) the
    temporary folder is removed and ``dest`` is left as it was.

    Parameters
    ----------
    archive : path
        A gzip-compressed tar file.
    dest : path
        Folder to create (must not exist).

    Returns
    -------
    dict
        ``n_files`` (regular files), ``bytes`` (their total size), ``n_songs`` (song files in
        the LPD layout) and ``cleansed_dir``: the ``lpd_17_cleansed`` folder relative to
        ``dest`` (``"lpd_17/lpd_17_cleansed"`` for the upstream archive).

    Raises
    ------
    ValueError
        An unsafe member (named in the message), an archive beyond the bounds, a truncated or
        corrupt archive, one without the LPD layout, or too little free disk space.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise ValueError(f"{dest} already exists; remove it before extracting again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    estimate = extracted_size_estimate(archive)
    estimate = min(estimate, EXTRACT_MAX_BYTES)
    size = archive.stat().st_size
    allowed = min(EXTRACT_MAX_BYTES, max(EXTRACT_MIN_ALLOWANCE, EXTRACT_MAX_RATIO * size))
    check_free_space(dest.parent, estimate + estimate // 8 + DISK_MARGIN_BYTES,
                     f"extract {archive.name}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    n_members = n_files = n_bytes = n_songs = 0
    tops: dict[str, int] = {}
    use_filter = hasattr(tarfile, "data_filter")

    def refuse(why: str) -> ValueError:
        return ValueError(f"unsafe archive {archive}: {why}; nothing was extracted")

    try:
        with open_regular(archive) as raw, progress_bar(
            total=archive.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"extracting {archive.name}", disable=not progress,
        ) as bar:
            # gzip.GzipFile checks the CRC-32 and length trailer that tarfile's "r|gz" skips:
            # a damaged archive of already-compressed .npz files often inflates without error.
            gz = gzip.GzipFile(fileobj=_CountingReader(raw, bar), mode="rb")
            with gz, tarfile.open(fileobj=gz, mode="r|", tarinfo=BoundedTarInfo) as tar:
                for member in tar:
                    try:
                        check_member(member)
                    except ValueError as e:
                        raise refuse(str(e)) from None
                    n_members += 1
                    if n_members > EXTRACT_MAX_MEMBERS:
                        raise refuse(f"more than {EXTRACT_MAX_MEMBERS:,} members "
                                     f"(EXTRACT_MAX_MEMBERS; LPD-17-cleansed has {N_CLEANSED:,} "
                                     f"files)")
                    if member.isfile():
                        if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
                            raise refuse(f"member {member.name!r} is a sparse file")
                        if member.size > EXTRACT_MAX_MEMBER_BYTES:
                            raise refuse(f"member {member.name!r} is {member.size:,} bytes, more "
                                         f"than {EXTRACT_MAX_MEMBER_BYTES:,} "
                                         f"(EXTRACT_MAX_MEMBER_BYTES)")
                        if n_bytes + member.size > allowed and allowed < EXTRACT_MAX_BYTES:
                            raise refuse(f"its files hold more than {allowed:,} bytes, over "
                                         f"{EXTRACT_MAX_RATIO} times its own {size:,} "
                                         f"(EXTRACT_MAX_RATIO; LPD-17-cleansed extracts to about "
                                         f"twice its size)")
                        if n_bytes + member.size > EXTRACT_MAX_BYTES:
                            raise refuse(f"its files hold more than {EXTRACT_MAX_BYTES:,} bytes "
                                         f"(EXTRACT_MAX_BYTES; LPD-17-cleansed holds about "
                                         f"3 GB)")
                    if use_filter:
                        tar.extract(member, tmp, filter="data")
                    else:  # pragma: no cover - Python without extraction filters
                        tar.extract(member, tmp, set_attrs=False)
                    if member.isfile():
                        n_files += 1
                        n_bytes += member.size
                        top = song_member_top(member.name)
                        if top is not None:
                            n_songs += 1
                            tops[top] = tops.get(top, 0) + 1
                trailing = 0
                while True:  # read to the end so that the trailer gets checked
                    chunk = gz.read(CHUNK)
                    if not chunk:
                        break
                    trailing += len(chunk)
                    if trailing > EXTRACT_MAX_TRAILING_BYTES:
                        raise refuse(f"more than {EXTRACT_MAX_TRAILING_BYTES:,} bytes follow the "
                                     f"end of its tar data (EXTRACT_MAX_TRAILING_BYTES)")
        if not tops:
            raise ValueError(
                f"{archive} holds no {TOP_FOLDER}/ folder of songs (expected "
                f"lpd_17/{TOP_FOLDER}/<A>/<B>/<C>/<MSD_ID>/<md5>.npz, or {TOP_FOLDER}/... at "
                f"the top): is it the LPD-17-cleansed archive?")
        if len(tops) > 1:
            names = ", ".join(posixpath.join(t, TOP_FOLDER) for t in sorted(tops))
            raise ValueError(f"{archive} holds songs in more than one {TOP_FOLDER} folder "
                             f"({names}); expected one")
        os.replace(tmp, dest)
    except tarfile.FilterError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise refuse(str(e)) from None
    except HugeHeader as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise refuse(str(e)) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(
            f"{archive} is truncated or corrupt ({type(e).__name__}: {e})"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (top,) = tops
    return {"n_files": n_files, "bytes": n_bytes, "n_songs": n_songs,
            "cleansed_dir": posixpath.join(top, TOP_FOLDER)}


def extracted_source(section: dict) -> str | None:
    """The URL the extracted archive came from (None: unknown, e.g. a file found in place)."""
    recorded = section.get("extracted") or {}
    if "url" in recorded:
        return recorded["url"]
    dl = section.get("downloads", {}).get("archive") or {}  # manifests before "url" was kept
    return dl.get("url") if dl.get("sha256") == recorded.get("archive_sha256") else None


def _find_cleansed(dest: Path, recorded: dict | None) -> Path | None:
    """The extracted ``lpd_17_cleansed`` folder: the one the manifest records, else (manifests
    written before the layout was recorded) ``dest/lpd_17_cleansed`` or ``dest/*/lpd_17_cleansed``
    when exactly one exists; None when there is none."""
    if not recorded:
        return None
    rel = recorded.get("cleansed_dir")
    if isinstance(rel, str):
        p = dest / rel
        return p if p.is_dir() and p.resolve().is_relative_to(dest.resolve()) else None
    found = [p for p in [dest / TOP_FOLDER, *dest.glob(f"*/{TOP_FOLDER}")] if p.is_dir()]
    return found[0] if len(found) == 1 else None


def ensure_extracted(root: Path, url: str, expected: str | None, progress: bool,
                     remove_archive: bool = False) -> Path:
    """The folder holding ``lpd_17_cleansed/``, extracting the archive when needed.

    An extraction is reused when it came from the archive asked for: same ``--sha256 archive``
    if given, else same ``--archive-url``. Another URL is downloaded and compared; a different
    archive is extracted in place of the old one (warnings say which and why).
    ``remove_archive`` deletes the downloaded archive once it is extracted (``--remove-archive``).
    """
    raw = root / RAW_DIR
    dest = raw / EXTRACTED_DIR
    section = read_manifest(root)
    recorded = section.get("extracted")
    cleansed = _find_cleansed(dest, recorded)
    have = recorded.get("archive_sha256") if recorded else None
    if cleansed is not None:
        source = extracted_source(section)
        if expected is not None:
            if expected == have:
                return cleansed.parent  # the archive asked for, wherever it came from
            warn(f"the archive extracted in {dest} has SHA-256 {have}, not {expected} "
                  f"(--sha256 archive=...): getting that archive and extracting it instead")
        elif source is None or source == url:
            return cleansed.parent  # extracted once already; the archive itself is not needed
        else:
            warn(f"the archive extracted in {dest} came from {source}, not from {url} "
                  f"(--archive-url): getting it to compare (to keep the extraction without "
                  f"downloading, pass --sha256 archive={have})")
    archive_path, digest = ensure_download(root, "archive", url, expected, progress)
    if cleansed is not None and digest == have:
        say(f"the archive from {url} is the one extracted in {dest} (SHA-256 {digest}); "
              f"keeping the extraction")
        update_manifest(root, lambda s: s["extracted"].__setitem__("url", url))
        _remove_archive_if_asked(remove_archive, archive_path)
        return cleansed.parent
    if dest.exists():
        if cleansed is not None:
            warn(f"the archive from {url} (SHA-256 {digest}) is not the one extracted in "
                  f"{dest} ({have}): extracting it in its place")
        elif recorded:
            warn(f"{dest} is incomplete; extracting the archive again")
        else:
            warn(f"{dest} is not recorded in {root / MANIFEST_NAME} (a run stopped just "
                  f"after extracting?); extracting the archive again")
        # the manifest stops describing it first, then it is moved aside in one step: a run
        # killed while deleting it leaves only a hidden folder that the next run removes
        update_manifest(root, lambda s: s.pop("extracted", None))
        old = raw / f".{EXTRACTED_DIR}.old-{os.getpid()}-{int(time.time())}"
        os.replace(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    say(f"extracting {archive_path} (once)")
    try:
        stats = extract_archive(archive_path, dest, progress=progress)
    except _NoSpace:
        raise  # nothing wrong with the archive: keep it
    except ValueError as e:
        archive_path.unlink(missing_ok=True)
        update_manifest(root, lambda s: s.get("downloads", {}).pop("archive", None))
        raise ValueError(f"{e}; the archive was deleted: check {URL_OPTION['archive']} "
                         f"and run again") from None
    source = read_manifest(root).get("downloads", {}).get("archive", {}).get("url")
    update_manifest(root, lambda s: s.__setitem__("extracted", {
        "archive_sha256": digest, "url": source, "dir": f"{RAW_DIR}/{EXTRACTED_DIR}",
        "time": utc_now(), **stats}))
    say(f"extracted {stats['n_files']:,} files ({stats['bytes'] / 2**20:,.1f} MiB, "
          f"{stats['n_songs']:,} songs in {stats['cleansed_dir']}/)")
    _remove_archive_if_asked(remove_archive, archive_path)
    return (dest / stats["cleansed_dir"]).parent


def _remove_archive_if_asked(remove: bool, archive_path: Path) -> None:
    if remove and archive_path.exists():
        archive_path.unlink()
        say(f"removed {archive_path} (--remove-archive); its SHA-256 stays in the manifest")


# --------------------------------------------------------------------------------------------
# Reading the downloads within bounds: the id list, the genre labels, a song file's sizes
# --------------------------------------------------------------------------------------------

#: Bounds on reading the small files (upstream: 21,425 id lines; about 80 members and
#: id lists of at most 130 KB in labels.tar.gz).
IDS_MAX_LINES = 1_000_000
LABELS_MAX_MEMBERS = 10_000
LABELS_MAX_LIST_BYTES = 16 * 2**20

_MSD_RE = re.compile(r"^TR[A-Z0-9]{16}$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_GENRE_RE = re.compile(r"^([A-Za-z0-9_]+)/([A-Za-z0-9_.\-]+)$")

#: Longest song (time steps at the file's resolution, 24 per beat in LPD: about 45 minutes at
#: 120 bpm), checked by :func:`check_song_sizes` before a song is read.
SONG_MAX_STEPS = 2**17
#: Bytes an array of a song file may declare beyond MAX_EXPANSION times its compressed bytes: one
#: float64 per step of the longest song. A constant array (LPD's tempo, one bpm per step) deflates
#: far beyond MAX_EXPANSION to one and must still pass.
SONG_ARRAY_SLACK_BYTES = 8 * SONG_MAX_STEPS


class _Unreadable(ValueError):
    """A downloaded file that is not in the expected format."""


def read_cleansed_ids(path: str | os.PathLike) -> dict[str, str]:
    """Map MSD id → file md5 from ``cleansed_ids.txt`` (``md5    msd_id`` per line).

    Raises
    ------
    ValueError
        A line that is not a 32-hex-digit md5 and an 18-character MSD id (file and line named).
    """
    path = Path(path)
    out: dict[str, str] = {}
    try:
        f = open_regular(path, "r", encoding="utf-8", errors="replace")  # a FIFO never blocks
    except NotARegularFile as e:
        raise ValueError(f"{path} {e.strerror}; remove it and run again") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > DOWNLOAD_MAX_BYTES["ids"]:
            raise _Unreadable(f"{path} is {size:,} bytes, more than "
                              f"{DOWNLOAD_MAX_BYTES['ids']:,} (DOWNLOAD_MAX_BYTES['ids'])")
        for lineno, line in enumerate(f, 1):
            if lineno > IDS_MAX_LINES:
                raise _Unreadable(f"{path} has more than {IDS_MAX_LINES:,} lines "
                                  f"(IDS_MAX_LINES; cleansed_ids.txt has {N_CLEANSED:,})")
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not _MD5_RE.match(fields[0]) or not _MSD_RE.match(fields[1]):
                raise _Unreadable(
                    f"{path} line {lineno}: expected 'md5    msd_id', got {line.strip()[:80]!r}")
            md5, msd = fields
            if msd not in out or md5 < out[msd]:
                out[msd] = md5
    if not out:
        raise _Unreadable(f"{path} holds no ids")
    return out


def genre_member(genre: str) -> str:
    """Member of ``labels.tar.gz`` holding the id list of ``genre`` (``SOURCE/NAME``).

    >>> genre_member("tagtraum/Rock")
    'labels/tagtraum/id_list_Rock.txt'
    """
    m = _GENRE_RE.match(genre)
    if not m:
        raise ValueError(f"--genre must look like SOURCE/NAME (e.g. tagtraum/Rock, lastfm/rock, "
                         f"amg/Pop_Rock), got {genre!r}")
    return f"labels/{m.group(1)}/id_list_{m.group(2)}.txt"


def read_genre_ids(labels: str | os.PathLike, genre: str) -> list[str]:
    """Sorted unique MSD ids of ``genre`` read from the labels archive (no extraction).

    ``genre`` is ``SOURCE/NAME`` for the member ``labels/SOURCE/id_list_NAME.txt`` (matched
    case-insensitively when that is unambiguous).

    Raises
    ------
    ValueError
        Unknown genre (the available ones are listed), a corrupt archive, or a bad id line.
    """
    return read_genre_list(labels, genre)[1]


def read_genre_list(labels: str | os.PathLike, genre: str) -> tuple[str, list[str]]:
    """``(member name, sorted unique MSD ids)`` of ``genre``; see :func:`read_genre_ids`."""
    labels = Path(labels)
    member_name = genre_member(genre)
    source = genre.split("/")[0]
    try:
        raw = open_regular(labels)  # a FIFO or device at the name never blocks
    except NotARegularFile as e:
        raise ValueError(f"{labels} {e.strerror}; remove it and run again") from None
    try:
        with raw, tarfile.open(fileobj=raw, mode="r:gz", tarinfo=BoundedTarInfo) as tar:
            members = {}
            for m in tar:
                members[m.name] = m
                if len(members) > LABELS_MAX_MEMBERS:
                    raise _Unreadable(f"{labels} has more than {LABELS_MAX_MEMBERS:,} members "
                                      f"(LABELS_MAX_MEMBERS): not the LPD genre labels")
            member = members.get(member_name)
            if member is None:  # tagtraum/rock -> tagtraum/Rock when that is the only match
                near = [n for n in members if n.lower() == member_name.lower()]
                if len(near) == 1:
                    member = members[near[0]]
                    say(f"using {near[0]} for --genre {genre}")
            if member is None:
                prefix = f"labels/{source}/id_list_"
                names = sorted(n[len(prefix):-4] for n in members
                               if n.startswith(prefix) and n.endswith(".txt"))
                sources = sorted({n.split("/")[1] for n in members
                                  if n.startswith("labels/") and n.count("/") >= 2})
                if names:
                    hint = f"{source} genres: {', '.join(names)}"
                else:
                    hint = f"sources: {', '.join(sources) or 'none'}"
                raise ValueError(f"genre {genre!r} ({member_name}) is not in {labels}; {hint}")
            if not member.isfile():
                raise ValueError(f"{member.name} in {labels} is not a regular file")
            if member.size > LABELS_MAX_LIST_BYTES:
                raise _Unreadable(f"{member.name} in {labels} is {member.size:,} bytes, more "
                                  f"than {LABELS_MAX_LIST_BYTES:,} (LABELS_MAX_LIST_BYTES)")
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
    except HugeHeader as e:
        raise _Unreadable(f"{labels} has {e}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise _Unreadable(f"{labels} is truncated or corrupt ({type(e).__name__}: {e})") \
            from None
    ids = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not _MSD_RE.match(s):
            raise _Unreadable(f"{labels}:{member.name} line {lineno}: expected an MSD id, "
                             f"got {s[:40]!r}")
        ids.add(s)
    if not ids:
        raise ValueError(f"{member.name} in {labels} lists no songs")
    return member.name, sorted(ids)


def check_song_sizes(path: str | os.PathLike) -> None:
    """DataError naming ``path`` if its arrays declare more than a song can hold, before any of
    them is read: a track or tempo longer than :data:`SONG_MAX_STEPS` steps, or an array that
    declares more than :data:`b2b.datasets.store.MAX_EXPANSION` times the bytes its member holds plus
    :data:`SONG_ARRAY_SLACK_BYTES`."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):  # info.json: read (small) by load_lpd
                    if info.file_size > 2**20:
                        raise DataError(f"{path}: {info.filename} declares {info.file_size:,} bytes; not an LPD file")
                    continue
                shape, dtype = npy_member_header(zf, info)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > MAX_EXPANSION * max(info.compress_size, 1) + SONG_ARRAY_SLACK_BYTES:
                    raise DataError(f"{path}: {info.filename} declares {declared:,} bytes in "
                                    f"{info.compress_size:,} compressed ones; not an LPD file")
                steps = None
                if info.filename.endswith("_csc_shape.npy") and declared <= 64:
                    with zf.open(info) as f:
                        values = np.lib.format.read_array(f, allow_pickle=False).reshape(-1)
                    steps = int(values[0]) if len(values) else None
                elif info.filename in ("tempo.npy", "downbeat.npy"):
                    steps = int(np.prod(shape, dtype=object))
                if steps is not None and steps > SONG_MAX_STEPS:
                    raise DataError(f"{path}: {info.filename} declares {steps:,} time steps, more than "
                                    f"{SONG_MAX_STEPS:,} (SONG_MAX_STEPS, about 45 minutes)")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable LPD .npz file ({type(e).__name__}: {e})") from None


def parse_sha256(values: list[str] | None) -> dict[str, str | None]:
    """``--sha256 KIND=HEX`` values as ``{kind: lowercase hex or None}`` for every download kind."""
    out: dict[str, str | None] = {k: None for k in FILENAMES}
    for v in values or []:
        kind, sep, hexd = v.partition("=")
        if not sep or kind not in FILENAMES or not _HEX64_RE.match(hexd):
            raise ValueError(f"--sha256 expects KIND=HEX with KIND one of "
                             f"{', '.join(FILENAMES)} and 64 hex digits, got {v!r}")
        out[kind] = hexd.lower()
    return out


def read_download(root: Path, kind: str, read: Callable[[], Any]) -> Any:
    """``read()`` of the download ``kind``; one in the wrong format is deleted (not left looking
    valid) and its manifest entry dropped, and the ValueError says so."""
    try:
        return read()
    except _Unreadable as e:
        (root / RAW_DIR / FILENAMES[kind]).unlink(missing_ok=True)
        update_manifest(root, lambda s: s.get("downloads", {}).pop(kind, None))
        raise ValueError(f"{e}; the file was deleted: check {URL_OPTION[kind]} and run "
                         f"again") from None


# --------------------------------------------------------------------------------------------
# The data root: one run at a time, leftovers removed, operating-system errors in one line
# --------------------------------------------------------------------------------------------


def _prepare_root(root: Path) -> None:
    """Create the data root; one-line errors for a file in the way or a folder without write
    permission."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"--root {root} is a file, not a folder: choose a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--root {root}: cannot create the folder ({e.strerror or e})") \
            from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ValueError(f"--root {root}: no permission to write in this folder; fix its "
                         f"permissions or choose another --root")


def _leftover_patterns(root: Path, store: str) -> list[tuple[Path, str]]:
    """Where a killed run of ``b2b data lpd17`` leaves temporary files and folders, and their names
    (only names its writers use, ``store`` the store folder's; removed with the root lock held)."""
    rx_root = (rf"\.{re.escape(MANIFEST_NAME)}\..*\.tmp|\.{re.escape(store)}\..*\.(tmp|old)")
    rx_raw = rf"\..*\.tmp|\.{re.escape(EXTRACTED_DIR)}\.(extract|old)-.*"
    return [(root, rx_root), (root / RAW_DIR, rx_raw)]


def _os_error_message(e: OSError, root: Path) -> str:
    where = e.filename if e.filename is not None else root
    msg = f"{where}: {e.strerror or e}"
    if e.errno == errno.ENOSPC:
        msg += ("; free some space (or choose another --root) and run again: finished steps "
                "are kept and an interrupted download resumes")
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        msg += "; check the permissions of that path or choose another --root"
    return msg


@contextlib.contextmanager
def claim_root(root: Path, store: str) -> Iterator[None]:
    """Hold the data root ``root`` for one run of ``b2b data lpd17`` whose store folder is
    ``root/store``.

    Creates the root, takes the lock :data:`LOCK_NAME` (one run per root; where the file system
    has no locks, ENOLCK, the run works without one and keeps the leftovers: they might be another
    run's work in progress) and removes what killed runs left behind, through
    :func:`b2b.files.atomic.claim_output`, the one such call. Inside the block, an ``OSError`` (a full
    disk, missing permissions, a file where a folder should be) becomes a one-line ``ValueError``
    naming the path.
    """
    try:
        _prepare_root(root)
        (_, rx_root), *also = _leftover_patterns(root, store)
        try:
            lock = claim_output(root, f"--root {root}", name=LOCK_NAME, pattern=rx_root, also=also,
                                required=False, restore=[root / store])
        except FolderLocked:
            raise ValueError(f"another `b2b data lpd17` is working in {root} (it holds "
                             f"{root / LOCK_NAME}); wait for it to finish or choose another "
                             f"--root") from None
        try:
            removed = lock.removed
            if removed:
                say(f"removed {len(removed)} temporary file(s) left by an interrupted run, "
                    f"e.g. {removed[0]}")
            yield
        finally:
            lock.release()
    except OSError as e:
        raise ValueError(_os_error_message(e, root)) from None
