"""Ablations of the "From Bytes to Beats" model on the embedded Bach dataset.

Trains several variants of the ``seed`` preset on EQUAL budgets (same generator iterations,
batch, data, seeds) with :class:`b2b.training.trainer.Trainer`, evaluates each against real windows with
:func:`b2b.evaluation.evaluate.evaluate`, measures the batch-norm coupling of the critic directly, and
writes

- ``<out>/results.json``: provenance (command, commit, date, machine, torch), budget, the
  coupling measurement, and per variant: its config, the history summary, the metrics vs real
  data and the summary scores;
- ``<out>/results.md``: the same as tables;
- ``<out>/samples_<variant>.npz``: a few binarized generated windows (``np.packbits`` of the
  ``(n, 17, 64, 72)`` bools, key ``packed``, with ``shape``), for listening without retraining.

Usage::

    python scripts/ablations.py --out data/ablations                 # the full run
    python scripts/ablations.py --quick --out /tmp/abl                # a smoke run (seconds)

Every variant differs from ``seed`` only in the config fields listed in ``VARIANTS``.
Each training process uses one torch thread: on a loaded 2-core machine two threads per
process spin against each other and ran about 7 times slower in our measurement.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

from b2b.files.atomic import atomic_write, write_text

# ----------------------------------------------------------------------------------------------
# variants: name -> {"generator"|"critic"|"training": {field: value}} overrides of `seed`
# ----------------------------------------------------------------------------------------------
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "seed": {},
    "critic_layer_norm": {"critic": {"norm": "layer", "dropout": 0.0}},
    "critic_no_norm": {"critic": {"norm": "none", "dropout": 0.0}},
    "no_attention": {"generator": {"attention": None}, "critic": {"attention": None}},
    "n_critic_1": {"training": {"n_critic": 1}},
    # follow-ups (not run by default): the two other questions asked again with the layer-norm critic
    "layer_norm_no_attention": {"generator": {"attention": None},
                                "critic": {"norm": "layer", "dropout": 0.0, "attention": None}},
    "layer_norm_n_critic_1": {"critic": {"norm": "layer", "dropout": 0.0}, "training": {"n_critic": 1}},
}
#: the variants run by default
MAIN_VARIANTS = ("seed", "critic_layer_norm", "critic_no_norm", "no_attention", "n_critic_1")
DESCRIPTIONS = {
    "seed": "the original: critic with batch norm + dropout 0.5, attention in both nets, n_critic 5",
    "critic_layer_norm": "critic with layer norm (GroupNorm(1, C)) and no dropout (WGAN-GP's advice)",
    "critic_no_norm": "critic without normalization and without dropout",
    "no_attention": "no self-attention in the generator nor in the critic",
    "n_critic_1": "one critic update per generator update instead of five",
    "layer_norm_no_attention": "layer-norm critic without dropout, and no self-attention in either net",
    "layer_norm_n_critic_1": "layer-norm critic without dropout, one critic update per generator update",
}

#: metrics summarised in the table and the scores (rows of the evaluate report)
MAIN_METRICS = ("polyphony", "polyphonic_rate", "empty_bar_rate", "used_pitch_classes",
                "qualified_note_rate", "pitch_class_entropy", "scale_consistency", "tonal_distance")
#: whole-window statistics also reported (not in the score)
EXTRA_METRICS = ("polyphony_pooled", "pitch_class_entropy_pooled", "polyphonic_rate_all", "structure")

FULL = dict(iterations=100, batch=32, seeds=[0, 1], n_generated=256, n_real=512, n_listen=16,
            jobs=2, coupling_batch=64, coupling_trials=8)
QUICK = dict(iterations=2, batch=4, seeds=[0], n_generated=16, n_real=32, n_listen=2,
             jobs=1, coupling_batch=8, coupling_trials=2)


def variant_preset(name: str) -> Any:
    """The :class:`b2b.model.presets.Preset` of variant ``name``: ``seed`` with the variant's overrides."""
    from b2b.model.presets import get_preset

    return get_preset("seed").with_overrides(VARIANTS[name], name, DESCRIPTIONS[name])


# ----------------------------------------------------------------------------------------------
# batch coupling, measured on the real critic
# ----------------------------------------------------------------------------------------------
def coupling(critic: Any, real: Any, fake: Any, trials: int = 8, seed: int = 0,
             train: bool = True) -> dict[str, float]:
    """How much one sample's critic value and penalty term change when the rest of its batch does.

    For each trial, sample 0 is the interpolate ``eps * real_0 + (1 - eps) * fake_0`` (as in the
    penalty); the other ``B - 1`` samples are interpolates of two different random draws. The
    critic is in train mode, with the same dropout mask in both passes (the RNG is reseeded
    before each), so any difference comes from the batch statistics alone.

    Parameters
    ----------
    critic : DiscConvNet
    real, fake : Tensor ``(N, 17, 64, 72)`` with ``N >= 2 B - 1``
        Pools to draw from; ``B = (N + 1) // 2``.
    trials, seed : int
        Number of trials and the seed of their draws.
    train : bool
        Measure in train mode (as during training; default) or in eval mode.

    Returns
    -------
    dict
        Means over trials of the relative changes ``|v_A - v_B| / |v_A|`` of the critic value,
        ``||g_A - g_B|| / ||g_A||`` of the input gradient of sample 0 (the gradient the penalty
        uses: of the batch's summed scores), and ``|p_A - p_B| / p_A`` of its penalty term
        ``(||g|| - 1)^2``, plus their maxima and the batch size.
    """
    import torch

    b = (real.shape[0] + 1) // 2
    gen = torch.Generator().manual_seed(seed)
    was = critic.training
    critic.train(train)
    out = {"value": [], "grad": [], "penalty": []}
    try:
        for t in range(trials):
            perm = torch.randperm(real.shape[0], generator=gen)
            eps = torch.rand(real.shape[0], generator=gen).view(-1, 1, 1, 1)
            pool = eps * real[perm] + (1 - eps) * fake[perm]
            x0, rest_a, rest_b = pool[:1], pool[1:b], pool[b:2 * b - 1]
            res = []
            for rest in (rest_a, rest_b):
                x = torch.cat([x0, rest]).detach().requires_grad_(True)
                torch.manual_seed(10_000 + t)  # same dropout mask in both passes
                scores = critic(x).view(-1)
                (g,) = torch.autograd.grad(scores.sum(), x)
                g0 = g[0].double().flatten()
                res.append((float(scores[0].detach()), g0, float((g0.norm() - 1) ** 2)))
            (va, ga, pa), (vb, gb, pb) = res
            out["value"].append(abs(va - vb) / max(abs(va), 1e-12))
            out["grad"].append(float((ga - gb).norm() / max(float(ga.norm()), 1e-12)))
            out["penalty"].append(abs(pa - pb) / max(pa, 1e-12))
    finally:
        critic.train(was)
    d: dict[str, float] = {"batch": int(b), "trials": int(trials)}
    for k, v in out.items():
        d[f"{k}_rel_change"] = float(np.mean(v))
        d[f"{k}_rel_change_max"] = float(np.max(v))
    return d


def measure_coupling(real: np.ndarray, batch: int, trials: int, seed: int = 0) -> dict[str, Any]:
    """:func:`coupling` of freshly initialised critics of several configs (same generator)."""
    import torch

    from b2b.model.networks import DiscConvNet, GenConvNet

    from b2b.model.presets import CriticConfig

    torch.manual_seed(seed)
    g = GenConvNet().eval()
    n = 2 * batch - 1
    r = torch.as_tensor(real[:n]).float()
    with torch.no_grad():
        f = g(torch.randn(n, g.latent))
    configs = {
        "seed (batch norm + dropout 0.5)": CriticConfig(),
        "batch norm, no dropout": CriticConfig(dropout=0.0),
        "layer norm, no dropout": CriticConfig(norm="layer", dropout=0.0),
        "no norm, no dropout": CriticConfig(norm="none", dropout=0.0),
    }
    res = {}
    for name, cfg in configs.items():
        torch.manual_seed(seed)
        res[name] = {"config": dataclasses.asdict(cfg), **coupling(DiscConvNet(cfg), r, f, trials, seed)}
    return res


# ----------------------------------------------------------------------------------------------
# one variant
# ----------------------------------------------------------------------------------------------
def _summary(history: list[dict[str, float]], last: int = 10) -> dict[str, float]:
    """Final values and means over the last ``last`` logged steps."""
    tail = history[-last:]
    d = {"steps": int(history[-1]["step"]), "epochs": float(history[-1]["epoch"]),
         "time_s": float(history[-1]["time"])}
    for k in ("wasserstein", "penalty", "grad_norm", "loss_d", "loss_g"):
        d[f"{k}_final"] = float(history[-1][k])
        d[f"{k}_last10"] = float(np.mean([h[k] for h in tail]))  # fewer when fewer steps
    return d


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary scores over the report rows of MAIN_METRICS.

    ``gap``: mean over rows of ``min(|gap|, 1)``, a row whose metric is undefined on every
    generated window (e.g. the track never plays) counting as 1 — 0 is a perfect match of the
    means, 1 is "off by 100 % or more". ``overlap``: mean MGEval overlapping area (undefined
    counts as 0) — 1 is a perfect match of the distributions.
    """
    main = [r for r in rows if r["metric"] in MAIN_METRICS]
    gaps = [1.0 if r["gap"] is None else min(abs(r["gap"]), 1.0) for r in main]
    overlaps = [0.0 if r["overlap"] is None else float(r["overlap"]) for r in main]
    return {"gap": float(np.mean(gaps)) if gaps else None,
            "overlap": float(np.mean(overlaps)) if overlaps else None, "rows": len(main)}


def per_metric(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: means over its rows (tracks / pairs) of real mean, generated mean, overlap."""
    out = {}
    for m in MAIN_METRICS + EXTRA_METRICS:
        rs = [r for r in rows if r["metric"] == m]
        if not rs:
            continue

        def mean(key: str) -> float | None:
            v = [r[key] for r in rs if r[key] is not None]
            return float(np.mean(v)) if v else None

        out[m] = {"real": mean("real_mean"), "generated": mean("generated_mean"),
                  "overlap": mean("overlap"), "rows": len(rs),
                  "generated_defined_rows": sum(r["generated_n"] > 0 for r in rs)}
    return out


def load_windows(data: str) -> Any:
    """All windows of ``data`` as a bool tensor ``(n, 17, 64, 72)``: a dataset name or path
    (:func:`b2b.datasets.catalog.open_dataset`) or a ``.npy`` file of 0/1 windows (used by the tests)."""
    import torch

    if str(data).endswith(".npy"):
        x = np.load(data, allow_pickle=False)
        if x.ndim != 4 or x.shape[1:] != (17, 64, 72):
            raise ValueError(f"--data {data}: expected windows (n, 17, 64, 72), got {x.shape}")
        return torch.as_tensor(x.astype(bool))
    from b2b.datasets.catalog import open_dataset

    return open_dataset(data).tensor(dtype=torch.bool)


def run_variant(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (variant, seed) and evaluate it; runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    from b2b.evaluation.evaluate import evaluate
    from b2b.training.trainer import Trainer, TrainerConfig

    name, seed = task["variant"], task["seed"]
    preset = variant_preset(name)
    data = load_windows(task["data"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"abl_{name}_{seed}_") as d:
        cfg = TrainerConfig(preset=preset.with_training(batch=task["batch"]), iterations=task["iterations"], seed=seed,
                            device="cpu", out=d, progress=False, sample_every=0,
                            checkpoint_every=10**9, keep=1, log_every=1)
        tr = Trainer(cfg, data)
        tr.train()
        history = tr.history
        gen_t = torch.Generator().manual_seed(10_000 + seed)
        z = torch.randn(task["n_generated"], tr.generator.latent, generator=gen_t)
        probs = tr.sample(z).numpy()
        # the trained critic's coupling, on interpolates of real and generated windows
        cb = task["coupling_batch"]
        critic_coupling = coupling(tr.critic, torch.as_tensor(task["real"][:2 * cb - 1]).float(),
                                   torch.as_tensor(probs[:2 * cb - 1]).float(),
                                   trials=task["coupling_trials"], seed=seed)
    train_s = time.perf_counter() - t0
    thr = preset.threshold
    rolls = probs >= thr
    t1 = time.perf_counter()
    rep = evaluate(task["real_features"], rolls, figures=False)
    rows = [_clean(dataclasses.asdict(r)) for r in rep.rows]
    # robustness check: the same generator binarized at 0.5 (a short run may put few cells >= 0.9)
    rep05 = evaluate(task["real_features"], probs >= 0.5, figures=False)
    rows05 = [_clean(dataclasses.asdict(r)) for r in rep05.rows]
    eval_s = time.perf_counter() - t1
    return {
        "variant": name, "seed": seed, "history": _summary(history), "train_wall_s": train_s,
        "eval_wall_s": eval_s, "threshold": thr, "note_density": float(rolls.mean()),
        "empty_windows": float((rolls.reshape(len(rolls), -1).sum(1) == 0).mean()),
        "mean_probability": float(probs.mean()), "rows": rows, "scores": scores(rows),
        "per_metric": per_metric(rows), "scores_threshold_0.5": scores(rows05),
        "per_metric_threshold_0.5": per_metric(rows05), "note_density_threshold_0.5": float((probs >= 0.5).mean()),
        "trained_critic_coupling": critic_coupling,
        "listen": np.packbits(rolls[:task["n_listen"]], axis=None), "listen_shape": rolls[:task["n_listen"]].shape,
    }


# ----------------------------------------------------------------------------------------------
# the whole run
# ----------------------------------------------------------------------------------------------
def _git_commit() -> str:
    return git_commit("scripts/ablations.py")


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def aggregate(results: list[dict[str, Any]], variants: list[str]) -> dict[str, dict[str, Any]]:
    """Per variant: mean (and per-seed values) of the scores, history and per-metric numbers."""
    out = {}
    for v in variants:
        rs = [r for r in results if r["variant"] == v]
        if not rs:
            continue

        def m(get: Any) -> float | None:
            vals = [get(r) for r in rs]
            vals = [x for x in vals if x is not None]
            return float(np.mean(vals)) if vals else None

        pm = {}
        for metric in rs[0]["per_metric"]:
            pm[metric] = {k: m(lambda r, k=k: r["per_metric"].get(metric, {}).get(k))
                          for k in ("real", "generated", "overlap")}
        out[v] = {
            "score_gap": m(lambda r: r["scores"]["gap"]), "score_overlap": m(lambda r: r["scores"]["overlap"]),
            "score_gap_per_seed": [r["scores"]["gap"] for r in rs],
            "score_gap_threshold_0.5": m(lambda r: r["scores_threshold_0.5"]["gap"]),
            "score_overlap_threshold_0.5": m(lambda r: r["scores_threshold_0.5"]["overlap"]),
            "note_density_threshold_0.5": m(lambda r: r["note_density_threshold_0.5"]),
            "score_overlap_per_seed": [r["scores"]["overlap"] for r in rs],
            "wasserstein_last10": m(lambda r: r["history"]["wasserstein_last10"]),
            "penalty_last10": m(lambda r: r["history"]["penalty_last10"]),
            "grad_norm_last10": m(lambda r: r["history"]["grad_norm_last10"]),
            "train_wall_s": m(lambda r: r["train_wall_s"]), "note_density": m(lambda r: r["note_density"]),
            "empty_windows": m(lambda r: r["empty_windows"]), "per_metric": pm,
        }
    return out


def render_markdown(res: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    b = res["budget"]
    lines = ["# Ablations on the embedded Bach dataset", "",
             f"- command: `{res['provenance']['command']}`",
             f"- commit: {res['provenance']['commit']}; date: {res['provenance']['date']}",
             f"- machine: {res['provenance']['machine']}; torch {res['provenance']['torch']}",
             f"- budget per variant and seed: {b['iterations']} generator iterations, batch {b['batch']}, "
             f"seeds {b['seeds']}, {b['n_real']} real / {b['n_generated']} generated windows evaluated, "
             f"threshold {b['threshold']}; total wall {res['wall_s']:.0f} s", ""]
    lines += ["## Summary (means over seeds)", "",
              "| variant | gap score ↓ | overlap score ↑ | W estimate | penalty | grad norm | note density | "
              "empty windows | train s | gap @0.5 | overlap @0.5 |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    real_density = res["real"]["note_density"]
    for v, a in res["summary"].items():
        lines.append(f"| {v} | {_fmt(a['score_gap'])} | {_fmt(a['score_overlap'])} | {_fmt(a['wasserstein_last10'])} "
                     f"| {_fmt(a['penalty_last10'])} | {_fmt(a['grad_norm_last10'])} | {_fmt(a['note_density'], 4)} "
                     f"| {_fmt(a['empty_windows'], 2)} | {_fmt(a['train_wall_s'], 0)} "
                     f"| {_fmt(a['score_gap_threshold_0.5'])} | {_fmt(a['score_overlap_threshold_0.5'])} |")
    lines += ["", f"Real note density: {real_density:.4f}. W estimate, penalty and grad norm: means over the last 10 "
              "steps (the Wasserstein estimate is comparable only within one run's critic).", "",
              "## Metrics (generated mean, averaged over active tracks / pairs; real in the first row)", ""]
    metrics = list(next(iter(res["summary"].values()))["per_metric"])
    lines += ["| variant | " + " | ".join(metrics) + " |", "| --- |" + " ---: |" * len(metrics)]
    first = next(iter(res["summary"].values()))["per_metric"]
    lines.append("| real | " + " | ".join(_fmt(first[m]["real"]) for m in metrics) + " |")
    for v, a in res["summary"].items():
        lines.append(f"| {v} | " + " | ".join(_fmt(a["per_metric"][m]["generated"]) for m in metrics) + " |")
    lines += ["", "## Batch coupling (fresh critics, train mode, same dropout mask)", "",
              "| critic | value rel. change | gradient rel. change | penalty-term rel. change |",
              "| --- | ---: | ---: | ---: |"]
    for k, c in res["coupling"]["fresh"].items():
        lines.append(f"| {k} | {c['value_rel_change']:.3g} | {c['grad_rel_change']:.3g} | {c['penalty_rel_change']:.3g} |")
    for k, c in res["coupling"]["trained"].items():
        lines.append(f"| trained {k} | {c['value_rel_change']:.3g} | {c['grad_rel_change']:.3g} | "
                     f"{c['penalty_rel_change']:.3g} |")
    lines += ["", "## Decision", "", res.get("decision", ""), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/ablations", help="output folder (default data/ablations)")
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke run / the tests")
    p.add_argument("--iterations", type=int, help="generator iterations per variant and seed")
    p.add_argument("--batch", type=int, help="batch size (all variants)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (all variants)")
    p.add_argument("--jobs", type=int, help="parallel worker processes (one torch thread each)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(MAIN_VARIANTS),
                   help=f"variants to run (default: {' '.join(MAIN_VARIANTS)})")
    p.add_argument("--data", default="bach", help="dataset name or path (b2b.datasets.catalog.open_dataset)")
    p.add_argument("--decision", default="", help="text of the decision recorded in the results")
    p.add_argument("--set-decision", metavar="TEXT",
                   help="only record TEXT as the decision in an existing <out>/results.json (and .md); no training")
    args = p.parse_args(argv)
    if args.set_decision is not None:
        path = Path(args.out) / "results.json"
        res = json.loads(path.read_text())
        res["decision"] = args.set_decision
        text = json.dumps(res, indent=1)
        write_text(path, text)
        write_text(path.with_suffix(".md"), render_markdown(res))
        print(f"recorded the decision in {path} and {path.with_suffix('.md')}")
        return 0
    budget = dict(QUICK if args.quick else FULL)
    for k in ("iterations", "batch", "seeds", "jobs"):
        if getattr(args, k) is not None:
            budget[k] = getattr(args, k)

    import torch

    torch.set_num_threads(1)
    from b2b.evaluation.evaluate import sample_indices
    from b2b.evaluation.metrics import feature_table
    from b2b.model.presets import get_preset

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_windows(args.data)
    idx = sample_indices(len(data), budget["n_real"], 12345)
    real = data[torch.as_tensor(idx)].numpy()
    real_features = feature_table(real)
    threshold = get_preset("seed").threshold
    budget["threshold"] = threshold
    print(f"data {args.data}: {len(data)} windows; real sample {real.shape[0]}; budget {budget}", flush=True)

    t = time.perf_counter()
    fresh = measure_coupling(real, budget["coupling_batch"], budget["coupling_trials"])
    print(f"coupling measured in {time.perf_counter() - t:.1f} s", flush=True)

    tasks = [{"variant": v, "seed": s, "iterations": budget["iterations"], "batch": budget["batch"],
              "n_generated": budget["n_generated"], "n_listen": budget["n_listen"], "data": args.data,
              "real": real[:2 * budget["coupling_batch"] - 1], "real_features": real_features, "coupling_batch": budget["coupling_batch"],
              "coupling_trials": budget["coupling_trials"]}
             for s in budget["seeds"] for v in args.variants]
    def write(results: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        """Write results.json/.md and the listening samples for the runs done so far (atomically)."""
        results = sorted(results, key=lambda r: (args.variants.index(r["variant"]), r["seed"]))
        done = [v for v in args.variants if any(r["variant"] == v for r in results)]
        for v in done:  # listening samples: the first seed's
            r = next(r for r in results if r["variant"] == v)
            atomic_write(out / f"samples_{v}.npz",
                         lambda f, r=r: np.savez_compressed(f, packed=r["listen"],
                                                            shape=np.asarray(r["listen_shape"])))
        cmd = list(argv if argv is not None else sys.argv[1:])
        res = {
            "provenance": {
                "command": "python scripts/ablations.py " + " ".join(shlex.quote(a) for a in cmd),
                "commit": commit,
                "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{os.cpu_count()} shared CPU cores ({platform.machine()}), no GPU, one torch "
                           f"thread per training process, {budget['jobs']} processes in parallel",
                "torch": torch.__version__, "python": platform.python_version(), "data": args.data,
                "n_windows": int(len(data)),
            },
            "budget": {k: budget[k] for k in ("iterations", "batch", "seeds", "n_real", "n_generated", "n_listen",
                                              "threshold", "coupling_batch", "coupling_trials", "jobs")},
            "variants": {v: {"description": DESCRIPTIONS[v], "overrides": VARIANTS[v],
                             "preset": variant_preset(v).to_dict()} for v in args.variants},
            "metrics": {"main": list(MAIN_METRICS), "extra": list(EXTRA_METRICS),
                        "score_gap": "mean over the report rows of the main metrics (active tracks / pairs) of "
                                     "min(|gap|, 1), gap = (generated - real) / |real|; a row undefined on every "
                                     "generated window counts as 1; 0 = means match",
                        "score_overlap": "mean MGEval overlapping area over the same rows (undefined counts as 0); "
                                         "1 = the generated distribution matches the real one"},
            "real": {"note_density": float(real.mean()), "n": int(real.shape[0])},
            "coupling": {"fresh": fresh, "trained": {
                f"{r['variant']} (seed {r['seed']})": r["trained_critic_coupling"] for r in results}},
            "summary": aggregate(results, done),
            "runs": [{k: v for k, v in r.items() if k not in ("listen", "listen_shape")} for r in results],
            "decision": args.decision, "complete": complete, "runs_done": len(results), "runs_planned": len(tasks),
            "wall_s": time.perf_counter() - t_start,
        }
        res = _clean(res)
        text = json.dumps(res, indent=1)
        write_text(out / "results.json", text)
        write_text(out / "results.md", render_markdown(res))
        return res

    commit = _git_commit()
    results = []
    if min(budget["n_generated"], len(real)) < 2 * budget["coupling_batch"] - 1:
        raise ValueError("n_generated and n_real must be >= 2 * coupling_batch - 1")
    if budget["jobs"] <= 1:
        for task in tasks:
            results.append(run_variant(task))
            r = results[-1]
            print(f"{r['variant']} seed {r['seed']}: train {r['train_wall_s']:.0f} s, gap {r['scores']['gap']:.3f}, "
                  f"overlap {r['scores']['overlap']:.3f}", flush=True)
            if len(results) < len(tasks):
                write(list(results), complete=False)
    else:
        with cf.ProcessPoolExecutor(budget["jobs"], mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(run_variant, task) for task in tasks]
            for f in cf.as_completed(futs):
                r = f.result()
                results.append(r)
                print(f"{r['variant']} seed {r['seed']}: train {r['train_wall_s']:.0f} s, gap "
                      f"{r['scores']['gap']:.3f}, overlap {r['scores']['overlap']:.3f}", flush=True)
                if len(results) < len(tasks):
                    write(list(results), complete=False)
    res = write(results, complete=True)
    print(render_markdown(res))
    print(f"wrote {out}/results.json, results.md in {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
