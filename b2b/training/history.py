"""A training run's record: its history rows (read from the device in one copy), the files they
are written to, sample snapshots, the progress bar, and the error a non-finite loss raises.

History (``history.csv`` and ``history.json``, rewritten atomically at each checkpoint and at the
end) has one row per logged step, columns :data:`HISTORY_FIELDS` (see :mod:`b2b.training.trainer`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from b2b.files.atomic import atomic_write
from b2b.music.plot import sample_grid

__all__ = ["HISTORY_FIELDS", "TrainingDiverged", "read_statistics", "write_history", "save_samples"]

HISTORY_FIELDS = ["step", "epoch", "loss_d", "loss_g", "wasserstein", "penalty", "grad_norm",
                  "lr_g", "lr_d", "time"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


#: A step not yet read: (step, its statistics tensor, elapsed time, lr_g, lr_d).
Pending = tuple[int, Tensor, float, Any, Any]


def learning_rates(*optimizers: torch.optim.Optimizer) -> list[Any]:
    """Each optimizer's current rate (a copy when it is a device tensor, as under a CUDA graph)."""
    lrs = [opt.param_groups[0]["lr"] for opt in optimizers]
    return [lr.clone() if isinstance(lr, Tensor) else lr for lr in lrs]


def read_statistics(pending: list[Pending], log_every: int, total: int,
                    epoch_at: Any) -> tuple[list[dict[str, float]], tuple[int, list[float]] | None]:
    """The history rows of the ``pending`` steps, read from the device in one copy, and the first
    step whose losses are not finite with its values (None if all are); rows stop before it."""
    values = torch.stack([p[1] for p in pending]).cpu()  # (steps, 5), named by b2b.gan.step.STATS
    rows = []
    for (step, _, elapsed, lr_g, lr_d), vals in zip(pending, values.tolist()):
        if not all(math.isfinite(v) for v in vals):
            return rows, (step, vals)
        if step % log_every == 0 or step == total:
            rows.append({"step": step, "epoch": epoch_at(step), **dict(zip(HISTORY_FIELDS[2:7], vals)),
                         "lr_g": float(lr_g), "lr_d": float(lr_d), "time": elapsed})
    return rows, None


def diverged(step: int, values: list[float], last_checkpoint: Path | None) -> TrainingDiverged:
    """The error for a non-finite loss at ``step``, naming the values and the last good checkpoint."""
    where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    return TrainingDiverged(f"training diverged at step {step}: non-finite loss ("
                            + ", ".join(f"{k}={v:.4g}" for k, v in zip(HISTORY_FIELDS[2:7], values))
                            + f"); stopped without saving this step; {where}")


def progress_bar(show: bool, step: int, total: int) -> Any:
    """A tqdm bar from ``step`` to ``total``, or None when not ``show`` or nothing is left."""
    if not (show and step < total):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=step, desc="train", unit="it", dynamic_ncols=True)


def show_losses(bar: Any, row: dict[str, float]) -> None:
    """Show a history row's losses beside the progress bar."""
    bar.set_postfix(W=f"{row['wasserstein']:.3f}", D=f"{row['loss_d']:.3f}", G=f"{row['loss_g']:.3f}", refresh=False)


def write_history(out: Path, history: list[dict[str, float]]) -> None:
    """Write ``history.json`` and ``history.csv`` (columns :data:`HISTORY_FIELDS`) into ``out`` atomically."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(history, indent=0)
    atomic_write(out / "history.json", lambda f: f.write(text), mode="w")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write(out / "history.csv", lambda f: f.write(buf.getvalue()), mode="w")


def save_samples(out: Path, step: int, probs: Tensor, threshold: float) -> Path:
    """Write ``samples_<step:08d>.npy`` (generator probabilities ``(n, 17, 64, 72)`` as float16)
    and a PNG grid of them binarized at ``threshold`` into the run folder ``out`` (made if missing);
    returns the ``.npy`` path."""
    out.mkdir(parents=True, exist_ok=True)
    x = probs.numpy().astype(np.float16)
    path = out / f"samples_{step:08d}.npy"
    atomic_write(path, lambda f: np.save(f, x))
    fig = sample_grid(x.astype(np.float32), threshold=threshold)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write(path.with_suffix(".png"), lambda f: f.write(buf.getvalue()))
    return path
