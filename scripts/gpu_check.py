"""The prepared GPU check: the training benchmark, eager against CUDA-graph training, and a resume.

Run once on a machine with one NVIDIA GPU (no network needed: only torch, numpy, matplotlib
and tqdm are used, and ``b2b`` is imported from this checkout, so it need not be installed).
It does, in order, each part guarded so that a failure is recorded and the next part still runs:

1. **bench**: ``benchmarks/bench_train.py --device <device> --iterations 20 --rounds 3 --ops``
   as a subprocess; its whole output goes to ``bench.txt`` (written as it runs).
2. **train**: two runs of ``--iterations`` (2,000) generator steps of ``--preset`` (``improved``,
   its own hyper-parameters: batch 64) on the same data with the same seed, one with
   ``TrainerConfig(cuda_graph=True)`` (first: it should be the faster) and one eager (parts
   ``train_graph`` and ``train_eager``). Per run: wall time, ms per iteration from the
   history's ``time`` column after ``--warmup`` steps, whether the CUDA graph was captured and
   replayed (the Trainer falls back to eager with a one-line message; the message is kept too),
   peak GPU memory and the history rows.
3. **compare**: the two runs' ``wasserstein``, ``loss_d``, ``loss_g`` and ``grad_norm`` curves:
   ``curves.csv``, ``curves.png`` and, per quantity, the mean of the last 10 % of the common
   steps for each run and their differences (the runs are statistically alike, never
   bit-identical, on a GPU).
4. **resume**: ``--resume-iterations`` K steps with the graph, stop, resume from the checkpoint
   to 2K with the graph; checks the step count, a continuous history, finite losses.
5. ``gpu_check.json`` (machine, torch, CUDA capability, precision, timings, ratios, summaries,
   errors per part) and ``gpu_check.md`` (tables ready to paste into ``benchmarks/README.md``);
   both are rewritten after every part, so a run killed half-way still reports what it did.

Everything is written under ``--out``: at most these six files (``bench.txt``, ``curves.csv``,
``curves.png``, ``gpu_check.json``, ``gpu_check.md``, plus the caller's ``log.txt``). The runs'
own folders live in a temporary folder that is removed at the end.

Time: ``--deadline-s`` (default 450 s) bounds the whole script. The bench gets at most
``--bench-timeout`` (200) seconds and is killed after that. Each run trains in chunks of a tenth;
a run that would pass its share of the time left (the graph run: half of it, less 50 s kept
for the resume; the eager run: all of it, less those 50 s) stops at a chunk boundary
(``truncated`` in the JSON), and the curves are compared over the steps both runs reached.
Expected on an H200: well under the 9 minutes a device call allows.

Running it through the device tool
----------------------------------
The Bach store is committed as ``data/bach`` (the prebuilt store ``b2b data bach`` installs; a
test checks it equals a fresh build), so it travels with the working tree and nothing needs to
be carried. The whole ``run`` call (``command`` and ``timeout_s``)::

    command: set -o pipefail; PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --out $OUT
             --data data/bach 2>&1 | tee $OUT/log.txt
    timeout_s: 570

(one line in the call). ``python3`` there is the interpreter that holds PyTorch. With
``--data random`` (the default) no store is read at all (random binary windows, as
``benchmarks/bench_train.py`` makes them; ``--windows`` of them).

To use another store (a fresh ``b2b data bach --force`` build, or LPD-17 from ``b2b data
lpd17``; music21 and the network are not available on the device, so build it here), copy the
store folder into an ignored folder of the checkout and carry it::

    B2B_DATA=/tmp/b2b-data .venv/bin/b2b data bach --force     # builds /tmp/b2b-data/bach
    mkdir -p .gpu-data && cp -r /tmp/b2b-data/bach .gpu-data/
    echo /.gpu-data/ >> .git/info/exclude                      # ignored, not in .gitignore

then call ``run`` with ``carry: [".gpu-data"]`` and ``--data .gpu-data/bach`` (the working tree
plus carried paths must stay under 64 MiB). ``--data`` takes anything
:func:`b2b.datasets.catalog.open_dataset` takes (a store folder; ``bach``/``lpd17`` under ``$B2B_DATA``),
a ``.npy`` of windows ``(n, 17, 64, 72)`` in {0, 1}, or ``random``.

A dry run on the CPU (what ``tests/test_gpu_check.py`` does)::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/gpu_check.py --out /tmp/gc --device cpu \\
        --iterations 4 --resume-iterations 2 --log-every 1 --warmup 2 --windows 64 --skip-bench

Without CUDA, ``--device cuda`` prints one line and exits with 2. The exit code is 1 when any
part failed (the JSON's ``errors`` says which and why), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as _dt
import gc
import io
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks", ROOT / "scripts"):  # b2b from this checkout (not installed on the device)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np
import torch

from b2b.files.atomic import atomic_write, write_text
from b2b.datasets.catalog import open_dataset
from b2b.music.geometry import binarize
from b2b.training.trainer import Trainer, TrainerConfig, native_bf16
from bench_train import _sync, make_windows

BENCH = ROOT / "benchmarks" / "bench_train.py"
METRICS = ["wasserstein", "loss_d", "loss_g", "grad_norm"]
LOSSES = ["loss_d", "loss_g", "wasserstein", "penalty", "grad_norm"]
RESERVE_S = 50.0  # kept back for the resume check and the reports when sharing out the time

_T0 = time.monotonic()


def log(msg: str) -> None:
    """Print ``msg`` with the UTC time and the seconds since the start, flushed."""
    now = _dt.datetime.now(_dt.timezone.utc)
    print(f"[{now:%H:%M:%S} +{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


class _Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` and keeps a copy (to catch the Trainer's messages)."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, s: str) -> int:
        """Write ``s`` to both."""
        self.stream.write(s)
        self.copy.write(s)
        return len(s)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()


def finite_or_none(v: Any) -> Any:
    """``v`` with non-finite floats replaced by None, recursively (strict JSON has no NaN)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    return v


def _free_memory() -> None:
    """Drop what the last part left on the GPU."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- environment and data
def environment(device: torch.device) -> dict[str, Any]:
    """Machine, software and device facts for the report."""
    env: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "precision": "bf16 autocast" if native_bf16(device) else "fp32",
        "command": shlex.join([sys.executable, *sys.argv]),
    }
    try:
        from provenance import git_commit

        env["commit"] = git_commit("scripts/gpu_check.py", "benchmarks/bench_train.py")
    except Exception:  # noqa: BLE001  (no git on the device: fine)
        env["commit"] = "unknown"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({
            "device_name": torch.cuda.get_device_name(device),
            "capability": list(torch.cuda.get_device_capability(device)),
            "multiprocessors": props.multi_processor_count,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        })
    else:
        env["device_name"] = f"CPU ({platform.processor() or platform.machine()})"
        env["capability"] = None
    return env


def load_data(spec: str, windows: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The training windows for ``--data`` as one bool tensor ``(n, 17, 64, 72)``, and a description.

    ``spec`` is ``random`` (``windows`` random binary windows, about 5 % on, as
    ``benchmarks/bench_train.py`` makes them), a ``.npy`` file of windows, or anything
    :func:`b2b.datasets.catalog.open_dataset` accepts (a store folder, ``bach``, ``lpd17``).
    """
    if spec == "random":
        if windows < 1:
            raise ValueError(f"--windows must be >= 1, got {windows}")
        x = torch.from_numpy(make_windows(windows, seed=0)).bool()
        what = "random binary windows (about 5 % on), seed 0"
    elif spec.endswith(".npy"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--data {spec}: no such .npy file")
        x = torch.from_numpy(binarize(np.load(path), name=f"--data {spec}"))  # windows of 0/1 or bools
        what = f"windows from {path}"
    else:
        ds = open_dataset(spec)
        x = ds.tensor(dtype=torch.bool)
        what = f"store {getattr(ds, 'path', spec)}"
    if x.shape[0] < 1:
        raise ValueError(f"--data {spec}: holds no windows")
    return x, {"spec": spec, "what": what, "n": int(x.shape[0]), "density": float(x.float().mean())}


# --------------------------------------------------------------------------- part 1: the benchmark
_VARIANT = re.compile(r"^(?P<name>\S.*?)\s+(?P<s>[0-9.]+) s/it\s+(?P<its>[0-9.]+) it/s")
_OPS = re.compile(r"^(?P<name>\S.*?)\s+(?P<ops>[0-9,]+) ATen calls/it(?:\s+(?P<k>[0-9,]+) CUDA kernels/it)?")
_SPEEDUP = re.compile(r"^speedup: ([0-9.]+)")
_GRAPH_SPEEDUP = re.compile(r"^speedup with the CUDA graph: ([0-9.]+)")


def parse_bench(text: str) -> dict[str, Any]:
    """The numbers of ``bench_train.py``'s output: per variant s/it (and ops), the speed-ups."""
    variants: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"variants": variants}
    for line in text.splitlines():
        if m := _VARIANT.match(line):
            variants.setdefault(m["name"], {})["s_per_it"] = float(m["s"])
        elif m := _OPS.match(line):
            v = variants.setdefault(m["name"], {})
            v["aten_calls_per_it"] = int(m["ops"].replace(",", ""))
            if m["k"]:
                v["cuda_kernels_per_it"] = int(m["k"].replace(",", ""))
        elif m := _GRAPH_SPEEDUP.match(line):
            out["speedup_cuda_graph"] = float(m[1])
        elif m := _SPEEDUP.match(line):
            out["speedup"] = float(m[1])
        elif line.startswith("device "):
            out["header"] = line
    return out


def run_bench(args: argparse.Namespace, out: Path, timeout: float, script: Path = BENCH) -> dict[str, Any]:
    """Run the benchmark script as a subprocess, its output streamed to ``out/bench.txt``.

    Returns the parsed numbers (:func:`parse_bench`) with ``rc`` (the exit code), ``seconds``,
    ``timed_out`` (killed after ``timeout`` seconds) and ``command``.
    """
    cmd = [sys.executable, str(script), "--device", args.device, "--iterations", str(args.bench_iterations),
           "--rounds", str(args.bench_rounds), "--windows", str(args.windows), "--ops"]
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    shown = shlex.join(["python", f"benchmarks/{script.name}", *cmd[2:]])
    path = out / "bench.txt"
    t0 = time.perf_counter()
    timed_out = False
    with open(path, "w") as f:
        f.write(f"$ {shown}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            timed_out = True
            f.write(f"\ngpu_check: the benchmark ran past {timeout:.0f} s and was killed\n")
    text = path.read_text(errors="replace")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    result = parse_bench(text)
    result.update({"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "timed_out": timed_out,
                   "command": shown})
    return result


# --------------------------------------------------------------------------- part 2: training runs
def ms_per_iteration(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Milliseconds per step from the history's ``time`` column (cumulative training seconds).

    Uses the steps after the first row at step >= ``warmup`` (the eager warm-up steps, the
    graph's capture and cuDNN's autotuning excluded); with too few rows, all rows.
    """
    rows = sorted(rows, key=lambda r: r["step"])
    after = [r for r in rows if r["step"] >= warmup]
    excluded = len(after) >= 2
    if not excluded:
        after = rows
    if not after:
        return {"ms_per_it": None, "from_step": None, "to_step": None, "warmup_excluded": False}
    if len(after) == 1:
        r = after[0]
        return {"ms_per_it": 1000 * r["time"] / r["step"], "from_step": 0, "to_step": r["step"],
                "warmup_excluded": False}
    a, b = after[0], after[-1]
    return {"ms_per_it": 1000 * (b["time"] - a["time"]) / (b["step"] - a["step"]), "from_step": a["step"],
            "to_step": b["step"], "warmup_excluded": excluded}


def _hyper(trainer: Any) -> dict[str, Any]:
    """The run's batch and n_critic (the preset's hyper-parameters)."""
    return {"batch": trainer.hyper.batch, "n_critic": trainer.hyper.n_critic}


def train_run(name: str, x: torch.Tensor, args: argparse.Namespace, folder: Path, *, cuda_graph: bool,
              iterations: int, limit_s: float, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) one run to ``iterations`` steps; stop early if ``limit_s`` would be passed.

    A failure during training (a diverged loss, a CUDA error) is returned as ``error`` together
    with what the run did until then; one while building the Trainer is raised.

    Training goes in chunks of about a tenth of the run (each ends with a checkpoint, which the
    history's ``time`` column does not count); before each chunk the time it would take is
    estimated from the chunks done, and the run stops (``truncated``) when it would end past
    ``limit_s`` seconds from the start of this call.
    """
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cfg = TrainerConfig(preset=args.preset, iterations=iterations, device=args.device, out=str(folder),
                        cuda_graph=cuda_graph, progress=False, sample_every=0, checkpoint_every=iterations,
                        log_every=args.log_every, data_name=str(args.data))
    chunk = args.log_every * max(1, math.ceil(iterations / 10 / args.log_every))
    tee = _Tee(sys.stderr)
    t0 = time.perf_counter()
    truncated = False
    error = None
    with contextlib.redirect_stderr(tee):
        trainer = Trainer(cfg, x, resume=resume)
        start = trainer.step
        built = time.perf_counter()
        try:
            log(f"{name}: {trainer.n} windows, preset {trainer.preset.name}, {_hyper(trainer)}, device "
                f"{trainer.device}{' bf16' if trainer.amp else ' fp32'}, cuda_graph={cuda_graph}, "
                f"from step {start} to {iterations} (built in {built - t0:.1f} s)")
            while trainer.step < iterations:
                target = min(iterations, trainer.step + chunk)
                now = time.perf_counter()
                if trainer.step > start:
                    per_step = (now - built) / (trainer.step - start)
                    if now + per_step * (target - trainer.step) > t0 + limit_s:
                        truncated = True
                        log(f"{name}: stopping at step {trainer.step}: {target - trainer.step} more steps at "
                            f"{1000 * per_step:.1f} ms would pass this run's {limit_s:.0f} s")
                        break
                trainer.train(iterations=target)
                _sync(trainer.device)
                last = trainer.history[-1] if trainer.history else {}
                log(f"{name}: step {trainer.step}/{iterations}, training time {trainer.elapsed:.1f} s, "
                    f"W={last.get('wasserstein', float('nan')):.4f} loss_d={last.get('loss_d', float('nan')):.4f}")
        except Exception as e:  # noqa: BLE001  (returned with what the run did; the caller raises it)
            error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:500]}"
            log(f"{name}: failed at step {trainer.step}: {error}")
            traceback.print_exc(file=sys.stdout)
    wall = time.perf_counter() - t0
    graph = trainer.graph  # b2b.training.cudagraph.GraphedStep, or None when the run is eager
    captured = graph is not None and graph.captured
    used = captured and graph.error is None
    messages = [line for line in tee.copy.getvalue().splitlines() if line.startswith("b2b:")]
    rows = [dict(r) for r in trainer.history]
    timing = ms_per_iteration([r for r in rows if r["step"] > start], args.warmup + start)
    result = {
        "name": name, "cuda_graph_requested": cuda_graph, "graph_used": used, "graph_captured": captured,
        "graph_replays": graph.replays if graph is not None else 0,
        "graph_error": graph.error if graph is not None else None,
        "graph_fallback": (not used) if cuda_graph else None,
        "messages": messages, "precision": "bf16 autocast" if trainer.amp else "fp32",
        "preset": trainer.preset.name, **_hyper(trainer), "windows": trainer.n,
        "start_step": start, "target": iterations, "steps": trainer.step, "truncated": truncated,
        "wall_s": round(wall, 2), "build_s": round(built - t0, 2), "train_s": round(trainer.elapsed, 2),
        **timing,
        "peak_gpu_mib": (round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None),
        "checkpoint": trainer.last_checkpoint.name if trainer.last_checkpoint else None,
        "error": error,
        "history": rows,
    }
    log(f"{name}: done: {trainer.step} steps in {wall:.1f} s, "
        f"{timing['ms_per_it'] or float('nan'):.2f} ms/it after step {timing['from_step']}, graph used: {used}"
        + (f" ({'; '.join(messages)})" if messages else ""))
    del trainer
    _free_memory()
    return result


# --------------------------------------------------------------------------- part 3: the curves
def compare(eager: list[dict[str, Any]], graph: list[dict[str, Any]], frac: float = 0.1) -> dict[str, Any]:
    """Per metric: the mean (and sd) of each run over the last ``frac`` of the common steps, the
    relative difference ``(graph - eager) / |eager|`` and the difference in pooled sds."""
    e = {r["step"]: r for r in eager}
    g = {r["step"]: r for r in graph}
    common = sorted(set(e) & set(g))
    if not common:
        raise ValueError("the eager and graph runs share no logged step")
    tail = common[-max(1, math.ceil(frac * len(common))):]
    out: dict[str, Any] = {"steps_compared": len(common), "last_step": common[-1], "tail_from_step": tail[0],
                           "tail_rows": len(tail), "metrics": {}}
    for m in METRICS:
        a = [float(e[s][m]) for s in tail]
        b = [float(g[s][m]) for s in tail]
        ma, mb = statistics.fmean(a), statistics.fmean(b)
        sa = statistics.stdev(a) if len(a) > 1 else 0.0
        sb = statistics.stdev(b) if len(b) > 1 else 0.0
        pooled = math.sqrt((sa * sa + sb * sb) / 2)
        whole_a = [float(e[s][m]) for s in common]
        whole_b = [float(g[s][m]) for s in common]
        out["metrics"][m] = {
            "eager_mean": ma, "graph_mean": mb, "eager_sd": sa, "graph_sd": sb,
            "rel_diff": (mb - ma) / abs(ma) if ma else None,
            "diff_in_sd": (mb - ma) / pooled if pooled > 0 else None,
            "all_finite": all(math.isfinite(v) for v in whole_a + whole_b),
            "max_abs_diff_whole_curve": max(abs(p - q) for p, q in zip(whole_a, whole_b)),
        }
    return out


def write_curves(eager: list[dict[str, Any]], graph: list[dict[str, Any]], out: Path) -> list[str]:
    """Write ``curves.csv`` (step, each run's metrics; empty where a run has no row) and
    ``curves.png`` (Wasserstein estimate and critic loss against step). Returns the file names."""
    e = {r["step"]: r for r in eager}
    g = {r["step"]: r for r in graph}
    fields = ["step"] + [f"{run}_{m}" for m in METRICS for run in ("eager", "graph")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for s in sorted(set(e) | set(g)):
        row: list[Any] = [s]
        for m in METRICS:
            for run in (e, g):
                row.append(repr(float(run[s][m])) if s in run else "")
        w.writerow(row)
    write_text(out / "curves.csv", buf.getvalue())

    # no pyplot: a bare Figure draws with the Agg canvas, whatever the session's backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, m, label in zip(axes, ["wasserstein", "loss_d"], ["Wasserstein estimate", "critic loss (with penalty)"]):
        for run, name, style in ((e, "eager", "-"), (g, "CUDA graph", "--")):
            steps = sorted(run)
            ax.plot(steps, [run[s][m] for s in steps], style, lw=1.2, label=name)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[-1].set_xlabel("generator step")
    fig.suptitle("eager against CUDA-graph training (same data, same seed)")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    atomic_write(out / "curves.png", lambda f: f.write(png.getvalue()))
    return ["curves.csv", "curves.png"]


# --------------------------------------------------------------------------- part 4: resume
def resume_check(x: torch.Tensor, args: argparse.Namespace, folder: Path, limit_s: float) -> dict[str, Any]:
    """K graph steps, then a resumed run to 2K with the graph; what was checked and whether it held."""
    k = args.resume_iterations
    first = train_run("resume 1/2", x, args, folder, cuda_graph=True, iterations=k, limit_s=limit_s)
    if first["error"]:
        raise RuntimeError(f"the first {k} steps failed at step {first['steps']}: {first['error']}")
    second = train_run("resume 2/2", x, args, folder, cuda_graph=True, iterations=2 * k, limit_s=limit_s,
                       resume=True)
    if second["error"]:
        raise RuntimeError(f"the resumed run failed at step {second['steps']}: {second['error']}")
    h1, h2 = first["history"], second["history"]
    steps = [r["step"] for r in h2]
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    checks = {
        "first_reached_k": first["steps"] == k,
        "resumed_from_k": second["start_step"] == k,
        "reached_2k": second["steps"] == 2 * k,
        "history_keeps_first_part": h2[:len(h1)] == h1,
        "history_continuous": bool(steps) and steps[0] == min(args.log_every, k) and steps[-1] == 2 * k
        and all(0 < d <= args.log_every for d in gaps),
        "time_nondecreasing": all(b["time"] >= a["time"] for a, b in itertools.pairwise(h2)),
        "losses_finite": all(math.isfinite(float(r[m])) for r in h2 for m in LOSSES),
        "checkpoint_at_2k": (folder / f"checkpoint_{2 * k:08d}.pt").is_file(),
    }
    drop = ("history",)
    return {"k": k, "ok": all(checks.values()), "checks": checks,
            "graph_used": [first["graph_used"], second["graph_used"]],
            "first": {a: v for a, v in first.items() if a not in drop},
            "second": {a: v for a, v in second.items() if a not in drop},
            "history_steps": steps}


# --------------------------------------------------------------------------- part 5: the reports
def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def markdown(report: dict[str, Any]) -> str:
    """``gpu_check.md``: the tables, ready to paste into ``benchmarks/README.md``."""
    env = report["environment"]
    machine = f"{env.get('device_name')}, torch {env.get('torch')}" + (
        f", CUDA {env['cuda']}" if env.get("cuda") else "")
    capability = ".".join(map(str, env["capability"])) if env.get("capability") else "—"
    head = (f"{env.get('device_name')} (compute capability {capability}), torch {env.get('torch')}"
            f"{', CUDA ' + str(env['cuda']) if env.get('cuda') else ''}, precision {env.get('precision')}; "
            f"commit {env.get('commit')}; `scripts/gpu_check.py` took {_fmt(report.get('seconds'), '.0f')} s.")
    lines = [f"## GPU check ({env['date_utc']} UTC)", "", head, ""]
    data = report.get("data") or {}
    bench = report.get("bench")
    lines += ["### bench_train.py", ""]
    if bench and bench.get("variants"):
        v = bench["variants"]
        base = v.get("baseline (original's loop)", {}).get("s_per_it")
        b2b = v.get("b2b Trainer", {}).get("s_per_it")
        graph = v.get("b2b Trainer, CUDA graph", {}).get("s_per_it")
        cmd = bench["command"].split("bench_train.py", 1)[-1].strip()
        row = (f"| {env['date_utc']} | {machine} | `{cmd}` | {_fmt(base, '.4f')} | {_fmt(b2b, '.4f')} | "
               f"**{_fmt(bench.get('speedup'), '.2f')}×** |")
        lines += ["| date (UTC) | machine | command | baseline s/it | b2b s/it | speedup |",
                  "| --- | --- | --- | --- | --- | --- |", row]
        if graph is not None:
            lines.append(f"| {env['date_utc']} | {machine} | same run, CUDA graph variant | {_fmt(base, '.4f')} | "
                         f"{_fmt(graph, '.4f')} | **{_fmt(bench.get('speedup_cuda_graph'), '.2f')}×** |")
        ops = [f"{name}: {d['aten_calls_per_it']:,} ATen calls"
               + (f", {d['cuda_kernels_per_it']:,} CUDA kernels" if d.get("cuda_kernels_per_it") else "")
               for name, d in v.items() if d.get("aten_calls_per_it")]
        if ops:
            lines += ["", "Per iteration: " + "; ".join(ops) + "."]
    else:
        lines.append("not run" if bench is None else f"failed: {report['errors'].get('bench', '?')}")
    runs = report.get("train") or {}
    title = (f"### Training: eager against CUDA graph (preset {report['args']['preset']}, "
             f"{data.get('n', '?')} windows of {data.get('spec', '?')})")
    lines += ["", title, ""]
    if runs:
        cmp_ = (report.get("compare") or {}).get("metrics", {})
        header = ("| run | steps | wall s | ms/it (after step) | graph used | batch | peak GPU MiB | W, last 10 % "
                  "| loss_d, last 10 % |")
        lines += [header, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, label in (("eager", "eager"), ("graph", "`cuda_graph=True`")):
            r = runs.get(key)
            if not r:
                lines.append(f"| {label} | failed | | | | | | | |")
                continue
            lines.append(
                f"| {label} | {r['steps']}{' (truncated)' if r['truncated'] else ''} | {_fmt(r['wall_s'], '.1f')} | "
                f"{_fmt(r['ms_per_it'], '.2f')} ({r['from_step']}) | {'yes' if r['graph_used'] else 'no'} | "
                f"{r.get('batch')} | {_fmt(r.get('peak_gpu_mib'), '.0f')} | "
                f"{_fmt(cmp_.get('wasserstein', {}).get(key + '_mean'), '.4f')} | "
                f"{_fmt(cmp_.get('loss_d', {}).get(key + '_mean'), '.4f')} |")
        if report.get("ratios", {}).get("eager_over_graph_ms") is not None:
            lines += ["", f"Graph speed-up over eager training (ms/it): **{report['ratios']['eager_over_graph_ms']:.2f}×**."]
        if cmp_:
            c = report["compare"]
            lines += ["", f"Curves compared over {c['steps_compared']} logged steps; last 10 % from step {c['tail_from_step']}:",
                      "",
                      "| quantity | eager mean (sd) | graph mean (sd) | relative difference | difference in sds |",
                      "| --- | --- | --- | --- | --- |"]
            for m, d in cmp_.items():
                lines.append(f"| {m} | {_fmt(d['eager_mean'], '.4f')} ({_fmt(d['eager_sd'], '.4f')}) | "
                             f"{_fmt(d['graph_mean'], '.4f')} ({_fmt(d['graph_sd'], '.4f')}) | "
                             f"{_fmt(d['rel_diff'], '+.1%')} | {_fmt(d['diff_in_sd'], '+.2f')} |")
        msgs = [m for r in runs.values() for m in r.get("messages", [])]
        if msgs:
            lines += ["", "Trainer messages: " + "; ".join(f"`{m}`" for m in msgs)]
    res = report.get("resume")
    lines += ["", "### Resume with the graph", ""]
    if res:
        bad = [c for c, ok in res["checks"].items() if not ok]
        lines.append(f"{res['k']} steps, then resumed to {2 * res['k']}: **{'ok' if res['ok'] else 'FAILED'}**"
                     + (f" (failed: {', '.join(bad)})" if bad else "") + f"; graph used in each half: "
                     f"{', '.join('yes' if u else 'no' for u in res['graph_used'])}.")
    else:
        lines.append("not run" if "resume" not in report["errors"] else f"failed: {report['errors']['resume']}")
    lines += ["", "### Errors", ""]
    lines += [f"- {k}: {v}" for k, v in report["errors"].items()] or ["none"]
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], out: Path) -> None:
    """Write ``gpu_check.json`` and ``gpu_check.md`` (atomically)."""
    report["seconds"] = round(time.monotonic() - _T0, 1)
    write_text(out / "gpu_check.json", json.dumps(finite_or_none(report), indent=1, allow_nan=False) + "\n")
    write_text(out / "gpu_check.md", markdown(report))


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the results (on the device: $OUT)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run)")
    ap.add_argument("--iterations", type=int, default=2000, help="steps of each training run (default 2000)")
    ap.add_argument("--data", default="random",
                    help="random (default), a store folder, bach/lpd17 under $B2B_DATA, or a .npy of windows")
    ap.add_argument("--windows", type=int, default=512, help="windows of --data random, and the bench's (default 512)")
    ap.add_argument("--preset", default="improved", help="network preset (default improved; its batch: 64)")
    ap.add_argument("--bench-iterations", type=int, default=20, help="bench_train.py --iterations (default 20)")
    ap.add_argument("--bench-rounds", type=int, default=3, help="bench_train.py --rounds (default 3)")
    ap.add_argument("--bench-timeout", type=float, default=200, help="seconds the benchmark may take (default 200)")
    ap.add_argument("--skip-bench", action="store_true", help="do not run the benchmark")
    ap.add_argument("--resume-iterations", type=int, default=100, help="K: train K, resume to 2K (default 100)")
    ap.add_argument("--log-every", type=int, default=10, help="steps between history rows (default 10)")
    ap.add_argument("--warmup", type=int, default=10,
                    help="steps left out of ms/it (eager warm-up, graph capture, autotuning; default 10)")
    ap.add_argument("--deadline-s", type=float, default=450, help="seconds for the whole script (default 450)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on the CPU, else torch's)")
    args = ap.parse_args(argv)
    try:
        torch.device(args.device)
    except RuntimeError:
        ap.error(f"--device: expected cuda, cuda:N or cpu, got {args.device!r}")
    for name in ("iterations", "resume_iterations", "log_every", "bench_iterations", "bench_rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def guarded(name: str, report: dict[str, Any], out: Path, fn: Callable[[], Any]) -> Any:
    """Run part ``name``; on failure record the error in ``report`` and go on. Reports are
    rewritten after every part. Returns ``fn()``'s value or None."""
    log(f"=== {name}")
    t0 = time.perf_counter()
    result = None
    try:
        result = fn()
        report["parts"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # noqa: BLE001  (a part's failure is a result; the next part still runs)
        report["errors"][name] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:500]}"
        report["parts"][name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 1)}
        log(f"{name} FAILED: {report['errors'][name]}")
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        _free_memory()
    try:
        write_reports(report, out)
    except Exception as e:  # noqa: BLE001
        log(f"could not write the reports: {type(e).__name__}: {e}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 if every part worked, 1 if one failed, 2 if the device is missing."""
    global _T0
    _T0 = time.monotonic()
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device}, but torch {torch.__version__} sees no CUDA device "
              "(run it on the GPU machine, or pass --device cpu for a dry run)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else None)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    deadline = _T0 + args.deadline_s
    report: dict[str, Any] = {"args": vars(args), "environment": environment(device), "parts": {}, "errors": {},
                              "data": None, "bench": None, "train": {}, "compare": None, "ratios": {},
                              "resume": None}
    env = report["environment"]
    log(f"gpu_check: {env['device_name']} capability {env.get('capability')}, torch {env['torch']}, "
        f"precision {env['precision']}; deadline {args.deadline_s:.0f} s; results in {out}")
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    try:
        loaded = guarded("data", report, out, lambda: load_data(args.data, args.windows))
        x = None
        if loaded is not None:
            x, report["data"] = loaded
            log(f"data: {report['data']}")

        if args.skip_bench:
            log("=== bench: skipped (--skip-bench)")
        else:
            def bench() -> None:
                left = deadline - time.monotonic()
                timeout = max(30.0, min(args.bench_timeout, left - 4 * RESERVE_S))
                report["bench"] = run_bench(args, out, timeout)
                if report["bench"]["rc"] != 0:
                    raise RuntimeError(f"bench_train.py exited with {report['bench']['rc']}"
                                       + (" (killed at its timeout)" if report["bench"]["timed_out"] else "")
                                       + "; see bench.txt")
            guarded("bench", report, out, bench)

        def need_data() -> torch.Tensor:
            if x is None:
                raise RuntimeError("no data (see the data part's error)")
            return x

        # the graph run first: it should be the faster one, and the eager run then gets the time left
        def graph() -> None:
            limit = 0.5 * (deadline - time.monotonic() - RESERVE_S)
            g = report["train"]["graph"] = train_run("graph", need_data(), args, work / "graph", cuda_graph=True,
                                                     iterations=args.iterations, limit_s=limit)
            if g["error"]:
                raise RuntimeError(f"at step {g['steps']}: {g['error']}")
        guarded("train_graph", report, out, graph)

        def eager() -> None:
            limit = deadline - time.monotonic() - RESERVE_S
            e = report["train"]["eager"] = train_run("eager", need_data(), args, work / "eager", cuda_graph=False,
                                                     iterations=args.iterations, limit_s=limit)
            g = report["train"].get("graph")
            if g and e.get("ms_per_it") and g.get("ms_per_it"):
                report["ratios"]["eager_over_graph_ms"] = e["ms_per_it"] / g["ms_per_it"]
                report["ratios"]["eager_over_graph_wall"] = e["wall_s"] / g["wall_s"]
            if e["error"]:
                raise RuntimeError(f"at step {e['steps']}: {e['error']}")
        guarded("train_eager", report, out, eager)

        def curves() -> None:
            e, g = report["train"].get("eager"), report["train"].get("graph")
            if not e or not g:
                raise RuntimeError("needs both training runs")
            report["compare"] = compare(e["history"], g["history"])
            report["compare"]["files"] = write_curves(e["history"], g["history"], out)
            for m, d in report["compare"]["metrics"].items():
                log(f"compare {m}: eager {d['eager_mean']:.4f} graph {d['graph_mean']:.4f} "
                    f"(rel {_fmt(d['rel_diff'], '+.1%')}, {_fmt(d['diff_in_sd'], '+.2f')} sd)")
        guarded("compare", report, out, curves)

        def resume() -> None:
            left = deadline - time.monotonic()
            if left < 10:
                raise TimeoutError(f"only {left:.0f} s left before --deadline-s")
            report["resume"] = resume_check(need_data(), args, work / "resume", limit_s=math.inf)
            log(f"resume: {'ok' if report['resume']['ok'] else 'FAILED'} {report['resume']['checks']}")
            if not report["resume"]["ok"]:
                bad = [c for c, ok in report["resume"]["checks"].items() if not ok]
                raise RuntimeError(f"resume checks failed: {', '.join(bad)}")
        guarded("resume", report, out, resume)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        torch.set_num_threads(previous_threads)
        write_reports(report, out)
    log(f"done in {report['seconds']:.0f} s; {len(report['errors'])} part(s) failed"
        + (f": {', '.join(report['errors'])}" if report["errors"] else "") + f"; results in {out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
