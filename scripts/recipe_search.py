"""Search for a training recipe that does not collapse, at equal budget, on the Bach chorales.

Each candidate is the ``seed`` preset with the overrides in ``CANDIDATES``, or one of b2b's own
presets (``PRESET_CANDIDATES``: ``streams`` and the budget candidates ``lean`` and ``economy``).
Every (candidate, seed) is trained with :class:`b2b.training.trainer.Trainer` for the same number of
generator iterations and batch, or (``--cpu-budget SECONDS``) for the same CPU time, each reaching
the steps its recipe affords, keeping its checkpoints in ``<runs>/<candidate>-s<seed>/``; its last checkpoint is
then exported with a density-calibrated threshold (``b2b export``) and evaluated with
``b2b evaluate`` (every metric of the report, within-set overlap, nearest-training overlap,
held pitches and the classifier two-sample test) exactly as a reader would run them. A run
whose folder already holds a checkpoint is resumed (so a longer budget continues a shorter run).

Writes ``<out>/results.json`` (provenance, budget, per run: config, history summary, wall
times, the whole evaluation) and ``<out>/results.md`` (the tables), and per run
``<out>/<candidate>-s<seed>/`` with ``report.md``, ``mgeval.json`` and ``history.csv``.

Usage::

    python scripts/recipe_search.py --candidates seed wgangp --seeds 0 1 --iterations 1500 \\
        --runs /tmp/b2b-recipe --out data/ablations/recipe
    python scripts/recipe_search.py --quick --runs /tmp/r --out /tmp/r-out     # a smoke run

Each training process uses one torch thread (two processes on two cores; see ablations.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, git_commit  # noqa: E402

from b2b.files.atomic import write_text
import dataclasses

from b2b.evaluation.scorecard import Line, main_track, properties, rank_key, scorecard

#: candidate name -> {"generator"|"critic"|"training": {field: value}} overrides of ``seed``
CANDIDATES: dict[str, dict[str, dict[str, Any]]] = {
    "seed": {},
    "layer_norm": {"critic": {"norm": "layer", "dropout": 0.0}},
    "minibatch_std": {"critic": {"norm": "layer", "dropout": 0.0, "minibatch_std": True}},
    "wgangp": {"critic": {"norm": "layer", "dropout": 0.0, "channels": 64, "minibatch_std": True},
               "training": {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "lr_gamma": 1.0}},
    "binary": {"generator": {"binary": True},
               "critic": {"norm": "layer", "dropout": 0.0, "channels": 64, "minibatch_std": True},
               "training": {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "lr_gamma": 1.0}},
    "streams_refiner": {"generator": {"binary": True, "refiner": 2},
                        "critic": {"norm": "layer", "dropout": 0.0, "channels": 64, "minibatch_std": True,
                                   "streams": 32},
                        "training": {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "lr_gamma": 1.0}},
    "streams_prior": {"generator": {"binary": True, "prior": True},
                      "critic": {"norm": "layer", "dropout": 0.0, "channels": 64, "minibatch_std": True,
                                 "streams": 32},
                      "training": {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "lr_gamma": 1.0}},
    "full": {"generator": {"binary": True, "refiner": 2, "prior": True},
             "critic": {"norm": "layer", "dropout": 0.0, "channels": 64, "minibatch_std": True, "streams": 32},
             "training": {"lr_g": 1e-4, "lr_d": 1e-4, "betas": (0.0, 0.9), "lr_gamma": 1.0}},
}
DESCRIPTIONS = {
    "seed": "the original model and schedule (critic with batch norm, dropout 0.5, 16 channels; "
            "Adam 3e-4 / 6e-4, betas (0.5, 0.9), x0.75 every 25 epochs)",
    "layer_norm": "the old `improved`: seed with a layer-norm critic and no dropout",
    "minibatch_std": "layer_norm plus a minibatch standard deviation channel in the critic (ProGAN's "
                     "device against collapse); the original schedule",
    "wgangp": "WGAN-GP's own settings (Adam 1e-4, betas (0, 0.9), constant rate) with a layer-norm "
              "critic of 64 channels, no dropout, and a minibatch standard deviation channel",
    "binary": "wgangp with a binary generator output: the critic sees 0/1 windows like the real ones "
              "(straight-through sigmoid, BinaryMuseGAN's deterministic binary neurons)",
    "streams_refiner": "streams with a refining generator stage (b2b.model.refiner): two residual units of "
                       "per-track convolutions along time (5 steps) after the last layer, across the seams "
                       "between the pairs of steps each hidden vector makes",
    "streams_prior": "streams with an output bias per track and pitch that starts at the training data's log-odds "
                     "(GeneratorConfig.prior), without the refiner: does the prior alone keep the unused tracks "
                     "silent, and does it keep the windows varied?",
    "full": "streams_refiner with an output bias per track and pitch that starts at the training data's "
            "log-odds (GeneratorConfig.prior: tracks the data never uses start silent)",
}
#: the headline metrics of the evaluation report (rows on all tracks)
HEADLINE = ("polyphony", "polyphonic_rate", "used_pitch_classes", "qualified_note_rate",
            "pitch_class_entropy", "scale_consistency", "note_count", "empty_bar_rate")
#: candidates that are presets of b2b (``b2b train --preset NAME`` trains them; their description is
#: the preset's): the streams recipe and the two budget candidates of issue 31
PRESET_CANDIDATES = ("streams", "lean", "economy", "steady")
ALL_CANDIDATES = [*CANDIDATES, *PRESET_CANDIDATES]
QUICK = dict(iterations=2, batch=8, seeds=[0], n_eval=40, jobs=1, checkpoint_every=1)
FULL = dict(iterations=1500, batch=64, seeds=[0, 1], n_eval=1000, jobs=2, checkpoint_every=250)


def candidate_preset(name: str) -> Any:
    """The :class:`b2b.model.networks.Preset` of candidate ``name``: the preset of that name
    (:data:`PRESET_CANDIDATES`), or ``seed`` with the overrides in :data:`CANDIDATES`."""
    from b2b.model.presets import get_preset

    if name in PRESET_CANDIDATES:
        return get_preset(name)
    return get_preset("seed").with_overrides(CANDIDATES[name], name, DESCRIPTIONS[name])


def train_for(trainer: Any, iterations: int, cpu_budget: float | None, chunk: int) -> float:
    """Train ``trainer`` to ``iterations`` steps or, with ``cpu_budget``, until this process has
    spent that many CPU seconds training (checked every ``chunk`` steps, each chunk ending with a
    checkpoint); returns the CPU seconds spent. Comparing recipes at equal CPU time, not equal
    steps, is what a fixed machine cares about: a cheaper step buys more of them."""
    t0 = time.process_time()
    if cpu_budget is None:
        trainer.train(iterations)
    else:
        while time.process_time() - t0 < cpu_budget:
            trainer.train(trainer.step + chunk)
    return time.process_time() - t0


def _b2b(*args: str) -> None:
    """Run ``python -m b2b ARGS`` (the CLI as a reader runs it); raise with its stderr on failure."""
    p = subprocess.run([sys.executable, "-m", "b2b", *args], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if p.returncode:
        raise RuntimeError(f"b2b {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one (candidate, seed), export it calibrated, evaluate it; in a worker."""
    import torch

    torch.set_num_threads(1)
    from b2b.datasets.catalog import open_dataset
    from b2b.training.trainer import Trainer, TrainerConfig

    name, seed = task["candidate"], task["seed"]
    run = Path(task["runs"]) / f"{name}-s{seed}"
    preset = candidate_preset(name)
    if task.get("batch"):
        preset = preset.with_training(batch=task["batch"])
    cfg = TrainerConfig(preset=preset, iterations=task["iterations"],
                        seed=seed, device="cpu", out=str(run), progress=False, sample_every=0,
                        checkpoint_every=task["checkpoint_every"], keep=100, log_every=1)
    resume = any(run.glob("checkpoint_*.pt"))
    t0 = time.perf_counter()
    tr = Trainer(cfg, open_dataset(task["data"]), resume=resume)
    start = tr.step
    cpu_s = train_for(tr, task["iterations"], task.get("cpu_budget"), task["checkpoint_every"])
    train_s = time.perf_counter() - t0
    last = tr.history[-10:]
    history = {k: sum(r[k] for r in last) / len(last) for k in ("wasserstein", "penalty", "grad_norm")}
    tr_steps = tr.step
    del tr
    ckpt = sorted(run.glob("checkpoint_*.pt"))[-1]
    gen = run / "generator.pt"
    ev = run / "evaluation"
    t1 = time.perf_counter()
    _b2b("export", "--checkpoint", str(ckpt), "--data", task["data"], "--out", str(gen))
    _b2b("evaluate", "--checkpoint", str(gen), "--data", task["data"], "--n", str(task["n_eval"]),
         "--seed", "0", "--no-figures", "--out", str(ev))
    eval_s = time.perf_counter() - t1
    report = json.loads((ev / "mgeval.json").read_text())
    meta = torch.load(gen, map_location="cpu", weights_only=True)
    return {"candidate": name, "seed": seed, "steps": tr_steps, "resumed_from": start,
            "train_wall_s": train_s, "train_cpu_s": cpu_s, "eval_wall_s": eval_s, "threshold": meta.get("threshold"),
            "history_last10": history, "report": report, "run": str(run)}


def trajectory(run: Path, out: Path, data: str, n_eval: int, every: int) -> list[dict[str, Any]]:
    """Export and evaluate every ``every``-th checkpoint of a run (does more training still help?).

    A checkpoint whose export and evaluation an earlier call left in the run folder is not
    evaluated again, so the trajectory of a run that is still training can be extended.

    Writes ``<out>/trajectory.json`` and ``<out>/trajectory.md`` (one row per checkpoint: the
    headline metrics and the diversity numbers, as :func:`render_markdown`).
    """
    import torch

    rows = []
    for ckpt in sorted(run.glob("checkpoint_*.pt")):
        step = int(ckpt.stem.split("_")[1])
        if step % every:
            continue
        gen, ev = run / f"generator_{step:08d}.pt", run / f"evaluation_{step:08d}"
        if not (gen.is_file() and (ev / "mgeval.json").is_file()):  # evaluated by an earlier call: kept
            _b2b("export", "--checkpoint", str(ckpt), "--data", data, "--out", str(gen))
            _b2b("evaluate", "--checkpoint", str(gen), "--data", data, "--n", str(n_eval), "--seed", "0",
                 "--no-figures", "--out", str(ev))
        report = json.loads((ev / "mgeval.json").read_text())
        meta = torch.load(gen, map_location="cpu", weights_only=True)
        rows.append({"label": f"{run.name} at step {step}", "candidate": run.name, "seed": step, "steps": step, "threshold": meta.get("threshold"),
                     "train_wall_s": float(torch.load(ckpt, map_location="cpu", weights_only=True)["elapsed"]),
                     "headline": headline({"report": report}), "rank": list(rank_key(report))})
        print(f"{run.name} step {step}: within ratio {rows[-1]['headline']['sets'].get('within_ratio'):.2f}", flush=True)
    res = {"provenance": {"command": command_line(sys.argv[1:]),
                          "commit": _git_commit(), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                          "machine": f"{os.cpu_count()} shared CPU cores ({platform.machine()}), no GPU",
                          "torch": torch.__version__},
           "budget": {"iterations": max(r["steps"] for r in rows), "batch": "as trained", "seeds": [run.name],
                      "n_eval": n_eval, "every": every},
           "candidates": {}, "runs": rows, "decision": ""}
    if rows:  # the checkpoint b2b.evaluation.scorecard.rank_key picks: varied first, then the lowest C2ST accuracy, then properties met
        best = min(rows, key=lambda r: r["rank"])
        res["decision"] = (f"Chosen by b2b.evaluation.scorecard.rank_key: {best['label']} "
                           f"({'as varied as real windows' if not best['rank'][0] else 'no checkpoint as varied as real windows'}, "
                           f"two-sample accuracy {best['rank'][1]:.3f}, {-best['rank'][2]} of "
                           f"{len(_met(best['headline']['scorecard']))} properties met).")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "trajectory.json", json.dumps(res, indent=1, default=list))
    write_text(out / "trajectory.md", render_markdown(res).replace("# Recipe search", "# Checkpoints of one run", 1))
    return rows


def best(runs: list[Path], out: Path) -> dict[str, Any]:
    """Keep the checkpoint :func:`b2b.evaluation.scorecard.rank_key` picks among every evaluated checkpoint
    of ``runs`` (those :func:`trajectory` exported and evaluated): its generator, its report and
    a ``provenance.json`` (run names and steps only, no machine paths) go into ``out``."""
    import torch

    found = []
    for run in runs:
        for ev in sorted(run.glob("evaluation_*/mgeval.json")):
            step = int(ev.parent.name.split("_")[1])
            found.append((rank_key(json.loads(ev.read_text())), run, step))
    if not found:
        raise ValueError(f"--best: no evaluated checkpoint in {', '.join(str(r) for r in runs)} (run --trajectory first)")
    key, run, step = min(found, key=lambda f: f[0])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / f"generator_{step:08d}.pt", out / "generator.pt")
    for name in ("mgeval.json", "report.md"):
        shutil.copyfile(run / f"evaluation_{step:08d}" / name, out / name)
    ckpt = torch.load(run / f"checkpoint_{step:08d}.pt", map_location="cpu", weights_only=True)
    prov = {"file": "generator.pt", "run": run.name, "step": step, "preset": ckpt["preset"],
            "trainer_config": {k: v for k, v in ckpt["config"].items() if k != "out"},
            "train_wall_s": float(ckpt["elapsed"]),
            "chosen_by": "b2b.evaluation.scorecard.rank_key (as varied as real windows first, then the lowest two-sample "
                         "accuracy, then the most properties met) over every evaluated checkpoint of the runs",
            "considered": [{"run": r.name, "step": s, "rank": list(k)} for k, r, s in sorted(found, key=lambda f: f[0])],
            "command": command_line(sys.argv[1:]),
            "commit": _git_commit(), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    write_text(out / "provenance.json", json.dumps(prov, indent=1, default=list) + "\n")
    print(f"kept {run.name} at step {step} (rank {key}) in {out}")
    return prov


def merge(paths: list[Path], out: Path, decision: str = "") -> dict[str, Any]:
    """One ``results.json`` (and ``results.md``) from several invocations at the same budget."""
    parts = [json.loads(p.read_text()) for p in paths]
    for p, r in zip(paths, parts):  # headlines by the current rule, from each run's full report
        for run in r["runs"]:
            full = p.parent / f"{run['candidate']}-s{run['seed']}" / "mgeval.json"
            if full.is_file():
                run["headline"] = headline({"report": json.loads(full.read_text())})
    keys = ("iterations", "batch", "n_eval")
    if len({tuple(r["budget"][k] for k in keys) for r in parts}) != 1:
        raise ValueError(f"--merge: the results differ in budget ({', '.join(keys)}): {[str(p) for p in paths]}")
    res = {"provenance": {**parts[0]["provenance"],
                          "command": " && ".join(r["provenance"]["command"] for r in parts),
                          "commit": ", ".join(dict.fromkeys(r["provenance"]["commit"] for r in parts)),
                          "date": ", ".join(dict.fromkeys(r["provenance"]["date"] for r in parts)),
                          "merged_from": [portable(p) for p in paths]},
           "budget": {**parts[0]["budget"], "seeds": sorted({s for r in parts for s in r["budget"]["seeds"]})},
           "candidates": {k: v for r in parts for k, v in r["candidates"].items()},
           "runs": [run for r in parts for run in r["runs"]],
           "decision": decision or parts[0].get("decision", ""),
           "complete": all(r.get("complete") for r in parts),
           "wall_s": sum(r.get("wall_s", 0) for r in parts)}
    order = ALL_CANDIDATES
    res["runs"].sort(key=lambda r: (order.index(r["candidate"]), r["seed"]))
    res["candidates"] = {c: res["candidates"][c] for c in order if c in res["candidates"]}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps(res, indent=1, default=list))
    write_text(out / "results.md", render_markdown(res))
    return res


def portable(path: str | Path) -> str:
    """``path`` as a record may show it: relative to the repository when inside it, else only its
    last part under ``<outside>/`` (a machine's folders say nothing to a reader and leak its layout)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return f"<outside>/{p.name}"


def command_line(argv: list[str]) -> str:
    """The command that ran, with every path argument made :func:`portable`."""
    out = []
    for a in argv:
        out.append(portable(a) if not a.startswith("-") and ("/" in a or Path(a).exists()) else a)
    return "python scripts/recipe_search.py " + " ".join(shlex.quote(a) for a in out)


def _git_commit() -> str:
    return git_commit("scripts/recipe_search.py")


def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The numbers the tables show for one run: each headline metric on the real data's busiest
    track (the most notes; Ensemble for the chorales), or on all tracks for a whole-window metric,
    real and generated; ``defined`` is 0 where no generated window defines it (e.g. polyphony
    needs notes on the track). Averaging over rarely used tracks would describe no track of the
    data, so it is not done."""
    rep = r["report"]
    main = main_track(rep)
    out: dict[str, Any] = {"track": main}
    for m in HEADLINE:
        row = next((x for x in rep["rows"] if x["metric"] == m and x["track"] == main), None) \
            or next((x for x in rep["rows"] if x["metric"] == m and x["track"] == "all"), None)
        gen = None if row is None else row.get("generated_mean")
        out[m] = {"real": None if row is None else row.get("real_mean"), "generated": gen,
                  "track": None if row is None else row["track"], "defined": int(gen is not None), "rows": 1}
    out["sets"] = rep.get("sets", {})
    out["scorecard"] = [dataclasses.asdict(line) for line in scorecard(rep)]
    return out


def _met(card: list[dict[str, Any]]) -> dict[str, bool]:
    """Whether each property of a stored scorecard (lines as dicts) is met: all of its lines are."""
    return properties([Line(**c) for c in card])


def _label(r: dict[str, Any]) -> str:
    return r.get("label") or f"{r['candidate']} s{r['seed']}"


def _fmt(v: Any, d: int = 3) -> str:
    return "–" if v is None else f"{v:.{d}f}"


def render_markdown(res: dict[str, Any]) -> str:
    """``results.md``: provenance, budget, one row per run with every headline metric and diversity."""
    p, b = res["provenance"], res["budget"]
    lines = ["# Recipe search on the embedded Bach dataset", "",
             f"- command: `{p['command']}`", f"- commit: {p['commit']}; date: {p['date']}",
             f"- machine: {p['machine']}; torch {p['torch']}",
             f"- budget per candidate and seed: {b['iterations']} generator iterations, batch {b['batch']}, "
             f"seeds {b['seeds']}; each run exported with a density-calibrated threshold and evaluated "
             f"with `b2b evaluate --n {b['n_eval']} --seed 0` (real windows vs generated windows)", "",
             "## Candidates", ""]
    for c, d in res["candidates"].items():
        lines.append(f"- **{c}**: {d['description']} (overrides of `seed`: `{json.dumps(d['overrides'])}`)")
    lines += ["", "## Headline metrics (on the busiest track, or the whole window; real in the first row)", ""]
    cols = list(HEADLINE)
    lines += ["| run | threshold | " + " | ".join(cols) + " |", "| --- | ---: |" + " ---: |" * len(cols)]
    runs = res["runs"]
    if runs:
        h0 = runs[0]["headline"]
        lines.append("| real | – | " + " | ".join(_fmt(h0[m]["real"]) for m in cols) + " |")
    for r in runs:
        h = r["headline"]
        cells = [_fmt(h[m]["generated"]) for m in cols]
        lines.append(f"| {_label(r)} | {_fmt(r['threshold'], 4)} | " + " | ".join(cells) + " |")
    lines += ["", "## Diversity, copying and the two-sample test", "",
              "| run | within-set overlap (real / generated) | ratio | pitch held ≥ half the window "
              "(real / generated) | nearest-training overlap (real / generated) | C2ST accuracy [95% CI] | "
              "train s |", "| --- | --- | ---: | --- | --- | --- | ---: |"]
    for r in runs:
        s = r["headline"]["sets"]
        ts = s.get("two_sample", {})
        lines.append(
            f"| {_label(r)} | {_fmt(s.get('within_real'))} / {_fmt(s.get('within_generated'))} | "
            f"{_fmt(s.get('within_ratio'), 2)} | {_fmt(s.get('held_real'))} / {_fmt(s.get('held_generated'))} | "
            f"{_fmt(s.get('nearest_real'))} / {_fmt(s.get('nearest_generated'))} | {_fmt(ts.get('accuracy'))} "
            f"[{_fmt(ts.get('low'))}, {_fmt(ts.get('high'))}] | {r['train_wall_s']:.0f} |")
    lines += ["", "## Scorecard (b2b.evaluation.scorecard: the targets for music that sounds like its data)", "",
              "| run | properties met | failed |", "| --- | ---: | --- |"]
    for r in runs:
        card = r["headline"].get("scorecard") or []
        failed = "; ".join(f"{c['statistic']} {_fmt(c['value'])} (real {_fmt(c['real'])}, {c['target']})"
                           for c in card if not c["ok"])
        met = _met(card)
        lines.append(f"| {_label(r)} | {sum(met.values())} / {len(met)} | {failed or '–'} |")
    if res.get("decision"):
        lines += ["", "## Decision", "", res["decision"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", nargs="+", choices=ALL_CANDIDATES, default=list(CANDIDATES))
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--iterations", type=int)
    p.add_argument("--batch", type=int, help="batch for every candidate (default: 64, or a preset candidate's own)")
    p.add_argument("--cpu-budget", type=float, metavar="SECONDS",
                   help="train each (candidate, seed) for this many CPU seconds instead of --iterations (which then "
                        "only caps the steps); checked every --checkpoint-every steps")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    p.add_argument("--jobs", type=int)
    p.add_argument("--data", default="bach")
    p.add_argument("--runs", required=True, help="folder for the training runs (checkpoints; not committed)")
    p.add_argument("--out", required=True, help="folder for results.json / results.md and per-run reports")
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke run / the tests")
    p.add_argument("--decision", default="", help="text of the decision recorded in the results")
    p.add_argument("--trajectory", metavar="NAME", help="instead of training: evaluate every --every-th checkpoint "
                   "of the run <runs>/NAME (e.g. wgangp-s0) into <out>/trajectory.json/.md")
    p.add_argument("--best", nargs="+", metavar="NAME", help="instead of training: copy the checkpoint "
                   "b2b.evaluation.scorecard.rank_key picks among the evaluated checkpoints of the runs <runs>/NAME... (run "
                   "--trajectory on each first) into <out>: generator.pt, mgeval.json, report.md, provenance.json")
    p.add_argument("--every", type=int, default=500, help="checkpoint spacing for --trajectory (default 500)")
    p.add_argument("--n-eval", type=int, help="windows per set in each evaluation (default 1000; --quick 40)")
    p.add_argument("--merge", nargs="+", metavar="RESULTS", help="instead of training: merge the results.json "
                   "of several invocations (same budget) into <out>/results.json and results.md")
    args = p.parse_args(argv)
    if args.merge:
        merge([Path(m) for m in args.merge], Path(args.out), args.decision)
        return 0
    if args.best:
        best([Path(args.runs) / name for name in args.best], Path(args.out))
        return 0
    if args.trajectory:
        trajectory(Path(args.runs) / args.trajectory, Path(args.out), args.data,
                   args.n_eval or (QUICK if args.quick else FULL)["n_eval"], args.every)
        return 0
    budget = dict(QUICK if args.quick else FULL)
    for k in ("iterations", "batch", "seeds", "jobs", "n_eval", "checkpoint_every"):
        if getattr(args, k) is not None:
            budget[k] = getattr(args, k)
    if any(c in PRESET_CANDIDATES for c in args.candidates) and args.batch is None and not args.quick:
        budget["batch"] = None  # the presets' own batches (the budget candidates differ in batch)
    budget["cpu_budget"] = args.cpu_budget
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"candidate": c, "seed": s, "runs": args.runs, "data": args.data, **budget}
             for s in budget["seeds"] for c in args.candidates]
    commit, t_start, results = _git_commit(), time.perf_counter(), []

    def write() -> None:
        order = {c: i for i, c in enumerate(args.candidates)}
        rs = sorted(results, key=lambda r: (order[r["candidate"]], r["seed"]))
        for r in rs:
            d = out / f"{r['candidate']}-s{r['seed']}"
            d.mkdir(exist_ok=True)
            for name in ("report.md", "mgeval.json"):
                shutil.copyfile(Path(r["run"]) / "evaluation" / name, d / name)
            shutil.copyfile(Path(r["run"]) / "history.csv", d / "history.csv")
        cmd = list(argv if argv is not None else sys.argv[1:])
        res = {
            "provenance": {"command": command_line(cmd),
                           "commit": commit, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "machine": f"{os.cpu_count()} shared CPU cores ({platform.machine()}), no GPU, one torch "
                                      f"thread per process, {budget['jobs']} processes in parallel",
                           "torch": torch.__version__, "python": platform.python_version(), "data": args.data},
            "budget": {k: budget[k] for k in ("iterations", "batch", "seeds", "n_eval", "checkpoint_every", "cpu_budget")},
            "candidates": {c: {"description": candidate_preset(c).description, "overrides": CANDIDATES.get(c, {}),
                               "preset": candidate_preset(c).to_dict()} for c in args.candidates},
            "runs": [{**{k: v for k, v in r.items() if k not in ("report", "run")}, "headline": headline(r)}
                     for r in rs],
            "decision": args.decision, "complete": len(rs) == len(tasks), "wall_s": time.perf_counter() - t_start,
        }
        write_text(out / "results.json", json.dumps(res, indent=1, default=list))
        write_text(out / "results.md", render_markdown(res))

    def done(r: dict[str, Any]) -> None:
        results.append(r)
        print(f"{r['candidate']} seed {r['seed']}: {r['steps']} steps, train {r['train_wall_s']:.0f} s "
              f"({r['train_cpu_s']:.0f} CPU s), "
              f"eval {r['eval_wall_s']:.0f} s", flush=True)
        write()

    if budget["jobs"] <= 1:  # in this process (also what the tests use: no pickling of this module)
        threads = torch.get_num_threads()
        try:
            for t in tasks:
                done(run_one(t))
        finally:
            torch.set_num_threads(threads)
    else:
        with cf.ProcessPoolExecutor(budget["jobs"], mp_context=mp.get_context("spawn")) as ex:
            for f in cf.as_completed([ex.submit(run_one, t) for t in tasks]):
                done(f.result())
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
