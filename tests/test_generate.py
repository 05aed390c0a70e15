"""Tests for b2b.sampling.generate: sampling, latent interpolation, writing samples, ``b2b generate``."""

from __future__ import annotations

import errno
import json
import math
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b.music import data
from b2b.files.atomic import FolderLock
from b2b.sampling import generate as bgen
from b2b.cli import main as cli_main
from b2b.sampling.generate import (CALIBRATION_SEED, MAX_SAMPLES, calibrate_threshold, generate, interpolate_latents,
                          iter_generate, note_density, write_samples)
from b2b.model.checkpoint import atomic_torch_save, load_generator
from b2b.sampling.export import export_generator


# --------------------------------------------------------------------------- generate
def test_generate_shapes_seed_and_mode(checkpoint):
    g, info = load_generator(checkpoint)
    g.train()  # generate must switch to eval mode and back
    a = generate(g, 3, seed=5)
    assert g.training
    assert a.shape == (3, 17, 64, 72) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, generate(g, 3, seed=5))  # determinism under the seed
    assert not torch.equal(a, generate(g, 3, seed=6))
    # the seeded noise is exactly torch.randn from a CPU generator with that seed
    z = torch.randn(3, info["latent"], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, generate(g, 3, latent=z))
    # eval mode: every sample depends on its own noise only (batch norm uses running stats)
    g.eval()
    with torch.no_grad():
        one = g(z[1:2])
    torch.testing.assert_close(a[1:2], one)


def test_generate_in_chunks_matches_small_batches(checkpoint, monkeypatch):
    monkeypatch.setattr(bgen, "_CHUNK", 2)
    g, _ = load_generator(checkpoint)
    z = torch.randn(5, g.latent, generator=torch.Generator().manual_seed(1))
    big = generate(g, 5, latent=z)  # three internal chunks: 2 + 2 + 1
    torch.testing.assert_close(big[-2:], generate(g, 2, latent=z[-2:]))
    torch.testing.assert_close(big[:2], generate(g, 2, latent=z[:2]))


def test_generate_bad_input(checkpoint):
    g, _ = load_generator(checkpoint)
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n: expected a positive number"):
            generate(g, n)
    with pytest.raises(ValueError, match=r"latent: expected noise of shape \(n, 128\)"):
        generate(g, 2, latent=torch.zeros(2, 64))
    with pytest.raises(ValueError, match="latent: has 3 rows but n is 2"):
        generate(g, 2, latent=torch.zeros(3, 128))


# --------------------------------------------------------------------------- interpolation
def test_interpolate_linear_and_spherical_hand_worked():
    e1, e2 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
    lin = interpolate_latents(e1, e2, 5, method="linear")
    assert lin.shape == (5, 3)
    torch.testing.assert_close(lin[2], torch.tensor([0.5, 1.0, 0.0]))
    torch.testing.assert_close(lin[1], torch.tensor([0.75, 0.5, 0.0]))
    # slerp between orthogonal vectors: omega = pi/2, weights sin((1-t) pi/2) and sin(t pi/2)
    sl = interpolate_latents(e1, e2, 3)
    r = math.sqrt(0.5)
    torch.testing.assert_close(sl[1], torch.tensor([r, 2 * r, 0.0]))
    assert torch.equal(sl[0], e1) and torch.equal(sl[-1], e2)
    # unit vectors stay on the unit sphere
    u = interpolate_latents(torch.tensor([1.0, 0.0]), torch.tensor([-0.6, 0.8]), 7)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(7))
    # parallel vectors fall back to the straight line
    par = interpolate_latents(torch.tensor([1.0, 1.0]), torch.tensor([3.0, 3.0]), 3)
    torch.testing.assert_close(par[1], torch.tensor([2.0, 2.0]))


def test_interpolate_batches_and_bad_input():
    z0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z1 = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    out = interpolate_latents(z0, z1, 4, method="linear")
    assert out.shape == (4, 2, 2)
    torch.testing.assert_close(out[:, 1, 1], torch.tensor([1.0, 1 / 3, -1 / 3, -1.0]))
    with pytest.raises(ValueError, match="steps"):
        interpolate_latents(z0, z1, 1)
    with pytest.raises(ValueError, match="same shape"):
        interpolate_latents(z0, z1[:1], 3)
    with pytest.raises(ValueError, match="method"):
        interpolate_latents(z0, z1, 3, method="cubic")


# --------------------------------------------------------------------------- writing
def crafted() -> np.ndarray:
    """Two windows of probabilities with notes in different tracks, some just below 0.9."""
    x = np.full((2, 17, 64, 72), 0.05, np.float32)
    piano, bass, strings, drums = 1, 5, 6, 0
    x[0, piano, 0:8, 40] = 0.95            # E4 for two beats
    x[0, piano, 8:12, 40] = 0.97           # ... struck again right after: one run in the roll
    x[0, piano, 16:20, 43] = 0.89          # below the threshold: dropped
    x[0, bass, 16:32, 10] = 0.92           # A#1-ish, one bar
    x[0, drums, [0, 4, 8, 13], 12] = 0.99  # bass drum hits (MIDI 36)
    x[0, drums, 6, 18] = 0.9               # exactly the threshold counts as a note
    x[1, strings, 32:64, [30, 34, 37]] = 0.93
    x[1, piano, 60:64, 71] = 0.91          # the highest pitch, to the very last step
    return x


def read_back(path: Path) -> np.ndarray:
    import pypianoroll

    return data.multitrack_to_roll(pypianoroll.read(path, resolution=4))


def test_write_samples_files_and_midi_round_trip(tmp_path):
    x = crafted()
    out = tmp_path / "gen"
    out.mkdir()
    (out / "sample_007.mid").write_bytes(b"stale")  # from an earlier, larger batch
    (out / "notes.txt").write_text("mine")
    written = write_samples(torch.from_numpy(x), out, 0.9, sample_rate=8000)
    names = [p.name for p in written]
    assert names == ["samples.npy", "samples_binary.npy", "sample_000.mid", "sample_001.mid",
                     "sample_000.wav", "sample_001.wav", "samples.png", "samples.json"]
    assert all(p.is_file() for p in written)
    assert not (out / "sample_007.mid").exists() and (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    probs, binary = np.load(out / "samples.npy"), np.load(out / "samples_binary.npy")
    assert probs.dtype == np.float32 and np.array_equal(probs, x)
    assert binary.dtype == np.bool_ and np.array_equal(binary, x >= 0.9)
    assert binary[0, 1].sum() == 12 and not binary[0, 1, 16:20, 43].any() and binary[0, 0, 6, 18]
    for i in range(2):
        roll = read_back(out / f"sample_{i:03d}.mid")
        assert roll.shape == (17, 64, 72)
        assert np.array_equal(roll, binary[i]), f"sample {i}: MIDI does not read back"
    for i in range(2):
        with wave.open(str(out / f"sample_{i:03d}.wav")) as w:
            assert w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2
            assert w.getnframes() >= 8 * 8000  # 4 bars at 120 bpm = 8 s, plus a tail
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            assert np.abs(pcm).max() > 1000
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((out / "samples.json").read_text())
    assert info["n"] == 2 and info["threshold"] == 0.9 and info["empty_samples"] == 0
    assert info["notes_on"] == pytest.approx(binary.mean())


def test_write_samples_bad_input(tmp_path):
    x = crafted()
    for t in (0, 1, 1.5, -0.1, float("nan"), "high"):
        with pytest.raises(ValueError, match="threshold"):
            write_samples(x, tmp_path, t)
    with pytest.raises(ValueError, match=r"shape \(n, 17, 64, 72\)"):
        write_samples(x[:, :16], tmp_path, 0.5)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        write_samples(x * 3, tmp_path, 0.5)
    assert not list(tmp_path.iterdir())  # nothing written on bad input


# --------------------------------------------------------------------------- CLI
def test_cli_warns_when_every_sample_is_silent(checkpoint, tmp_path, capsys):
    """A one-step generator stays near 0.5, so at the preset's 0.9 nothing plays: say so, with a fix."""
    g, _ = load_generator(checkpoint)
    probs = generate(g, 2, seed=0).numpy()
    assert probs.max() < 0.9  # the premise: silent at the default threshold
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--n", "2", "--out", str(tmp_path / "s"),
                   "--seed", "0", "--device", "cpu", "--no-wav"])
    err = capsys.readouterr().err
    assert rc == 0 and "every sample is silent at threshold 0.9" in err
    hint = float(err.rsplit("--threshold ", 1)[1].split()[0])
    assert (probs >= hint).any() and hint == pytest.approx(np.quantile(probs, 0.997), rel=1e-2)
    # with a threshold that lets notes through there is no warning
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--n", "2", "--out", str(tmp_path / "t"),
                   "--seed", "0", "--device", "cpu", "--no-wav", "--threshold", f"{hint:.3g}"])
    assert rc == 0 and "warning" not in capsys.readouterr().err


def test_cli_generate_writes_what_the_api_gives(checkpoint, tmp_path, capsys):
    out = tmp_path / "s"
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--n", "3", "--out", str(out),
                   "--seed", "2", "--device", "cpu", "--sample-rate", "8000"])
    assert rc == 0, capsys.readouterr().err
    assert "3 samples" in capsys.readouterr().out
    g, info = load_generator(checkpoint)
    expect = generate(g, 3, seed=2).numpy()
    np.testing.assert_array_equal(np.load(out / "samples.npy"), expect)
    # default threshold: the checkpoint preset's (0.9 for seed)
    meta = json.loads((out / "samples.json").read_text())
    assert meta["threshold"] == info["threshold"] == 0.9 and meta["seed"] == 2 and meta["step"] == 1
    assert meta["threshold_source"] == info["threshold_source"] == "preset"  # a training checkpoint stores none
    np.testing.assert_array_equal(np.load(out / "samples_binary.npy"), expect >= 0.9)
    for i in range(3):
        assert (out / f"sample_{i:03d}.mid").is_file() and (out / f"sample_{i:03d}.wav").is_file()
    assert (out / "samples.png").is_file()


def test_cli_exported_generator_and_threshold(checkpoint, tmp_path):
    small = export_generator(checkpoint, tmp_path / "g.pt")
    g, _ = load_generator(small)
    x = generate(g, 2, seed=0).numpy()
    t = float(np.quantile(x, 0.998))  # a threshold that leaves a few hundred notes on
    out = tmp_path / "s"
    rc = cli_main(["generate", "--checkpoint", str(small), "--n", "2", "--out", str(out),
                   "--threshold", repr(t), "--no-wav"])
    assert rc == 0
    binary = np.load(out / "samples_binary.npy")
    np.testing.assert_array_equal(binary, x >= t)
    assert binary.any()
    assert not list(out.glob("*.wav"))
    for i in range(2):
        assert np.array_equal(read_back(out / f"sample_{i:03d}.mid"), binary[i])


@pytest.mark.parametrize("extra, message", [
    (["--n", "0"], "--n must be at least 1"),
    (["--threshold", "0"], "--threshold"),
    (["--threshold", "1"], "--threshold"),
    (["--threshold", "1.5"], "--threshold"),
    (["--threshold", "nan"], "--threshold"),
    (["--device", "tpu"], "device"),
    (["--n", str(MAX_SAMPLES + 1)], f"at most {MAX_SAMPLES}"),
    (["--tempo", "inf"], "--tempo"),
    (["--tempo", "1e-300"], "--tempo"),
    (["--tempo", "nan"], "--tempo"),
    (["--tempo", "0"], "--tempo"),
    (["--tempo", "1000"], "--tempo"),
    (["--threshold", "high"], "--threshold"),
])
def test_cli_bad_arguments(checkpoint, tmp_path, capsys, extra, message):
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "s"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_cli_bad_checkpoints(checkpoint, tmp_path, capsys):
    def fails(path: Path, message: str) -> None:
        rc = cli_main(["generate", "--checkpoint", str(path), "--out", str(tmp_path / "s")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err, err

    fails(tmp_path / "missing.pt", "missing.pt does not exist")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    fails(text, "could not be read as a b2b checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    fails(other, "is not a b2b checkpoint")
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["preset"]["generator"]["channels"] = 32  # weights no longer fit the preset
    bad = tmp_path / "bad.pt"
    atomic_torch_save(ckpt, bad)
    fails(bad, "do not fit preset")
    (tmp_path / "file").write_text("x")
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "file")])
    assert rc == 2 and "not a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- threshold calibration
CELLS = 17 * 64 * 72


class Ramp(torch.nn.Module):
    """Every sample is the same ramp: cell j (flat index) has probability (j + 0.5) / 78,336."""

    latent = 4

    def forward(self, z):
        base = (torch.arange(CELLS, dtype=torch.float32) + 0.5) / CELLS
        return base.expand(z.shape[0], CELLS).reshape(z.shape[0], 17, 64, 72).clone()


def test_calibrate_threshold_hand_worked_with_ties():
    # 3 identical samples, density 1%: k = round(0.01 * 3 * 78336) = 2350 cells wanted. Each value
    # appears 3 times, so the 2350th largest is the ceil(2350 / 3) = 784th largest distinct value,
    # (78336 - 784 + 0.5) / 78336, and 784 * 3 = 2352 cells are >= it.
    cal = calibrate_threshold(Ramp(), 0.01, n=3, seed=7)
    expect = float((torch.tensor(CELLS - 784, dtype=torch.float32) + 0.5) / CELLS)
    assert cal["threshold"] == expect
    assert cal["density_at_threshold"] == 2352 / (3 * CELLS)
    assert cal["density_target"] == 0.01 and cal["n_samples"] == 3 and cal["seed"] == 7
    assert cal["silent_share"] == 0.0 and "density-matched" in cal["rule"]
    for bad in (0, 1, -0.1, float("nan")):
        with pytest.raises(ValueError, match="density"):
            calibrate_threshold(Ramp(), bad, n=3)
    with pytest.raises(ValueError, match="n: expected"):
        calibrate_threshold(Ramp(), 0.01, n=MAX_SAMPLES + 1)


def test_calibrate_threshold_against_a_full_sort(checkpoint):
    # independent method: sort every probability of the same held-out noise
    g, _ = load_generator(checkpoint)
    cal = calibrate_threshold(g, 0.004, n=5, seed=CALIBRATION_SEED)
    probs = generate(g, 5, seed=CALIBRATION_SEED).numpy()
    k = round(0.004 * probs.size)
    assert cal["threshold"] == float(np.sort(probs.ravel())[-k])
    assert cal["density_at_threshold"] == pytest.approx((probs >= cal["threshold"]).mean(), abs=0)
    assert cal["silent_share"] == float((~(probs >= cal["threshold"]).any(axis=(1, 2, 3))).mean())
    assert calibrate_threshold(g, 0.004, n=5, seed=CALIBRATION_SEED) == cal  # deterministic
    assert calibrate_threshold(g, 0.004, n=5, seed=CALIBRATION_SEED + 1)["threshold"] != cal["threshold"]


def test_note_density_of_arrays_and_datasets():
    w = np.zeros((4, 17, 64, 72), bool)
    w[0, 1, :8, 10] = True      # 8 cells
    w[3, 5, 0, :] = True        # 72 cells
    assert note_density(w) == (80 / (4 * CELLS), 4)
    assert note_density(w.astype(np.float32), chunk=3) == (80 / (4 * CELLS), 4)

    class Store:  # like b2b.music.data.WindowDataset: len() and window(i)
        def __len__(self):
            return 4

        def window(self, i):
            return w[i]

    assert note_density(Store()) == (80 / (4 * CELLS), 4)
    with pytest.raises(ValueError, match="data"):
        note_density(np.zeros((2, 17, 64, 71), bool))


def test_export_stores_the_calibrated_threshold_and_keeps_the_weights(checkpoint, tmp_path):
    plain = export_generator(checkpoint, tmp_path / "plain.pt")  # no data: no threshold stored (old format)
    _, info = load_generator(plain)
    assert info["threshold_source"] == "preset" and info["threshold"] == 0.9 and info["calibration"] is None
    w = np.zeros((4, 17, 64, 72), bool)
    w[0, 1, :8, 10] = True
    w[3, 5, 0, :] = True
    small = export_generator(checkpoint, tmp_path / "g.pt", data=w, n=5)
    raw = torch.load(small, map_location="cpu", weights_only=True)  # still a safe file
    assert raw["format"] == "b2b-generator" and raw["version"] == 1
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(raw["generator"]) == set(ckpt["generator"])
    assert all(torch.equal(raw["generator"][k], v) for k, v in ckpt["generator"].items())
    g, info = load_generator(small)
    assert info["threshold_source"] == "calibrated" and info["preset_threshold"] == 0.9
    cal = info["calibration"]
    assert cal["density_target"] == 80 / (4 * CELLS) and cal["data_windows"] == 4 and cal["n_samples"] == 5
    probs = generate(g, 5, seed=CALIBRATION_SEED).numpy()
    k = round(80 / (4 * CELLS) * probs.size)
    assert info["threshold"] == raw["threshold"] == float(np.sort(probs.ravel())[-k])
    # re-exporting an exported file keeps the weights and recalibrates (into another file: a command
    # never replaces its input)
    with pytest.raises(ValueError, match="is also an input"):
        export_generator(small, small, density=0.01, n=5)
    again = export_generator(small, tmp_path / "again.pt", density=0.01, n=5)
    raw2 = torch.load(again, map_location="cpu", weights_only=True)
    assert all(torch.equal(raw2["generator"][k], v) for k, v in ckpt["generator"].items())
    assert raw2["threshold"] == float(np.sort(probs.ravel())[-round(0.01 * probs.size)])
    with pytest.raises(ValueError, match="not both"):
        export_generator(checkpoint, tmp_path / "x.pt", data=w, density=0.01)
    bad = dict(raw2, threshold=1.5)
    atomic_torch_save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="stored threshold"):
        load_generator(tmp_path / "bad.pt")


def test_cli_generate_uses_the_stored_threshold_unless_told(checkpoint, tmp_path, capsys):
    small = export_generator(checkpoint, tmp_path / "g.pt", density=0.003, n=4)
    g, info = load_generator(small)
    t = info["threshold"]
    probs = generate(g, 3, seed=1).numpy()
    assert probs.max() < 0.9 <= 1 and (probs >= t).any()  # silent at the preset's 0.9, not at t
    out = tmp_path / "auto"
    rc = cli_main(["generate", "--checkpoint", str(small), "--n", "3", "--out", str(out), "--seed", "1", "--no-wav"])
    io_ = capsys.readouterr()
    assert rc == 0, io_.err
    assert f"threshold {t:.4g} (calibrated" in io_.out and "warning" not in io_.err
    meta = json.loads((out / "samples.json").read_text())
    assert meta["threshold"] == t and meta["threshold_source"] == "calibrated" and meta["preset_threshold"] == 0.9
    assert meta["calibration"]["density_target"] == 0.003
    np.testing.assert_array_equal(np.load(out / "samples_binary.npy"), probs >= t)
    # an explicit threshold wins (the seed preset's 0.9 stays available), and is reported as such
    rc = cli_main(["generate", "--checkpoint", str(small), "--n", "3", "--out", str(tmp_path / "t"), "--seed", "1",
                   "--no-wav", "--threshold", "0.9"])
    io_ = capsys.readouterr()
    meta = json.loads((tmp_path / "t" / "samples.json").read_text())
    assert rc == 0 and meta["threshold"] == 0.9 and meta["threshold_source"] == "argument"
    assert "threshold 0.9 (--threshold)" in io_.out and "every sample is silent" in io_.err


def test_cli_export(checkpoint, tmp_path, capsys):
    out = tmp_path / "g.pt"
    rc = cli_main(["export", "--checkpoint", str(checkpoint), "--density", "0.003", "--n", "4", "--out", str(out)])
    io_ = capsys.readouterr()
    assert rc == 0, io_.err
    _, info = load_generator(out)
    assert info["threshold_source"] == "calibrated" and f"threshold {info['threshold']:.4g}" in io_.out
    assert info["calibration"]["seed"] == CALIBRATION_SEED and info["calibration"]["n_samples"] == 4

    def fails(argv, message):
        rc = cli_main(["export", *argv])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    fails(["--checkpoint", str(checkpoint), "--density", "0.003", "--out", str(tmp_path)], "is a folder")
    fails(["--checkpoint", str(checkpoint), "--density", "2", "--out", str(out)], "--density")
    fails(["--checkpoint", str(checkpoint), "--density", "0.003", "--n", "0", "--out", str(out)], "--n")
    fails(["--checkpoint", str(tmp_path / "none.pt"), "--density", "0.003", "--out", str(out)], "none.pt")
    fails(["--checkpoint", str(checkpoint), "--density", "0.003", "--out", str(tmp_path / "no" / "g.pt")],
          "does not exist")


# --------------------------------------------------------------------------- broken generators
def test_nan_weights_are_rejected(checkpoint, tmp_path, capsys):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in ckpt["generator"].items() if v.is_floating_point())
    ckpt["generator"][name] = torch.full_like(ckpt["generator"][name], float("nan"))
    del ckpt["digest"], ckpt["seal"]  # as a diverged run writes it (or a file from before digests)
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)
    with pytest.raises(ValueError, match="not finite"):
        load_generator(bad)
    for argv in (["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--no-wav"],
                 ["export", "--checkpoint", str(bad), "--density", "0.01", "--out", str(tmp_path / "g.pt")]):
        rc = cli_main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and "not finite" in err and "nan.pt" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "g.pt").exists()


def test_non_finite_outputs_are_an_error():
    class Broken(torch.nn.Module):
        latent = 3

        def forward(self, z):
            out = torch.full((z.shape[0], 17, 64, 72), 0.5)
            out[-1, 0, 0, 0] = float("nan")
            return out

    with pytest.raises(ValueError, match="not finite"):
        generate(Broken(), 2)
    with pytest.raises(ValueError, match="not finite"):
        calibrate_threshold(Broken(), 0.01, n=2)


# --------------------------------------------------------------------------- streaming, bounds, faults
def test_cli_generate_streams_in_chunks(checkpoint, tmp_path, monkeypatch):
    g, _ = load_generator(checkpoint)
    expect = generate(g, 5, seed=3).numpy()
    pieces = [len(p) for p in iter_generate(g, 5, seed=3, chunk=2)]
    assert pieces == [2, 2, 1]
    monkeypatch.setattr(bgen, "_CHUNK", 2)

    def whole(*a, **k):
        raise AssertionError("the command must not hold all samples at once")

    monkeypatch.setattr(bgen, "generate", whole)
    out = tmp_path / "s"
    assert cli_main(["generate", "--checkpoint", str(checkpoint), "--n", "5", "--out", str(out), "--seed", "3",
                     "--no-wav", "--threshold", "0.505"]) == 0
    probs = np.load(out / "samples.npy")
    np.testing.assert_allclose(probs, expect, rtol=0, atol=1e-6)  # batches of 2 vs 5: float rounding only
    np.testing.assert_array_equal(np.load(out / "samples_binary.npy"), probs >= 0.505)
    assert len(list(out.glob("sample_*.mid"))) == 5


def test_write_samples_from_chunks_checks_the_count(tmp_path):
    x = crafted()
    out = tmp_path / "c"
    written = write_samples(iter([x[:1], x[1:]]), out, 0.9, n=2, wav=False, figure=False)
    assert [p.name for p in written] == ["samples.npy", "samples_binary.npy", "sample_000.mid", "sample_001.mid",
                                         "samples.json"]
    np.testing.assert_array_equal(np.load(out / "samples.npy"), x)
    with pytest.raises(ValueError, match="1 samples arrived, expected n = 2"):
        write_samples(iter([x[:1]]), tmp_path / "d", 0.9, n=2, wav=False, figure=False)
    assert not list((tmp_path / "d").iterdir())  # what it wrote was removed
    with pytest.raises(ValueError, match="more than n = 1"):
        write_samples(iter([x]), tmp_path / "e", 0.9, n=1, wav=False, figure=False)
    with pytest.raises(ValueError, match="n: pass the number"):
        write_samples(iter([x]), tmp_path / "f", 0.9)
    for tempo in (float("inf"), 1e-300, float("nan"), 0, 401):
        with pytest.raises(ValueError, match="tempo"):
            write_samples(x, tmp_path / "g", 0.9, tempo=tempo)
    assert not (tmp_path / "g").exists()


def test_full_disk_while_writing_samples(checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / "s"
    args = ["generate", "--checkpoint", str(checkpoint), "--n", "3", "--out", str(out), "--threshold", "0.505",
            "--sample-rate", "8000"]
    assert cli_main([*args, "--seed", "0"]) == 0  # an earlier, complete batch
    old = np.load(out / "samples.npy")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    real_wav, calls = bgen.write_wav, []

    def full_disk(*a, **k):
        calls.append(a[1])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_wav(*a, **k)

    monkeypatch.setattr(bgen, "write_wav", full_disk)
    rc = cli_main([*args, "--seed", "9"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and "No space left on device" in err and "sample_001.wav" in err
    names = {p.name for p in out.iterdir()}
    assert not [n for n in names if n.endswith(".tmp")]
    # the earlier batch is untouched, its description included
    np.testing.assert_array_equal(np.load(out / "samples.npy"), old)
    assert json.loads((out / "samples.json").read_text())["seed"] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_write_samples_failure_removes_what_it_wrote(tmp_path, monkeypatch):
    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bgen, "_write_figure", no_space)
    out = tmp_path / "s"
    with pytest.raises(OSError, match="samples.png") as e:
        write_samples(crafted(), out, 0.9, sample_rate=8000)
    assert e.value.errno == errno.ENOSPC and "earlier files are untouched" in str(e.value)
    assert not list(out.iterdir())


def test_cli_out_problems(checkpoint, tmp_path, capsys, monkeypatch, read_only_mkdir):
    (tmp_path / "file").write_text("x")
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "file" / "s"), "--no-wav"])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "file" / "s") in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "ro"), "--no-wav"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--out {tmp_path / 'ro'}" in err and "Read-only file system" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(bgen, "free_bytes", lambda path: 1_000_000)  # 1 MB free
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--n", "16", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and "--n" in err and "MB are free" in err and not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- the out folder (issue 25)
def test_generate_refuses_a_second_writer_and_keeps_batches_whole(checkpoint, tmp_path, capsys):
    out = tmp_path / "s"
    args = ["generate", "--checkpoint", str(checkpoint), "--out", str(out), "--no-wav"]
    assert cli_main([*args, "--n", "8", "--seed", "1"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with FolderLock(out, what="a running generate"):  # another run holds the folder
        rc = cli_main([*args, "--n", "4", "--seed", "2"])
        err = capsys.readouterr().err
    assert rc == 2 and "in use by another process" in err and str(out) in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # nothing of the second run
    assert cli_main([*args, "--n", "4", "--seed", "2"]) == 0  # afterwards: one consistent batch
    meta = json.loads((out / "samples.json").read_text())
    assert meta["n"] == 4 and meta["seed"] == 2 and len(np.load(out / "samples.npy")) == 4
    assert sorted(p.name for p in out.glob("sample_*.mid")) == [f"sample_{i:03d}.mid" for i in range(4)]


def test_generate_removes_the_leftovers_of_a_killed_run(checkpoint, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / ".samples.0123abcd.tmp").mkdir()  # a killed run's staging folder
    (out / ".samples.0123abcd.tmp" / "samples.npy").write_bytes(b"half")
    (out / ".samples.npy.89abcdef.tmp").write_bytes(b"half")  # an atomic write's temporary
    (out / "keep.tmp").write_text("not ours")
    (out / ".notes.txt.0123abcd.tmp").write_text("another writer's temporary")
    assert cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(out), "--n", "2", "--no-wav"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [".notes.txt.0123abcd.tmp", "keep.tmp", "sample_000.mid", "sample_001.mid", "samples.json", "samples.npy",
                     "samples.png", "samples_binary.npy"]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_generate_writes_only_regular_files(checkpoint, tmp_path, capsys, kind):
    out = tmp_path / "s"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("mine")
    name = out / "samples.npy"
    {"symlink": lambda: name.symlink_to(target), "fifo": lambda: os.mkfifo(name),
     "folder": lambda: name.mkdir()}[kind]()
    rc = cli_main(["generate", "--checkpoint", str(checkpoint), "--out", str(out), "--n", "2", "--no-wav"])
    err = capsys.readouterr().err
    assert rc == 2 and "samples.npy" in err and "regular files" in err and len(err.splitlines()) == 1, err
    assert target.read_text() == "mine" and (name.is_symlink() or name.is_fifo() or name.is_dir())
    assert sorted(p.name for p in out.iterdir()) == ["samples.npy"]  # nothing else was written
