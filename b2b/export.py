"""``b2b export``: a small generator-only file with its binarization threshold calibrated.

``b2b export --checkpoint CKPT --data bach --out generator.pt`` copies the generator's weights
out of a training checkpoint (or an exported file) and stores the threshold that
:func:`b2b.generate.calibrate_threshold` finds against the data's note density, so that
``b2b generate`` and ``b2b evaluate`` play it at that threshold by default (``--threshold auto``).
The work is done by :func:`b2b.train.export_generator`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b export``."""
    from b2b.generate import CALIBRATION_SAMPLES, CALIBRATION_SEED, MAX_SAMPLES

    parser.add_argument("--checkpoint", required=True, help="a training checkpoint or an exported generator file")
    parser.add_argument("--out", required=True, help="the generator file to write, e.g. generator.pt")
    target = parser.add_mutually_exclusive_group(required=True)
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
    from b2b.generate import MAX_SAMPLES
    from b2b.train import export_generator, load_generator

    if not 1 <= args.n <= MAX_SAMPLES:
        raise ValueError(f"--n must be in [1, {MAX_SAMPLES}], got {args.n}")
    if args.density is not None and not 0.0 < args.density < 1.0:
        raise ValueError(f"--density must be strictly between 0 and 1, got {args.density}")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected a file name such as generator.pt")
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
