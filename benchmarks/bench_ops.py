"""Operator calls per training iteration: the `improved` step as written before and after the
changes that cut its calls, measured in the same run.

On a GPU every ATen operator call is (at least) one kernel launch, and this model's step is
launch-bound (issue 15: ~8,200 kernels per iteration, the GPU busy a quarter of the time), so
the number of calls is what bounds an eager step. Two changes cut them for critics that score
each sample on its own (the `improved` preset; `seed`'s batch-norm critic is unchanged):

* **joint scoring**: real and fake windows go through the critic in one pass of ``2B``
  (:func:`b2b.gan.losses.critic_loss` with ``joint=True``, chosen by
  :meth:`b2b.model.networks.DiscConvNet.scores_apart`), not two;
* **layer norm**: :class:`b2b.model.fast.LayerNorm2d` computes ``GroupNorm(1, C)`` with
  ``F.layer_norm``, whose double backward (the penalty's) takes fewer calls.

Variants: **before** (``nn.GroupNorm``, separate passes), **joint** (separate → joint only),
**after** (both, today's Trainer). Each is a :class:`b2b.training.trainer.Trainer` on the same random
windows; the calls of one iteration are counted with ``torch.profiler`` (nested calls
included) and the seconds per iteration timed in alternating rounds. The last line is the
ratio of calls, before / after.

Usage::

    python benchmarks/bench_ops.py [--batch 64] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time

import torch

from b2b.model.fast import LayerNorm2d
from b2b.model.presets import get_preset
from b2b.training.trainer import Trainer, TrainerConfig
from bench_train import count_ops, make_windows


def _group_norms(net: torch.nn.Module) -> None:
    """Put ``nn.GroupNorm(1, C)`` back where b2b.model.fast swapped in :class:`LayerNorm2d` (same parameters)."""
    for name, child in list(net.named_children()):
        if type(child) is LayerNorm2d:
            gn = torch.nn.GroupNorm(1, child.num_channels, eps=child.eps)
            gn.weight, gn.bias = child.weight, child.bias
            setattr(net, name, gn)
        else:
            _group_norms(child)


def make(data: torch.Tensor, batch: int, group_norm: bool, joint: bool) -> Trainer:
    """An `improved` Trainer whose critic uses ``nn.GroupNorm`` if asked and scores real and fake
    jointly only if asked (and allowed)."""
    cfg = TrainerConfig(preset=get_preset("improved").with_training(batch=batch), out=tempfile.mkdtemp(),
                        progress=False, sample_every=0, device="cpu")
    trainer = Trainer(cfg, data)
    if group_norm:  # the critic as written before LayerNorm2d (b2b.model.fast swaps it in)
        _group_norms(trainer.critic)
    if not joint:
        trainer.critic.scores_apart = lambda b: False
    return trainer


def main(argv: list[str] | None = None) -> int:
    """Count and time the three variants; print the call ratio last."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds of 2 iterations")
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = torch.from_numpy(make_windows(args.windows)).bool()
    variants = {"before": make(data, args.batch, True, False), "joint": make(data, args.batch, True, True),
                "after": make(data, args.batch, False, True)}
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"preset improved, batch {args.batch}")
    n = {}
    for name, t in variants.items():
        t.train_step()  # warm-up
        n[name] = count_ops(t.train_step, torch.device("cpu"))[0]
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, t in variants.items():
            t0 = time.perf_counter()
            t.train_step()
            t.train_step().tolist()
            times[name].append((time.perf_counter() - t0) / 2)
    for name in variants:
        print(f"{name:7s} {n[name]:7,d} ATen calls/it  {statistics.median(times[name]):.3f} s/it (CPU)")
    print(f"calls before / after: {n['before'] / n['after']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
