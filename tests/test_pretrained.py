"""Tests for the committed pretrained generator in ``data/pretrained/`` (used by the LPD-17 chapter).

The files are made by ``scripts/train_pretrained.sh``: ``generator.pt`` (a generator-only
``"b2b-generator"`` file), ``provenance.json`` and the ``b2b evaluate`` report (``report.md``,
``report.csv``).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from b2b.evaluate import CSV_COLUMNS
from b2b.generate import generate
from b2b.nn import PRESETS, GenConvNet
from b2b.train import load_generator

PRETRAINED = Path(__file__).resolve().parents[1] / "data" / "pretrained"
GENERATOR = PRETRAINED / "generator.pt"


@pytest.fixture(scope="module")
def provenance() -> dict:
    return json.loads((PRETRAINED / "provenance.json").read_text())


@pytest.fixture(scope="module")
def loaded() -> tuple[GenConvNet, dict]:
    return load_generator(GENERATOR, device="cpu")


def test_generator_file_is_small_and_generator_only():
    raw = torch.load(GENERATOR, map_location="cpu", weights_only=True)
    assert raw["format"] == "b2b-generator" and raw["version"] == 1
    # no critic, optimizer, sampler or random states: only what sampling needs
    assert not {"critic", "opt_g", "opt_d", "sched_g", "sched_d", "sampler", "rng"} & set(raw)
    assert set(raw["generator"]) and all(isinstance(v, torch.Tensor) for v in raw["generator"].values())
    assert GENERATOR.stat().st_size < 2_000_000


def test_loads_and_generates_probabilities(loaded):
    g, info = loaded
    assert isinstance(g, GenConvNet) and not g.training
    x = generate(g, 3, seed=5)
    assert x.shape == (3, 17, 64, 72) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert 0.0 < info["threshold"] < 1.0


def test_deterministic_under_a_seed(loaded):
    g, info = loaded
    a, b = generate(g, 4, seed=11), generate(g, 4, seed=11)
    assert torch.equal(a, b)
    assert not torch.equal(a, generate(g, 4, seed=12))
    # the same noise drawn independently and pushed through the network by hand
    z = torch.randn(4, info["latent"], generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        manual = g(z)
    torch.testing.assert_close(a, manual, rtol=0, atol=1e-6)


def test_trained_generator_writes_sparse_music(loaded, provenance):
    # an untrained generator outputs ~0.5 everywhere; a trained one, binarized at the calibrated
    # threshold, is mostly silence with notes in (nearly) every window, as dense as the real data
    g, _ = loaded
    t = provenance["threshold"]
    assert 0.0 < t["calibrated"] < 1.0 and t["rule"]
    x = generate(g, 64, seed=1) >= t["calibrated"]      # seed 1: the calibration noise (seed 0 + 1)
    density = float(x.float().mean())
    assert 0.5 * t["real_density"] < density < 2.0 * t["real_density"] < 0.05
    assert int(x.any(dim=(1, 2, 3)).sum()) >= 56


def test_provenance(provenance, loaded):
    _, info = loaded
    assert provenance["preset"] in PRESETS
    assert provenance["preset"] == info["preset"].name
    assert "b2b train" in provenance["command"]
    assert f"--preset {provenance['preset']}" in provenance["command"]
    assert provenance["iterations"] == info["step"] > 0
    assert re.fullmatch(r"[0-9a-f]{40}", provenance["git_commit"])
    assert provenance["data"]["name"] == "bach" and provenance["data"]["windows"] > 0
    assert provenance["wall_seconds"] > 0
    assert {"wasserstein", "loss_d", "loss_g", "step"} <= set(provenance["final_history"])
    assert provenance["final_history"]["step"] == provenance["iterations"]


def test_evaluation_report_exists(provenance):
    md = (PRETRAINED / "report.md").read_text()
    assert md.startswith("# Real vs generated") and "| metric |" in md
    with open(PRETRAINED / "report.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) > 10
    assert "b2b evaluate" in provenance["evaluate_command"]
    assert f"--threshold {provenance['threshold']['calibrated']:.3f}" in provenance["evaluate_command"]
    assert (PRETRAINED / "report_preset_threshold.md").read_text().startswith("# Real vs generated")
