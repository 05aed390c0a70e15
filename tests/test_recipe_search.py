"""Tests of scripts/recipe_search.py: candidates are `seed` plus their overrides; a --quick run
trains, exports, evaluates and tabulates every headline metric with the diversity numbers."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def rs():
    return load_script("recipe_search")


@pytest.fixture(scope="module")
def small_bach(rs, tmp_path_factory):
    """A store of the first 16 chorales of the shipped Bach store (about 170 windows, against 3,215):
    enough for --quick's 40 windows per set, and the training data that export, evaluate and the
    copying measure go through is a twentieth of the size."""
    from b2b.datasets import bach, store

    full = store.WindowDataset(bach.shipped_store())
    songs = [(s, full.song_roll(s)) for s in full.songs[:16]]
    path = store.write_store(tmp_path_factory.mktemp("data") / "bach16", songs, {"source": "test: 16 chorales"})
    assert len(store.WindowDataset(path)) >= 2 * rs.QUICK["n_eval"]
    return str(path)


@pytest.fixture
def b2b_here(rs, monkeypatch):
    """``rs._b2b`` runs ``b2b ARGS`` through ``b2b.cli.main`` in this process instead of a child
    (the same command, without a torch import per call); ``b2b export`` calibrates its threshold on
    64 samples instead of 1,000 by default, and the two-sample test of ``b2b evaluate`` takes 5
    Adam steps instead of 300 (their numbers are tested in test_generate.py and test_twosample.py;
    here only that a calibrated threshold and every headline metric reach the table). ``_b2b``
    itself is tested by :func:`test_b2b_runs_the_command_in_a_child_and_raises_with_its_error`."""
    import functools

    import b2b.evaluation.report as R
    import b2b.sampling.export as X
    from b2b import cli

    monkeypatch.setattr(R, "classifier_two_sample_test", functools.partial(R.classifier_two_sample_test, steps=5))
    monkeypatch.setattr(X, "CALIBRATION_SAMPLES", 64)  # the default of export's --n

    def here(*args: str) -> None:
        code = cli.main(list(args))
        if code:
            raise RuntimeError(f"b2b {' '.join(args)} failed ({code})")

    monkeypatch.setattr(rs, "_b2b", here)


def test_b2b_runs_the_command_in_a_child_and_raises_with_its_error(rs, tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(RuntimeError, match=r"b2b evaluate --checkpoint .* failed \(2\): b2b evaluate: error: .*missing\.pt"):
        rs._b2b("evaluate", "--checkpoint", str(missing), "--data", "bach", "--n", "4", "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_candidates_change_only_their_overrides(rs):
    from b2b.model.presets import get_preset

    seed = get_preset("seed")
    for name, over in rs.CANDIDATES.items():
        p = rs.candidate_preset(name)
        for part in ("generator", "critic", "training"):
            mine, base = dataclasses.asdict(getattr(p, part)), dataclasses.asdict(getattr(seed, part))
            changed = {k for k in mine if mine[k] != base[k]}
            assert changed == {k for k, v in over.get(part, {}).items() if base[k] != v}, (name, part)


def test_preset_candidates_are_the_presets_and_train_for_a_cpu_budget(rs, tmp_path):
    import torch

    from b2b.model.presets import get_preset
    from b2b.training.trainer import Trainer, TrainerConfig

    assert rs.candidate_preset("lean") == get_preset("lean")
    assert rs.candidate_preset("wgangp").name == "wgangp"
    x = (torch.rand(8, 17, 64, 72, generator=torch.Generator().manual_seed(0)) < 0.02).float()
    cfg = TrainerConfig(preset=get_preset("economy").with_training(batch=4), iterations=100, out=str(tmp_path / "r"),
                        device="cpu", progress=False, sample_every=0, checkpoint_every=1000)
    t = Trainer(cfg, x)
    spent = rs.train_for(t, 100, cpu_budget=1e-3, chunk=2)  # one chunk spends more than a millisecond
    assert t.step == 2 and spent > 1e-3
    rs.train_for(t, 3, cpu_budget=None, chunk=2)  # no budget: to the iterations
    assert t.step == 3


def test_quick_run_reports_every_headline_metric_and_diversity(rs, b2b_here, small_bach, tmp_path):
    out = tmp_path / "out"
    assert rs.main(["--quick", "--data", small_bach, "--candidates", "wgangp", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["complete"] and [(r["candidate"], r["seed"], r["steps"]) for r in res["runs"]] == [("wgangp", 0, 2)]
    run = res["runs"][0]
    h = run["headline"]
    assert set(rs.HEADLINE) <= set(h)
    assert h["note_count"]["real"] > 0 and h["note_count"]["rows"] >= 1
    for key in ("within_real", "within_generated", "within_ratio", "held_real", "held_generated",
                "nearest_real", "nearest_generated", "two_sample"):
        assert key in h["sets"], key
    assert 0 < run["threshold"] < 1  # exported with a calibrated threshold
    md = (out / "results.md").read_text()
    assert "| real |" in md and "| wgangp s0 |" in md and "C2ST accuracy" in md
    for name in ("report.md", "mgeval.json", "history.csv"):
        assert (out / "wgangp-s0" / name).is_file()
    # a longer budget resumes the run instead of starting over
    assert rs.main(["--quick", "--data", small_bach, "--candidates", "wgangp", "--iterations", "3", "--runs", str(tmp_path / "runs"),
                    "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())["runs"][0]
    assert (again["resumed_from"], again["steps"]) == (2, 3)
    # results of two invocations merge into one table, in the order of CANDIDATES
    other = json.loads((out / "results.json").read_text())
    other["runs"][0]["candidate"] = "seed"
    other["candidates"] = {"seed": other["candidates"]["wgangp"]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    merged = rs.merge([out / "results.json", tmp_path / "other.json"], tmp_path / "merged", "a decision")
    assert [r["candidate"] for r in merged["runs"]] == ["seed", "wgangp"]
    assert list(merged["candidates"]) == ["seed", "wgangp"] and merged["decision"] == "a decision"
    assert "| seed s0 |" in (tmp_path / "merged" / "results.md").read_text()
    other["budget"]["iterations"] = 99
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="differ in budget"):
        rs.merge([out / "results.json", tmp_path / "other.json"], tmp_path / "merged")

    # the trajectory of the run: every checkpoint evaluated once; a second call only adds new ones
    calls = []
    real_b2b = rs._b2b
    rs._b2b = lambda *a: (calls.append(a[0]), real_b2b(*a))
    try:
        rows = rs.trajectory(tmp_path / "runs" / "wgangp-s0", tmp_path / "traj", small_bach, 40, 1)
        assert [r["steps"] for r in rows] == [1, 2, 3] and calls.count("evaluate") == 3
        calls.clear()
        rows = rs.trajectory(tmp_path / "runs" / "wgangp-s0", tmp_path / "traj", small_bach, 40, 1)
        assert [r["steps"] for r in rows] == [1, 2, 3] and calls == []
    finally:
        rs._b2b = real_b2b
    assert json.loads((tmp_path / "traj" / "trajectory.json").read_text())["runs"][2]["steps"] == 3

    # --best keeps the checkpoint rank_key picks, with provenance free of machine paths
    reports = {k: json.loads((tmp_path / "runs" / "wgangp-s0" / f"evaluation_{k:08d}" / "mgeval.json").read_text())
               for k in (1, 2, 3)}
    pick = min(reports, key=lambda k: rs.rank_key(reports[k]))
    prov = rs.best([tmp_path / "runs" / "wgangp-s0"], tmp_path / "best")
    assert prov["step"] == pick and prov["run"] == "wgangp-s0"
    assert (tmp_path / "best" / "generator.pt").read_bytes() == \
        (tmp_path / "runs" / "wgangp-s0" / f"generator_{pick:08d}.pt").read_bytes()
    assert json.loads((tmp_path / "best" / "mgeval.json").read_text()) == reports[pick]
    assert str(tmp_path) not in (tmp_path / "best" / "provenance.json").read_text()
    with pytest.raises(ValueError, match="no evaluated checkpoint"):
        rs.best([tmp_path / "runs" / "nothing"], tmp_path / "best2")


def test_recorded_commands_hold_no_machine_paths(rs, tmp_path):
    inside = rs.ROOT / "data" / "ablations" / "streams"
    cmd = rs.command_line(["--best", "streams-s0", "--runs", str(tmp_path / "runs"), "--out", str(inside),
                           "--every", "250"])
    assert cmd == ("python scripts/recipe_search.py --best streams-s0 --runs '<outside>/runs' "
                   "--out data/ablations/streams --every 250")
    assert str(tmp_path) not in cmd
    assert rs.portable(tmp_path / "out" / "results.json") == "<outside>/results.json"
