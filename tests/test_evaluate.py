"""Tests of b2b.evaluation.evaluate: the report on sets where the answer is known, files, the CLI, bad input."""

from __future__ import annotations

import csv
import errno
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b.evaluation import evaluate as E
from b2b.evaluation import figures
from b2b.evaluation import report as R
from b2b.evaluation import metrics as M
from b2b.cli import main
from conftest import triads


@pytest.fixture(autouse=True)
def _short_two_sample_test(monkeypatch):
    """The classifier two-sample test that ``evaluate`` runs takes 20 Adam steps here instead of 300:
    these tests check the report, its files and the command around it, not the test's accuracy
    (test_twosample.py does), and 300 steps made them the slowest of the suite."""
    import functools

    monkeypatch.setattr(R, "classifier_two_sample_test", functools.partial(R.classifier_two_sample_test, steps=20))


def random_set(n: int, seed: int, density: float = 0.01, tracks=(1, 5)) -> np.ndarray:
    """Windows with random notes on a few tracks and a drum pattern; others silent."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 17, 64, 72), dtype=bool)
    for k in tracks:
        x[:, k] = rng.random((n, 64, 72)) < density
    x[:, 0, :, 12] = rng.random((n, 64)) < 0.3
    return x


REAL = random_set(24, seed=1)


def test_identical_sets_have_zero_gap_and_full_overlap():
    report = E.evaluate(REAL, REAL.copy())
    assert report.n_real == report.n_generated == 24
    assert report.active_tracks == [0, 1, 5]  # drums, piano, bass; silent tracks left out
    assert report.rows
    for r in report.rows:
        assert r.real_mean == r.generated_mean or (np.isnan(r.real_mean) and np.isnan(r.generated_mean))
        assert r.gap == 0.0 or np.isnan(r.gap), r
        assert r.effect == 0.0 or np.isnan(r.effect), r
        assert r.overlap > 0.85, r  # intra-real vs inter-set: the inter set adds 0-distances
        assert r.kl < 0.15, r


def test_known_polyphony_and_rows():
    report = E.evaluate(triads(6), triads(5))
    # piano: 3 pitches on every non-empty step; bass 1; pooled over (track, step):
    # (32 steps * 3 + 16 steps * 1) / (32 + 16) = 112 / 48
    assert report.row("polyphony", "Piano").real_mean == pytest.approx(3.0)
    assert report.row("polyphony", "Bass").generated_mean == pytest.approx(1.0)
    assert report.row("polyphony_pooled").real_mean == pytest.approx(112 / 48)
    assert report.row("polyphonic_rate", "Piano").real_mean == pytest.approx(1.0)
    # piano on 8 of 16 steps per bar: 32 / 64 steps polyphonic
    assert report.row("polyphonic_rate_all", "Piano").real_mean == pytest.approx(0.5)
    assert report.row("empty_bar_rate", "Bass").real_mean == 0.0
    assert report.row("used_pitch_classes", "Piano").real_mean == pytest.approx(3.0)  # C E G
    assert report.row("tonal_distance", "Piano / Bass").real_sd == pytest.approx(0.0)
    assert report.row("polyphony", "Piano").real_n == 6
    assert report.row("polyphony", "Piano").generated_n == 5
    assert report.active_tracks == [1, 5]
    # no drums in the real data: no drum rows, and no rows for silent tracks
    assert not [r for r in report.rows if r.metric == "drum_pattern_rate" or r.track == "Drums"]
    with pytest.raises(KeyError):
        report.row("polyphony", "Strings")


def test_gap_against_known_sets():
    real = triads(4)
    generated = triads(4)
    generated[:, 1, :, 35] = generated[:, 1, :, 24]  # a fourth pitch on the piano's chords
    report = E.evaluate(real, generated)
    row = report.row("polyphony", "Piano")
    assert row.generated_mean == pytest.approx(4.0)
    assert row.gap == pytest.approx(1 / 3)  # (4 - 3) / 3
    assert row.overlap < 0.05  # every real distance 0, every inter-set distance 1


def test_effect_in_real_sds():
    real = triads(2)
    real[0, 1, :, 28] = False
    real[0, 1, :, 31] = False  # window 0: piano plays one pitch, window 1 three
    report = E.evaluate(real, triads(3))
    row = report.row("polyphony", "Piano")
    # real values 1 and 3: mean 2, sd (population) 1; generated 3 -> gap +50%, effect +1
    assert (row.real_mean, row.real_sd, row.generated_mean) == (2.0, 1.0, 3.0)
    assert row.gap == pytest.approx(0.5) and row.effect == pytest.approx(1.0)
    assert np.isnan(E.evaluate(triads(2), real).row("polyphony", "Piano").effect)  # real sd 0


def test_notes_off_the_active_tracks():
    real = triads(3)  # piano and bass only
    generated = triads(2)
    generated[0, 6, 0:2, 40] = True  # window 0: one strings note (inactive in the real data)
    generated[1, 0, 0:4, 10] = True  # window 1: four drum hits
    report = E.evaluate(real, generated)
    row = report.row("off_track_notes")
    # notes per window: piano 3 pitches x 4 bars = 12, bass 4 -> 16 on the active tracks.
    # window 0: 1 / (16 + 1); window 1: 4 / (16 + 4)
    assert row.real_mean == 0.0
    assert row.generated_mean == pytest.approx((1 / 17 + 4 / 20) / 2)
    assert report.row("note_count", "Piano").real_mean == 12
    assert report.row("note_count", "Bass").generated_mean == 4
    everything = random_set(3, seed=5, tracks=range(1, 17))  # every track active: no such row
    with pytest.raises(KeyError):
        E.evaluate(everything, everything).row("off_track_notes")


def test_markdown_and_csv():
    report = E.evaluate(triads(3), triads(3), meta={"seed": 7})
    md = R.render_markdown(report)
    assert md == report.to_markdown()
    assert "| polyphony | Piano | 3.000 ± 0.000 | 3.000 ± 0.000 | 3 / 3 | +0.0% | +0.00 |" in md
    assert "- seed: 7" in md
    assert "**polyphony**: " + M.DEFINITIONS["polyphony"] in md
    assert "off_track_notes" in md and "**off_track_notes**: " + R.DEFINITIONS["off_track_notes"] in md
    rows = list(csv.DictReader(io.StringIO(R.render_csv(report.rows))))
    assert len(rows) == len(report.rows)
    assert tuple(rows[0]) == R.CSV_COLUMNS
    first = rows[0]
    assert first["metric"] == "note_count" and first["track"] == "Piano"
    assert float(first["real_mean"]) == 12.0  # C, E, G in each of 4 bars


def test_features_dicts_and_thresholds():
    probs = triads(4).astype(np.float32) * 0.95
    by_windows = E.evaluate(triads(4), probs, threshold=0.9)
    assert by_windows.row("polyphony", "Piano").generated_mean == pytest.approx(3.0)
    assert by_windows.meta["threshold"] == 0.9
    with pytest.raises(ValueError, match="threshold"):
        E.evaluate(triads(4), probs)
    by_features = E.evaluate(M.feature_table(triads(4)), torch.from_numpy(probs), threshold=0.9)
    assert [r.key for r in by_features.rows] == [r.key for r in by_windows.rows]
    with pytest.raises(ValueError, match="lack"):
        E.evaluate({"polyphony": np.zeros((2, 17))}, triads(2))
    with pytest.raises(ValueError, match=r"\(n, 17, 64, 72\)"):
        E.evaluate(triads(2)[:, :, :32], triads(2))


def test_files_written(tmp_path):
    out = tmp_path / "report"
    report = E.evaluate(triads(3), random_set(3, seed=2, tracks=(1, 5)), out_dir=out, n_examples=2)
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.csv", "mgeval.json", "features_real.npz", "features_generated.npz",
            "figures"} <= names
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "self_similarity.png" in figures and "distributions_polyphony.png" in figures
    assert all((out / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)
    assert not [p for p in out.rglob(".*")]  # no temporary files left
    assert (out / "report.md").read_text() == report.to_markdown()
    data = json.loads((out / "mgeval.json").read_text())
    assert data["n_real"] == 3 and "polyphony[Piano]" in data["mgeval"]
    assert set(data["mgeval"]["polyphony[Piano]"]) >= {"overlap", "kl", "intra_real_mean", "inter_mean"}
    with np.load(out / "features_real.npz") as f:
        np.testing.assert_array_equal(f["polyphony"], report.real_features["polyphony"])
    assert set(report.files) >= {"report.md", "self_similarity.png"}


def test_silent_generated_set(tmp_path):
    """A generator that plays nothing: undefined metrics are '–' / null, never NaN in JSON."""
    report = E.evaluate(triads(3), np.zeros((2, 17, 64, 72), dtype=bool), out_dir=tmp_path, figures=False)
    row = report.row("polyphony", "Piano")
    assert row.generated_n == 0 and np.isnan(row.generated_mean) and np.isnan(row.overlap)
    assert "| polyphony | Piano | 3.000 ± 0.000 | – | 3 / 0 | – | – | – | – |" in report.to_markdown()
    assert report.row("empty_bar_rate", "Piano").generated_mean == 1.0
    data = json.loads((tmp_path / "mgeval.json").read_text())  # strict JSON: no NaN
    assert data["mgeval"]["polyphony[Piano]"]["overlap"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = figures.plot_distributions(report, "polyphony")
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_no_figures(tmp_path):
    E.evaluate(triads(2), triads(2), out_dir=tmp_path, figures=False)
    assert (tmp_path / "report.csv").exists() and not (tmp_path / "figures").exists()


def test_load_samples_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        E.load_samples(tmp_path / "missing.npy")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 17, 72, 64), dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(n, 17, 64, 72\)"):
        E.load_samples(bad)
    strings = tmp_path / "strings.npy"
    np.save(strings, np.full((1, 17, 64, 72), "a"))
    with pytest.raises(ValueError, match="dtype"):
        E.load_samples(strings)
    big = tmp_path / "big.npy"
    np.save(big, np.full((1, 17, 64, 72), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.load_samples(big)
    probs = tmp_path / "probs.npy"
    np.save(probs, triads(5).astype(np.float32) * 0.95)
    with pytest.raises(ValueError, match="--threshold"):
        E.load_samples(probs)
    x = E.load_samples(probs, n=3, threshold=0.9)
    assert x.dtype == bool and x.shape == (3, 17, 64, 72)
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    with pytest.raises(ValueError, match="not a readable"):
        E.load_samples(text)


def test_sample_indices():
    idx = E.sample_indices(100, 10, seed=3)
    assert len(set(idx.tolist())) == 10 and (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(idx, E.sample_indices(100, 10, seed=3))
    assert not np.array_equal(idx, E.sample_indices(100, 10, seed=4))
    assert len(E.sample_indices(5, 10, seed=0)) == 5


def cli(argv, capsys):
    code = main(["evaluate", *argv])
    return code, capsys.readouterr()


def test_cli_with_samples(tmp_path, capsys):
    real, gen = tmp_path / "real.npy", tmp_path / "gen.npy"
    np.save(real, triads(6))
    np.save(gen, triads(4).astype(np.float32) * 0.95)
    out = tmp_path / "out"
    code, io_ = cli(["--samples", str(gen), "--data", str(real), "--n", "5", "--out", str(out),
                     "--threshold", "0.5", "--no-figures"], capsys)
    assert code == 0, io_.err
    # a short summary and where the full table is, not the table itself
    assert "| polyphony | Piano |" not in io_.out and len(io_.out.strip().splitlines()) <= 15
    assert str(out / "report.md") in io_.out and "at threshold 0.5 (--threshold)" in io_.out
    lines = {line[:30].strip(): line[30:].split() for line in io_.out.splitlines()}
    assert lines["windows"] == ["5", "4"] and lines["silent windows"] == ["0", "0"]
    # triads: 3 piano pitches x 8 steps + 1 bass x 4 steps per bar = 112 of 78,336 cells
    assert lines["cells on (note density)"] == [f"{112 / 78336:.3%}"] * 2
    assert lines["pitches per sounding step"] == ["2.33", "2.33"]  # (32 * 3 + 16 * 1) / 48
    md = (out / "report.md").read_text()
    assert "real windows: 5; generated windows: 4" in md and "threshold: 0.5" in md
    assert "| polyphony | Piano |" in md


def test_cli_errors(tmp_path, capsys):
    real = tmp_path / "real.npy"
    np.save(real, triads(3))
    code, io_ = cli(["--samples", str(tmp_path / "nope.npy"), "--data", str(real), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "nope.npy" in io_.err and "Traceback" not in io_.err
    probs = tmp_path / "p.npy"
    np.save(probs, triads(3).astype(np.float32) * 0.5)
    code, io_ = cli(["--samples", str(probs), "--data", str(real), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--threshold" in io_.err
    code, io_ = cli(["--samples", str(real), "--data", str(real), "--n", "0", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--n" in io_.err
    code, io_ = cli(["--samples", str(real), "--data", str(real), "--threshold", "1.5", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--threshold" in io_.err
    with pytest.raises(SystemExit) as e:  # neither --checkpoint nor --samples
        main(["evaluate", "--data", str(real), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # both
        main(["evaluate", "--checkpoint", "c.pt", "--samples", str(real), "--out", str(tmp_path / "o")])
    assert e.value.code == 2


class _FakeGenerator(torch.nn.Module):
    """Noise (B, 8) -> piano C-E-G at probability 0.95 and a bass C at 0.85, every step."""

    latent = 8

    def forward(self, z):
        out = torch.zeros(z.shape[0], 17, 64, 72)
        out[:, 1, :, [0, 4, 7]] = 0.95
        out[:, 5, :, 0] = 0.85  # on at threshold 0.8 or 0.85 (p >= T), off at the preset's 0.9
        return out


def test_generate_samples_with_a_fake_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "g.pt"
    ckpt.write_bytes(b"fake")
    calls = []

    def load_generator(path, device="cpu"):
        calls.append((path, device))
        return _FakeGenerator(), {"threshold": 0.9, "threshold_source": "preset", "latent": 8}

    monkeypatch.setattr(E, "load_generator", load_generator)
    x, t = E.generate_samples(ckpt, n=7, seed=0, batch=3)
    assert t == 0.9 and x.shape == (7, 17, 64, 72) and x.dtype == bool
    assert x[:, 1].sum() == 7 * 64 * 3 and x[:, 5].sum() == 0  # bass (0.85) below 0.9
    x, t = E.generate_samples(ckpt, n=2, seed=0, threshold=0.8)
    assert t == 0.8 and x[:, 5].sum() == 2 * 64
    x, t = E.generate_samples(ckpt, n=2, seed=0, threshold=0.85)  # p >= threshold is a note
    assert x[:, 5].sum() == 2 * 64
    with pytest.raises(FileNotFoundError):
        E.generate_samples(tmp_path / "none.pt", n=2, seed=0)
    assert calls[0][0] == str(ckpt)


def test_cli_with_a_real_generator_file(tmp_path, capsys):
    """End to end through b2b.model.checkpoint.load_generator: an untrained seed-preset generator file."""
    from b2b.model.networks import GenConvNet
    from b2b.model.presets import get_preset
    from b2b.model.checkpoint import FORMAT_VERSION, GENERATOR_FORMAT

    preset = get_preset("seed")
    torch.manual_seed(0)
    g = GenConvNet(preset.generator)
    path = tmp_path / "gen.pt"
    torch.save({"format": GENERATOR_FORMAT, "version": FORMAT_VERSION, "step": 0, "config": {},
                "preset": preset.to_dict(), "generator": g.state_dict(), "data": {}}, path)
    x, t = E.generate_samples(path, n=3, seed=5)
    assert t == preset.threshold == 0.9 and x.shape == (3, 17, 64, 72) and x.dtype == bool
    y, _ = E.generate_samples(path, n=3, seed=5)
    np.testing.assert_array_equal(x, y)  # seeded noise
    real = tmp_path / "real.npy"
    np.save(real, triads(4))
    out = tmp_path / "out"
    code = main(["evaluate", "--checkpoint", str(path), "--data", str(real), "--n", "3",
                 "--out", str(out), "--threshold", "0.5", "--no-figures"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "threshold: 0.5" in (out / "report.md").read_text()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code = main(["evaluate", "--checkpoint", str(bad), "--data", str(real), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "bad.pt" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# bounded memory, thresholds, warnings, broken generators, write failures
# ----------------------------------------------------------------------------------------------


def _generator_file(tmp_path, name="gen.pt", threshold=None, nan=False):
    """An untrained seed-preset generator file (probabilities near 0.5), optionally with a stored
    threshold or NaN weights."""
    from b2b.model.networks import GenConvNet
    from b2b.model.presets import get_preset
    from b2b.model.checkpoint import FORMAT_VERSION, GENERATOR_FORMAT

    preset = get_preset("seed")
    torch.manual_seed(0)
    weights = GenConvNet(preset.generator).state_dict()
    if nan:
        key = next(k for k, v in weights.items() if v.is_floating_point())
        weights[key] = torch.full_like(weights[key], float("nan"))
    d = {"format": GENERATOR_FORMAT, "version": FORMAT_VERSION, "step": 0, "config": {},
         "preset": preset.to_dict(), "generator": weights, "data": {}}
    if threshold is not None:
        d["threshold"] = threshold
        d["calibration"] = {"rule": "by hand", "data": "triads", "density_target": 0.001}
    path = tmp_path / name
    torch.save(d, path)
    return path


def test_features_of_chunks_equal_the_whole_table():
    x = random_set(7, seed=3)
    f, ex, stats = E.features_of_chunks([x[:3], x[3:6], x[6:]], examples=4)
    whole = M.feature_table(x)
    assert set(f) == set(whole)
    for k in whole:
        np.testing.assert_allclose(f[k], whole[k], rtol=1e-12, atol=1e-15)  # BLAS rounding only
    np.testing.assert_array_equal(ex, x[:4])
    assert stats == {"n": 7, "on": int(x.sum()), "silent": 0}


def test_mgeval_uses_the_first_windows_only():
    real, gen = random_set(9, seed=4), random_set(8, seed=5)
    report = E.evaluate(real, gen, mgeval_max=5)
    rf, gf = M.feature_table(real), M.feature_table(gen)
    c = report.comparisons["structure"]
    expect = M.compare(rf["structure"][~np.isnan(rf["structure"])][:5], gf["structure"][~np.isnan(gf["structure"])][:5])
    assert (c.n_real, c.n_generated) == (5, 5) and c.overlap == expect.overlap and c.kl == expect.kl
    assert report.row("structure").real_n == 9  # means and counts use every window
    assert "first 5 windows" in report.meta["MGEval"]


def test_cli_chunks_give_the_same_report(tmp_path, capsys, monkeypatch):
    real, gen = tmp_path / "real.npy", tmp_path / "gen.npy"
    np.save(real, random_set(9, seed=6))
    np.save(gen, random_set(7, seed=7))
    code, _ = cli(["--samples", str(gen), "--data", str(real), "--n", "9", "--out", str(tmp_path / "a"), "--no-figures"], capsys)
    monkeypatch.setattr(E, "CHUNK", 2)
    monkeypatch.setattr(E, "load_samples", None)  # the command never loads a set whole
    monkeypatch.setattr(E, "load_real", None)
    code2, _ = cli(["--samples", str(gen), "--data", str(real), "--n", "9", "--out", str(tmp_path / "b"), "--no-figures"], capsys)
    assert code == code2 == 0
    assert (tmp_path / "a" / "report.csv").read_text() == (tmp_path / "b" / "report.csv").read_text()


def test_cli_refuses_n_beyond_the_bound_before_work(tmp_path, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("nothing may be loaded or generated")

    monkeypatch.setattr(E, "iter_real", never)
    monkeypatch.setattr(E, "open_generator", never)
    code, io_ = cli(["--checkpoint", "c.pt", "--n", str(E.MAX_N + 1), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--n" in io_.err and str(E.MAX_N) in io_.err and len(io_.err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_open_generator_reads_auto_as_generate_does(tmp_path):
    # one rule (b2b.sampling.generate.resolve_threshold): "auto" in any case and spacing, or None, is the
    # stored threshold; a number is the caller's; anything else is one error naming --threshold
    path = _generator_file(tmp_path, threshold=0.5012)
    for auto in (None, "auto", " AUTO "):
        _, t, source, _ = E.open_generator(path, auto)
        assert (t, source) == (0.5012, "calibrated")
    _, t, source, _ = E.open_generator(path, "0.25")
    assert (t, source) == (0.25, "argument")
    with pytest.raises(ValueError, match="--threshold: expected a number strictly between 0 and 1, got 'high'"):
        E.open_generator(path, "high")


def test_cli_threshold_auto_uses_the_stored_one(tmp_path, capsys):
    path = _generator_file(tmp_path, threshold=0.5012)
    real = tmp_path / "real.npy"
    np.save(real, triads(4))
    gen, _, _, info = E.open_generator(path)
    expect = np.concatenate(list(E.iter_generated(gen, info["latent"], 3, 0, 0.5012)))
    x, t = E.generate_samples(path, n=3, seed=0)
    assert t == 0.5012 and np.array_equal(x, expect)
    code, io_ = cli(["--checkpoint", str(path), "--data", str(real), "--n", "3", "--out", str(tmp_path / "o"),
                     "--no-figures", "--device", "auto"], capsys)  # auto used to reach tensor.to("auto")
    assert code == 0, io_.err
    assert "at threshold 0.5012 (calibrated at export: density-matched to triads)" in io_.out
    md = (tmp_path / "o" / "report.md").read_text()
    assert "- threshold: 0.5012" in md and "- threshold_source: calibrated" in md
    with np.load(tmp_path / "o" / "features_generated.npz") as f:
        np.testing.assert_array_equal(f["note_count"], M.feature_table(expect)["note_count"])
    # an explicit threshold wins; the seed preset's 0.9 leaves this generator silent: warn
    code, io_ = cli(["--checkpoint", str(path), "--data", str(real), "--n", "3", "--out", str(tmp_path / "p"),
                     "--threshold", "0.9", "--no-figures"], capsys)
    assert code == 0 and "- threshold_source: --threshold" in (tmp_path / "p" / "report.md").read_text()
    assert "warning: 3 of 3 generated windows (100%) are silent at threshold 0.9 (--threshold)" in io_.err
    assert "leave out --threshold (auto) to use the calibrated threshold 0.5012" in io_.err
    assert len(io_.err.strip().splitlines()) == 1


def test_cli_warns_on_a_preset_threshold_that_silences(tmp_path, capsys):
    path = _generator_file(tmp_path)  # no stored threshold: the preset's 0.9
    real = tmp_path / "real.npy"
    np.save(real, triads(4))
    code, io_ = cli(["--checkpoint", str(path), "--data", str(real), "--n", "2", "--out", str(tmp_path / "o"),
                     "--no-figures"], capsys)
    assert code == 0
    assert "silent at threshold 0.9 (the seed preset's" in io_.err and "b2b export" in io_.err
    # a silent --samples file is flagged too
    silent = tmp_path / "silent.npy"
    np.save(silent, np.zeros((2, 17, 64, 72), bool))
    code, io_ = cli(["--samples", str(silent), "--data", str(real), "--out", str(tmp_path / "s"), "--no-figures"], capsys)
    assert code == 0 and "2 of 2 generated windows (100%) are silent" in io_.err
    code, io_ = cli(["--samples", str(real), "--data", str(real), "--out", str(tmp_path / "t"), "--no-figures"], capsys)
    assert code == 0 and "warning" not in io_.err


def test_cli_rejects_nan_weights(tmp_path, capsys):
    path = _generator_file(tmp_path, name="nan.pt", nan=True)
    real = tmp_path / "real.npy"
    np.save(real, triads(3))
    code, io_ = cli(["--checkpoint", str(path), "--data", str(real), "--n", "2", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not finite" in io_.err and "nan.pt" in io_.err and "Traceback" not in io_.err
    assert not (tmp_path / "o").exists()


def test_cli_rejects_non_finite_outputs(tmp_path, monkeypatch):
    class Broken(torch.nn.Module):
        latent = 2

        def forward(self, z):
            return torch.full((z.shape[0], 17, 64, 72), float("nan"))

    with pytest.raises(ValueError, match="not finite"):
        list(E.iter_generated(Broken(), 2, 3, 0, 0.5))


def test_write_failure_keeps_the_earlier_report(tmp_path, capsys, monkeypatch, read_only_mkdir):
    real = tmp_path / "real.npy"
    np.save(real, triads(4))
    out = tmp_path / "o"
    argv = ["--samples", str(real), "--data", str(real), "--out", str(out), "--no-figures"]
    assert cli(argv, capsys)[0] == 0 and (out / "report.md").exists()  # an earlier complete report
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = E.atomic_write

    def full_disk(path, *a, **k):
        if Path(path).name == "features_generated.npz":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, *a, **k)

    monkeypatch.setattr(E, "atomic_write", full_disk)
    code, io_ = cli(argv, capsys)
    assert code == 2 and "Traceback" not in io_.err and len(io_.err.strip().splitlines()) == 1
    assert str(out) in io_.err and "No space left on device" in io_.err and "features_generated.npz" in io_.err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # byte for byte, no temporaries
    code, io_ = cli(["--samples", str(real), "--data", str(real), "--out", str(tmp_path / "ro"), "--no-figures"], capsys)
    assert code == 2 and f"--out {tmp_path / 'ro'}" in io_.err and "Read-only file system" in io_.err
    assert "Traceback" not in io_.err and len(io_.err.strip().splitlines()) == 1
    # --out that is a file, or below a file: one line before any work
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "file" / "sub"):
        code, io_ = cli(["--samples", str(real), "--data", str(real), "--out", str(bad), "--no-figures"], capsys)
        assert code == 2 and str(bad) in io_.err and "Traceback" not in io_.err
        assert len(io_.err.strip().splitlines()) == 1


# --- set statistics: diversity, copying, two-sample test ------------------------------------------


def _labelled(labels):
    """Windows whose only on cell encodes a label (track 7, step = label % 64, pitch = label // 64)."""
    x = np.zeros((len(labels), 17, 64, 72), bool)
    for i, lab in enumerate(labels):
        x[i, 7, lab % 64, lab // 64] = True
    return x


def test_features_of_chunks_keeps_every_kth_window_across_chunks():
    chunks = [_labelled(range(0, 4)), _labelled(range(4, 8)), _labelled(range(8, 11))]
    _, kept, stats = E.features_of_chunks(iter(chunks), examples=10, every=3)
    labels = [int(np.flatnonzero(w[7].any(axis=1))[0]) for w in kept]
    assert labels == [0, 3, 6, 9] and stats["n"] == 11
    _, kept, _ = E.features_of_chunks(iter([_labelled(range(10))]), examples=2, every=3)
    assert len(kept) == 2


def test_set_statistics_by_hand():
    a = np.zeros((17, 64, 72), bool)
    a[7, 0:8, 30] = True  # 8 cells
    b = np.zeros((17, 64, 72), bool)
    b[7, 0:4, 30] = True  # 4 cells, all in a
    c = np.zeros((17, 64, 72), bool)
    c[5, 10:12, 3] = True
    reference = np.stack([a, b, c])
    songs = np.array([0, 0, 1])
    real = np.stack([a, c])  # drawn from songs 0 and 1
    generated = np.stack([b, b])
    sets, near_r, near_g = R.set_statistics(real, generated, reference=reference, real_groups=[0, 1],
                                            reference_groups=songs, two_sample=False)
    # generated b is a copy of reference[1]
    assert near_g.tolist() == [1.0, 1.0] and sets["copies_generated"] == 1.0
    # real a may not be compared with a or b (song 0): only c, overlap 0; real c only with a, b: 0
    assert near_r.tolist() == [0.0, 0.0] and sets["nearest_real"] == 0.0
    assert sets["within_generated"] == 1.0 and sets["within_real"] == 0.0
    assert "two_sample" not in sets
    with pytest.raises(ValueError, match="go together"):
        R.set_statistics(real, generated, reference=reference, real_groups=[0, 1])


def test_report_renders_the_set_statistics():
    rng = np.random.default_rng(0)
    x = np.zeros((8, 17, 64, 72), bool)
    for i in range(8):
        x[i, 7, rng.integers(0, 64, 30), rng.integers(0, 72, 30)] = True
    report = E.evaluate(x, x[::-1])
    report.sets, _, _ = R.set_statistics(x, x[:2].repeat(4, axis=0), two_sample=True, seed=0)
    md = report.to_markdown()
    assert "## Diversity, copying and the two-sample test" in md
    assert "Classifier two-sample test" in md and "accuracy **" in md
    assert report.as_dict()["sets"]["two_sample"]["n_test"] == 8


def test_one_sampler_evaluate_sees_what_generate_makes():
    # b2b evaluate's windows are b2b generate's at the same seed, whatever the chunk size
    from b2b.sampling.generate import generate
    from b2b.model.networks import GenConvNet
    from b2b.model.presets import GeneratorConfig

    torch.manual_seed(0)
    g = GenConvNet(GeneratorConfig(latent=16, channels=8)).eval()
    probabilities = generate(g, 7, seed=3)
    want = (probabilities >= 0.5).numpy()
    # another batch size may take another CPU kernel, whose last bit differs on some processors:
    # cells within 1e-5 of the threshold may go either way, every other cell must agree
    clear = ((probabilities - 0.5).abs() > 1e-5).numpy()
    assert clear.mean() > 0.99
    for batch in (2, 7, 100):
        got = np.concatenate(list(E.iter_generated(g, 16, 7, 3, 0.5, batch=batch)))
        assert got.shape == want.shape and np.array_equal(got[clear], want[clear]), batch
    with pytest.raises(ValueError, match="noise of size 16, not 8"):
        list(E.iter_generated(g, 8, 7, 3, 0.5))


def test_figures_label_their_axes():
    """Every panel of the three report figures says what its axes are (issue 32)."""
    import matplotlib.pyplot as plt

    real, gen = random_set(12, seed=3), random_set(12, seed=4, density=0.02)
    report = E.evaluate(real, gen)
    figs = {"distributions": figures.plot_distributions(report, "polyphony"),
            "mgeval": figures.plot_mgeval(report, ["polyphony[Piano]", "polyphony[Bass]"]),
            "self_similarity": figures.plot_self_similarity(real[:3], gen[:3], n=3)}
    try:
        for name, fig in figs.items():
            panels = [ax for ax in fig.axes if ax.get_images() or ax.get_lines() or ax.patches]
            assert panels, name
            rows = {}
            for ax in panels:
                rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
            bottom = rows[min(rows)]
            assert all(ax.get_xlabel() for ax in bottom), name            # the bottom row says what x is
            assert all(min(row_axes, key=lambda a: a.get_position().x0).get_ylabel()
                       for row_axes in rows.values()), name               # the first panel of each row says what y is
        ss = figs["self_similarity"]
        assert {ax.get_xlabel() for ax in ss.axes if ax.get_images()} >= {"beat"}
        assert {ax.get_ylabel() for ax in figs["mgeval"].axes if ax.get_lines()} == {"density"}
    finally:
        for fig in figs.values():
            plt.close(fig)
