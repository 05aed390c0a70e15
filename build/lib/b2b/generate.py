"""Sampling music from a trained generator: :func:`generate`, :func:`interpolate_latents`,
:func:`write_samples` and the ``b2b generate`` command.

The generator maps standard normal noise ``(n, latent)`` to probabilities ``(n, 17, 64, 72)``
in [0, 1]. A *sample* becomes music by binarizing it at a threshold (``p >= threshold`` is a
note; the ``seed`` preset uses 0.9). ``b2b generate`` writes, into ``--out``:

===========================  ====================================================================
``samples.npy``              float32 probabilities ``(n, 17, 64, 72)``
``samples_binary.npy``       bool ``(n, 17, 64, 72)``: ``samples >= threshold``
``sample_000.mid`` …         one MIDI file per sample (binarized; 4/4, constant tempo)
``sample_000.wav`` …         one 16-bit mono WAV per sample (:func:`b2b.audio.write_wav`)
``samples.png``              a pianoroll grid of the first 16 binarized samples
``samples.json``             what was written and how: n, threshold, tempo, seed, checkpoint …
===========================  ====================================================================

Every file is written atomically (a temporary name in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from b2b.atomic import atomic_write

__all__ = [
    "generate",
    "interpolate_latents",
    "write_samples",
    "check_threshold",
    "add_arguments",
    "run",
]

SAMPLE_SHAPE = (17, 64, 72)
#: Samples drawn in the figure ``samples.png`` (the first ones).
FIGURE_SAMPLES = 16
_CHUNK = 256  # generator batch per forward pass (eval mode: results do not depend on it)
_NUMBERED_RE = re.compile(r"^sample_(\d+)\.(mid|wav)$")


# --------------------------------------------------------------------------- sampling
def _module_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def generate(generator: nn.Module, n: int, *, seed: int | None = None, device: Any = None,
             latent: Tensor | None = None) -> Tensor:
    """Draw ``n`` samples from ``generator`` in eval mode, without gradients.

    Parameters
    ----------
    generator : GenConvNet
        Maps noise ``(B, latent)`` to probabilities ``(B, 17, 64, 72)``; its ``latent`` attribute
        (or ``config.latent``) gives the noise size. Its train/eval mode is restored afterwards.
    n : int
        Number of samples (>= 1).
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
        float32 probabilities ``(n, 17, 64, 72)`` in [0, 1], on the CPU.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive number of samples, got {n!r}")
    n = int(n)
    size = getattr(generator, "latent", None)
    if size is None:
        size = generator.config.latent
    size = int(size)
    if latent is not None:
        latent = torch.as_tensor(latent)
        if latent.dim() != 2 or latent.shape[1] != size:
            raise ValueError(f"latent: expected noise of shape (n, {size}), got {tuple(latent.shape)}")
        if latent.shape[0] != n:
            raise ValueError(f"latent: has {latent.shape[0]} rows but n is {n}")
        z = latent.detach().float().cpu()
    else:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        z = torch.randn(n, size, generator=gen)
    if device is not None:
        from b2b.train import resolve_device

        generator.to(resolve_device(device))
    dev = _module_device(generator)
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            parts = [generator(z[i:i + _CHUNK].to(dev)).float().cpu() for i in range(0, n, _CHUNK)]
    finally:
        generator.train(was_training)
    return torch.cat(parts)


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
def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """``threshold`` as a float strictly between 0 and 1; ValueError otherwise."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number strictly between 0 and 1, got {threshold!r}") from None
    if not 0.0 < t < 1.0:
        raise ValueError(f"{name}: expected a number strictly between 0 and 1, got {threshold!r}")
    return t


def _as_samples(samples: Any) -> np.ndarray:
    if isinstance(samples, Tensor):
        samples = samples.detach().float().cpu().numpy()
    x = np.asarray(samples)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != SAMPLE_SHAPE or x.shape[0] < 1:
        raise ValueError(f"samples: expected probabilities of shape (n, 17, 64, 72) with n >= 1, "
                         f"got shape {x.shape}")
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"samples: expected numbers in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise ValueError(f"samples: values must be probabilities in [0, 1], got range "
                         f"[{np.nanmin(x):g}, {np.nanmax(x):g}]")
    return x


def write_samples(samples: Any, out_dir: str | os.PathLike, threshold: float, *, tempo: float = 120.0,
                  sample_rate: int = 22050, wav: bool = True, figure: bool = True,
                  meta: dict[str, Any] | None = None) -> list[Path]:
    """Write samples as arrays, MIDI, WAV and a figure into ``out_dir`` (see the module table).

    Parameters
    ----------
    samples : Tensor or np.ndarray
        Probabilities ``(n, 17, 64, 72)`` in [0, 1] (a single window ``(17, 64, 72)`` is a batch
        of one; bool is accepted).
    out_dir : path
        Folder to write into (created if missing). Files of the same names are replaced, and
        numbered ``sample_NNN.mid/.wav`` files left over from an earlier, larger batch are
        removed so that the folder describes one batch.
    threshold : float
        Binarization threshold in (0, 1): ``p >= threshold`` is a note.
    tempo : float
        Beats per minute of the MIDI and WAV files (a 4-bar window lasts ``16 * 60 / tempo`` s).
    sample_rate : int
        WAV sample rate (Hz).
    wav, figure : bool
        Write the WAV files / ``samples.png``.
    meta : dict, optional
        Extra JSON-serialisable entries for ``samples.json`` (e.g. checkpoint, seed).

    Returns
    -------
    list of Path
        The written files: ``samples.npy``, ``samples_binary.npy``, then the MIDI files, the WAV
        files, ``samples.png`` and ``samples.json``.
    """
    from b2b.audio import write_wav
    from b2b.data import write_midi

    threshold = check_threshold(threshold)
    if not (isinstance(tempo, (int, float)) and tempo > 0):
        raise ValueError(f"tempo: expected a positive number of beats per minute, got {tempo!r}")
    x = _as_samples(samples)
    binary = x >= threshold
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    n = len(x)
    width = max(3, len(str(n - 1)))

    written = [atomic_write(out / "samples.npy", lambda f: np.save(f, x)),
               atomic_write(out / "samples_binary.npy", lambda f: np.save(f, binary))]
    mids, wavs = [], []
    for i in range(n):
        mids.append(write_midi(binary[i], out / f"sample_{i:0{width}d}.mid", threshold=0.5, tempo=tempo))
    if wav:
        for i in range(n):
            wavs.append(write_wav(binary[i], out / f"sample_{i:0{width}d}.wav", tempo=tempo,
                                  sample_rate=int(sample_rate)))
    written += mids + wavs
    keep = {p.name for p in mids + wavs}
    for p in out.iterdir():  # numbered files of an earlier, larger batch
        if _NUMBERED_RE.match(p.name) and p.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    if figure:
        written.append(_write_figure(binary, out / "samples.png"))
    info = {"n": n, "shape": list(x.shape[1:]), "threshold": threshold, "tempo": float(tempo),
            "sample_rate": int(sample_rate) if wav else None,
            "notes_on": float(binary.mean()), "empty_samples": int((~binary.any(axis=(1, 2, 3))).sum()),
            "files": [p.name for p in written] + ["samples.json"]}
    info.update(meta or {})
    text = json.dumps(info, indent=1, default=str)
    written.append(atomic_write(out / "samples.json", lambda f: f.write(text), mode="w"))
    return written


def _write_figure(binary: np.ndarray, path: Path) -> Path:
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from b2b.plot import sample_grid

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
    parser.add_argument("--n", type=int, default=16, help="number of samples (default: 16)")
    parser.add_argument("--out", default="samples", help="output folder (default: samples)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="binarization threshold in (0, 1) (default: the checkpoint preset's, 0.9 for seed)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--tempo", type=float, default=120.0, help="beats per minute of MIDI and WAV (default: 120)")
    parser.add_argument("--sample-rate", type=int, default=22050, help="WAV sample rate in Hz (default: 22050)")
    parser.add_argument("--no-wav", action="store_true", help="do not render WAV files")


def run(args: argparse.Namespace) -> int:
    """``b2b generate``: sample ``--n`` windows from ``--checkpoint`` and write them to ``--out``."""
    from b2b.cli import UserError
    from b2b.train import load_generator, resolve_device

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.threshold is not None:
        check_threshold(args.threshold, "--threshold")
    if not args.tempo > 0:
        raise UserError(f"--tempo must be positive, got {args.tempo}")
    if not 1000 <= args.sample_rate <= 192000:
        raise UserError(f"--sample-rate must be in [1000, 192000] Hz, got {args.sample_rate}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    device = resolve_device(args.device)
    generator, info = load_generator(args.checkpoint, device=device)
    threshold = check_threshold(args.threshold if args.threshold is not None else info["threshold"],
                                "--threshold")
    samples = generate(generator, args.n, seed=args.seed)
    meta = {"checkpoint": str(Path(args.checkpoint).resolve()), "step": info["step"],
            "preset": info["preset"].name, "seed": args.seed, "device": str(device)}
    written = write_samples(samples, out, threshold, tempo=args.tempo, sample_rate=args.sample_rate,
                            wav=not args.no_wav, meta=meta)
    binary = samples.numpy() >= threshold
    print(f"b2b generate: {args.n} samples from {args.checkpoint} (step {info['step']}, preset "
          f"{info['preset'].name}) at threshold {threshold:g}: {binary.mean():.3%} of cells on, "
          f"{int((~binary.any(axis=(1, 2, 3))).sum())} empty; {len(written)} files in {out}")
    if not binary.any():
        # a short or collapsed run can put every probability below the preset's threshold
        hint = float(np.quantile(samples.numpy(), 0.997))  # keeps ~0.3% of cells on, the Bach data's density
        print(f"b2b generate: warning: every sample is silent at threshold {threshold:g} (the highest "
              f"probability is {float(samples.max()):.3g}); try e.g. --threshold {hint:.3g}",
              file=sys.stderr)
    return 0
