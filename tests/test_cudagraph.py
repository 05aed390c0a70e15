"""Tests for b2b.training.cudagraph.GraphedStep on the CPU, with torch.cuda's graph API replaced by fakes.

The fake graph records what a step *would* launch (the step registers a closure while a capture
is under way, as kernels are recorded instead of run) and replays it: enough to check the
bookkeeping that a GPU run relies on (warm-up calls, one capture, the static input buffer, fresh
outputs, the eager fallback). The capture itself needs a GPU: scripts/gpu_check.py.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from b2b.training.cudagraph import GraphedStep


class FakeStream:
    def wait_stream(self, other):
        pass


class FakeGraph:
    recording: "FakeGraph | None" = None
    fail: str | None = None

    def __init__(self):
        self.kernels = []

    def replay(self):
        for k in self.kernels:
            k()


@contextlib.contextmanager
def fake_capture(graph):
    if FakeGraph.fail:
        raise RuntimeError(FakeGraph.fail + "\nsecond line")
    FakeGraph.recording = graph
    try:
        yield
    finally:
        FakeGraph.recording = None


@pytest.fixture
def fake_cuda(monkeypatch):
    FakeGraph.recording, FakeGraph.fail = None, None
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)


def make_step():
    """A step whose 'kernels' write (sum of the indices it reads, run number) into its output."""
    runs = []

    def step(indices):
        out = torch.zeros(2)

        def kernels():
            runs.append(indices.clone())
            out.copy_(torch.tensor([float(indices.sum()), float(len(runs))]))

        if FakeGraph.recording is not None:
            FakeGraph.recording.kernels.append(kernels)  # recorded, not run
        else:
            kernels()
        return out

    return step, runs


def test_warm_up_then_one_capture_then_replays_that_read_the_static_buffer(fake_cuda):
    step, runs = make_step()
    g = GraphedStep(step, torch.device("cpu"), warmup=2)
    outs = [g(torch.tensor([[k, 10 * k]])) for k in (1, 2, 3, 4, 5)]
    # every call ran the step once, on its own indices (calls 3-5 by replaying the one capture)
    assert [o.tolist() for o in outs] == [[11.0, 1.0], [22.0, 2.0], [33.0, 3.0], [44.0, 4.0], [55.0, 5.0]]
    assert [r.tolist() for r in runs] == [[[k, 10 * k]] for k in (1, 2, 3, 4, 5)]
    assert g.captured and (g.calls, g.replays, g.error) == (5, 3, None)
    outs[2].zero_()  # each replay returns its own tensor, not the recorded output
    assert outs[3].tolist() == [44.0, 4.0]


def test_a_failed_capture_leaves_the_reason_and_runs_eagerly(fake_cuda):
    step, runs = make_step()
    FakeGraph.fail = "operation not permitted when stream is capturing"
    g = GraphedStep(step, torch.device("cpu"), warmup=1)
    outs = [g(torch.tensor([k])) for k in (1, 2, 3)]
    assert [o.tolist() for o in outs] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert not g.captured and g.replays == 0
    assert g.error == "RuntimeError: operation not permitted when stream is capturing"


def test_the_trainer_reports_a_failed_capture_once_and_trains_on(fake_cuda, tmp_path, capsys):
    from b2b.model.presets import get_preset
    from b2b.training.trainer import Trainer, TrainerConfig

    cfg = TrainerConfig(preset=get_preset("seed").with_training(batch=2, n_critic=1), iterations=3,
                        out=str(tmp_path), progress=False, sample_every=0, checkpoint_every=100, device="cpu")
    t = Trainer(cfg, (torch.rand(4, 17, 64, 72) < 0.05).float())
    FakeGraph.fail = "capture refused"
    t.graphed, t.graph = True, GraphedStep(t._iteration, t.device, warmup=1)  # as on a GPU
    t.train()
    err = capsys.readouterr().err
    assert err.count("b2b: CUDA graph capture failed (RuntimeError: capture refused); training eagerly") == 1
    assert t.step == 3 and not t.graphed and t.graph.calls == 3
