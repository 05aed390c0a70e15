"""Precompute the set statistics of chapters 7 and 8 ("Measuring music", "Experiments") into data/evaluation/.

Chapter 7 compares the shipped generator's windows, and chapter 8 the collapsed generator's, with 512 real
windows of the Bach store by whole-set statistics (:func:`b2b.evaluation.report.set_statistics`: diversity,
held pitches, nearest training windows, and the classifier two-sample test, whose training is most
of the chapter's run time on a CPU). This script computes them on exactly the windows the chapter
draws (the same real draw, noise and thresholds) and writes ``data/evaluation/chapter7_sets.json``
with what it was computed from (the generators' SHA-256, the dataset's size, the draws, the steps)
and how (command, commit, date, machine); both chapters read the file with ``b2b.music.data.asset``
and check that its inputs are the ones they use.

Usage::

    python scripts/chapter7_sets.py                       # writes data/evaluation/chapter7_sets.json
    python scripts/chapter7_sets.py --out /tmp/sets.json  # elsewhere

About two minutes on two CPU cores. Run it again after changing a generator in data/, the Bach
store, or ``b2b.evaluation.report``/``b2b.evaluation.evaluate``/``b2b.evaluation.twosample``/``b2b.evaluation.metrics``; tests/test_chapter7_sets.py fails while the
committed file's inputs differ from the committed generators.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from provenance import git_commit  # noqa: E402

from b2b.evaluation import evaluate, report  # noqa: E402
from b2b.files import atomic  # noqa: E402
from b2b.music import data  # noqa: E402
from b2b.datasets.catalog import open_dataset  # noqa: E402
from b2b.evaluation.twosample import classifier_two_sample_test  # noqa: E402

#: Where the chapter reads it (``b2b.music.data.asset(NAME)``).
NAME = "evaluation/chapter7_sets.json"

#: The chapter's draws: real windows (and as many generated ones), the real draw's seed, the noise's.
N_REAL, REAL_SEED, NOISE_SEED = 512, 12345, 0

#: The collapsed generator's classifier trains this many steps (a collapse this plain is told apart at once).
COLLAPSED_STEPS = 100

GENERATORS = {"pretrained": "pretrained/generator.pt", "collapsed": "ablations/collapsed/generator.pt"}


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def inputs(n_real: int = N_REAL, collapsed_steps: int = COLLAPSED_STEPS, dataset: Any = "bach") -> dict[str, Any]:
    """What the statistics are computed from; the chapter and the test compare it with the file's."""
    ds = open_dataset(dataset)
    return {"dataset": dataset if isinstance(dataset, str) else "custom", "dataset_windows": len(ds),
            "n_real": n_real, "real_seed": REAL_SEED, "noise_seed": NOISE_SEED,
            "collapsed_two_sample_steps": collapsed_steps,
            "generators": {who: {"asset": name, "sha256": sha256(data.asset(name))} for who, name in GENERATORS.items()}}


def compute(n_real: int = N_REAL, collapsed_steps: int = COLLAPSED_STEPS, dataset: Any = "bach",
            two_sample: bool = True) -> dict[str, Any]:
    """The chapter's set statistics: ``{"inputs", "pretrained", "collapsed"}`` (each a
    :func:`b2b.evaluation.report.set_statistics` dict, ``two_sample`` included unless ``two_sample`` is False).

    The pretrained generator's two-sample test trains for the report's default steps; the collapsed
    generator's for ``collapsed_steps``, both seeded 0, as the chapter did when it computed them.
    """
    ds = open_dataset(dataset)
    idx = evaluate.sample_indices(len(ds), n_real, REAL_SEED)
    real = np.stack([ds.window(int(i)) for i in idx])
    training_windows, ref_songs, real_songs = evaluate.training_reference(ds, len(real), REAL_SEED)
    result: dict[str, Any] = {"inputs": inputs(n_real, collapsed_steps, dataset)}
    for who, name in GENERATORS.items():
        gen, threshold, _, info = evaluate.open_generator(data.asset(name))
        windows = np.concatenate(list(evaluate.iter_generated(gen, info["latent"], len(real), NOISE_SEED, threshold)))
        sets = report.set_statistics(real, windows, reference=training_windows, real_groups=real_songs,
                                     reference_groups=ref_songs, two_sample=two_sample and who == "pretrained",
                                     seed=0)[0]
        if two_sample and who == "collapsed":
            sets["two_sample"] = classifier_two_sample_test(real, windows, groups=real_songs, steps=collapsed_steps,
                                                            seed=0).as_dict()
        sets["threshold"] = float(threshold)
        result[who] = sets
    return result


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers for JSON."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "data" / NAME)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    result = compute()
    result["provenance"] = {
        "command": "python scripts/chapter7_sets.py", "commit": git_commit("scripts/chapter7_sets.py"),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out, json.dumps(result, indent=1, sort_keys=True, default=_plain) + "\n")
    print(f"wrote {args.out}: two-sample accuracy {result['pretrained']['two_sample']['accuracy']:.3f} (pretrained), "
          f"{result['collapsed']['two_sample']['accuracy']:.3f} (collapsed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
