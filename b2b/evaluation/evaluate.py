"""``b2b evaluate``: compare generated music with real music and write the report's files.

:mod:`b2b.evaluation.report` builds the report (rows of every metric and track, whole-set
statistics, its Markdown and CSV); this module draws the sets to compare (from a dataset, a ``.npy``
of windows or a generator, in chunks), writes the report into a folder and is the command.
:func:`evaluate` builds the report of two sets and, with ``out_dir``, :func:`write_report` writes

- ``report.md`` (:func:`b2b.evaluation.report.render_markdown`) and ``report.csv``
  (:func:`b2b.evaluation.report.render_csv`),
- ``mgeval.json``: every row's comparison (intra/inter distance statistics, overlap, KL),
- ``features_real.npz``, ``features_generated.npz``: the per-window features,
- ``figures/distributions_<metric>.png``: histograms of real vs generated per metric and track,
- ``figures/self_similarity.png``: per-beat self-similarity matrices of a few samples of each,
- ``figures/mgeval.png``: the MGEval distance densities of the per-window metrics.

``b2b evaluate`` does the same from the command line, drawing the real windows from a dataset
and the generated ones from a ``.npy`` file or a checkpoint's generator.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import matplotlib.pyplot as plt
import numpy as np

from b2b.datasets.catalog import open_dataset
from b2b.evaluation import metrics as M
from b2b.evaluation.figures import plot_distributions, plot_mgeval, plot_self_similarity
from b2b.evaluation.report import (METRIC_ORDER, MGEVAL_MAX, MIN_ACTIVE, Report, build_report, features,
                                   render_csv, render_markdown, set_statistics, stride, summary)
from b2b.files.atomic import (FolderLock, NotARegularFile, atomic_write, check_not_input, claim_output, publish,
                              remove_leftovers, write_text)
from b2b.model.checkpoint import load_generator, resolve_device
from b2b.music.geometry import binarize
from b2b.sampling.generate import describe_threshold, explicit_threshold, iter_generate, latent_size, resolve_threshold

__all__ = [
    "MAX_N", "CHUNK", "DIVERSITY_N", "SILENT_WARNING", "evaluate", "write_report", "iter_samples", "load_samples",
    "sample_indices", "iter_real", "load_real", "open_generator", "iter_generated", "generate_samples", "features_of_chunks",
    "training_reference", "add_arguments", "run",
]

#: Most windows per set ``b2b evaluate`` accepts (``--n``). Windows are generated, read and
#: featurized in chunks of :data:`CHUNK`, so memory holds the per-window features (about 3.5 kB
#: per window and set: 0.7 GB for both sets at the bound), never ``n × 78,336`` cells.
MAX_N = 100_000
#: Windows per chunk when generating, reading and featurizing.
CHUNK = 250

#: ``b2b evaluate`` computes diversity, copying and the two-sample test on at most this many
#: windows of each set, spread evenly over it (pairwise overlaps grow with its square).
DIVERSITY_N = 1000

#: A generated set with at least this share of silent windows (no note at all) is "nearly silent":
#: ``b2b evaluate`` warns.
SILENT_WARNING = 0.5


# ----------------------------------------------------------------------------------------------
# the report and its files
# ----------------------------------------------------------------------------------------------


def evaluate(
    real: Any,
    generated: Any,
    out_dir: str | os.PathLike | None = None,
    threshold: float | None = None,
    real_threshold: float | None = None,
    min_active: float = MIN_ACTIVE,
    n_examples: int = 4,
    meta: Mapping[str, Any] | None = None,
    figures: bool = True,
    mgeval_max: int = MGEVAL_MAX,
) -> Report:
    """Compare a generated set of windows with a real one (:func:`b2b.evaluation.report.build_report`)
    and, with ``out_dir``, write the report's files (:func:`write_report`).

    Parameters
    ----------
    real, generated : array ``(n, 17, 64, 72)`` or dict
        Windows or feature tables, as :func:`b2b.evaluation.report.build_report` takes them (no
        self-similarity figure from feature tables).
    out_dir : path, optional
        Where to write the report files and figures (created if needed); nothing is written
        without it.
    threshold, real_threshold, min_active, meta, mgeval_max
        As :func:`b2b.evaluation.report.build_report` takes them.
    n_examples : int
        Self-similarity matrices of this many real and generated windows in the figure.
    figures : bool
        With ``out_dir``, also draw the figures (the slow part: a few seconds).

    Returns
    -------
    Report
    """
    real_f, real_rolls = features(real, real_threshold, "real")
    gen_f, gen_rolls = features(generated, threshold, "generated")
    report = build_report(real_f, gen_f, threshold=threshold, min_active=min_active, meta=meta,
                          mgeval_max=mgeval_max)
    if out_dir is not None:
        write_report(report, out_dir, real_rolls, gen_rolls, n_examples, figures)
    return report


def _save(fig: Any, path: Path) -> None:
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


#: The temporaries a killed run of ``b2b evaluate`` leaves in ``--out`` and in its ``figures/``.
_LEFTOVER_RE = re.compile(r"\.(report(\.md|\.csv)?|mgeval\.json|features_(real|generated)\.npz|b2b-old)\.[0-9a-f]{8}\.tmp")
#: The figures a report draws (an earlier report's that a new one does not draw are removed with it).
_FIGURE_RE = re.compile(r"(distributions_\w+|self_similarity|mgeval)\.png")
_FIGURE_LEFTOVER_RE = re.compile(r"\.(distributions_\w+|self_similarity|mgeval)\.png\.[0-9a-f]{8}\.tmp")


def write_report(
    report: Report,
    out_dir: str | os.PathLike,
    real: np.ndarray | None = None,
    generated: np.ndarray | None = None,
    n_examples: int = 4,
    figures: bool = True,
    lock: FolderLock | None = None,
) -> dict[str, str]:
    """Write the report's files into ``out_dir`` (see the module docstring); returns name -> path.

    One writer at a time: ``lock`` is the caller's held lock of ``out_dir`` (from
    :func:`b2b.files.atomic.claim_output`, as ``b2b evaluate`` takes it before computing anything);
    without one this call takes it. Either way the temporaries of killed runs are removed and
    only regular files are written (a symlink, device or FIFO at a name is refused).

    ``real``/``generated`` are the boolean windows for the self-similarity figure (skipped when
    both are None); ``figures=False`` writes the tables, JSON and features only.

    The new files are written into a private ``.report.<random>.tmp`` folder and swapped in as a
    whole (:func:`b2b.files.atomic.publish`, ``report.md`` last); if writing fails or is interrupted
    (full disk, no permission, Ctrl-C) the earlier report's files stay byte for byte as they were
    and an OSError naming the file is raised, so a folder never holds a ``report.md`` next to
    files of another run or half a set of files.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    files: dict[str, str] = {}
    names: list[str] = []  # what this run writes, relative to out (report.md last)
    current = out

    own = lock is None
    if own:
        lock = claim_output(out, f"--out {out}", pattern=_LEFTOVER_RE)  # one writer; a killed one's temporaries go
    # the new set is written beside the old one, in a private folder, and swapped in as a whole
    # (b2b.files.atomic.publish): whatever fails or interrupts the run, the earlier report stays as it was
    stage = out / f".report.{uuid.uuid4().hex[:8]}.tmp"

    def put(name: str, write: Any) -> None:
        nonlocal current
        current = out / name
        write(stage / name)
        names.append(name)
        files[Path(name).name] = str(out / name)

    try:
        fig_dir = out / "figures"
        if fig_dir.is_symlink() or (fig_dir.exists() and not fig_dir.is_dir()):  # never write through a link
            raise NotARegularFile(errno.EEXIST, "exists and is not a real folder; b2b writes only into "
                                  "real folders (remove it or choose another --out)", str(fig_dir))
        stage.mkdir()
        put("report.csv", lambda p: write_text(p, render_csv(report.rows)))
        put("mgeval.json", lambda p: write_text(p, json.dumps(report.as_dict(), indent=2, allow_nan=False) + "\n"))
        for name, feats in (("features_real.npz", report.real_features),
                            ("features_generated.npz", report.generated_features)):
            put(name, lambda p, a=feats: atomic_write(p, lambda f: np.savez_compressed(f, **a)))
        if figures:
            (stage / "figures").mkdir()
            if fig_dir.is_dir():
                remove_leftovers(fig_dir, _FIGURE_LEFTOVER_RE, older_than=lock.since)
            for metric in METRIC_ORDER:
                if any(r.metric == metric for r in report.rows):
                    put(f"figures/distributions_{metric}.png",
                        lambda p, m=metric: _save(plot_distributions(report, m), p))
            if (real is not None or generated is not None) and n_examples > 0:
                put("figures/self_similarity.png",
                    lambda p: _save(plot_self_similarity(real, generated, n_examples), p))
            if any(r.track == "all" and report.comparisons[r.key].curves for r in report.rows):
                put("figures/mgeval.png", lambda p: _save(plot_mgeval(report), p))
        put("report.md", lambda p: write_text(p, render_markdown(report)))
        current = out
        # figures of an earlier report that this one does not draw go with the rest of it
        stale = [f"figures/{p.name}" for p in (fig_dir.iterdir() if fig_dir.is_dir() else ())
                 if _FIGURE_RE.fullmatch(p.name) and f"figures/{p.name}" not in names]
        publish(stage, out, names, remove=stale)
    except OSError as e:
        where = e.filename if current == out and e.filename is not None else current
        raise OSError(e.errno or errno.EIO, f"could not write {where} ({e.strerror or e}); the folder's "
                      "earlier files are untouched") from e
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
        if own:
            lock.release()
    files = {"report.md": files.pop("report.md"), **files}  # the report first, as before
    report.files.update(files)
    return files


# ----------------------------------------------------------------------------------------------
# loading sets for the command
# ----------------------------------------------------------------------------------------------


def _open_samples(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` of windows ``(m, 17, 64, 72)``, memory-mapped (not read), shape and dtype checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file {path} not found")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npy array: {e}") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{path} must hold one array (n, 17, 64, 72), not an archive")
    if x.ndim != 4 or x.shape[1:] != M.SAMPLE_SHAPE:
        raise ValueError(f"{path} must hold an array of shape (n, 17, 64, 72), got {x.shape}")
    if not (x.dtype == bool or np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{path} must hold bools or numbers in [0, 1], got dtype {x.dtype}")
    return x


def _binarize(x: np.ndarray, threshold: float | None, path: Any) -> np.ndarray:
    """Check and binarize a chunk of a samples file (:func:`b2b.music.geometry.binarize`'s rules)."""
    return binarize(x, threshold, name=str(path))


def iter_samples(path: str | os.PathLike, n: int | None = None, threshold: float | None = None,
                 chunk: int = CHUNK) -> tuple[int, Iterator[np.ndarray]]:
    """The first ``n`` windows of a ``.npy`` file, checked and binarized chunk by chunk.

    Returns ``(count, chunks)``: the number of windows and an iterator of bool arrays
    ``(c, 17, 64, 72)``, ``c <= chunk`` (the file is memory-mapped, never read whole).
    """
    x = _open_samples(path)
    m = len(x) if n is None else min(int(n), len(x))

    def chunks() -> Iterator[np.ndarray]:
        for i in range(0, m, chunk):
            yield _binarize(x[i:min(i + chunk, m)], threshold, path)

    return m, chunks()


def load_samples(path: str | os.PathLike, n: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Windows from a ``.npy`` file ``(m, 17, 64, 72)`` of bools or numbers, as booleans.

    Numbers must lie in [0, 1]; values other than 0 and 1 (probabilities) need ``threshold``.
    The first ``n`` windows are kept (all when ``n`` is None or larger than ``m``). Memory:
    ``n × 78,336`` bytes; :func:`iter_samples` reads in chunks.
    """
    m, chunks = iter_samples(path, n, threshold)
    parts = list(chunks)
    return np.concatenate(parts) if parts else np.zeros((0, *M.SAMPLE_SHAPE), bool)


def sample_indices(size: int, n: int, seed: int) -> np.ndarray:
    """``min(n, size)`` distinct indices of ``range(size)`` drawn with ``seed``, sorted."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if size < 1:
        raise ValueError("the real dataset is empty")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, size=min(n, size), replace=False))


def iter_real(data: str, n: int, seed: int, chunk: int = CHUNK,
              dataset: Any = None) -> tuple[int, Iterator[np.ndarray]]:
    """``min(n, size)`` windows drawn with ``seed`` from a dataset, in chunks (see :func:`load_real`).

    ``dataset`` is ``data`` already opened (:func:`b2b.datasets.catalog.open_dataset`), to open it only once.

    Returns ``(count, chunks)``: chunks are bool arrays ``(c, 17, 64, 72)``, ``c <= chunk``.
    """
    if str(data).endswith(".npy"):
        x = _open_samples(data)
        idx = sample_indices(len(x), n, seed)

        def from_file() -> Iterator[np.ndarray]:
            for i in range(0, len(idx), chunk):
                yield _binarize(x[idx[i:i + chunk]], None, data)

        return len(idx), from_file()
    ds = open_dataset(data) if dataset is None else dataset
    idx = sample_indices(len(ds), n, seed)
    window = getattr(ds, "window", None)  # b2b.datasets.store.WindowDataset: bool (17, 64, 72) per window

    def from_dataset() -> Iterator[np.ndarray]:
        for i in range(0, len(idx), chunk):
            part = idx[i:i + chunk]
            if callable(window):
                x = np.stack([np.asarray(window(int(j))) for j in part])
            else:
                x = np.stack([np.asarray(ds[int(j)]) for j in part])
            yield M.as_rolls(x, None if x.dtype == bool else 0.5, name=f"dataset {data}")

    return len(idx), from_dataset()


def load_real(data: str, n: int, seed: int) -> np.ndarray:
    """``n`` windows drawn with ``seed`` from a dataset (``bach``, ``lpd17``, a path, or a
    ``.npy`` of windows), as booleans ``(n, 17, 64, 72)`` (:func:`iter_real` in one piece)."""
    _, chunks = iter_real(data, n, seed)
    return np.concatenate(list(chunks))


def open_generator(checkpoint: str | os.PathLike, threshold: Any = None,
                   device: str = "cpu") -> tuple[Any, float, str, dict[str, Any]]:
    """Load a checkpoint's generator and settle the threshold.

    ``threshold``: a number wins (source ``"argument"``); ``None`` or ``"auto"`` take the
    threshold stored in the file (``"calibrated"``) or the preset's (``"preset"``), see
    :func:`b2b.model.checkpoint.load_generator`. Returns ``(generator, threshold, source, info)``.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    gen, info = load_generator(str(path), device=device)
    t, source = resolve_threshold(threshold, info)
    return gen, t, source, dict(info)


def iter_generated(gen: Any, latent: int, n: int, seed: int, threshold: float,
                   batch: int = CHUNK) -> Iterator[np.ndarray]:
    """``n`` binarized windows from ``gen``, ``batch`` at a time (bool ``(c, 17, 64, 72)``).

    The book's one sampler, :func:`b2b.sampling.generate.iter_generate`, binarized at ``p >= threshold``:
    the noise ``(n, latent)`` is drawn up front from a ``torch.Generator`` seeded with ``seed``,
    so the windows are those of ``b2b generate --seed`` and do not depend on ``batch``; they are
    made where the generator's parameters are. ``latent`` must be the generator's. ValueError if
    an output is not finite.
    """
    if int(latent) != latent_size(gen):
        raise ValueError(f"latent: the generator takes noise of size {latent_size(gen)}, not {latent}")
    for p in iter_generate(gen, int(n), seed=int(seed), chunk=batch):
        yield (p >= float(threshold)).numpy()


def generate_samples(
    checkpoint: str | os.PathLike, n: int, seed: int, threshold: float | None = None,
    batch: int = CHUNK, device: str = "cpu",
) -> tuple[np.ndarray, float]:
    """``n`` windows from a checkpoint's generator, binarized; returns (windows, threshold used).

    The noise is standard normal drawn from a ``torch.Generator`` seeded with ``seed``; the
    threshold defaults (``None`` or ``"auto"``) to the one stored in the file, else the preset's.
    Memory: ``n × 78,336`` bytes; :func:`iter_generated` works in chunks.
    """
    gen, t, _, info = open_generator(checkpoint, threshold, device)
    return np.concatenate(list(iter_generated(gen, info["latent"], n, seed, t, batch))), t


def features_of_chunks(chunks: Iterable[np.ndarray], examples: int = 4,
                       every: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """:func:`b2b.evaluation.metrics.feature_table` of a set given in chunks, never holding the whole set.

    Parameters
    ----------
    chunks : iterable of bool arrays ``(c, 17, 64, 72)``
    examples : int
        Windows to keep (for the self-similarity figure and the set statistics).
    every : int
        Keep the windows at positions ``0, every, 2 * every, …`` of the set (to spread the kept
        windows over a large set).

    Returns
    -------
    features : dict
        The per-window features of every chunk, concatenated (as ``feature_table`` of the whole set).
    examples : np.ndarray
        The kept windows, bool ``(k, 17, 64, 72)``, ``k <= examples``.
    stats : dict
        ``n`` (windows), ``on`` (cells on), ``silent`` (windows without a note).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    parts: dict[str, list[np.ndarray]] = {}
    kept: list[np.ndarray] = []
    n_kept = 0
    stats = {"n": 0, "on": 0, "silent": 0}
    for x in chunks:
        for k, v in M.feature_table(x).items():
            parts.setdefault(k, []).append(v)
        if n_kept < examples:
            first = (-stats["n"]) % every  # the first position in this chunk that is a multiple of every
            take = x[first::every][:examples - n_kept]
            kept.append(take.copy())
            n_kept += len(take)
        stats["n"] += len(x)
        stats["on"] += int(np.count_nonzero(x))
        stats["silent"] += int((~x.any(axis=(1, 2, 3))).sum())
    if not stats["n"]:
        raise ValueError("no windows to evaluate")
    feats = {k: np.concatenate(v) for k, v in parts.items()}
    ex = np.concatenate(kept) if kept else np.zeros((0, *M.SAMPLE_SHAPE), bool)
    return feats, ex, stats


class _DatasetWindows:
    """A dataset's windows as a sliceable sequence of bool arrays (for :func:`b2b.evaluation.metrics.nearest_overlap`)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.stack([np.asarray(self.ds.window(i)) for i in range(*s.indices(len(self.ds)))])


def training_reference(ds: Any, n: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """The training windows of an opened dataset and song labels, for the nearest-window overlap.

    Returns ``(windows, song of each training window, song of each window drawn by
    :func:`iter_real` with the same n and seed)``, or None for a dataset without songs.
    """
    if not callable(getattr(ds, "window", None)) or not hasattr(ds, "index"):
        return None
    songs = np.asarray(ds.index)[:, 0]
    return _DatasetWindows(ds), songs, songs[sample_indices(len(ds), n, seed)]


# ----------------------------------------------------------------------------------------------
# command
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b evaluate``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="generator checkpoint to sample from")
    source.add_argument("--samples", help=".npy of generated windows (n, 17, 64, 72): bools or probabilities")
    parser.add_argument("--data", default="bach",
                        help="real data: bach, lpd17, a dataset path, or a .npy of windows (default: bach)")
    parser.add_argument("--n", type=int, default=1000, help=f"windows per set, 1 to {MAX_N} (default: 1000)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threshold", default=None,
                        help="binarization threshold for generated probabilities, p >= T is a note; with "
                             "--checkpoint the default 'auto' is the threshold calibrated at export and "
                             "stored in the file, else the preset's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the real windows and of the noise")
    parser.add_argument("--device", default="cpu",
                        help="device for sampling from --checkpoint (cpu, cuda, auto; default: cpu)")
    parser.add_argument("--examples", type=int, default=4, help="self-similarity examples per set")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="write the tables and JSON only")
    parser.add_argument("--no-two-sample", dest="two_sample", action="store_false",
                        help="skip the classifier two-sample test (it trains a small classifier: about a "
                             "minute on 2 CPU cores)")


def run(args: argparse.Namespace) -> int:
    """Run ``b2b evaluate``: write the report into ``--out`` and print a short summary."""
    resolve_device(args.device)  # an unusable --device is one line before any work
    if not 1 <= args.n <= MAX_N:
        raise ValueError(f"--n must be >= 1 and <= {MAX_N} (windows per set; the features of both sets "
                         f"are kept in memory), got {args.n}")
    explicit = explicit_threshold(args.threshold)  # before any work
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    for name in ("report.md", "report.csv", "mgeval.json", "features_real.npz", "features_generated.npz"):
        check_not_input(out / name, [args.samples, args.data, args.checkpoint], "--out")  # never replace what is read
    existed = out.exists()
    try:  # a second evaluate into the same folder is refused now, not after the work
        lock = claim_output(out, f"--out {out}", pattern=_LEFTOVER_RE)
    except OSError as e:
        raise ValueError(f"--out {out}: {e.strerror or e}") from None
    try:
        return _run(args, out, explicit, lock)
    finally:
        lock.release()
        if not existed:  # a run refused before writing leaves no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()


def _run(args: argparse.Namespace, out: Path, explicit: float | None, lock: FolderLock) -> int:
    """The body of :func:`run`, holding the lock of ``--out``."""
    meta: dict[str, Any] = {"real": args.data, "seed": args.seed}
    info: dict[str, Any] = {}
    if args.samples:
        n_gen, gen_chunks = iter_samples(args.samples, args.n, explicit)
        meta["generated"] = args.samples
        if explicit is not None:
            meta["threshold"] = explicit
            meta["threshold_source"] = "--threshold"
        described = None if explicit is None else f"{explicit:g} (--threshold)"
    else:
        gen, threshold, source, info = open_generator(args.checkpoint, explicit, device=args.device)
        gen_chunks = iter_generated(gen, info["latent"], args.n, args.seed, threshold)
        n_gen = args.n
        meta["generated"] = f"{args.checkpoint} ({args.n} samples)"
        meta["threshold"] = threshold
        meta["threshold_source"] = {"argument": "--threshold"}.get(source, source)
        described = describe_threshold(threshold, source, info)
        if source == "calibrated" and info.get("calibration"):
            cal = info["calibration"]
            meta["threshold_calibration"] = (f"{cal.get('rule')}; density target {cal.get('density_target')} "
                                             f"from {cal.get('data')}")
    if str(args.data).endswith(".npy"):  # windows without songs: no training reference
        ds = None
    else:
        ds = open_dataset(args.data)
    n_real, real_chunks = iter_real(args.data, args.n, args.seed, dataset=ds)
    keep = max(args.examples, DIVERSITY_N)
    real_f, real_kept, real_stats = features_of_chunks(real_chunks, keep, stride(n_real, DIVERSITY_N))
    gen_f, gen_kept, gen_stats = features_of_chunks(gen_chunks, keep, stride(n_gen, DIVERSITY_N))
    real_ex, gen_ex = real_kept[:args.examples], gen_kept[:args.examples]
    ref = None if ds is None else training_reference(ds, args.n, args.seed)
    sets, near_r, near_g = set_statistics(
        real_kept, gen_kept, reference=None if ref is None else ref[0],
        reference_groups=None if ref is None else ref[1],
        real_groups=None if ref is None else ref[2][::stride(n_real, DIVERSITY_N)][:len(real_kept)],
        two_sample=args.two_sample, seed=args.seed)
    if near_r is not None and near_g is not None:  # per-window rows: NaN outside the kept windows
        for feats, near, stats in ((real_f, near_r, real_stats), (gen_f, near_g, gen_stats)):
            col = np.full(stats["n"], np.nan)
            col[::stride(stats["n"], DIVERSITY_N)][:len(near)] = near
            feats["nearest_train_overlap"] = col
    cells = int(np.prod(M.SAMPLE_SHAPE))
    meta["cells on (real / generated)"] = (f"{real_stats['on'] / (real_stats['n'] * cells):.4%} / "
                                           f"{gen_stats['on'] / (gen_stats['n'] * cells):.4%}")
    meta["silent windows (real / generated)"] = f"{real_stats['silent']} / {gen_stats['silent']}"
    report = evaluate(real_f, gen_f, meta=meta)
    report.sets = sets
    try:
        write_report(report, out, real_ex if len(real_ex) else None, gen_ex if len(gen_ex) else None,
                     args.examples, args.figures, lock=lock)
    except OSError as e:
        raise ValueError(f"--out {out}: {e.strerror or e}") from None
    head = f"b2b evaluate: {report.n_real} real windows ({args.data}) vs {report.n_generated} generated"
    print(head + (f" at threshold {described}" if described else "") + ":")
    print(summary(report, real_stats, gen_stats))
    extra = "figures, " if args.figures else ""
    print(f"full report ({len(report.rows)} rows, {extra}MGEval statistics): {out / 'report.md'}")
    if gen_stats["silent"] >= SILENT_WARNING * gen_stats["n"]:
        share = gen_stats["silent"] / gen_stats["n"]
        where = f"at threshold {described}" if described else "in --samples"
        if args.samples:
            hint = "binarize the probabilities at a lower --threshold"
        elif meta["threshold_source"] == "calibrated":
            hint = "the generator itself plays little: try a lower --threshold"
        elif info.get("threshold_source") == "calibrated":
            hint = (f"leave out --threshold (auto) to use the calibrated threshold {info['threshold']:.4g} "
                    f"stored in the file")
        else:
            hint = ("export the generator with a calibrated threshold (b2b export --checkpoint CKPT --data DATA "
                    "--out FILE), which --threshold auto then uses")
        print(f"b2b evaluate: warning: {gen_stats['silent']} of {gen_stats['n']} generated windows "
              f"({share:.0%}) are silent {where}; {hint}", file=sys.stderr)
    return 0
