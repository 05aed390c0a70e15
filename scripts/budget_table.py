"""The budget screening's table: checkpoints of several runs side by side by the CPU time they cost.

Reads the trajectories that ``scripts/recipe_search.py --trajectory`` wrote for each run and a
``cpu_seconds.json`` (``{run: {step: CPU seconds of training up to that checkpoint}}``, recorded
while the runs trained: ``scripts/long_run.py`` does it for a long run) and writes one Markdown
table, rows ordered by CPU time: the run, its step, its CPU seconds, the notes an eighth or
longer on the main track, the within-set ratio (diversity), the two-sample accuracy, the
scorecard's properties met as the trajectory recorded them (a property is met when all its lines
are; a trajectory keeps the scorecard lines of its time, not the whole report, so a record made
before the scorecard's present targets counts the properties of its time) and whether
``b2b.evaluation.scorecard.rank_key`` counts it as varied.

The long runs (``data/longrun/<run>/``: ``trajectory.json`` and ``cpu.json``, written by
``scripts/long_run.py`` and ``recipe_search.py --trajectory``) join the table with ``--longrun``;
where a run appears in both, the long run's record is used.

Usage::

    python scripts/budget_table.py --folder data/ablations/budget --longrun data/longrun > data/ablations/budget/results.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _sources(folder: Path, longrun: Path | None) -> dict[str, tuple[Path, dict[str, float], bool]]:
    """``{run: (its trajectory.json, {step: CPU seconds}, whether it is a long run)}`` from the screening
    folder and the long runs."""
    cpu = json.loads((folder / "cpu_seconds.json").read_text())
    found = {p.stem.removeprefix("trajectory-"): (p, cpu.get(p.stem.removeprefix("trajectory-"), {}), False)
             for p in sorted(folder.glob("trajectory-*.json"))}
    if longrun is not None:
        for run in sorted(d for d in longrun.iterdir() if (d / "trajectory.json").is_file() and (d / "cpu.json").is_file()):
            found[run.name] = (run / "trajectory.json", json.loads((run / "cpu.json").read_text()), True)
    return found


def _properties(card: list[dict]) -> dict:
    """Whether each property of a recorded scorecard is met (all of its lines are); a line without
    its property (``prop``) counts as a property of its own."""
    met: dict = {}
    for i, line in enumerate(card):
        key = line.get("prop", i)
        met[key] = met.get(key, True) and bool(line["ok"])
    return met


def rows(folder: Path, longrun: Path | None = None) -> list[dict]:
    """One dict per evaluated checkpoint with a recorded CPU time, sorted by CPU seconds; a long run's
    rows are named ``<run> (long run)``."""
    out = []
    for run, (path, cpu, long) in _sources(folder, longrun).items():
        for r in json.loads(path.read_text())["runs"]:
            seconds = cpu.get(str(r["steps"]))
            if seconds is None:
                continue
            h = r["headline"]
            card = h["scorecard"]
            out.append({"run": f"{run} (long run)" if long else run, "step": r["steps"], "cpu_s": seconds,
                        "long_notes": h["qualified_note_rate"]["generated"],
                        "long_notes_real": h["qualified_note_rate"]["real"],
                        "within_ratio": h["sets"]["within_ratio"],
                        "c2st": (h["sets"].get("two_sample") or {}).get("accuracy"),
                        "met": sum(_properties(card).values()), "lines": len(_properties(card)),
                        "varied": not r["rank"][0]})
    return sorted(out, key=lambda x: (x["cpu_s"], x["run"]))


def markdown(table: list[dict]) -> str:
    """The rows as a Markdown table."""
    real = table[0]["long_notes_real"] if table else float("nan")
    lines = ["| run | step | CPU s | notes ≥ an eighth (real %.2f) | within-set ratio | two-sample accuracy | properties met (as recorded) | varied |" % real,
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in table:
        c2st = "–" if r["c2st"] is None else f"{r['c2st']:.3f}"
        lines.append(f"| {r['run']} | {r['step']:,} | {r['cpu_s']:,.0f} | {r['long_notes']:.3f} | {r['within_ratio']:.2f} "
                     f"| {c2st} | {r['met']} / {r['lines']} | {'yes' if r['varied'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--longrun", type=Path, help="the long runs' folder (data/longrun): their trajectories join the table")
    args = p.parse_args(argv)
    sys.stdout.write(markdown(rows(args.folder, args.longrun)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
