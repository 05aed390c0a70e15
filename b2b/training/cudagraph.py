"""A training step replayed as one CUDA graph: warm up, capture once, replay.

A step of this model is thousands of small kernels, so on a GPU launching them costs more than
running them. :class:`GraphedStep` wraps a step function ``step(indices) -> stats`` whose only
input is a small integer tensor (the batch indices into a dataset already on the GPU):

1. every call first copies ``indices`` into one static device buffer, which the step reads;
2. the first ``warmup`` calls run eagerly on a side stream (capture needs warmed-up kernels,
   cuDNN choices and allocator pools, made away from the default stream);
3. the next call records the step in a :class:`torch.cuda.CUDAGraph` (nothing runs), and it and
   every later call replay it and return a copy of the recorded output.

The step must be capturable: no host synchronisation (``.item()``, printing tensors), random
numbers from the device generator, optimizers with ``capturable=True`` and their learning rates
as device tensors, autocast without its weight cache. If capture fails, :attr:`GraphedStep.error`
says why, one line on stderr says so, and every call from then on runs the step eagerly.

When a training run can use it lives here too: :func:`can_graph` (when a run cannot: no CUDA,
several processes, the dataset off the GPU); the optimizers a captured step can run (capturable
Adam, its learning rate a device tensor that the schedule updates in place) are built where the
Trainer builds its optimizers (:class:`b2b.training.trainer.Trainer`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["GRAPH_WARMUP", "GraphedStep", "can_graph"]

#: Eager calls before the capture (on a side stream, as capture requires).
GRAPH_WARMUP = 3


class GraphedStep:
    """``step(indices)`` run eagerly ``warmup`` times, then captured once and replayed.

    Parameters
    ----------
    step : callable
        ``step(indices) -> Tensor``: one training step reading its batches through ``indices``
        (an integer tensor, e.g. ``(n_critic, B)``); returns a small statistics tensor.
    device : torch.device
        The CUDA device the step runs on.
    warmup : int
        Eager calls before the capture.
    report : bool
        Print one line on stderr when the capture fails (the process that reports, e.g. rank 0).

    Attributes
    ----------
    calls : int
        Calls so far; ``replays`` of them replayed the graph.
    error : str or None
        Why the capture failed (the step then runs eagerly), else None.
    """

    def __init__(self, step: Callable[[Tensor], Tensor], device: torch.device, warmup: int = GRAPH_WARMUP,
                 report: bool = True) -> None:
        self.step, self.device, self.warmup, self.report = step, torch.device(device), int(warmup), report
        self.calls = self.replays = 0
        self.error: str | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._indices: Tensor | None = None  # the static input buffer
        self._stats: Tensor | None = None  # the recorded output
        self._side: torch.cuda.Stream | None = None

    @property
    def captured(self) -> bool:
        """Whether the graph has been captured (later calls replay it)."""
        return self._graph is not None

    def __call__(self, indices: Tensor) -> Tensor:
        """Run the step on ``indices``; returns its statistics (a fresh tensor, on the device)."""
        if self._indices is None:
            self._indices = torch.empty_like(indices, device=self.device)
            self._side = torch.cuda.Stream(self.device)
        self._indices.copy_(indices, non_blocking=True)
        self.calls += 1
        if self.error is not None:
            return self.step(self._indices)
        if self._graph is None and self.calls <= self.warmup:  # eager, on a side stream
            self._side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._side):
                out = self.step(self._indices)
            torch.cuda.current_stream(self.device).wait_stream(self._side)
            return out
        if self._graph is None:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self._stats = self.step(self._indices)  # recorded, not run
            except Exception as e:  # noqa: BLE001  (capture fails for many reasons: say which, go on)
                self.error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                if self.report:
                    print(f"b2b: CUDA graph capture failed ({self.error}); training eagerly", file=sys.stderr)
                torch.cuda.synchronize(self.device)
                return self.step(self._indices)
            self._graph = graph
        self._graph.replay()
        self.replays += 1
        return self._stats.clone()


def can_graph(device: torch.device, distributed: bool, data_device: torch.device, report: bool = True) -> bool:
    """Whether a training run on ``device`` can replay its step as a graph: it needs CUDA, one
    process (not DDP) and the dataset on that GPU (the batch indices are the step's only input).
    When it cannot and ``report``, one line on stderr says why."""
    why = ("it needs CUDA" if device.type != "cuda" else
           "it needs one process (not DDP)" if distributed else
           "the dataset is not on the GPU" if data_device != device else "")
    if why and report:
        print(f"b2b: --cuda-graph: {why}; training eagerly", file=sys.stderr)
    return not why
