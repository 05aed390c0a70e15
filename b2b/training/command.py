"""The ``b2b train`` command: the command line's options, the run folder it owns, the Trainer it runs.

The command owns its output folder: it claims ``--out`` (:func:`b2b.training.runfolder.claim_run_folder`:
the lock, the leftovers of killed runs) before the data is loaded, holds it while the
:class:`b2b.training.trainer.Trainer` trains (the Trainer takes no lock), and releases it (removing a folder it created when a run is
refused before writing anything). Under ``torchrun`` it initialises ``torch.distributed``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from b2b.datasets.catalog import open_dataset
from b2b.model.checkpoint import resolve_device
from b2b.model.presets import MAX_BATCH, PRESETS, get_preset
from b2b.training.runfolder import claim_run_folder, default_threads
from b2b.training.history import TrainingDiverged
from b2b.training.trainer import Trainer, TrainerConfig

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``b2b train``."""
    parser.add_argument("--data", default="bach", help="dataset: bach, lpd17 or a path (default: bach)")
    parser.add_argument("--preset", default="seed", help=f"network preset: {', '.join(PRESETS)} (default: seed)")
    parser.add_argument("--iterations", type=int, default=1000, help="generator steps in total, >= 1 (default: 1000)")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"global batch size, 1..{MAX_BATCH} and small enough for memory (default: the preset's)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest readable checkpoint in --out (with the same --data)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 autocast on GPUs with native bf16 (compute capability >= 8.0), else fp32")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="capture each step in a CUDA graph and replay it (CUDA, one process; experimental)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default: 500)")
    parser.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default: 3)")
    parser.add_argument("--sample-every", type=int, default=500, help="steps between sample snapshots; 0: none")
    parser.add_argument("--log-every", type=int, default=1, help="steps between history rows (default: 1)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: one per idle core, 1..4; torch's own default, a thread "
                             "per core, runs several times slower on a busy machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--plain-edges", action="store_true", help="edge layers as convolutions (slower)")


def _init_distributed(device: str) -> bool:
    """Initialise torch.distributed from torchrun's environment; True if this process did."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    use_cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


#: Config fields whose errors ``b2b train`` reports under the option of the same name (``--log-every``).
_FIELDS = {f.name for f in dataclasses.fields(TrainerConfig)} | {"batch"}


def _config(args: argparse.Namespace) -> TrainerConfig:
    """The run's settings from the command line, checked by their homes (:meth:`TrainerConfig.check`,
    :class:`b2b.model.presets.TrainingConfig`) before anything is loaded; an error names the option."""
    try:
        preset = get_preset(args.preset)
        if args.batch is not None:
            preset = preset.with_training(batch=args.batch)
        return TrainerConfig(
            preset=preset, iterations=args.iterations, seed=args.seed, device=args.device,
            precision=args.precision, out=str(args.out or f"runs/{args.preset}"),
            checkpoint_every=args.checkpoint_every, keep=args.keep, sample_every=args.sample_every,
            log_every=args.log_every, progress=not args.no_progress, fast_edges=not args.plain_edges,
            cuda_graph=args.cuda_graph, data_name=str(args.data)).check()
    except ValueError as e:  # the config names its field; the option is the field with dashes
        field = str(e).split(" ", 1)[0]
        if field in _FIELDS:
            raise ValueError(f"--{field.replace('_', '-')}: {e}") from None
        raise


def run(args: argparse.Namespace) -> int:
    """``b2b train``: train on ``--data`` and write checkpoints, samples and history to ``--out``."""
    config = _config(args)
    resolve_device(args.device)  # an unusable --device: one line before the data is loaded
    # checked here, each naming its option before the data is loaded, because no config holds them:
    # 0 iterations is a valid Trainer (it trains nothing) but a mistake on the command line
    if args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations} (0 would train nothing)")
    threads = default_threads() if args.threads is None else args.threads
    if not 1 <= threads <= 1024:
        raise ValueError(f"--threads must be 1..1024, got {threads}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(args, config, threads)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace, config: TrainerConfig, threads: int) -> int:
    out = Path(config.out)
    existed = out.exists()
    # before the data is loaded: a second run into the same folder stops at once (rank 0 writes)
    lock = claim_run_folder(out, f"--out {out}") if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        dataset = open_dataset(args.data)
        started = _init_distributed(args.device)
        try:
            trainer = Trainer(config, dataset, resume=args.resume)
            if trainer.step >= config.iterations:
                if trainer.rank == 0:
                    print(f"b2b train: {trainer.last_checkpoint} is already at step {trainer.step} >= --iterations "
                          f"{config.iterations}; nothing to train (raise --iterations to continue)")
                return 0
            if trainer.rank == 0:
                print(f"b2b train: {trainer.n} windows, preset {trainer.preset.name}, device {trainer.device}"
                      f"{' bf16' if trainer.amp else ''}, {trainer.world} process(es), "
                      f"{threads} CPU thread(s), from step {trainer.step}")
            try:
                trainer.train()
            except TrainingDiverged as e:
                if trainer.rank == 0:
                    print(f"b2b train: {e}", file=sys.stderr)
                return 1
            if trainer.rank == 0:
                last = trainer.history[-1]
                print(f"b2b train: done at step {trainer.step}; W={last['wasserstein']:.4f}; "
                      f"checkpoint {trainer.last_checkpoint}")
            return 0
        finally:
            if started:
                dist.destroy_process_group()
    finally:
        if lock is not None:
            lock.release()
            if not existed:  # a run refused before writing anything leaves no empty folder
                with contextlib.suppress(OSError):
                    out.rmdir()

