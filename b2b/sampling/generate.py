"""Sampling music from a trained generator: :func:`generate`, :func:`interpolate_latents`,
:func:`calibrate_threshold`, :func:`write_samples` and the ``b2b generate`` command.

The generator maps standard normal noise ``(n, latent)`` to probabilities ``(n, 17, 64, 72)``
in [0, 1]. A *sample* becomes music by binarizing it at a threshold (``p >= threshold`` is a
note). The threshold belongs to the generator: :func:`b2b.sampling.export.export_generator` stores the
one :func:`calibrate_threshold` finds (density-matched to the training data), and
``--threshold auto`` (the default of ``b2b generate`` and ``b2b evaluate``) uses it; a file
without one falls back to its preset's (the ``seed`` preset's 0.9), and an explicit
``--threshold`` always wins. ``b2b generate`` writes, into ``--out``:

===========================  ====================================================================
``samples.npy``              float32 probabilities ``(n, 17, 64, 72)``
``samples_binary.npy``       bool ``(n, 17, 64, 72)``: ``samples >= threshold``
``sample_000.mid`` …         one MIDI file per sample (binarized; 4/4, constant tempo)
``sample_000.wav`` …         one 16-bit mono WAV per sample (:func:`b2b.music.audio.write_wav`)
``samples.png``              a pianoroll grid of the first 16 binarized samples
``samples.json``             written last: n, threshold and its source, tempo, seed, checkpoint …
===========================  ====================================================================

A batch is written into a private ``.samples.<random>.tmp`` folder inside the output folder
and moved into place only when complete (``samples.json`` last); samples are generated and
written in chunks, so memory does not grow with ``n``. A failed run leaves the folder's earlier
batch untouched; one run at a time writes into a folder (``<out>/.lock``), and the leftovers of
a killed run are removed by the next. Only regular files are written: a symlink, device node or
FIFO at an output name is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from b2b.files.atomic import atomic_write, check_not_input, check_output, claim_output, free_bytes, publish, read_json
from b2b.music.audio import TAIL, check_tempo, write_wav
from b2b.model.checkpoint import load_generator, resolve_device
from b2b.model.networks import noise
from b2b.music.data import write_midi
from b2b.datasets.catalog import open_dataset
from b2b.music.geometry import SAMPLE_SHAPE, as_windows, check_threshold
from b2b.music.plot import sample_grid

__all__ = [
    "MAX_SAMPLES",
    "CALIBRATION_SEED",
    "CALIBRATION_SAMPLES",
    "generate",
    "iter_generate",
    "latent_size",
    "interpolate_latents",
    "note_density",
    "calibrate_threshold",
    "resolve_threshold",
    "explicit_threshold",
    "describe_threshold",
    "write_samples",
    "estimate_bytes",
    "add_arguments",
    "run",
]

#: Samples drawn in the figure ``samples.png`` (the first ones).
FIGURE_SAMPLES = 16
#: Most samples one ``b2b generate`` (or one calibration) may write: a MIDI and a WAV file
#: each, about 0.8 MB per sample on disk at 22,050 Hz and 120 bpm (3.2 GB for 4,096).
MAX_SAMPLES = 4096
#: Seed of the held-out noise on which :func:`calibrate_threshold` calibrates (not 0, 1, 2 …,
#: the seeds sampling and evaluation use by default).
CALIBRATION_SEED = 20230917
#: Number of noise samples :func:`calibrate_threshold` uses by default.
CALIBRATION_SAMPLES = 1000
_CHUNK = 256  # generator batch per forward pass (eval mode: results do not depend on it)
_NUMBERED_RE = re.compile(r"^sample_(\d+)\.(mid|wav)$")
#: What a killed run of this module leaves in its out folder: its staging folder and temporaries.
_LEFTOVER_RE = re.compile(r"\.(samples(\.npy|\.json|\.png|_binary\.npy)?|sample_\d+\.(mid|wav)|b2b-old)\.[0-9a-f]{8}\.tmp")


# --------------------------------------------------------------------------- sampling
def _module_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def latent_size(generator: nn.Module) -> int:
    """The noise size a generator takes: its ``latent`` attribute, else ``config.latent``."""
    size = getattr(generator, "latent", None)
    if size is None:
        size = generator.config.latent
    return int(size)


def iter_generate(generator: nn.Module, n: int, *, seed: int | None = None, device: Any = None,
                  latent: Tensor | None = None, chunk: int | None = None) -> Iterator[Tensor]:
    """:func:`generate` in consecutive chunks, so that ``n`` samples never sit in memory at once.

    Same arguments as :func:`generate` plus ``chunk`` (samples per piece, default 256). The
    noise ``(n, latent)`` is drawn up front exactly as :func:`generate` draws it, so
    ``torch.cat(list(iter_generate(g, n, seed=s)))`` equals ``generate(g, n, seed=s)``.

    Yields
    ------
    Tensor
        float32 probabilities ``(c, 17, 64, 72)`` on the CPU, ``c <= chunk``; ValueError as
        soon as a piece holds a value that is not finite (NaN or inf: a broken generator).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive number of samples, got {n!r}")
    n = int(n)
    chunk = _CHUNK if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk: expected a positive number of samples, got {chunk!r}")
    size = latent_size(generator)
    if latent is not None:
        latent = torch.as_tensor(latent)
        if latent.dim() != 2 or latent.shape[1] != size:
            raise ValueError(f"latent: expected noise of shape (n, {size}), got {tuple(latent.shape)}")
        if latent.shape[0] != n:
            raise ValueError(f"latent: has {latent.shape[0]} rows but n is {n}")
        z = latent.detach().float().cpu()
    else:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        z = noise(n, size, generator=gen)  # n x latent floats: small next to the samples
    if device is not None:
        generator.to(resolve_device(device))
    dev = _module_device(generator)
    was_training = generator.training
    generator.eval()
    try:
        for i in range(0, n, chunk):
            with torch.no_grad():
                part = generator(z[i:i + chunk].to(dev)).float().cpu()
            if not bool(torch.isfinite(part).all()):
                bad = int((~torch.isfinite(part)).sum())
                raise ValueError(f"generator: {bad} of its outputs for samples {i}..{i + len(part) - 1} are "
                                 f"not finite (NaN or inf); the generator is broken")
            yield part
    finally:
        generator.train(was_training)


def generate(generator: nn.Module, n: int, *, seed: int | None = None, device: Any = None,
             latent: Tensor | None = None) -> Tensor:
    """Draw ``n`` samples from ``generator`` in eval mode, without gradients.

    Parameters
    ----------
    generator : GenConvNet
        Maps noise ``(B, latent)`` to probabilities ``(B, 17, 64, 72)``; its ``latent`` attribute
        (or ``config.latent``) gives the noise size. Its train/eval mode is restored afterwards.
    n : int
        Number of samples (>= 1). The result takes ``n × 313,344`` bytes; use
        :func:`iter_generate` for many samples.
    seed : int, optional
        Seeds the noise: the noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)``,
        so the same seed gives the same noise on every device. ``None`` draws from torch's global
        random state.
    device : str or torch.device, optional
        Where to run (``"auto"``, ``"cpu"``, ``"cuda"``); the generator is moved there (in
        place). Default: the generator's current device.
    latent : Tensor, optional
        Noise ``(n, latent)`` to use instead of drawing it (e.g. from
        :func:`interpolate_latents`); ``seed`` is then ignored.

    Returns
    -------
    Tensor
        float32 probabilities ``(n, 17, 64, 72)`` in [0, 1], on the CPU. ValueError if the
        generator outputs a value that is not finite.
    """
    return torch.cat(list(iter_generate(generator, n, seed=seed, device=device, latent=latent)))


# --------------------------------------------------------------------------- threshold
def note_density(data: Any, *, chunk: int = 256) -> tuple[float, int]:
    """Share of on cells in a set of windows: the data's note density.

    Parameters
    ----------
    data : str, path, dataset or array
        ``"bach"``, ``"lpd17"`` or a store folder (opened with :func:`b2b.datasets.catalog.open_dataset`),
        an opened dataset with ``window(i)`` (or items ``(17, 64, 72)``), or windows
        ``(n, 17, 64, 72)`` (bool or 0/1 numbers).
    chunk : int
        Windows read at a time (memory: ``chunk × 78,336`` bytes).

    Returns
    -------
    density : float
        Cells that are on / all cells (dimensionless, in [0, 1]); the Bach data is about 0.003.
    n : int
        Number of windows counted (all of them).
    """
    if isinstance(data, (str, os.PathLike)):
        data = open_dataset(data)
    if isinstance(data, (np.ndarray, Tensor)):
        x = as_windows(data, name="data")
        if len(x) < 1:
            raise ValueError("data: expected windows of shape (n, 17, 64, 72) with n >= 1, got none")
        n = len(x)
        on = sum(int(np.count_nonzero(x[i:i + chunk] >= 0.5)) for i in range(0, n, chunk))
    else:
        n = len(data)
        if n < 1:
            raise ValueError("data: the dataset has no windows")
        window = getattr(data, "window", None)
        on = 0
        for i in range(n):
            w = np.asarray(window(i)) if callable(window) else np.asarray(data[i])
            on += int(np.count_nonzero(w >= 0.5))
    return on / (n * int(np.prod(SAMPLE_SHAPE))), n


def calibrate_threshold(generator: nn.Module, density: float, *, n: int = CALIBRATION_SAMPLES,
                        seed: int = CALIBRATION_SEED, device: Any = None) -> dict[str, Any]:
    """The binarization threshold that makes the generator's music as dense as the data's.

    Rule (*density matching*): draw ``n`` samples from noise seeded with ``seed`` (held out: a
    fixed seed of its own, not one that sampling or evaluation uses by default), and take the
    threshold ``t`` = the ``k``-th largest of their ``n × 78,336`` probabilities, with
    ``k = max(1, round(density × n × 78,336))``. Binarized at ``p >= t``, the calibration
    samples then have (ties aside) exactly the share ``density`` of cells on, the density of
    the training data. The generator's sigmoid outputs are not calibrated probabilities (a
    WGAN's generator is trained only to fool a critic), so a fixed cut such as the ``seed``
    preset's 0.9 can leave a good generator silent or turn a weak one into noise; matching the
    data's density instead makes the comparison of real and generated music about *where*
    notes are, not how many. Deterministic: same generator, density, ``n`` and seed, same
    threshold. Memory is bounded: samples are drawn in chunks and only the ``k`` largest
    values are kept (a second pass over the same noise counts the cells at the threshold).

    Parameters
    ----------
    generator : GenConvNet
        The generator (probabilities in [0, 1]).
    density : float
        Target share of on cells, in (0, 1) (e.g. from :func:`note_density`).
    n : int
        Calibration samples (1 to :data:`MAX_SAMPLES`).
    seed : int
        Seed of the calibration noise (:data:`CALIBRATION_SEED` by default).
    device : str or torch.device, optional
        Where to run the generator.

    Returns
    -------
    dict
        ``threshold`` (float in (0, 1), clipped to ``[1e-6, 1 - 1e-6]``), ``rule`` (one line),
        ``density_target``, ``density_at_threshold`` (share of calibration cells ``>= t``),
        ``silent_share`` (share of calibration samples with no note at ``t``), ``n_samples``,
        ``seed``.
    """
    d = float(density)
    if not 0.0 < d < 1.0:
        raise ValueError(f"density: expected a share of on cells strictly between 0 and 1, got {density!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"n: expected a number of calibration samples in [1, {MAX_SAMPLES}], got {n!r}")
    cells = int(np.prod(SAMPLE_SHAPE))
    total = int(n) * cells
    k = max(1, min(total, int(round(d * total))))
    top = np.empty(0, np.float32)
    peaks = []  # the highest probability of each sample: silent at t iff peak < t
    for part in iter_generate(generator, int(n), seed=int(seed), device=device, chunk=64):
        flat = part.numpy().reshape(len(part), -1)
        peaks.append(flat.max(axis=1))
        both = np.concatenate([top, flat.ravel()])
        top = both if len(both) <= k else np.partition(both, len(both) - k)[len(both) - k:]
    t = float(np.clip(top.min(), 1e-6, 1 - 1e-6))
    peak = np.concatenate(peaks)
    # the share actually on at t (ties with t included): a second pass over the same noise
    on = sum(int(np.count_nonzero(part.numpy() >= t))
             for part in iter_generate(generator, int(n), seed=int(seed), device=device, chunk=64))
    return {"threshold": t,
            "rule": f"density-matched: the k-th largest generator probability on {int(n)} samples of "
                    f"noise seed {int(seed)}, k = round(density_target x {int(n)} x 78336)",
            "density_target": d, "density_at_threshold": on / total,
            "silent_share": float((peak < t).mean()), "n_samples": int(n), "seed": int(seed)}


def resolve_threshold(threshold: Any, info: dict[str, Any], name: str = "--threshold") -> tuple[float, str]:
    """The threshold to use and where it comes from.

    ``threshold`` is a number (an explicit choice: wins, source ``"argument"``), or ``None`` /
    ``"auto"``: the threshold stored in the generator file (``"calibrated"``) when there is one,
    else its preset's (``"preset"``), as :func:`b2b.model.checkpoint.load_generator` reports in ``info``.
    """
    explicit = explicit_threshold(threshold, name)
    if explicit is None:  # b2b.model.checkpoint.load_generator checked the stored one when it read the file
        return float(info["threshold"]), str(info.get("threshold_source", "preset"))
    return explicit, "argument"


def explicit_threshold(threshold: Any, name: str = "--threshold") -> float | None:
    """An explicit ``threshold`` checked by :func:`b2b.music.geometry.check_threshold`, or None for ``None`` / ``"auto"``
    (the file's or preset's then decides, :func:`resolve_threshold`). Commands call it before
    loading anything, so a bad ``--threshold`` is one line at once."""
    if threshold is None or (isinstance(threshold, str) and threshold.strip().lower() == "auto"):
        return None
    return check_threshold(threshold, name)


def describe_threshold(threshold: float, source: str, info: dict[str, Any] | None = None) -> str:
    """One line: ``0.255 (calibrated at export: density-matched to bach)`` and the like."""
    info = info or {}
    if source == "calibrated":
        cal = info.get("calibration") or {}
        data = cal.get("data")
        how = f"density-matched to {data}" if data else "stored in the generator file"
        return f"{threshold:.4g} (calibrated at export: {how})"
    if source == "preset":
        preset = info.get("preset")
        name = getattr(preset, "name", None)
        return f"{threshold:.4g} (the {name + ' ' if name else ''}preset's; no calibrated threshold in the file)"
    return f"{threshold:.4g} (--threshold)"


def interpolate_latents(z0: Tensor, z1: Tensor, steps: int, *, method: str = "slerp") -> Tensor:
    """Points on the way from ``z0`` to ``z1``, both ends included.

    Parameters
    ----------
    z0, z1 : Tensor
        Latent vectors of the same shape: ``(latent,)`` or a batch ``(B, latent)`` (each row is
        interpolated with the row of the same index).
    steps : int
        Number of points (>= 2); point ``k`` is at ``t = k / (steps - 1)``.
    method : {"slerp", "linear"}
        ``"linear"``: ``(1 - t) z0 + t z1``. ``"slerp"`` (spherical): rotate from the direction of
        ``z0`` to that of ``z1`` at a constant angular speed, weights ``sin((1-t)ω)/sin ω`` and
        ``sin(tω)/sin ω`` with ``ω`` the angle between them. For Gaussian noise of high dimension
        the midpoints of a straight line are unusually short vectors (about ``1/√2`` of the norm
        half-way between two independent draws), which the generator never saw in training;
        spherical interpolation keeps the norm close to that of the endpoints. Nearly parallel
        vectors (``sin ω < 1e-6``) fall back to linear.

    Returns
    -------
    Tensor
        ``(steps, *z0.shape)``, float32: ``result[0] == z0`` and ``result[-1] == z1``. For a batch,
        ``result.flatten(0, 1)`` is ready for :func:`generate`.
    """
    z0, z1 = torch.as_tensor(z0).float(), torch.as_tensor(z1).float()
    if z0.shape != z1.shape or z0.dim() not in (1, 2) or z0.shape[-1] < 1:
        raise ValueError(f"z0, z1: expected two latents of the same shape (latent,) or (B, latent), "
                         f"got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps: expected an integer >= 2 (both ends are included), got {steps!r}")
    if method not in ("slerp", "linear"):
        raise ValueError(f"method: expected 'slerp' or 'linear', got {method!r}")
    if z0.device != z1.device:
        raise ValueError(f"z0, z1: on different devices ({z0.device} and {z1.device})")
    t = torch.linspace(0.0, 1.0, int(steps), dtype=torch.float64, device=z0.device).view(-1, *([1] * z0.dim()))
    a, b = z0.double(), z1.double()
    if method == "linear":
        out = (1 - t) * a + t * b
    else:
        na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
        cos = ((a * b).sum(-1, keepdim=True) / (na * nb).clamp_min(1e-300)).clamp(-1.0, 1.0)
        omega = torch.arccos(cos)
        so = torch.sin(omega)
        ok = so > 1e-6
        safe = torch.where(ok, so, torch.ones_like(so))
        wa = torch.where(ok, torch.sin((1 - t) * omega) / safe, 1 - t)
        wb = torch.where(ok, torch.sin(t * omega) / safe, t)
        out = wa * a + wb * b
    out = out.float()
    out[0], out[-1] = z0, z1  # exact ends
    return out


# --------------------------------------------------------------------------- writing
def _as_samples(samples: Any) -> np.ndarray:
    """Probabilities or notes ``(n, 17, 64, 72)``, ``n >= 1``, as float32 (checked by
    :func:`b2b.music.geometry.as_windows`)."""
    x = as_windows(samples, name="samples")
    if len(x) < 1:
        raise ValueError("samples: expected windows of shape (n, 17, 64, 72) with n >= 1, got none")
    return x.astype(np.float32, copy=False)


def estimate_bytes(n: int, *, wav: bool = True, tempo: float = 120.0, sample_rate: int = 22050,
                   figure: bool = True) -> int:
    """Bytes that :func:`write_samples` writes for ``n`` samples (an upper estimate).

    Per sample: 313,344 (float32 probabilities) + 78,336 (bools) + a MIDI file (at most 16 kB)
    + with ``wav`` a 16-bit mono WAV of ``(960 / tempo + TAIL) × sample_rate`` frames; plus
    the figure and ``samples.json``.
    """
    cells = int(np.prod(SAMPLE_SHAPE))
    per = 5 * cells + 16_384
    if wav:
        per += 2 * int(np.ceil((16 * 60.0 / float(tempo) + TAIL) * int(sample_rate))) + 44
    return int(n) * per + 256 + (2_000_000 if figure else 0) + 4096 * (1 + int(n) // 100)


def _npy_header(f: Any, dtype: str, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})


def write_samples(samples: Any, out_dir: str | os.PathLike, threshold: float, *, tempo: float = 120.0,
                  sample_rate: int = 22050, wav: bool = True, figure: bool = True,
                  meta: dict[str, Any] | None = None, n: int | None = None) -> list[Path]:
    """Write samples as arrays, MIDI, WAV and a figure into ``out_dir`` (see the module table).

    Parameters
    ----------
    samples : Tensor, np.ndarray or iterable of them
        Probabilities ``(n, 17, 64, 72)`` in [0, 1] (a single window ``(17, 64, 72)`` is a batch
        of one; bool is accepted), or an iterable of such chunks (e.g. :func:`iter_generate`),
        written as they come so that memory does not grow with ``n``; then pass ``n``.
    out_dir : path
        Folder to write into (created if missing). Files of the same names are replaced, and
        numbered ``sample_NNN.mid/.wav`` files left over from an earlier, larger batch are
        removed so that the folder describes one batch.
    threshold : float
        Binarization threshold in (0, 1): ``p >= threshold`` is a note.
    tempo : float
        Beats per minute of the MIDI and WAV files, in [20, 400] (a 4-bar window lasts
        ``16 * 60 / tempo`` s).
    sample_rate : int
        WAV sample rate (Hz).
    wav, figure : bool
        Write the WAV files / ``samples.png``.
    meta : dict, optional
        Extra JSON-serialisable entries for ``samples.json`` (e.g. checkpoint, seed).
    n : int, optional
        Number of samples when ``samples`` is an iterable of chunks (required then).

    Returns
    -------
    list of Path
        The written files: ``samples.npy``, ``samples_binary.npy``, then the MIDI files, the WAV
        files, ``samples.png`` and ``samples.json``.

    Raises
    ------
    ValueError
        Bad arguments or samples (checked before anything is written when ``samples`` is an
        array), or a chunk that breaks the promise of ``n``.
    OSError
        Writing failed (full disk, no permission, ``out_dir`` unusable, a name in it that is a
        symlink, device or FIFO); its message names the file. The batch is written into a
        private ``.samples.<random>.tmp`` folder inside ``out_dir`` and moved into place only once
        complete (``samples.json`` last), so a failed call leaves an earlier batch untouched.
        :class:`b2b.files.atomic.FolderLocked` if another writer holds the folder (``<out>/.lock``);
        the leftovers of a killed one are removed first.
    """
    threshold = check_threshold(threshold)
    tempo = check_tempo(tempo)
    if isinstance(samples, (Tensor, np.ndarray)):
        first = _as_samples(samples)
        chunks: Iterable[Any] = [first]
        n = len(first)
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: pass the number of samples (>= 1) when samples come in chunks, got {n!r}")
        chunks = samples
    n = int(n)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a folder")
    width = max(3, len(str(n - 1)))
    numbered = [f"sample_{i:0{width}d}.{ext}" for ext in ("mid", "wav") for i in range(n)]
    for name in ["samples.npy", "samples_binary.npy", "samples.png", "samples.json", *numbered]:
        check_output(out / name)  # never replace a link, a device or a FIFO at one of the names
    lock = claim_output(out, f"out folder {out}", pattern=_LEFTOVER_RE)  # one writer; a killed one's leftovers go
    stage = out / f".samples.{uuid.uuid4().hex[:8]}.tmp"  # this run's files, until all are written
    doing = [out]  # the file being written (its final name), for messages
    try:
        stage.mkdir()
        names = _write_staged(chunks, stage, n, width, threshold, tempo, sample_rate, wav, figure, meta, doing)
        doing[0] = out
        return _publish(stage, out, names)
    except BaseException as e:
        current = doing[0]
        if isinstance(e, OSError):
            why = e.strerror or str(e)
            where = e.filename if current == out and e.filename is not None else current
            raise OSError(e.errno or errno.EIO, f"could not write {where} ({why}); the folder's earlier "
                          "files are untouched") from e
        raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
        lock.release()


def _write_staged(chunks: Iterable[Any], stage: Path, n: int, width: int, threshold: float, tempo: float,
                  sample_rate: int, wav: bool, figure: bool, meta: dict[str, Any] | None,
                  doing: list[Path]) -> list[str]:
    """Write every file of a batch into the private folder ``stage``; return their names, in
    the order :func:`write_samples` returns them (``samples.json`` last). ``doing[0]`` is set
    to the final name of the file being written."""
    out = stage.parent
    mids: list[str] = []
    wavs: list[str] = []
    stats = {"on": 0, "empty": 0, "shown": []}
    doing[0] = out / "samples.npy"
    with open(stage / "samples.npy", "wb") as fprobs, open(stage / "samples_binary.npy", "wb") as fbin:
        _npy_header(fprobs, "<f4", (n, *SAMPLE_SHAPE))
        _npy_header(fbin, "|b1", (n, *SAMPLE_SHAPE))
        done = 0
        for part in chunks:
            x = _as_samples(part)
            if done + len(x) > n:
                raise ValueError(f"samples: more than n = {n} samples arrived")
            binary = x >= threshold
            doing[0] = out / "samples.npy"
            fprobs.write(np.ascontiguousarray(x, dtype="<f4").data)  # no copy of the chunk
            fbin.write(np.ascontiguousarray(binary).data)
            for j in range(len(x)):
                name = f"sample_{done + j:0{width}d}"
                doing[0] = out / f"{name}.mid"
                write_midi(binary[j], stage / f"{name}.mid", threshold=0.5, tempo=tempo)
                mids.append(f"{name}.mid")
                if wav:
                    doing[0] = out / f"{name}.wav"
                    write_wav(binary[j], stage / f"{name}.wav", tempo=tempo, sample_rate=int(sample_rate))
                    wavs.append(f"{name}.wav")
            stats["on"] += int(np.count_nonzero(binary))
            stats["empty"] += int((~binary.any(axis=(1, 2, 3))).sum())
            if len(stats["shown"]) < FIGURE_SAMPLES:
                stats["shown"].extend(binary[:FIGURE_SAMPLES - len(stats["shown"])])
            done += len(x)
        if done != n:
            raise ValueError(f"samples: {done} samples arrived, expected n = {n}")
        for f in (fprobs, fbin):
            f.flush()
            os.fsync(f.fileno())
    names = ["samples.npy", "samples_binary.npy", *mids, *wavs]
    if figure:
        doing[0] = out / "samples.png"
        _write_figure(np.stack(stats["shown"]), stage / "samples.png")
        names.append("samples.png")
    info = {"n": n, "shape": list(SAMPLE_SHAPE), "threshold": threshold, "tempo": float(tempo),
            "sample_rate": int(sample_rate) if wav else None,
            "notes_on": stats["on"] / (n * int(np.prod(SAMPLE_SHAPE))), "empty_samples": stats["empty"],
            "files": names + ["samples.json"]}
    info.update(meta or {})
    text = json.dumps(info, indent=1, default=str)
    doing[0] = out / "samples.json"
    atomic_write(stage / "samples.json", lambda f: f.write(text), mode="w")
    return names + ["samples.json"]


def _publish(stage: Path, out: Path, names: list[str]) -> list[Path]:
    """Swap the staged batch into ``out`` as a whole (:func:`b2b.files.atomic.publish`): the numbered
    files of an earlier, larger batch go with the files they are replaced by, ``samples.json``
    comes last, and anything that fails or interrupts the swap leaves the earlier batch as it was."""
    keep = set(names)
    stale = sorted(p.name for p in out.iterdir() if _NUMBERED_RE.match(p.name) and p.name not in keep)
    return publish(stage, out, names, remove=stale)


def _write_figure(binary: np.ndarray, path: Path) -> Path:
    shown = binary[:FIGURE_SAMPLES]
    fig = sample_grid(shown, ncols=4, threshold=0.5, titles=[f"sample {i}" for i in range(len(shown))])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b generate``."""
    parser.add_argument("--checkpoint", required=True,
                        help="a training checkpoint (checkpoint_*.pt) or an exported generator file")
    parser.add_argument("--n", type=int, default=16,
                        help=f"number of samples, 1 to {MAX_SAMPLES} (default: 16)")
    parser.add_argument("--out", default="samples", help="output folder (default: samples)")
    parser.add_argument("--threshold", default="auto",
                        help="binarization threshold in (0, 1), p >= T is a note; 'auto' (default): the "
                             "threshold calibrated at export and stored in the generator file, else the "
                             "preset's (0.9 for seed)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--tempo", type=float, default=120.0,
                        help="beats per minute of MIDI and WAV, 20 to 400 (default: 120)")
    parser.add_argument("--sample-rate", type=int, default=22050, help="WAV sample rate in Hz (default: 22050)")
    parser.add_argument("--no-wav", action="store_true", help="do not render WAV files")


def run(args: argparse.Namespace) -> int:
    """``b2b generate``: sample ``--n`` windows from ``--checkpoint`` and write them to ``--out``."""
    if not 1 <= args.n <= MAX_SAMPLES:
        raise ValueError(f"--n must be at least 1 and at most {MAX_SAMPLES} (one MIDI and one WAV file per "
                        f"sample), got {args.n}")
    explicit = explicit_threshold(args.threshold)  # before the checkpoint is loaded
    check_tempo(args.tempo, "--tempo")
    if not 1000 <= args.sample_rate <= 192000:
        raise ValueError(f"--sample-rate must be in [1000, 192000] Hz, got {args.sample_rate}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    need = estimate_bytes(args.n, wav=not args.no_wav, tempo=args.tempo, sample_rate=args.sample_rate)
    free = free_bytes(out)
    if need > free:
        raise ValueError(f"--out {out}: {args.n} samples (--n) need about {need / 1e6:.0f} MB but only "
                        f"{free / 1e6:.0f} MB are free there")
    for name in ("samples.npy", "samples_binary.npy", "samples.png", "samples.json"):
        check_not_input(out / name, [args.checkpoint], "--out")  # never replace what is read
    device = resolve_device(args.device)
    generator, info = load_generator(args.checkpoint, device=device)
    threshold, source = resolve_threshold(explicit, info)
    meta = {"checkpoint": str(Path(args.checkpoint).resolve()), "step": info["step"],
            "preset": info["preset"].name, "seed": args.seed, "device": str(device),
            "threshold_source": source, "preset_threshold": info.get("preset_threshold"),
            "calibration": info.get("calibration") if source == "calibrated" else None}
    peak = [0.0]

    def chunks() -> Iterator[Tensor]:
        for part in iter_generate(generator, args.n, seed=args.seed):
            peak[0] = max(peak[0], float(part.max()))
            yield part

    try:
        written = write_samples(chunks(), out, threshold, tempo=args.tempo, sample_rate=args.sample_rate,
                                wav=not args.no_wav, meta=meta, n=args.n)
    except OSError as e:
        where = f" {e.filename}:" if e.filename is not None and Path(str(e.filename)) != out else ""
        raise ValueError(f"--out {out}:{where} {e.strerror or e}") from None
    summary = read_json(out / "samples.json")
    print(f"b2b generate: {args.n} samples from {args.checkpoint} (step {info['step']}, preset "
          f"{info['preset'].name}) at threshold {describe_threshold(threshold, source, info)}: "
          f"{summary['notes_on']:.3%} of cells on, {summary['empty_samples']} empty; {len(written)} files in {out}")
    if summary["empty_samples"] == args.n:
        # a short or collapsed run can put every probability below the threshold
        probs = np.load(out / "samples.npy", mmap_mode="r")
        sub = np.asarray(probs[:min(args.n, 64)])
        hint = float(np.quantile(sub, 0.997))  # keeps ~0.3% of cells on, the Bach data's density
        print(f"b2b generate: warning: every sample is silent at threshold {threshold:g} ({source}; the "
              f"highest probability is {peak[0]:.3g}); try e.g. --threshold {hint:.3g}"
              + ("" if source == "calibrated" else " or export the generator with a calibrated threshold "
                 "(b2b export), which generate then uses by default"), file=sys.stderr)
    return 0
