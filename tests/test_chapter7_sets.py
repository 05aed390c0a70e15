"""Tests of scripts/chapter7_sets.py and the file it committed (data/evaluation/chapter7_sets.json).

Chapters 7 and 8 read their whole-set statistics (two classifier two-sample tests among them) from that
file instead of computing them at every run: the file must have been made from the generators and
draws the chapter uses, and the script must compute what ``b2b.evaluation.evaluate`` computes.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from b2b.music import data
from b2b.evaluation import evaluate, report
from b2b.datasets.catalog import open_dataset
from b2b.evaluation.twosample import classifier_two_sample_test
from conftest import load_script

sets_script = load_script("chapter7_sets")


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(data.asset(sets_script.NAME).read_text(encoding="utf-8"))


def test_the_committed_file_was_made_from_the_committed_generators_and_the_chapters_draws(committed):
    # the generators' SHA-256, the dataset's size, the draws and the steps, recomputed now
    assert committed["inputs"] == sets_script.inputs()
    assert committed["provenance"]["command"] == "python scripts/chapter7_sets.py"
    for who in ("pretrained", "collapsed"):
        sets = committed[who]
        assert sets["n_real"] == sets["n_generated"] == sets_script.N_REAL
        assert 0.0 <= sets["two_sample"]["low"] <= sets["two_sample"]["accuracy"] <= sets["two_sample"]["high"] <= 1.0
        assert report.render_sets(sets)[2:]  # what the chapter displays
    # the collapse the chapter describes: its windows overlap far more than the shipped generator's
    assert committed["collapsed"]["within_ratio"] > 2 * committed["pretrained"]["within_ratio"]


def test_the_script_computes_what_b2b_evaluate_computes_on_a_small_case(monkeypatch):
    """The same windows, references and seeds as the chapter, on 12 windows and a 3-step classifier
    (patched in for the report's default), against set_statistics and the test called directly."""
    short = functools.partial(classifier_two_sample_test, steps=3)
    monkeypatch.setattr(report, "classifier_two_sample_test", short)
    got = sets_script.compute(n_real=12, collapsed_steps=3)
    ds = open_dataset("bach")
    real = np.stack([ds.window(int(i)) for i in evaluate.sample_indices(len(ds), 12, 12345)])
    reference, ref_songs, real_songs = evaluate.training_reference(ds, 12, 12345)
    for who, name in sets_script.GENERATORS.items():
        gen, threshold, _, info = evaluate.open_generator(data.asset(name))
        windows = np.concatenate(list(evaluate.iter_generated(gen, info["latent"], 12, 0, threshold)))
        want = report.set_statistics(real, windows, reference=reference, real_groups=real_songs,
                                     reference_groups=ref_songs, two_sample=False)[0]
        want["two_sample"] = short(real, windows, groups=real_songs, seed=0).as_dict()
        want["threshold"] = float(threshold)
        assert json.dumps(got[who], sort_keys=True, default=float) == json.dumps(want, sort_keys=True, default=float), who
    assert got["inputs"]["n_real"] == 12 and got["inputs"]["collapsed_two_sample_steps"] == 3
