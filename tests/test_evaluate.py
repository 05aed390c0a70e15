"""Tests of b2b.evaluate: the report on sets where the answer is known, files, the CLI, bad input."""

from __future__ import annotations

import csv
import io
import json
import sys
import types
import warnings

import numpy as np
import pytest
import torch

from b2b import evaluate as E
from b2b import metrics as M
from b2b.cli import main


def random_set(n: int, seed: int, density: float = 0.01, tracks=(1, 5)) -> np.ndarray:
    """Windows with random notes on a few tracks and a drum pattern; others silent."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 17, 64, 72), dtype=bool)
    for k in tracks:
        x[:, k] = rng.random((n, 64, 72)) < density
    x[:, 0, :, 12] = rng.random((n, 64)) < 0.3
    return x


def triads(n: int) -> np.ndarray:
    """Piano plays a C major triad (3 pitches) on steps 0-7 of every bar; bass a C on beat 1."""
    x = np.zeros((n, 17, 64, 72), dtype=bool)
    for bar in range(4):
        for p in (24, 28, 31):
            x[:, 1, 16 * bar: 16 * bar + 8, p] = True
        x[:, 5, 16 * bar: 16 * bar + 4, 0] = True
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
    md = E.render_markdown(report)
    assert md == report.to_markdown()
    assert "| polyphony | Piano | 3.000 ± 0.000 | 3.000 ± 0.000 | 3 / 3 | +0.0% | +0.00 |" in md
    assert "- seed: 7" in md
    assert "**polyphony**: " + M.DEFINITIONS["polyphony"] in md
    assert "off_track_notes" in md and "**off_track_notes**: " + E.DEFINITIONS["off_track_notes"] in md
    rows = list(csv.DictReader(io.StringIO(E.render_csv(report.rows))))
    assert len(rows) == len(report.rows)
    assert tuple(rows[0]) == E.CSV_COLUMNS
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
        fig = E.plot_distributions(report, "polyphony")
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
    assert "| polyphony | Piano |" in io_.out
    md = (out / "report.md").read_text()
    assert "real windows: 5; generated windows: 4" in md and "threshold: 0.5" in md


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
        return _FakeGenerator(), {"training": {"threshold": 0.9}, "generator": {"latent": 8}}

    monkeypatch.setitem(sys.modules, "b2b.train", types.SimpleNamespace(load_generator=load_generator))
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
    """End to end through b2b.train.load_generator: an untrained seed-preset generator file."""
    from b2b.nn import GenConvNet, get_preset
    from b2b.train import FORMAT_VERSION, GENERATOR_FORMAT

    preset = get_preset("seed")
    torch.manual_seed(0)
    g = GenConvNet(preset.generator)
    path = tmp_path / "gen.pt"
    torch.save({"format": GENERATOR_FORMAT, "version": FORMAT_VERSION, "step": 0, "config": {},
                "preset": preset.to_dict(), "generator": g.state_dict(), "data": {}}, path)
    x, t = E.generate_samples(path, n=3, seed=5)
    assert t == preset.training.threshold == 0.9 and x.shape == (3, 17, 64, 72) and x.dtype == bool
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
