"""CPU seconds per generator step of each preset's recipe: what one CPU-hour buys.

Each preset is trained by :class:`b2b.training.trainer.Trainer` on the same random binary windows, in the
same process, one torch thread, with its own batch, critic steps and networks; the measurements
alternate between presets (``--rounds`` rounds of ``--steps`` timed steps each, after one
warm-up step) so that load from other processes hits them alike, and the median **process CPU
time** per step (``time.process_time``: what the machine spends, not the wall clock of a shared
machine) is compared. The last line is ``per CPU-hour: streams N, lean N, economy N steps``
and each preset's ratio against ``--baseline`` (default ``streams``) is printed before it.

Usage::

    python benchmarks/bench_presets.py [--presets streams lean economy] [--steps 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from b2b.model.presets import PRESETS
from b2b.training.trainer import Trainer, TrainerConfig


def cpu_per_step(trainer: Trainer, steps: int) -> float:
    """Mean CPU seconds per step over ``steps`` further training steps of ``trainer``."""
    t0 = time.process_time()
    trainer.train(trainer.step + steps)
    return (time.process_time() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["streams", "lean", "economy"], choices=list(PRESETS))
    p.add_argument("--baseline", default="streams", choices=list(PRESETS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--windows", type=int, default=512)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = list(dict.fromkeys([args.baseline, *args.presets]))
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(args.windows, 17, 64, 72, generator=g) < 0.01).float()
    data[:, 7] = (torch.rand(args.windows, 64, 72, generator=g) < 0.05).float()
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {n: Trainer(TrainerConfig(preset=n, iterations=1, out=f"{tmp}/{n}", device="cpu", progress=False,
                                             checkpoint_every=10**9, sample_every=0), data) for n in names}
        for t in trainers.values():
            t.save_checkpoint = lambda: None  # time the steps, not the files
            cpu_per_step(t, 1)  # warm-up
        for _ in range(args.rounds):
            for n, t in trainers.items():
                times[n].append(cpu_per_step(t, args.steps))
    per = {n: statistics.median(v) for n, v in times.items()}
    base = per[args.baseline]
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds x {args.steps} steps, median CPU s per step")
    for n in names:
        hp = PRESETS[n].training
        print(f"{n:10s} n_critic {hp.n_critic} batch {hp.batch:3d}: {per[n]:.3f} CPU s/step, "
              f"{base / per[n]:.2f}x the steps of {args.baseline} per CPU-second")
    print("per CPU-hour: " + ", ".join(f"{n} {3600 / per[n]:.0f}" for n in names) + " steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
