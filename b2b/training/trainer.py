"""Training the WGAN-GP: the :class:`Trainer`, checkpoints, history, DDP (``b2b train`` is :mod:`b2b.training.command`).

One **step** (a generator iteration) is ``n_critic`` critic updates, each on a fresh real batch
and fresh noise, followed by one generator update. The critic loss is built as one scalar by
:func:`b2b.gan.losses.critic_loss` and trained with a single ``backward()``.

Data
    The whole dataset is kept on the training device as one tensor (``bool`` when it is binary,
    else ``float32``), or in pinned CPU memory when it does not fit in half of the free GPU
    memory. Batches are drawn by index: a seeded ``torch.Generator`` shuffles the dataset into a
    permutation that is consumed ``batch`` indices at a time (a new permutation when it runs
    out), so no ``DataLoader`` runs per step. Under DDP every rank draws the same global batch
    indices and takes its own disjoint slice.
Epochs and the learning-rate schedule
    An *epoch* is ``len(dataset)`` real samples shown to the critic, so after ``s`` steps
    ``epoch = s * n_critic * batch / len(dataset)`` (``batch`` is the global batch). Both
    optimizers follow ``StepLR(step_size=lr_step_epochs, gamma=lr_gamma)``, stepped once per
    completed epoch.
Precision
    ``precision="auto"`` uses bfloat16 autocast on GPUs that compute in bfloat16 natively
    (compute capability 8.0 and newer) and float32 elsewhere (CPUs, Colab's T4). bfloat16 needs
    no loss scaling; the penalty's gradient norms are computed in float32 by :mod:`b2b.gan.losses`
    and the double backward runs through the autocast graph.
CUDA graphs (``cuda_graph=True``, ``b2b train --cuda-graph``; off by default)
    The whole step is captured once in a CUDA graph and replayed (:mod:`b2b.training.cudagraph`, which
    also says what a captured step needs); the step's batch indices are drawn on the CPU as
    always and are the graph's only input. It needs CUDA, one process and the dataset on the
    GPU; otherwise, or when capture fails, training continues eagerly after a one-line message.
    Checkpoints are the same either way, so a run may be resumed with or without graphs.
Reading the statistics
    Each step returns its statistics as one small tensor on the device. Reading it makes the CPU
    wait for the GPU, so on a GPU they are read every :data:`READ_EVERY` steps (and before any
    sample, checkpoint or the end), in one copy; the history is the same either way. A non-finite
    loss is reported by its own step, and nothing from it is saved; the networks in memory may
    then be a few steps further on, so continue from the last checkpoint. On the CPU every step
    is read.
Determinism
    On the CPU a run that is stopped and resumed from a checkpoint ends bit-identical to an
    uninterrupted run (all RNG states, the batch order and the optimizers are saved). On CUDA
    ``cudnn.benchmark`` is on, so runs are reproducible only up to cuDNN's algorithm choice.
Distributed (``torchrun --nproc_per_node N -m b2b train ...``)
    Both networks are wrapped in ``DistributedDataParallel`` (NCCL on CUDA, gloo on CPU).
    Rank 0 writes checkpoints, history and samples. Logged statistics are averaged over ranks.
    Batch norm is **per rank** (each rank normalizes its ``batch / N`` samples): the critic
    cannot use ``SyncBatchNorm`` because its backward is not differentiable twice (the penalty
    needs that); ``sync_bn=True`` converts the generator's batch norms only (CUDA). Running
    statistics are broadcast from rank 0 at each forward (DDP's default). Single node (or a
    shared file system): every rank reads the checkpoint when resuming. A run resumed with a
    different number of processes keeps the batch order but reseeds noise and dropout.

Checkpoints (``<out>/checkpoint_<step:08d>.pt``, the last ``keep`` kept) hold everything a
resume needs; their format, and what loading checks before ``--resume`` writes anything, are
described in :mod:`b2b.model.checkpoint`, where the format lives.

The output folder
    One run at a time, and what keeps it safe lives in :mod:`b2b.training.runfolder`. The folder's
    lock belongs to whoever owns the output: ``b2b train`` takes it
    (:func:`b2b.training.runfolder.claim_run_folder`: the lock, the leftovers of killed runs) before
    it builds the Trainer. The Trainer itself takes no lock; it refuses a folder that already holds
    checkpoints unless it resumes, and before training (again) a folder where another run has
    written a newer checkpoint since it last saved. A resume continues from the newest readable
    checkpoint; a batch whose step cannot fit in memory is refused before allocating. A failed write (full
    disk, read-only folder) is an OSError naming the file; the previous checkpoint is untouched.

History (``history.csv`` and ``history.json``, written by :mod:`b2b.training.history`, rewritten
atomically at each checkpoint and at the end) has one row per logged step: ``step``, ``epoch`` (after the step), ``loss_d`` (critic loss
incl. penalty), ``loss_g``, ``wasserstein`` (mean D(real) - mean D(fake)), ``penalty`` (without
lambda), ``grad_norm`` (mean critic gradient norm on the interpolates), ``lr_g``, ``lr_d`` (the
rates the step trained with), ``time`` (training wall time in seconds); critic values are means
over the step's ``n_critic`` updates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from b2b.model.checkpoint import (CHECKPOINT_FORMAT, FORMAT_VERSION, check_resumable, data_fingerprint, gathered_rng_states,
                            resolve_device, restore_training, save_training_checkpoint, seed_rng)
from b2b.training.cudagraph import GraphedStep, can_graph
from b2b.sampling.generate import generate
from b2b.training.ema import EMA
from b2b.training.history import (Pending, diverged, learning_rates, progress_bar, read_statistics, save_samples, show_losses,
                                  write_history)
from b2b.music.geometry import SAMPLE_SHAPE
from b2b.model.networks import DiscConvNet, GenConvNet, build, noise
from b2b.model.presets import Preset, get_preset
from b2b.training.runfolder import (check_batch_memory, check_not_overtaken, check_unused, newest_readable_checkpoint,
                                    step_bytes)
from b2b.gan.step import wgan_gp_iteration

__all__ = [
    "TrainerConfig",
    "Trainer",
    "native_bf16",
]

#: Steps between reads of the training statistics on a GPU (each read waits for the device to
#: finish the queued steps; on the CPU they are read every step, which costs nothing).
READ_EVERY = 25
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU of compute capability >= 8.0
    (Ampere and newer). Older GPUs (Colab's T4 is 7.5) emulate it slowly; CPUs train in float32."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


@dataclass
class TrainerConfig:
    """How to run a training: everything besides the data and the hyper-parameters.

    The hyper-parameters (learning rates, batch, ``n_critic``, ``lambda_gp``, schedule) are the
    preset's :class:`b2b.model.presets.TrainingConfig`, their one home; change them on the preset, e.g.
    ``TrainerConfig(preset=get_preset("improved").with_training(batch=16))``.

    Attributes
    ----------
    preset : str or Preset
        Networks and hyper-parameters (``"seed"``, ``"improved"``, or a Preset).
    iterations : int
        Generator steps to train for (in total, counting resumed steps).
    seed : int
        Seeds network initialisation, batch order, noise and dropout.
    device : {"auto", "cpu", "cuda"} or str
        ``"auto"``: CUDA when available, else CPU.
    precision : {"auto", "fp32", "bf16"}
        ``"auto"``: bf16 autocast on GPUs that compute in bf16 natively, fp32 otherwise.
    out : str
        Output folder (checkpoints, history, samples).
    checkpoint_every, keep : int
        Write a checkpoint every ``checkpoint_every`` steps (and at the end); keep the last ``keep``.
    sample_every, n_samples : int
        Every ``sample_every`` steps (and at the end) save ``n_samples`` generator outputs from a
        fixed noise batch to ``samples_<step>.npy`` (+ PNG); 0 disables.
    log_every : int
        Record a history row every ``log_every`` steps (and at the end).
    progress : bool
        Show a tqdm progress bar (rank 0).
    fast_edges : bool
        Use the matrix-product edge layers.
    sync_bn : bool
        Under DDP, use SyncBatchNorm in the generator (CUDA only).
    cuda_graph : bool
        Capture each step in a CUDA graph and replay it (CUDA, one process; see the module notes).
    data_name : str
        Name of the data, recorded in checkpoints.
    """

    preset: Any = "seed"
    iterations: int = 1000
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    out: str = "runs/train"
    checkpoint_every: int = 500
    keep: int = 3
    sample_every: int = 500
    n_samples: int = 8
    log_every: int = 1
    progress: bool = True
    fast_edges: bool = True
    sync_bn: bool = False
    cuda_graph: bool = False
    data_name: str = ""

    def check(self) -> "TrainerConfig":
        """This config, after checking its values (ValueError naming the field); returns ``self``."""
        get_preset(self.preset)
        for name in ["iterations", "checkpoint_every", "keep", "log_every"]:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "iterations" else 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.sample_every < 0 or self.n_samples < 1:
            raise ValueError(f"sample_every must be >= 0 and n_samples >= 1, got {self.sample_every}, {self.n_samples}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (JSON and ``weights_only`` safe); a Preset becomes its name."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.preset, Preset):
            d["preset"] = self.preset.name
        return d


# --------------------------------------------------------------------------- helpers
def window_tensor(dataset: Any) -> Tensor:
    """All windows of ``dataset`` as one ``(n, 17, 64, 72)`` CPU tensor, ``bool`` when binary."""
    if hasattr(dataset, "tensor") and callable(dataset.tensor):
        try:  # b2b.datasets.store.WindowDataset: ask for bools (a quarter of float32's memory)
            x = dataset.tensor(dtype=torch.bool)
        except TypeError:
            x = dataset.tensor()
    elif isinstance(dataset, (Tensor, np.ndarray)):
        x = dataset
    else:
        try:
            x = torch.stack([torch.as_tensor(dataset[i]) for i in range(len(dataset))])
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"dataset: expected a WindowDataset, tensor or array of windows, got {type(dataset).__name__}") from e
    x = torch.as_tensor(x)
    if x.dim() != 4 or tuple(x.shape[1:]) != SAMPLE_SHAPE or x.shape[0] < 1:
        raise ValueError(f"dataset: expected windows of shape (n, {', '.join(map(str, SAMPLE_SHAPE))}) with n >= 1, "
                         f"got {tuple(x.shape)}")
    if x.dtype != torch.bool:
        x = x.float()
        if bool(((x == 0) | (x == 1)).all()):
            x = x.bool()
    return x


def place_data(x: Tensor, device: torch.device, batch: int) -> Tensor:
    """The dataset where training reads it: on the GPU when it takes under half of the free memory
    and a step of ``batch`` still fits beside it, else in pinned CPU memory (on the CPU: as is)."""
    if device.type != "cuda":
        return x.contiguous()
    free, _ = torch.cuda.mem_get_info(device)
    size = x.numel() * x.element_size()
    return x.to(device) if size < free // 2 and free - size >= step_bytes(batch) else x.pin_memory()


def training_device(cfg: TrainerConfig, distributed: bool, rank: int) -> torch.device:
    """The device of ``cfg.device`` (under DDP on CUDA: this process's GPU, ``LOCAL_RANK``); on CUDA
    ``cudnn.benchmark`` is turned on."""
    device = resolve_device(cfg.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count()))))
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.sync_bn and device.type != "cuda":
        raise ValueError("sync_bn: SyncBatchNorm needs CUDA; on the CPU batch norm stays per process")
    return device


def use_bf16(cfg: TrainerConfig, device: torch.device) -> bool:
    """Whether to train under bfloat16 autocast (``cfg.precision``; ``"auto"``: :func:`native_bf16`)."""
    amp = cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16(device))
    if amp and device.type == "cpu" and not cfg.fast_edges:
        # on some CPUs torch's bf16 convolution gets the gradient of these full-pitch-width layers
        # wrong (a quarter off, NaN in the penalty's double backward), on others it is right: the
        # fast edges (matrix products) are right on every CPU, so bf16 on the CPU always uses them
        raise ValueError("--precision bf16 on the CPU needs the fast edge layers: drop --plain-edges "
                         "(or train in fp32)")
    return amp


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Trains a generator and a critic with WGAN-GP.

    Parameters
    ----------
    config : TrainerConfig
        Run settings; the hyper-parameters are ``config.preset``'s (``self.hyper``).
    dataset : WindowDataset, Tensor or ndarray
        Windows ``(n, 17, 64, 72)`` in {0, 1}; anything with ``.tensor()`` works.
    resume : bool
        Continue from the newest readable checkpoint in ``config.out`` (FileNotFoundError if none);
        when False, a folder that holds checkpoints is refused (never mix two runs).

    Notes
    -----
    ``self.G`` / ``self.D`` are the networks as trained (DDP-wrapped under ``torch.distributed``),
    ``self.generator`` / ``self.critic`` always the plain modules.
    """

    def __init__(self, config: TrainerConfig, dataset: Any, resume: bool = False) -> None:
        self.config = cfg = dataclasses.replace(config).check()
        self.out = Path(cfg.out)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "out exists and is not a folder", str(self.out))
        self._init(cfg, dataset, resume)

    def _init(self, cfg: TrainerConfig, dataset: Any, resume: bool) -> None:
        self.preset = get_preset(cfg.preset)
        self.hyper = hp = self.preset.training  # the hyper-parameters (b2b.model.presets.TrainingConfig)
        self.device = training_device(cfg, self.distributed, self.rank)
        if hp.batch % self.world:
            raise ValueError(f"batch {hp.batch} must be divisible by the number of processes ({self.world})")
        self.local_batch = hp.batch // self.world
        check_batch_memory(self.local_batch, self.device)  # before anything big is allocated (b2b.training.runfolder)
        self.amp = use_bf16(cfg, self.device)
        x = window_tensor(dataset)
        self.n, self.data_fingerprint = x.shape[0], data_fingerprint(x)
        self.data = place_data(x, self.device, self.local_batch)
        self._build(x)
        self._seed()
        self.read_every = 1 if self.device.type == "cpu" else READ_EVERY  # steps between waits for the device
        self.step, self.history, self.elapsed, self.last_checkpoint = 0, [], 0.0, None
        if not resume:
            check_unused(self.out)
            return
        path, ckpt = newest_readable_checkpoint(self.out, report=self.rank == 0)
        self.load_state(ckpt, source=path)
        self.last_checkpoint = path

    def _build(self, x: Tensor) -> None:
        """The networks (initialised alike on every rank), their optimizers and schedules."""
        cfg, hp = self.config, self.hyper
        torch.manual_seed(cfg.seed)
        g, d = build(self.preset, fast_edges=cfg.fast_edges)
        if self.preset.generator.prior:  # the output bias starts at the data's log-odds (a resume overwrites it)
            g.set_prior(x)
        if self.preset.generator.silent_tracks:  # the tracks the data never uses stay silent
            g.set_active_tracks(x)
        if self.distributed and cfg.sync_bn:
            g = nn.SyncBatchNorm.convert_sync_batchnorm(g)
        self.generator: GenConvNet = g.to(self.device)
        self.critic: DiscConvNet = d.to(self.device)
        # the moving average of the generator's weights (b2b.training.ema), what checkpoints export; or None
        self.ema = EMA(self.generator, hp.ema) if hp.ema else None
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.G, self.D = (nn.parallel.DistributedDataParallel(m, device_ids=ids) if self.distributed else m
                          for m in (self.generator, self.critic))
        self.graphed = cfg.cuda_graph and can_graph(self.device, self.distributed, self.data.device, self.rank == 0)
        # fused Adam (one kernel for all of a network's parameters: benchmarks/README.md, "Fused Adam");
        # under a graph capturable, its step count on the device and the rate a device tensor the
        # schedule updates in place
        def adam(params: Any, lr: float) -> torch.optim.Adam:
            rate = torch.tensor(lr, device=self.device) if self.graphed else lr
            return torch.optim.Adam(params, lr=rate, betas=hp.betas, fused=True, capturable=self.graphed)

        self.opt_g, self.opt_d = adam(self.generator.parameters(), hp.lr_g), adam(self.critic.parameters(), hp.lr_d)
        self.sched_g = torch.optim.lr_scheduler.StepLR(self.opt_g, hp.lr_step_epochs, hp.lr_gamma)
        self.sched_d = torch.optim.lr_scheduler.StepLR(self.opt_d, hp.lr_step_epochs, hp.lr_gamma)
        # the step replayed as a CUDA graph (b2b.training.cudagraph), or None: eager
        self.graph = GraphedStep(self._iteration, self.device, report=self.rank == 0) if self.graphed else None

    def _seed(self) -> None:
        """Randomness: the batch order shared by all ranks, noise and dropout per rank, fixed noise."""
        seed = self.config.seed
        self.batch_gen = torch.Generator().manual_seed(seed)
        self.perm, self.cursor = torch.randperm(self.n, generator=self.batch_gen), 0
        seed_rng(seed + 1 + self.rank)
        fixed = torch.Generator().manual_seed(seed + 7919)
        self.fixed_noise = noise(self.config.n_samples, self.generator.latent, generator=fixed).to(self.device)

    # ----------------------------------------------------------------- data
    def _next_indices(self) -> Tensor:
        """This rank's slice of the next global batch of dataset indices."""
        parts, need = [], self.hyper.batch
        while need:
            if self.cursor >= self.n:
                self.perm, self.cursor = torch.randperm(self.n, generator=self.batch_gen), 0
            take = min(need, self.n - self.cursor)
            parts.append(self.perm[self.cursor:self.cursor + take])
            self.cursor += take
            need -= take
        return torch.cat(parts)[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]

    def next_batch(self) -> Tensor:
        """The next real batch ``(batch / world, 17, 64, 72)`` float32 on the device."""
        return self._batch(self._next_indices())

    def _batch(self, idx: Tensor) -> Tensor:
        """The windows at dataset indices ``idx`` (on any device), float32 on the device."""
        if self.data.device != self.device:
            return self.data[idx.cpu()].to(self.device, non_blocking=True).float()
        return self.data[idx.to(self.device)].float()

    def epoch_at(self, step: int) -> float:
        """Epochs (real samples shown to the critic / dataset size) after ``step`` steps."""
        return step * self.hyper.n_critic * self.hyper.batch / self.n

    # ----------------------------------------------------------------- training
    def _autocast(self) -> contextlib.AbstractContextManager:
        # a graph must not capture autocast's cache of cast weights (it would replay stale casts)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp,
                              cache_enabled=not self.graphed)

    def _iteration(self, indices: Tensor) -> Tensor:
        """:func:`b2b.gan.step.wgan_gp_iteration` with the real batches at ``indices`` ``(n_critic, B)``."""
        rows = iter(indices)
        return wgan_gp_iteration(
            self.G, self.D, self.opt_g, self.opt_d, lambda: self._batch(next(rows)),
            lambda: noise(self.local_batch, self.generator.latent, device=self.device),
            n_critic=self.hyper.n_critic, lambda_gp=self.hyper.lambda_gp, autocast=self._autocast,
            joint=self.critic.scores_apart(self.local_batch))

    def train_step(self) -> Tensor:
        """One generator iteration on the next real batches, eagerly or by replaying its CUDA
        graph; returns its ``(5,)`` statistics tensor (on the device, named by :data:`b2b.gan.step.STATS`)."""
        self.G.train(), self.D.train()
        # the step's batches, drawn up front (the same indices, in the same order, as one by one)
        indices = torch.stack([self._next_indices() for _ in range(self.hyper.n_critic)])
        if self.graph is None:
            return self._iteration(indices)
        stats = self.graph(indices)
        self.graphed = self.graphed and self.graph.error is None  # a failed capture: eager from now on
        return stats

    def _advance_schedulers(self) -> None:
        done = math.floor(self.epoch_at(self.step))
        while self.sched_d.last_epoch < done:
            self.sched_g.step()
            self.sched_d.step()

    def train(self, iterations: int | None = None) -> list[dict[str, float]]:
        """Train until ``iterations`` (default ``config.iterations``) steps have been done.

        Writes checkpoints, samples and history to ``config.out`` (rank 0). Raises
        :class:`b2b.training.history.TrainingDiverged` at the first step whose losses are not finite, without
        writing anything from that step. Returns the history.
        """
        cfg = self.config
        total = cfg.iterations if iterations is None else iterations
        if self.rank == 0:  # never mix with a run that wrote into the folder since (b2b.training.runfolder)
            check_not_overtaken(self.out, self.last_checkpoint)
        bar = progress_bar(cfg.progress and self.rank == 0, self.step, total)
        t0 = time.perf_counter() - self.elapsed
        pending: list[Pending] = []  # steps whose statistics are not read yet
        try:
            while self.step < total:
                stats = self.train_step()  # b2b.gan.step.wgan_gp_iteration on the next real batches
                if self.ema is not None:
                    self.ema.update(self.generator, self.step + 1)
                if self.distributed:  # the mean over the ranks
                    dist.all_reduce(stats)
                    stats = stats / self.world
                lrs = learning_rates(self.opt_g, self.opt_d)  # the rates this step used
                self.step += 1
                self._advance_schedulers()
                self.elapsed = time.perf_counter() - t0
                pending.append((self.step, stats, self.elapsed, *lrs))
                last = self.step == total
                sample = bool(cfg.sample_every) and (self.step % cfg.sample_every == 0 or last) and self.rank == 0
                checkpoint = self.step % cfg.checkpoint_every == 0 or last
                if len(pending) >= self.read_every or sample or checkpoint or last:
                    self._read(pending, total, bar)  # the one wait for the device; raises on a non-finite loss
                    pending.clear()
                if bar is not None:
                    bar.update(1)
                if sample:
                    save_samples(self.out, self.step, self.sample(), self.preset.threshold)
                if checkpoint:
                    self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _read(self, pending: list[Pending], total: int, bar: Any) -> None:
        """Log the ``pending`` steps' statistics; TrainingDiverged at the first non-finite one."""
        rows, bad = read_statistics(pending, self.config.log_every, total, self.epoch_at)
        self.history += rows
        if bad is not None:
            self.step = bad[0] - 1  # the last good step (the networks in memory may be further on)
            if self.rank == 0:
                write_history(self.out, self.history)
            raise diverged(*bad, self.last_checkpoint)
        if bar is not None and self.history:
            show_losses(bar, self.history[-1])

    # ----------------------------------------------------------------- outputs and state
    def sample(self, z: Tensor | None = None) -> Tensor:
        """Generator probabilities ``(n, 17, 64, 72)`` on the CPU for noise ``z`` ``(n, latent)``
        (default: the run's fixed noise), drawn by :func:`b2b.sampling.generate.generate` (eval mode) from the
        moving average of the generator's weights when the preset keeps one, else the generator."""
        z = self.fixed_noise if z is None else z
        return generate(self.generator if self.ema is None else self.ema.model, len(z), latent=z)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint dict (its format: :mod:`b2b.model.checkpoint`). Collective under DDP: call on all ranks."""
        return {
            "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "step": self.step,
            "config": self.config.to_dict(), "preset": self.preset.to_dict(),
            "generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
            **({"generator_ema": self.ema.model.state_dict()} if self.ema is not None else {}),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "sampler": {"perm": self.perm.clone(), "cursor": self.cursor},
            "rng": gathered_rng_states(self.device, self.batch_gen),
            "data": {"name": self.config.data_name, "n": self.n, "shape": list(SAMPLE_SHAPE),
                     "fingerprint": self.data_fingerprint},
            "history": list(self.history), "elapsed": self.elapsed,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint_<step>.pt`` (:func:`b2b.model.checkpoint.save_training_checkpoint`) and the
        history. Collective under DDP; returns the path on rank 0, else None."""
        state = self.state_dict()
        if self.rank != 0:
            return None
        self.last_checkpoint = save_training_checkpoint(state, self.out, self.config.keep, self.last_checkpoint)
        write_history(self.out, self.history)
        return self.last_checkpoint

    def load_state(self, ckpt: dict[str, Any], source: Any = "checkpoint") -> None:
        """Restore everything from a checkpoint dict; ValueError if it does not fit this run."""
        check_resumable(ckpt, self.preset, self.config.seed, self.n, self.data_fingerprint,
                        data_name=self.config.data_name, source=source, warn=self.rank == 0)
        self.step, self.perm, self.cursor, self.history, self.elapsed = restore_training(
            ckpt, source, (self.generator, self.critic), (self.opt_g, self.opt_d), (self.sched_g, self.sched_d),
            self.batch_gen, self.device, rank=self.rank, world=self.world, seed=self.config.seed,
            ema=None if self.ema is None else self.ema.model)
