"""``b2b export``: a small generator-only file with its binarization threshold calibrated.

``b2b export --checkpoint CKPT --data bach --out generator.pt`` copies the generator's weights
out of a training checkpoint (or an exported file) and stores the threshold that
:func:`b2b.sampling.generate.calibrate_threshold` finds against the data's note density, so that
``b2b generate`` and ``b2b evaluate`` play it at that threshold by default (``--threshold auto``).
:func:`export_generator` does the work (also from Python).

``b2b export --format onnx --checkpoint generator.pt --out generator.onnx`` writes the generator
as an ONNX model for a web page, with its stored threshold and track table beside it
(:func:`b2b.sampling.web.export_onnx`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from b2b.files.atomic import check_not_input, check_output, claim_output, read_json
from b2b.model.checkpoint import (FORMAT_VERSION, GENERATOR_FORMAT, atomic_torch_save, load_checkpoint, load_generator,
                            resolve_device)
from b2b.sampling.generate import CALIBRATION_SAMPLES, CALIBRATION_SEED, MAX_SAMPLES, calibrate_threshold, note_density
from b2b.sampling.web import export_onnx

__all__ = ["export_generator", "add_arguments", "run"]


def export_generator(checkpoint_path: str | Path, out_path: str | Path, *, data: Any = None,
                     density: float | None = None, n: int | None = None, seed: int | None = None,
                     device: str | torch.device = "cpu") -> Path:
    """Write the generator of a checkpoint to a small ``"b2b-generator"`` file (atomic), with its
    binarization threshold calibrated against the training data.

    The file holds ``format``, ``version``, ``step``, ``config``, ``preset``, ``generator`` (the
    weights), ``data`` and, when calibrated, ``threshold`` (float in (0, 1)) and ``calibration``
    (``rule``, ``data``, ``density_target``, ``density_at_threshold``, ``silent_share``,
    ``n_samples``, ``seed``: see :func:`b2b.sampling.generate.calibrate_threshold`). Both are optional
    keys of format version 1: files without them still load (their preset's threshold is used),
    and everything loads with ``torch.load(weights_only=True)``. The weights are copied
    unchanged; re-exporting an exported file recalibrates its threshold.

    Parameters
    ----------
    checkpoint_path : str or Path
        A training checkpoint or an exported generator file.
    out_path : str or Path
        The file to write; never ``checkpoint_path`` itself (ValueError): a command does not
        replace what it reads, and a training checkpoint's critic and optimizers would be lost.
    data : str, path, dataset or array, optional
        The training data, whose note density (share of on cells) the threshold matches
        (:func:`b2b.sampling.generate.note_density`), e.g. ``"bach"``.
    density : float, optional
        The target density directly, instead of ``data``. Without ``data`` and ``density`` no
        threshold is stored.
    n, seed : int, optional
        Calibration samples and noise seed (default :data:`b2b.sampling.generate.CALIBRATION_SAMPLES`,
        :data:`b2b.sampling.generate.CALIBRATION_SEED`).
    device : str or torch.device
        Where to run the generator for the calibration.

    Returns
    -------
    Path
        ``out_path``.
    """
    check_output(out_path)  # a symlink, device node or FIFO is never replaced (before any work)
    check_not_input(out_path, [checkpoint_path], "out")
    ckpt = load_checkpoint(checkpoint_path)
    small = {"format": GENERATOR_FORMAT, "version": FORMAT_VERSION, "step": ckpt.get("step", 0),
             "config": ckpt.get("config", {}), "preset": ckpt.get("preset"), "data": ckpt.get("data", {}),
             # the moving average of the generator's weights when the run kept one (b2b.training.ema)
             "generator": ckpt.get("generator_ema", ckpt.get("generator")),
             "weights": "ema" if "generator_ema" in ckpt else ckpt.get("weights", "trained")}
    if data is not None and density is not None:
        raise ValueError("export: give the training data or its density, not both")
    if data is not None or density is not None:
        g, _ = load_generator(checkpoint_path, device=device)  # checks the weights (fit, finite)
        if data is not None:
            density, windows = note_density(data)
            name = data if isinstance(data, (str, os.PathLike)) else type(data).__name__
            source = {"data": str(name), "data_windows": int(windows)}
        else:
            source = {"data": None, "data_windows": None}
        cal = calibrate_threshold(g, float(density), n=CALIBRATION_SAMPLES if n is None else n,
                                  seed=CALIBRATION_SEED if seed is None else seed, device=device)
        small["threshold"] = cal.pop("threshold")
        small["calibration"] = {**cal, **source}
    else:
        load_generator(checkpoint_path)  # refuse to export broken weights
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ValueError(f"out: {out_path} is a folder; expected a file name such as generator.pt")
    lock = claim_output(out_path, f"out {out_path}", file=True, inputs=[checkpoint_path])  # one writer
    try:
        atomic_torch_save(small, out_path)
    finally:
        lock.release()
    return out_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b export``."""
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint or an exported generator file")
    parser.add_argument("--out", required=True, help="the file to write, e.g. generator.pt (or generator.onnx)")
    parser.add_argument("--format", choices=("pt", "onnx"), default="pt",
                        help="pt: a b2b generator file with a calibrated threshold (needs --data or --density); "
                             "onnx: an ONNX model and its .json page metadata, with the threshold the "
                             "checkpoint stores (default: pt)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--data", help="the training data whose note density the threshold matches "
                                       "(bach, lpd17 or a dataset folder)")
    target.add_argument("--density", type=float,
                        help="the target share of on cells directly, in (0, 1), instead of --data")
    parser.add_argument("--n", type=int, default=CALIBRATION_SAMPLES,
                        help=f"calibration samples, 1 to {MAX_SAMPLES} (default: {CALIBRATION_SAMPLES})")
    parser.add_argument("--seed", type=int, default=CALIBRATION_SEED,
                        help=f"seed of the held-out calibration noise (default: {CALIBRATION_SEED})")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """``b2b export``: write ``--out`` and print the calibrated threshold."""
    resolve_device(args.device)  # an unusable --device is one line before any work
    if args.format == "onnx":
        return _run_onnx(args)
    if args.data is None and args.density is None:
        raise ValueError("--data or --density is required: the threshold is calibrated against a "
                         "note density (e.g. --data bach)")
    if not 1 <= args.n <= MAX_SAMPLES:
        raise ValueError(f"--n must be in [1, {MAX_SAMPLES}], got {args.n}")
    if args.density is not None and not 0.0 < args.density < 1.0:
        raise ValueError(f"--density must be strictly between 0 and 1, got {args.density}")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected a file name such as generator.pt")
    if not out.parent.is_dir():  # before the calibration, not when writing after it
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    check_not_input(out, [args.checkpoint], "--out")  # before any work
    try:
        export_generator(args.checkpoint, out, data=args.data, density=args.density, n=args.n,
                         seed=args.seed, device=args.device)
    except OSError as e:
        if isinstance(e, FileNotFoundError) and not out.parent.is_dir():
            raise ValueError(f"--out {out}: folder {out.parent} does not exist") from None
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"--out {out}: could not write ({e.strerror or e})") from None
    _, info = load_generator(out)
    cal = info["calibration"]
    print(f"b2b export: {out} (step {info['step']}, preset {info['preset'].name}); threshold "
          f"{info['threshold']:.4g}, density-matched to {cal['data'] or 'the given density'} "
          f"({cal['density_target']:.4%} of cells on) on {cal['n_samples']} samples of noise seed "
          f"{cal['seed']}: {cal['silent_share']:.1%} of them silent")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    """``b2b export --format onnx``: write ``--out`` (.onnx) and its ``.json`` metadata."""
    if args.data is not None or args.density is not None:
        raise ValueError("--format onnx uses the threshold stored in --checkpoint; calibrate it first "
                         "with b2b export --data ... (without --format onnx)")
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out} should end in .onnx with --format onnx")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    for written in (out, out.with_suffix(".json")):
        check_not_input(written, [args.checkpoint], "--out")
    try:
        export_onnx(args.checkpoint, out)
    except ModuleNotFoundError as e:
        raise ValueError(str(e)) from None
    meta = read_json(out.with_suffix(".json"))
    print(f"b2b export: {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}: step "
          f"{meta['source']['step']}, preset {meta['source']['preset']}, threshold {meta['threshold']:.4g} "
          f"({meta['threshold_source']})")
    return 0
