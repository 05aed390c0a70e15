"""LPD-17-cleansed: choose songs of a genre and convert them (``b2b data lpd17``).

The original model trained on 1,000 rock songs of LPD-17-cleansed (the Lakh Pianoroll Dataset,
Dong et al. 2018, CC BY 4.0, derived from the Lakh MIDI Dataset, Raffel 2016, CC BY 4.0). The
command gets such a subset reproducibly and can be re-run safely. :mod:`b2b.datasets.fetch` does steps
1 and 2 (download and verify the archive, the id list and the genre labels; extract the archive
safely); this module does the rest:

3. **Select** ``--songs`` MSD ids of a genre list in ``labels.tar.gz`` (``--genre
   tagtraum/Rock`` → member ``labels/tagtraum/id_list_Rock.txt``) with a seeded shuffle of the
   sorted list, and map them to files ``lpd_17_cleansed/<A>/<B>/<C>/<MSD_ID>/<md5>.npz``
   through ``cleansed_ids.txt``.
4. **Preprocess** the chosen songs over ``--workers`` processes into the compact store
   ``<root>/lpd17`` (see :mod:`b2b.datasets.store`). A re-run with the same arguments does nothing.

One run at a time works in a data root (a lock on ``<root>/.b2b-lpd17.lock``, released when the
process ends, however it ends); each run first removes the temporary files and folders that a
killed run left behind (:func:`b2b.datasets.fetch.claim_root`). Every file is read within the
bounds :mod:`b2b.datasets.fetch` checks.

Layout under the data root::

    <root>/manifest.json                     what was downloaded, extracted, chosen, built
                                             (song paths relative to lpd17-raw/extracted)
    <root>/lpd17-raw/lpd_17_cleansed.tar.gz  downloads (``.part`` while incomplete)
    <root>/lpd17-raw/cleansed_ids.txt
    <root>/lpd17-raw/labels.tar.gz
    <root>/lpd17-raw/extracted/lpd_17/lpd_17_cleansed/A/B/C/<MSD_ID>/<md5>.npz
    <root>/lpd17/                            the compact store read by ``open_dataset("lpd17")``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import posixpath
import random
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from b2b.datasets import fetch
from b2b.datasets.store import WindowDataset, default_root, is_store, write_store
from b2b.files.atomic import die_with_parent
from b2b.music.data import load_lpd, multitrack_to_roll


#: The store folder under the data root.
STORE_NAME = "lpd17"
#: Most worker processes ``--workers`` may ask for (fewer start: at most one per song and core).
MAX_WORKERS = 256


# --------------------------------------------------------------------------------------------
# Ids, genres, selection
# --------------------------------------------------------------------------------------------


def seeded_order(items: list[str], seed: int) -> list[str]:
    """A reproducible shuffle of ``sorted(items)``: Fisher–Yates driven by
    ``random.Random(seed).random()``, whose output Python guarantees across versions.

    The first ``n`` items of the result are the ``n`` chosen songs, so a smaller ``--songs``
    with the same seed picks a subset of a larger one.
    """
    out = sorted(items)
    rng = random.Random(seed)
    for i in range(len(out) - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        out[i], out[j] = out[j], out[i]
    return out


def song_path(msd_id: str, md5: str) -> str:
    """Path of a song relative to the folder holding ``lpd_17_cleansed`` (``lpd_17/`` in the
    upstream archive): ``lpd_17_cleansed/<A>/<B>/<C>/<MSD_ID>/<md5>.npz`` with A, B, C the
    characters 2, 3, 4 of the MSD id (0-based)."""
    return f"{fetch.TOP_FOLDER}/{msd_id[2]}/{msd_id[3]}/{msd_id[4]}/{msd_id}/{md5}.npz"


def select_songs(genre_ids: list[str], id_map: dict[str, str], extracted: Path | None,
                 n_songs: int, seed: int) -> dict:
    """Choose ``n_songs`` songs of a genre list, reproducibly.

    ``extracted`` is the folder holding ``lpd_17_cleansed/`` (None: do not check files).
    Ids missing from ``cleansed_ids.txt`` or whose file is not in ``extracted`` are dropped
    first (with a warning), then :func:`seeded_order` of the remaining sorted ids is cut to
    ``n_songs`` (all of them, with a warning, when there are fewer) and sorted.

    Returns
    -------
    dict
        ``n_listed``, ``missing_msd_ids``, ``n_available``, ``songs`` (list of
        ``{"msd_id", "md5", "path"}`` sorted by MSD id; ``path`` relative to ``extracted``).
    """
    available, missing = [], []
    for msd in genre_ids:
        md5 = id_map.get(msd)
        absent = extracted is not None and md5 is not None and \
            not (extracted / song_path(msd, md5)).is_file()
        if md5 is None or absent:
            missing.append(msd)
        else:
            available.append(msd)
    if not available:
        raise ValueError("none of the genre's songs are in the archive")
    chosen = sorted(seeded_order(available, seed)[:n_songs])
    return {
        "n_listed": len(genre_ids),
        "missing_msd_ids": missing,
        "n_available": len(available),
        "songs": [{"msd_id": m, "md5": id_map[m], "path": song_path(m, id_map[m])} for m in chosen],
    }


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _convert_one(path: str):
    """Worker: one LPD file → ``(roll, None)`` or ``(None, error message)``."""
    try:
        fetch.check_song_sizes(path)
        return multitrack_to_roll(load_lpd(path)), None
    except Exception as e:  # reported and skipped by the caller
        return None, f"{type(e).__name__}: {e}"


def _pool_context():
    """The multiprocessing context for the preprocessing workers.

    ``fork`` when this process runs a single thread on Linux (the ``b2b`` command: workers start
    at once, with the libraries already imported), else ``forkserver`` with the libraries
    preloaded once (safe next to threads, e.g. in a notebook or under pytest), else ``spawn``.
    """
    import threading

    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["b2b.music.data", "pypianoroll", "scipy.sparse"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows, macOS


def usable_workers(workers: int, jobs: int) -> int:
    """``workers`` bounded by the work and the machine: at most one per job and per CPU core."""
    return max(1, min(int(workers), int(jobs), os.cpu_count() or 1))


def convert_songs(paths: list[str], workers: int = 1, progress: bool = True) -> Iterator:
    """Yield ``(index, roll or None, error or None)`` for each path, in order.

    Rolls are ``bool (17, T, 72)`` at 4 steps per beat (``b2b.music.data.multitrack_to_roll`` of
    ``b2b.music.data.load_lpd``), computed over ``workers`` processes (in this process when 1; see
    :func:`_pool_context` for how they start).
    """
    pool = None
    workers = usable_workers(workers, len(paths))
    if workers <= 1 or len(paths) <= 1:
        results: Iterable = map(_convert_one, paths)
    else:  # started before the progress bar, whose monitor thread would rule out fork
        ctx = _pool_context()  # workers die with this process (kill -9 too) and never hold its lock
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=die_with_parent,
            initargs=(os.getpid() if ctx.get_start_method() == "fork" else None,))
        results = pool.map(_convert_one, paths)  # one song per task: ~0.2 s of work each
    bar = fetch.progress_bar(total=len(paths), unit="song", desc="preprocessing", disable=not progress)
    try:
        for i, (roll, err) in enumerate(results):
            bar.update(1)
            yield i, roll, err
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _build_store(root: Path, extracted: Path, selection: dict, request: dict, inputs: dict,
                 workers: int, progress: bool) -> dict:
    songs = selection["songs"]
    paths = [str(extracted / s["path"]) for s in songs]
    workers = usable_workers(workers, len(paths))
    failed: list[dict] = []
    n_ok = 0

    def stream():
        nonlocal n_ok
        for i, roll, err in convert_songs(paths, workers=workers, progress=progress):
            if err is not None:
                failed.append({"msd_id": songs[i]["msd_id"], "error": err})
                continue
            n_ok += 1
            yield songs[i]["msd_id"], roll
        if n_ok == 0:  # before the swap: an earlier store stays in place
            raise ValueError("none of the chosen songs could be read"
                             + (f" (e.g. {failed[0]['msd_id']}: {failed[0]['error']})" if failed else "")
                             + f"; no store was written to {root / STORE_NAME}")

    meta = {
        "source": "LPD-17-cleansed (Lakh Pianoroll Dataset, CC BY 4.0)",
        "genre": request["genre"], "seed": request["seed"], "songs_requested": request["songs"],
        "hop_bars": request["hop_bars"], **inputs,
    }
    t0 = time.perf_counter()
    store = write_store(root / STORE_NAME, stream(), meta, hop_bars=request["hop_bars"])
    seconds = time.perf_counter() - t0
    if failed:
        fetch.warn(f"{len(failed)} of {len(songs)} chosen songs could not be read and were skipped, "
              f"e.g. {failed[0]['msd_id']}: {failed[0]['error']}")
    rate = len(songs) / seconds if seconds > 0 else float("inf")
    n_windows = _count_windows(store)
    fetch.say(f"preprocessed {len(songs)} songs in {seconds:.1f} s ({rate:.1f} songs/s, "
          f"{workers} worker{'s' if workers != 1 else ''}) into {store}"
          + (f": {n_windows:,} windows" if n_windows is not None else ""))
    return {"path": STORE_NAME, "n_songs": n_ok, "n_windows": n_windows, "failed": failed,
            "seconds": round(seconds, 3), "songs_per_second": round(rate, 2), "workers": workers}


def _count_windows(store: Path) -> int | None:
    try:
        return len(WindowDataset(store))
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``b2b data lpd17`` options to ``parser``."""
    root_default = str(default_root())
    parser.description = (
        "Download LPD-17-cleansed, its id list and genre labels, verify them (SHA-256 in "
        "ROOT/manifest.json), choose SONGS songs of GENRE with SEED and preprocess them into "
        "ROOT/lpd17. Safe to re-run: finished steps are skipped, interrupted downloads resume."
    )
    parser.add_argument("--root", type=Path, default=None,
                        help=f"data root (default: $B2B_DATA if set, else ~/b2b-data; "
                             f"now {root_default})")
    parser.add_argument("--genre", default="tagtraum/Rock",
                        help="genre list SOURCE/NAME in labels.tar.gz, i.e. the member "
                             "labels/SOURCE/id_list_NAME.txt (default: %(default)s; e.g. "
                             "lastfm/rock, amg/Pop_Rock)")
    parser.add_argument("--songs", type=int, default=1000,
                        help="number of songs to choose (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    parser.add_argument("--hop-bars", type=int, default=1,
                        help="window hop in bars when cutting 4-bar windows (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="preprocessing processes (default: the CPU count, %(default)s)")
    for kind in fetch.FILENAMES:
        parser.add_argument(fetch.URL_OPTION[kind], dest=f"{kind}_url", default=fetch.DEFAULT_URLS[kind],
                            metavar="URL",
                            help=f"where to get {fetch.FILENAMES[kind]} (default: {fetch.DEFAULT_URLS[kind]})")
    parser.add_argument("--sha256", action="append", metavar="KIND=HEX",
                        help="expected SHA-256 of a download, KIND one of archive, ids, labels "
                             "(repeatable; upstream publishes none, the manifest records ours)")
    parser.add_argument("--remove-archive", action="store_true",
                        help="delete the downloaded archive after extracting it (saves its "
                             "size on disk; a later extraction downloads it again)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``b2b data lpd17``: download, verify, extract, select, preprocess; return 0.

    Operating-system errors (a full disk, missing permissions, a file where a folder should
    be) become one-line ``ValueError`` messages naming the path.
    """
    root = Path(args.root) if args.root is not None else Path(default_root())
    root = root.expanduser()
    if args.songs < 1:
        raise ValueError(f"--songs must be at least 1, got {args.songs}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.workers > MAX_WORKERS:
        raise ValueError(f"--workers must be at most {MAX_WORKERS} (at most one per song and CPU core "
                         f"start anyway), got {args.workers}")
    if args.hop_bars < 1:
        raise ValueError(f"--hop-bars must be at least 1, got {args.hop_bars}")
    fetch.genre_member(args.genre)  # validates the form
    fetch.parse_sha256(args.sha256)
    with fetch.claim_root(root, STORE_NAME):
        return _run(args, root)


def _sources_unchanged(section: dict, urls: dict[str, str]) -> bool:
    """Whether every download (and the extracted archive) came from the URL asked for now
    (files found in place, whose URL is unknown, count as unchanged)."""
    downloads = section.get("downloads", {})
    for kind in fetch.FILENAMES:
        if kind == "archive" and section.get("extracted"):
            old = fetch.extracted_source(section)
        else:
            old = (downloads.get(kind) or {}).get("url")
        if old is not None and old != urls[kind]:
            return False
    return True


def _store_up_to_date(root: Path, section: dict, request: dict,
                      inputs: dict[str, str | None]) -> bool:
    store = section.get("store")
    return bool(store) and store.get("request") == request and \
        is_store(root / STORE_NAME) and all(
            v is None or store.get("inputs", {}).get(k) == v for k, v in inputs.items())


def _run(args: argparse.Namespace, root: Path) -> int:
    shas = fetch.parse_sha256(args.sha256)
    urls = {k: getattr(args, f"{k}_url") for k in fetch.FILENAMES}
    progress = not args.no_progress
    request = {"genre": args.genre, "songs": args.songs, "seed": args.seed,
               "hop_bars": args.hop_bars}

    # 0. Nothing to do?
    section = fetch.read_manifest(root)
    if _store_up_to_date(root, section, request, {f"{k}_sha256": shas[k] for k in fetch.FILENAMES}) \
            and _sources_unchanged(section, urls):
        store = section["store"]
        fetch.say(f"{root / STORE_NAME} is up to date ({store.get('n_songs')} songs of "
              f"{args.genre}, seed {args.seed}, {store.get('n_windows')} windows); nothing to do")
        return 0

    # 1. Small downloads, 2. the archive (downloaded only if not extracted yet)
    ids_path, ids_sha = fetch.ensure_download(root, "ids", urls["ids"], shas["ids"], progress)
    labels_path, labels_sha = fetch.ensure_download(root, "labels", urls["labels"], shas["labels"],
                                               progress)
    id_map = fetch.read_download(root, "ids", lambda: fetch.read_cleansed_ids(ids_path))
    list_name, genre_ids = fetch.read_download(  # before the big download
        root, "labels", lambda: fetch.read_genre_list(labels_path, args.genre))
    extracted = fetch.ensure_extracted(root, urls["archive"], shas["archive"], progress,
                                       remove_archive=args.remove_archive)
    archive_sha = fetch.read_manifest(root)["extracted"]["archive_sha256"]
    inputs = {"archive_sha256": archive_sha, "ids_sha256": ids_sha, "labels_sha256": labels_sha}
    section = fetch.read_manifest(root)
    if _store_up_to_date(root, section, request, inputs) and \
            section["store"].get("inputs") == inputs:  # other URLs, the same files
        fetch.say(f"{root / STORE_NAME} is up to date (the same files as before); nothing to do")
        return 0

    # 3. Selection
    sel = select_songs(genre_ids, id_map, extracted, args.songs, args.seed)
    dest = root / fetch.RAW_DIR / fetch.EXTRACTED_DIR  # the manifest's song paths are relative to it
    prefix = extracted.relative_to(dest).as_posix()
    for song in sel["songs"]:
        song["path"] = posixpath.normpath(posixpath.join(prefix, song["path"]))
    missing = sel["missing_msd_ids"]
    if missing:
        fetch.warn(f"{len(missing)} of {sel['n_listed']} MSD ids in {list_name} are "
              f"not in the archive (e.g. {missing[0]}); skipped them and sampled from the "
              f"remaining {sel['n_available']}")
    if args.songs > sel["n_available"]:
        fetch.warn(f"--songs {args.songs} is more than the {sel['n_available']} songs of "
              f"{args.genre} in the archive; using all {sel['n_available']}")
    selection = {**request, "list": list_name, **sel,
                 "n_chosen": len(sel["songs"]), "time": fetch.utc_now()}
    fetch.say(f"chose {len(sel['songs'])} songs of {args.genre} (seed {args.seed}) from "
          f"{sel['n_available']} available")

    # 4. Preprocessing. The old store (and the manifest's record of it) stay as they are until
    # the new store is complete and swapped in; the store's own meta.json says what it was built
    # from, so a run killed between the swap and the manifest's update rebuilds (see
    # _store_up_to_date) rather than trusting a record of another store.
    result = _build_store(root, dest, sel, request, inputs, args.workers, progress)

    def record(s: dict) -> None:  # selection and store together, once the store is in place
        s["selection"] = selection
        s["store"] = {**result, "request": request, "inputs": inputs, "time": fetch.utc_now()}

    fetch.update_manifest(root, record)
    return 0
