"""Tests for scripts/gpu_check.py, the prepared GPU check, run on the CPU with tiny settings."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.mark.slow
def test_dry_run_on_the_cpu_writes_every_report(tmp_path):
    """The whole script as the device would run it (a subprocess, from another folder), tiny: 12
    training steps in all, of the cheapest preset (economy: batch 16, one critic step, against the
    default improved's 64 and 5: a twentieth of the work). On the CPU the graph falls back to eager,
    so both runs are identical."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--device", "cpu", "--iterations", "4",
         "--resume-iterations", "2", "--log-every", "1", "--warmup", "2", "--data", "random", "--windows", "48",
         "--skip-bench", "--preset", "economy"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "curves.png", "gpu_check.json", "gpu_check.md"]
    assert "=== train_graph" in proc.stdout and "done in" in proc.stdout  # the log shows progress

    r = json.loads((out / "gpu_check.json").read_text())
    assert r["errors"] == {}
    assert set(r["parts"]) == {"data", "train_eager", "train_graph", "compare", "resume"}  # bench skipped
    assert r["environment"]["torch"] == torch.__version__ and r["environment"]["precision"] == "fp32"
    assert r["data"]["n"] == 48 and 0.04 < r["data"]["density"] < 0.06
    eager, graph = r["train"]["eager"], r["train"]["graph"]
    for run in (eager, graph):
        assert run["steps"] == 4 and not run["truncated"] and (run["batch"], run["n_critic"]) == (16, 1)  # economy's
        assert [row["step"] for row in run["history"]] == [1, 2, 3, 4]
        assert run["from_step"] == 2 and run["to_step"] == 4 and run["warmup_excluded"]
        # ms/it is the time column's slope after the warm-up: worked out from the rows here
        t = {row["step"]: row["time"] for row in run["history"]}
        assert run["ms_per_it"] == pytest.approx(1000 * (t[4] - t[2]) / 2)
        assert 0 < run["ms_per_it"] < 1000 * run["wall_s"]
        assert all(math.isfinite(row[k]) for row in run["history"] for k in ("loss_d", "loss_g", "wasserstein"))
        assert not run["graph_used"] and not run["graph_captured"] and run["graph_replays"] == 0
    assert eager["messages"] == [] and eager["graph_fallback"] is None
    assert graph["graph_fallback"] is True and any("needs CUDA" in m for m in graph["messages"])
    # same data, seed and (on the CPU) code path: the same curves, so every difference is zero
    assert [row["wasserstein"] for row in eager["history"]] == [row["wasserstein"] for row in graph["history"]]
    cmp_ = r["compare"]
    assert cmp_["steps_compared"] == 4 and cmp_["tail_from_step"] == 4 and cmp_["tail_rows"] == 1
    assert set(cmp_["metrics"]) == {"wasserstein", "loss_d", "loss_g", "grad_norm"}
    for m in cmp_["metrics"].values():
        assert m["eager_mean"] == m["graph_mean"] and m["max_abs_diff_whole_curve"] == 0 and m["all_finite"]
    assert r["ratios"]["eager_over_graph_ms"] > 0

    res = r["resume"]
    assert res["ok"] and res["k"] == 2 and all(res["checks"].values())
    assert res["first"]["steps"] == 2 and res["second"]["start_step"] == 2 and res["second"]["steps"] == 4
    assert res["history_steps"] == [1, 2, 3, 4] and res["graph_used"] == [False, False]

    with open(out / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    assert float(rows[2]["eager_loss_d"]) == pytest.approx(eager["history"][2]["loss_d"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "gpu_check.md").read_text()
    assert "| eager | 4 |" in md and "Resume with the graph" in md and "**ok**" in md


def test_without_cuda_it_says_so_and_stops(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA, on every machine
    gc = load_script("gpu_check")
    assert gc.main(["--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sees no CUDA device" in err[0]
    assert not (tmp_path / "o").exists()


def test_bench_output_is_kept_and_parsed_and_a_failure_reported(tmp_path):
    """run_bench streams the benchmark's output to bench.txt and parses it; a failing or hanging
    benchmark gives its exit code (a stand-in script, so no network is trained)."""
    gc = load_script("gpu_check")
    args = gc.parse_args(["--out", str(tmp_path), "--device", "cpu", "--bench-iterations", "2", "--windows", "8"])
    fake = tmp_path / "fake_bench.py"
    fake.write_text(
        "import sys\n"
        "print('device cpu (x); torch 9; batch 64, n_critic 5, preset seed')\n"
        "print(\"baseline (original's loop)        2.500 s/it     0.40 it/s  (rounds: 2.500)\")\n"
        "print('b2b Trainer                       0.500 s/it     2.00 it/s  (rounds: 0.500)  ×5.00')\n"
        "print('b2b Trainer, CUDA graph           0.100 s/it    10.00 it/s  (rounds: 0.100)  ×25.00')\n"
        "print('speedup with the CUDA graph: 25.00×')\n"
        "print(\"baseline (original's loop)       25,444 ATen calls/it  7,001 CUDA kernels/it\")\n"
        "print('speedup: 5.00×')\n"
        "print(' '.join(sys.argv[1:]))\n"
        "sys.exit(3 if '--windows' in sys.argv else 0)\n")
    res = gc.run_bench(args, tmp_path, timeout=60, script=fake)
    assert res["rc"] == 3 and not res["timed_out"]
    assert res["speedup"] == 5.0 and res["speedup_cuda_graph"] == 25.0
    v = res["variants"]
    assert v["baseline (original's loop)"] == {"s_per_it": 2.5, "aten_calls_per_it": 25444, "cuda_kernels_per_it": 7001}
    assert v["b2b Trainer, CUDA graph"]["s_per_it"] == 0.1
    text = (tmp_path / "bench.txt").read_text()
    assert text.startswith("$ python benchmarks/fake_bench.py --device cpu --iterations 2 --rounds 3 --windows 8 --ops")
    assert "speedup: 5.00×" in text

    hang = tmp_path / "hang.py"
    hang.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    res = gc.run_bench(args, tmp_path, timeout=1, script=hang)
    assert res["timed_out"] and res["rc"] != 0
    assert "started" in (tmp_path / "bench.txt").read_text()


def test_ms_per_iteration_and_compare_by_hand():
    gc = load_script("gpu_check")
    rows = [{"step": s, "time": t} for s, t in [(10, 5.0), (20, 6.0), (30, 7.5), (40, 8.0)]]
    # after the warm-up row at step 20: (8.0 - 6.0) s over 20 steps = 100 ms
    assert gc.ms_per_iteration(rows, 20) == {"ms_per_it": 100.0, "from_step": 20, "to_step": 40,
                                             "warmup_excluded": True}
    # too few rows after the warm-up: every row is used, and it says so
    assert gc.ms_per_iteration(rows, 40)["warmup_excluded"] is False
    assert gc.ms_per_iteration(rows[:1], 5)["ms_per_it"] == 500.0

    def run(values):
        return [{"step": 10 * (i + 1), "wasserstein": w, "loss_d": -w, "loss_g": 1.0, "grad_norm": 2.0}
                for i, w in enumerate(values)]

    eager = run([9, 9, 9, 9, 9, 9, 9, 9, 1.0, 3.0])
    graph = run([0, 0, 0, 0, 0, 0, 0, 0, 2.0, 4.0, 7.0])  # one step more than eager: not compared
    c = gc.compare(eager, graph, frac=0.2)
    assert c["steps_compared"] == 10 and c["tail_from_step"] == 90 and c["tail_rows"] == 2
    w = c["metrics"]["wasserstein"]
    # tails: eager (1, 3) mean 2 sd sqrt(2); graph (2, 4) mean 3 sd sqrt(2)
    assert w["eager_mean"] == 2.0 and w["graph_mean"] == 3.0
    assert w["rel_diff"] == pytest.approx(0.5) and w["diff_in_sd"] == pytest.approx(1 / math.sqrt(2))
    assert w["max_abs_diff_whole_curve"] == 9.0
    assert c["metrics"]["loss_d"]["rel_diff"] == pytest.approx(-0.5)
    assert c["metrics"]["loss_g"]["diff_in_sd"] is None  # constant curves: no spread to compare with
    with pytest.raises(ValueError, match="share no logged step"):
        gc.compare(eager, [{"step": 5, **{k: 0.0 for k in gc.METRICS}}])
