"""A training run's output folder and machine: one run at a time, resumable, sized to fit.

Everything that keeps a run safe and is not the training loop lives here, so that
:class:`b2b.training.trainer.Trainer` reads as the loop:

- :func:`claim_run_folder`: the one call that takes a run's folder. It refuses an ``--out`` that
  is a file, locks ``<out>/.lock`` (:class:`b2b.files.atomic.FolderLock`; a second run gets
  :class:`b2b.files.atomic.FolderLocked` naming the holder's pid, host and start time; a lock left by
  a killed run does not block) and removes the temporaries that killed runs left
  (:data:`LEFTOVER_RE`). ``b2b train`` owns its output and takes it here; the Trainer takes no
  lock. :func:`check_unused` refuses a new run in a folder that holds checkpoints and
  :func:`check_not_overtaken` a run whose folder another run has written into since it last saved.
- :func:`newest_readable_checkpoint`: what ``--resume`` continues from. Newer checkpoints that
  do not load (truncated by a crash, damaged) are renamed ``*.unreadable`` and reported.
- :func:`check_batch_memory`: refuses, before anything big is allocated, a batch whose step
  cannot fit, from :data:`STEP_BYTES_PER_SAMPLE` and :data:`STEP_BYTES_FIXED`.
- :func:`default_threads`: ``b2b train``'s CPU thread count, from the cores left idle.
"""

from __future__ import annotations

import errno
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

from b2b.files.atomic import FolderLock, claim_output
from b2b.model.checkpoint import checkpoints, latest_checkpoint, load_checkpoint

__all__ = ["LEFTOVER_RE", "STEP_BYTES_PER_SAMPLE", "STEP_BYTES_FIXED", "claim_run_folder", "check_unused",
           "check_not_overtaken",
           "newest_readable_checkpoint", "step_bytes", "available_memory", "check_batch_memory",
           "default_threads"]

#: Temporaries of b2b.files.atomic writers in a run folder (``.<name>.<8 hex>.tmp``), left by killed runs.
LEFTOVER_RE = re.compile(r"\.(checkpoint_\d+\.pt|history\.(json|csv)|samples_\d+\.(npy|png)|generator\.pt)"
                         r"\.[0-9a-f]{8}\.tmp")
#: Peak memory of one training step per sample of the (per-process) batch, bytes: measured on the
#: CPU in float32 and rounded up (benchmarks/README.md, "Memory of a training step").
STEP_BYTES_PER_SAMPLE = int(3.2 * 2**20)
#: The rest of a step's peak: networks, optimizers, allocator slack (bytes).
STEP_BYTES_FIXED = 256 * 2**20


def claim_run_folder(out: str | os.PathLike, what: str) -> FolderLock:
    """Lock the run folder ``out`` (created if missing) and remove what killed runs left in it.

    Parameters
    ----------
    out : str or PathLike
        The run's output folder.
    what : str
        How messages call it (``"--out runs/seed"`` for the command, ``"out folder ..."`` else).

    Returns
    -------
    FolderLock
        The held lock; the caller releases it.

    Raises
    ------
    NotADirectoryError
        ``out`` exists and is not a folder.
    FolderLocked
        Another run holds it; the message names it, the holder, and what to do.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "--out exists and is not a folder", str(out))
    lock = claim_output(out, what, pattern=LEFTOVER_RE, hint="wait for it to finish or choose another --out")
    removed = lock.removed
    if removed:
        print(f"b2b: removed {len(removed)} temporary file(s) left in {out} by an interrupted run "
              f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})", file=sys.stderr)
    return lock


def check_unused(out: str | os.PathLike) -> None:
    """ValueError if ``out`` already holds checkpoints: a new run never mixes with an old one."""
    existing = latest_checkpoint(Path(out))
    if existing is not None:
        raise ValueError(f"out folder {out} already holds checkpoints ({existing.name}); "
                         "resume it (--resume) or choose another --out")


def check_not_overtaken(out: str | os.PathLike, last_saved: Path | None) -> None:
    """ValueError if ``out``'s newest checkpoint is not ``last_saved`` (None: this run has written
    none): another run wrote into the folder since, and the two must not mix."""
    out = Path(out)
    latest = latest_checkpoint(out)
    if latest is not None and latest != last_saved:
        raise ValueError(f"out folder {out} now holds {latest.name}, written by another run "
                         "since this Trainer last saved; choose another --out")


def newest_readable_checkpoint(out: str | os.PathLike, report: bool = True) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint in ``out`` that :func:`b2b.model.checkpoint.load_checkpoint` accepts, and its dict.

    With ``report`` (the process that writes: rank 0), newer unreadable ones are renamed
    ``<name>.unreadable`` and each is named on stderr. FileNotFoundError when ``out`` holds no
    checkpoint, ValueError (giving the newest one's problem) when none is readable.
    """
    out = Path(out)
    found = checkpoints(out)
    if not found:
        raise FileNotFoundError(f"--resume: no checkpoint_*.pt in {out} to resume from")
    bad: list[tuple[Path, str]] = []
    for path in reversed(found):
        try:
            ckpt = load_checkpoint(path)
        except (ValueError, FileNotFoundError) as e:
            bad.append((path, str(e)))
            continue
        if bad and report:
            for b, why in bad:
                aside = b.with_name(b.name + ".unreadable")
                try:
                    os.replace(b, aside)
                except OSError:
                    pass
                print(f"b2b: {why}; renamed it {aside.name}", file=sys.stderr)
            print(f"b2b: resuming from {path.name}, the newest readable checkpoint in {out}", file=sys.stderr)
        return path, ckpt
    raise ValueError(f"--resume: no readable checkpoint in {out}; the newest: {bad[0][1]}")


def step_bytes(batch: int) -> int:
    """Estimated peak bytes of one training step on ``batch`` samples per process."""
    return STEP_BYTES_FIXED + int(batch) * STEP_BYTES_PER_SAMPLE


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can get on ``device``: free CUDA memory, or ``MemAvailable`` (Linux).

    None when unknown (then no memory check is made).
    """
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_batch_memory(batch: int, device: torch.device, available: int | None = None) -> int:
    """Refuse a per-process ``batch`` whose training step cannot fit in memory, before allocating.

    Parameters
    ----------
    batch : int
        Samples per process and step.
    device : torch.device
        Where the step runs.
    available : int, optional
        Free bytes (default :func:`available_memory`).

    Returns
    -------
    int
        The estimated peak bytes of one step, :func:`step_bytes`.

    Raises
    ------
    ValueError
        Naming ``--batch``, the estimate, what is available and the largest batch that fits.
    """
    need = step_bytes(batch)
    free = available_memory(device) if available is None else available
    if free is not None and need > free:
        fits = max(0, (free - STEP_BYTES_FIXED) // STEP_BYTES_PER_SAMPLE)
        raise ValueError(
            f"batch (--batch) {batch} needs about {need / 2**30:.1f} GiB for one training step "
            f"({STEP_BYTES_PER_SAMPLE / 2**20:.1f} MiB per sample) but {device.type} has "
            f"{free / 2**30:.1f} GiB available; use --batch {fits} or less")
    return need


def default_threads() -> int:
    """The default of ``b2b train --threads``: one thread per idle core, at most 4, at least 1.

    Idle cores are the cores this process may use minus the 1-minute load average. torch's own
    default (a thread per core) spins its threads at every operation, so when other processes
    keep those cores busy the threads wait for each other and a step runs several times slower
    (benchmarks/README.md, "Threads on a busy machine"). Beyond 4 threads the small convolutions
    of these networks gain little.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return int(max(1, min(4, cores - math.floor(busy + 0.5))))
