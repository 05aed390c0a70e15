"""Tests for the committed pretrained generator in ``data/pretrained/`` (used by the LPD-17 chapter).

The files are made by ``scripts/train_pretrained.sh``: ``generator.pt`` (a generator-only
``"b2b-generator"`` file with its calibrated binarization threshold), ``provenance.json`` and the
``b2b evaluate`` report (``report.md``, ``report.csv``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from b2b.cli import main as cli_main
from b2b.evaluation.report import CSV_COLUMNS
from b2b.sampling.generate import CALIBRATION_SEED, generate
from b2b.model.networks import GenConvNet
from b2b.model.presets import PRESETS
from b2b.model.checkpoint import load_generator

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
    # the calibrated threshold travels with the weights
    assert 0.0 < raw["threshold"] < 1.0 and raw["calibration"]["data"] == "bach"


def test_weights_unchanged_by_the_reexport(provenance):
    # the SHA-256 that scripts/train_pretrained.sh computed before exporting (name|dtype|shape|bytes)
    sd = torch.load(GENERATOR, map_location="cpu", weights_only=True)["generator"]
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k].contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.numpy().tobytes())
    assert h.hexdigest() == provenance["generator_weights_sha256"]


def test_stored_threshold_is_the_default(loaded, provenance):
    _, info = loaded
    t = provenance["threshold"]
    assert info["threshold_source"] == "calibrated" and info["threshold"] == t["calibrated"]
    assert info["preset_threshold"] == t["preset"] == info["preset"].threshold
    # the file's networks and training are the repository's preset of that name (the preset's
    # threshold, a sampling setting, may have changed since the run was trained)
    now = PRESETS[provenance["preset"]]
    trained = info["preset"]
    assert (trained.generator, trained.critic, trained.training) == (now.generator, now.critic, now.training)
    cal = info["calibration"]
    assert cal["density_target"] == t["real_density"] and cal["seed"] == CALIBRATION_SEED
    assert cal["data_windows"] == provenance["data"]["windows"]
    assert t["evaluation_samples"]["silent_windows_at_calibrated"] <= t["evaluation_samples"]["silent_windows_at_preset"]


def test_cli_generate_plays_without_a_threshold_flag(tmp_path, capsys):
    """The README's path: the shipped generator from the command line, no --threshold."""
    out = tmp_path / "s"
    rc = cli_main(["generate", "--checkpoint", str(GENERATOR), "--n", "4", "--out", str(out), "--no-wav",
                   "--device", "cpu"])
    io_ = capsys.readouterr()
    assert rc == 0, io_.err
    meta = json.loads((out / "samples.json").read_text())
    assert meta["threshold_source"] == "calibrated" and "(calibrated at export" in io_.out
    assert meta["empty_samples"] == 0 and meta["notes_on"] > 0 and "silent" not in io_.err


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
    x = generate(g, 64, seed=CALIBRATION_SEED) >= t["calibrated"]   # part of the calibration noise
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
    assert "--threshold" not in provenance["evaluate_command"]  # auto: the stored threshold
    assert f"- threshold: {provenance['threshold']['calibrated']}\n" in md and "- threshold_source: calibrated" in md
    preset = (PRETRAINED / "report_preset_threshold.md").read_text()
    assert preset.startswith("# Real vs generated") and f"- threshold: {provenance['threshold']['preset']}\n" in preset
    assert "b2b export" in provenance["export_command"] and "--data bach" in provenance["export_command"]


def test_shipped_generator_is_not_collapsed(loaded):
    # the book's first pretrained generator wrote nearly one window: its windows shared 6x as many
    # notes as real ones do (chapter 7). The shipped one must be within 2x of the real data.
    import numpy as np

    from b2b.evaluation import metrics
    from b2b.datasets.catalog import open_dataset
    from b2b.evaluation.evaluate import iter_generated, sample_indices

    g, info = loaded
    gen = np.concatenate(list(iter_generated(g, info["latent"], 200, 0, info["threshold"])))
    ds = open_dataset("bach")
    real = np.stack([ds.window(int(i)) for i in sample_indices(len(ds), 200, 12345)])
    ratio = metrics.within_overlap(gen) / metrics.within_overlap(real)
    assert 0.5 < ratio < 2.0, ratio
    held_gen = float((metrics.held_pitch(gen)[0] >= metrics.DRONE_SHARE).mean())
    held_real = float((metrics.held_pitch(real)[0] >= metrics.DRONE_SHARE).mean())
    assert held_gen <= 2 * held_real, (held_gen, held_real)
