"""Tests of scripts/ablations.py: the --quick run's results, the variants' configs, the coupling measure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablations():
    return load_script("ablations")


@pytest.fixture(scope="module")
def quick_run(ablations, tmp_path_factory):
    """The script's --quick mode on 40 small, asymmetric synthetic windows (no dataset needed)."""
    d = tmp_path_factory.mktemp("abl")
    rng = np.random.default_rng(3)
    x = np.zeros((40, 17, 64, 72), bool)
    for i in range(40):  # a two-voice "Ensemble" (track 7) and a sparse "Organ" (track 3)
        p = 20 + (i % 12)
        x[i, 7, :, p] = True
        x[i, 7, 16 * (i % 4):16 * (i % 4) + 8, p + 4] = True
        x[i, 3, rng.integers(0, 64, 5), 30 + (i % 5)] = True
    np.save(d / "windows.npy", x)
    out = d / "out"
    assert ablations.main(["--quick", "--data", str(d / "windows.npy"), "--out", str(out)]) == 0
    return ablations, out, json.loads((out / "results.json").read_text())


def test_results_structure(quick_run):
    mod, out, res = quick_run
    assert res["complete"] and res["runs_done"] == res["runs_planned"] == len(mod.MAIN_VARIANTS)
    for key in ("command", "commit", "date", "machine", "torch"):
        assert res["provenance"][key]
    assert "--quick" in res["provenance"]["command"]
    assert res["budget"]["iterations"] == mod.QUICK["iterations"] and res["budget"]["seeds"] == [0]
    assert set(res["summary"]) == set(mod.MAIN_VARIANTS)
    for v, s in res["summary"].items():
        assert 0 <= s["score_gap"] <= 1 and 0 <= s["score_overlap"] <= 1
        assert set(s["per_metric"]) >= {"polyphony", "empty_bar_rate", "scale_consistency"}
    for r in res["runs"]:
        assert r["history"]["steps"] == mod.QUICK["iterations"]
        assert {"wasserstein_final", "penalty_final", "grad_norm_final", "time_s"} <= set(r["history"])
        assert {row["metric"] for row in r["rows"]} >= set(mod.MAIN_METRICS) - {"tonal_distance"}
    assert (out / "results.md").read_text().startswith("# Ablations")
    for v in mod.MAIN_VARIANTS:  # listening samples unpack to windows
        z = np.load(out / f"samples_{v}.npz")
        shape = tuple(z["shape"])
        w = np.unpackbits(z["packed"], count=int(np.prod(shape))).reshape(shape)
        assert shape == (mod.QUICK["n_listen"], 17, 64, 72) and w.dtype == np.uint8
    assert not list(out.glob(".*tmp"))  # atomic writes left nothing behind


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_variants_differ_only_in_intended_fields(quick_run):
    mod, _, res = quick_run
    seed = _flat(res["variants"]["seed"]["preset"])
    expected = {
        "seed": set(),
        "critic_layer_norm": {"critic.norm", "critic.dropout"},
        "critic_no_norm": {"critic.norm", "critic.dropout"},
        "no_attention": {"generator.attention", "critic.attention"},
        "n_critic_1": {"training.n_critic"},
        "layer_norm_no_attention": {"critic.norm", "critic.dropout", "generator.attention", "critic.attention"},
        "layer_norm_n_critic_1": {"critic.norm", "critic.dropout", "training.n_critic"},
    }
    assert set(expected) == set(mod.VARIANTS) and set(res["variants"]) == set(mod.MAIN_VARIANTS)
    for v, fields in expected.items():
        p = _flat(mod.variant_preset(v).to_dict())
        if v in res["variants"]:
            assert _flat(res["variants"][v]["preset"]) == p
        diff = {k for k in p if p[k] != seed[k]} - {"name", "description"}
        assert diff == fields, v
    assert _flat(res["variants"]["critic_layer_norm"]["preset"])["critic.norm"] == "layer"
    assert _flat(res["variants"]["n_critic_1"]["preset"])["training.n_critic"] == 1
    # the seed variant is the seed preset itself (apart from its name)
    from b2b.model.presets import get_preset

    base = dataclasses.replace(get_preset("seed"), name="seed", description=mod.DESCRIPTIONS["seed"])
    assert mod.variant_preset("seed") == base


def test_coupling_batch_norm_vs_layer_norm(quick_run):
    _, _, res = quick_run
    fresh = res["coupling"]["fresh"]
    bn, ln = fresh["seed (batch norm + dropout 0.5)"], fresh["layer norm, no dropout"]
    assert bn["value_rel_change"] > 1e-3 and bn["grad_rel_change"] > 1e-3 and bn["penalty_rel_change"] > 1e-4
    assert ln["value_rel_change"] < 1e-5 and ln["grad_rel_change"] < 1e-5 and ln["penalty_rel_change"] < 1e-4
    assert fresh["no norm, no dropout"]["value_rel_change"] < 1e-5
    trained = res["coupling"]["trained"]
    assert trained["critic_layer_norm (seed 0)"]["grad_rel_change"] < 1e-5
    assert trained["seed (seed 0)"]["grad_rel_change"] > 1e-3


class _MeanCentred(nn.Module):
    """D(x)_i = s_i - mean_j s_j with s_i = sum of x_i: coupled through the batch mean only."""

    def forward(self, x):
        s = x.flatten(1).sum(1, keepdim=True)
        return s - s.mean()


def test_coupling_by_hand(ablations):
    # Pools of 3 (batch 2): sample 0 and one other sample per pass. With constant windows c_k
    # (all cells = c_k) interpolated with fake = 0, s_k = eps_k * c_k * N (N cells) and
    # D_0 = s_0 - (s_0 + s_other) / 2 = (s_0 - s_other) / 2; the gradient of sum_j D_j w.r.t. x_0
    # is 1 - 2 * (1/2) = 0 (batch-centred scores sum to 0), so its relative change is 0/0 -> 0.
    n = 17 * 64 * 72
    c = torch.tensor([1.0, 2.0, 5.0]).view(3, 1, 1, 1)
    real = c.expand(3, 17, 64, 72).clone()
    fake = torch.zeros_like(real)
    res = ablations.coupling(_MeanCentred(), real, fake, trials=1, seed=0)
    gen = torch.Generator().manual_seed(0)  # replay the draws of coupling()
    perm = torch.randperm(3, generator=gen)
    eps = torch.rand(3, generator=gen)
    s = (eps * c.view(3)[perm] * n).double()
    va, vb = (s[0] - s[1]) / 2, (s[0] - s[2]) / 2
    assert res["batch"] == 2
    assert res["value_rel_change"] == pytest.approx(float(abs(va - vb) / abs(va)), rel=1e-4)
    assert res["grad_rel_change"] == 0.0


def test_scores_by_hand(ablations):
    rows = [
        {"metric": "polyphony", "gap": 0.5, "overlap": 0.8},
        {"metric": "polyphony", "gap": -3.0, "overlap": 0.2},  # clipped to 1
        {"metric": "scale_consistency", "gap": None, "overlap": None},  # undefined: 1 and 0
        {"metric": "structure", "gap": 0.0, "overlap": 1.0},  # not a main metric: ignored
    ]
    s = ablations.scores(rows)
    assert s["rows"] == 3
    assert s["gap"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert s["overlap"] == pytest.approx((0.8 + 0.2 + 0) / 3)
