"""A long training run that outlives its machine: resume from the committed checkpoint, save it back.

A session on a 2-core machine lasts hours; the run needs days. So the run's full training
checkpoint (networks, moving average, optimizers, random states, history: a few MB) lives in
the repository at ``data/longrun/<name>/checkpoint.pt``, overwritten each time, and any clone
continues it exactly (resumes are bit-identical on the CPU)::

    python scripts/long_run.py start --name lean-s0 --preset lean --seed 0   # or continue it
    python scripts/long_run.py save --name lean-s0                           # before a stop: then commit
    python scripts/long_run.py status --name lean-s0

``start`` copies the committed checkpoint into the run folder (``runs/longrun/<name>``, not
committed) when the folder has none, then runs ``b2b train --resume`` in the background (its
log is ``<run>.log``), one torch thread, a checkpoint every ``--every`` steps, all kept, so
``scripts/recipe_search.py --trajectory`` can evaluate them. ``save`` copies the newest
checkpoint, the history and ``run.json`` (preset, seed, step, training time, CPU time, the
commit) into ``data/longrun/<name>/``. The training CPU time is read from the process while it
runs (``/proc``) and recorded per checkpoint in ``<run>/cpu.json``; the recorded total carries
over from one session to the next through ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, git_commit  # noqa: E402

STORE = ROOT / "data" / "longrun"
RUNS = ROOT / "runs" / "longrun"


def _newest(run: Path) -> Path | None:
    found = sorted(run.glob("checkpoint_*.pt"))
    return found[-1] if found else None


def _step(path: Path) -> int:
    return int(path.stem.split("_")[1])


def _record(name: str) -> dict:
    p = STORE / name / "run.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def start(args: argparse.Namespace) -> int:
    """Continue (or begin) the run in the background; returns at once."""
    run, stored = RUNS / args.name, STORE / args.name / "checkpoint.pt"
    run.mkdir(parents=True, exist_ok=True)
    rec = _record(args.name)
    preset, seed = rec.get("preset", args.preset), rec.get("seed", args.seed)
    if preset is None:
        raise SystemExit(f"long_run: no run {args.name!r} is recorded in {STORE}; give --preset to begin one")
    if _newest(run) is None and stored.is_file():
        import torch

        step = int(torch.load(stored, map_location="cpu", weights_only=True)["step"])
        shutil.copyfile(stored, run / f"checkpoint_{step:08d}.pt")
        print(f"long_run: continuing {args.name} from the committed checkpoint at step {step}")
    resume = _newest(run) is not None
    cmd = [sys.executable, "-m", "b2b", "train", "--data", args.data, "--preset", preset, "--seed", str(seed),
           "--iterations", str(args.iterations), "--out", str(run), "--threads", "1", "--no-progress",
           "--checkpoint-every", str(args.every), "--keep", "100000", "--sample-every", str(args.every * 4),
           "--log-every", "10", *(["--resume"] if resume else [])]
    log = open(run.with_suffix(".log"), "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    (run / "pid").write_text(str(proc.pid))
    print(f"long_run: {' '.join(cmd[1:])}\nlong_run: pid {proc.pid}, log {run.with_suffix('.log')}")
    if args.watch:
        watch(run, proc.pid, rec.get("cpu_s", 0.0))
    return 0


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(run: Path, pid: int, carried: float, every_s: float = 15.0) -> None:
    """Record the training CPU time at each new checkpoint of ``run`` in ``<run>/cpu.json``
    (``{step: cpu seconds since the run began, all sessions}``) until process ``pid`` ends."""
    path = run / "cpu.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    base = max(table.values(), default=carried)
    seen = {_step(p) for p in run.glob("checkpoint_*.pt")}
    while (cpu := _cpu_seconds(pid)) is not None:
        for p in sorted(run.glob("checkpoint_*.pt")):
            if _step(p) not in seen:
                seen.add(_step(p))
                table[str(_step(p))] = round(base + cpu, 1)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(table, indent=0))
                tmp.replace(path)
        time.sleep(every_s)


def save(args: argparse.Namespace) -> int:
    """Copy the newest checkpoint, the history and the record into ``data/longrun/<name>/``."""
    import torch

    run, dest = RUNS / args.name, STORE / args.name
    newest = _newest(run)
    if newest is None:
        raise SystemExit(f"long_run: {run} holds no checkpoint")
    ckpt = torch.load(newest, map_location="cpu", weights_only=True)
    cpu = json.loads((run / "cpu.json").read_text()) if (run / "cpu.json").is_file() else {}
    rec = {**_record(args.name), "name": args.name, "preset": ckpt["preset"]["name"], "seed": ckpt["config"]["seed"],
           "step": int(ckpt["step"]), "train_wall_s": round(float(ckpt["elapsed"]), 1),
           "cpu_s": cpu.get(str(int(ckpt["step"]))), "data": ckpt["data"]["name"],
           "saved": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit("scripts/long_run.py"),
           "resume": f"python scripts/long_run.py start --name {args.name}"}
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "checkpoint.pt.tmp"
    shutil.copyfile(newest, tmp)
    tmp.replace(dest / "checkpoint.pt")
    for name in ("history.csv", "cpu.json"):
        if (run / name).is_file():
            shutil.copyfile(run / name, dest / name)
    (dest / "run.json").write_text(json.dumps(rec, indent=1) + "\n")
    print(f"long_run: saved {args.name} at step {rec['step']} into {dest.relative_to(ROOT)}; commit it")
    return 0


def status(args: argparse.Namespace) -> int:
    """Say where the run is: its newest checkpoint, and whether it is training now."""
    run = RUNS / args.name
    newest = _newest(run)
    pid = int((run / "pid").read_text()) if (run / "pid").is_file() else None
    alive = pid is not None and _cpu_seconds(pid) is not None
    print(f"{args.name}: newest checkpoint {newest.name if newest else 'none'}; "
          f"{'training (pid %d)' % pid if alive else 'not training'}; committed: {_record(args.name) or 'nothing'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="continue (or begin) the run in the background")
    s.add_argument("--name", required=True)
    s.add_argument("--preset", default=None, help="the preset (needed only to begin a run)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data", default="bach")
    s.add_argument("--iterations", type=int, default=1_000_000, help="steps to stop at (default: never)")
    s.add_argument("--every", type=int, default=500, help="steps between checkpoints (default: 500)")
    s.add_argument("--watch", action="store_true", help="stay and record the CPU time at each checkpoint")
    for name in ("save", "status"):
        q = sub.add_parser(name)
        q.add_argument("--name", required=True)
    args = p.parse_args(argv)
    return {"start": start, "save": save, "status": status}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
