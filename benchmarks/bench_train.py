"""Training speed: b2b's ``Trainer`` against a loop written the way the original was.

One *iteration* is ``n_critic`` (5) critic updates with the gradient penalty plus one generator
update, batch 64. Both sides train the same networks (preset ``seed``) on the same random
binary windows, in the same process:

* **baseline** — as the original project wrote it: convolution edge layers
  (``fast_edges=False``), a ``torch.utils.data.DataLoader`` over a float32 numpy array
  (shuffled, batch 64), ``.to(device)`` for every batch, float32 throughout, its own
  gradient-penalty function, critic loss as one scalar and one backward;
* **b2b** — :class:`b2b.training.trainer.Trainer`: matrix-product edge layers, the dataset kept on the
  device as one bool tensor with batches drawn by index, bfloat16 autocast on CUDA.

Measurements alternate between the two (``--rounds`` rounds of ``--iterations`` timed
iterations each, after one warm-up iteration each) and the median seconds per iteration is
compared, so that load from other processes hits both alike. The last line is
``speedup: X.XX×`` (baseline time / b2b time). Targets: >= 2× on CPU, >= 10× on a GPU.

Usage::

    python benchmarks/bench_train.py [--device auto|cpu|cuda] [--iterations 2] [--rounds 2]
                                     [--windows 512] [--threads 1] [--edges]

On CPU one intra-op thread is used by default: on a shared machine torch's two spinning
threads make both sides many times slower and the ratio mostly noise (see README.md);
``--threads 0`` keeps torch's default.

On CUDA a third variant replays each step as a CUDA graph (``Trainer(cuda_graph=True)``; its
warm-up covers the eager steps before capture and the capture itself) and its speed-up over the
baseline is printed before the last line. ``--edges`` adds another variant, the Trainer with convolution edge layers, to isolate the
edge layers' share of the speed-up. ``--ops`` also counts, with ``torch.profiler``, the ATen
operator calls of one iteration of each variant (nested calls included) and, on CUDA, the
device kernels it launches: the per-call overhead that dominates a small model's step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import torch

from b2b.model.networks import build

from b2b.model.presets import get_preset
from b2b.model.checkpoint import resolve_device
from b2b.training.trainer import Trainer, TrainerConfig

BATCH, N_CRITIC, LAMBDA = 64, 5, 10.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_windows(n: int, seed: int = 0) -> np.ndarray:
    """Random binary windows ``(n, 17, 64, 72)`` float32 (about 5 % of cells on)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 17, 64, 72), dtype=np.float32) < 0.05).astype(np.float32)


# --------------------------------------------------------------------------- the original's way
def original_gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                              device: torch.device) -> torch.Tensor:
    """The usual WGAN-GP penalty as tutorials (and the original) write it."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=device)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    d_interpolates = critic(interpolates)
    grads = torch.autograd.grad(outputs=d_interpolates, inputs=interpolates,
                                grad_outputs=torch.ones_like(d_interpolates),
                                create_graph=True, retain_graph=True)[0]
    grads = grads.view(grads.size(0), -1)
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def make_baseline(data: np.ndarray, device: torch.device, seed: int = 0) -> Callable[[], None]:
    """One training iteration the way the original loop does it; returns a callable."""
    torch.manual_seed(seed)
    g, d = build("seed", fast_edges=False)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=3e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=6e-4, betas=(0.5, 0.9))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(data)),
                                         batch_size=BATCH, shuffle=True, drop_last=True)
    state = {"it": iter(loader)}

    def next_real() -> torch.Tensor:
        try:
            (x,) = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            (x,) = next(state["it"])
        return x.to(device)

    def step() -> None:
        g.train(), d.train()
        for _ in range(N_CRITIC):
            real = next_real()
            z = torch.randn(BATCH, g.latent, device=device)
            fake = g(z).detach()
            loss_d = d(fake).mean() - d(real).mean() + LAMBDA * original_gradient_penalty(d, real, fake, device)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        z = torch.randn(BATCH, g.latent, device=device)
        loss_g = -d(g(z)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        loss_g.item()  # the original logs every iteration

    return step


def make_b2b(data: np.ndarray, device: torch.device, out: str, fast_edges: bool = True,
             cuda_graph: bool = False) -> Callable[[], None]:
    """One ``Trainer.train_step`` (stats fetched once, as ``Trainer.train`` does)."""
    preset = get_preset("seed").with_training(batch=BATCH, n_critic=N_CRITIC, lambda_gp=LAMBDA)
    cfg = TrainerConfig(preset=preset, device=str(device), out=out, progress=False, sample_every=0, fast_edges=fast_edges, cuda_graph=cuda_graph)
    trainer = Trainer(cfg, torch.from_numpy(data))

    def step() -> None:
        trainer.train_step().tolist()

    return step


def time_it(step: Callable[[], None], n: int, device: torch.device) -> float:
    """Seconds per iteration over ``n`` iterations."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / n


def count_ops(step: Callable[[], None], device: torch.device) -> tuple[int, int]:
    """``(ATen operator calls, CUDA kernels)`` of one call of ``step`` (kernels 0 on the CPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    events = prof.events()
    ops = sum(1 for e in events if e.name.startswith("aten::"))
    kernels = sum(1 for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    return ops, kernels


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print per-variant timings and the speed-up last."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--iterations", type=int, default=2, help="timed iterations per round (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating measurement rounds (default 2)")
    ap.add_argument("--windows", type=int, default=512, help="random windows in the dataset (default 512)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads on CPU (default 1; 0: torch's default)")
    ap.add_argument("--edges", action="store_true", help="also time the Trainer with convolution edges")
    ap.add_argument("--ops", action="store_true", help="also count operator calls (and CUDA kernels) per iteration")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    data = make_windows(args.windows)
    print(f"device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
          + f"; torch {torch.__version__}; batch {BATCH}, n_critic {N_CRITIC}, preset seed")
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"baseline (original's loop)": make_baseline(data, device)}
        if args.edges:
            variants["b2b Trainer, conv edges"] = make_b2b(data, device, f"{tmp}/c", fast_edges=False)
        variants["b2b Trainer"] = make_b2b(data, device, f"{tmp}/b")
        if device.type == "cuda":
            variants["b2b Trainer, CUDA graph"] = make_b2b(data, device, f"{tmp}/g", cuda_graph=True)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for name, step in variants.items():  # warm-up (cuDNN autotuning, allocator, first-call costs;
            time_it(step, 1 + 3 * ("graph" in name), device)  # the graph: its eager steps and the capture
        for r in range(args.rounds):
            for name, step in variants.items():
                times[name].append(time_it(step, args.iterations, device))
        base = statistics.median(times["baseline (original's loop)"])
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:30s} {med:8.3f} s/it  {1 / med:7.2f} it/s  (rounds: {', '.join(f'{t:.3f}' for t in ts)})"
                  + (f"  ×{base / med:.2f}" if med != base else ""))
        speedup = base / statistics.median(times["b2b Trainer"])
        if "b2b Trainer, CUDA graph" in times:
            print(f"speedup with the CUDA graph: {base / statistics.median(times['b2b Trainer, CUDA graph']):.2f}×")
        if args.ops:
            for name, step in variants.items():
                ops, kernels = count_ops(step, device)
                print(f"{name:30s} {ops:8,d} ATen calls/it" + (f"  {kernels:,d} CUDA kernels/it" if kernels else ""))
    print(f"speedup: {speedup:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
