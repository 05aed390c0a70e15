"""The generator in a web page (chapter 9): b2b.sampling.web, ``b2b export --format onnx``, the page itself.

The page's JavaScript (``_static/b2b-generator.js``) is checked twice: its noise against
:func:`b2b.sampling.web.portable_noise` under Node.js, and the whole page in headless Chromium
(``scripts/check_html_generator.py --harness``: a click gives the Python generator's pianoroll
and audio). Each is skipped where its program is missing; ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b import cli
from b2b.sampling import web
from b2b.model.checkpoint import atomic_torch_save, load_generator
from b2b.music.data import SAMPLE_SHAPE, TRACKS

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "data" / "pretrained" / "generator.pt"
JS = ROOT / "_static" / "b2b-generator.js"


def _mulberry32_numpy(seed: int, n: int) -> np.ndarray:
    """n outputs of mulberry32, written independently with numpy uint64 arithmetic."""
    m = np.uint64(0xFFFFFFFF)
    a, out = np.uint64(seed), []
    for _ in range(n):
        a = (a + np.uint64(0x6D2B79F5)) & m
        t = ((a ^ (a >> np.uint64(15))) * (a | np.uint64(1))) & m
        t = ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & m)) & m) ^ t
        out.append(int((t ^ (t >> np.uint64(14))) & m))
    return np.array(out, dtype=np.float64)


def test_portable_noise_is_box_muller_of_mulberry32():
    x = _mulberry32_numpy(7, 8)
    u1, u2 = (x[0::2] + 0.5) / 2**32, (x[1::2] + 0.5) / 2**32
    r = np.sqrt(-2 * np.log(u1))
    expected = np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1).reshape(-1)
    z = web.portable_noise(7, latent=8)
    assert z.shape == (1, 8) and z.dtype == np.float32
    np.testing.assert_allclose(z[0], expected, rtol=1e-6)
    # the first output of mulberry32(0), as the canonical JavaScript mulberry32 gives it under Node
    assert int(_mulberry32_numpy(0, 1)[0]) == web._mulberry32(0)[1] == 1144304738
    np.testing.assert_array_equal(web.portable_noise([7, 8], latent=5)[1], web.portable_noise(8, latent=5)[0])
    assert web.portable_noise(3, latent=7).shape == (1, 7)  # an odd size drops the last sine


def test_portable_noise_is_standard_normal():
    z = web.portable_noise(list(range(400)), latent=128).reshape(-1)  # 51,200 values
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.005  # the normal's tails, not a uniform's
    for bad in (-1, 2**32, 1.5, True, "7"):
        with pytest.raises(ValueError, match="seed must be an integer"):
            web.portable_noise(bad)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_page_noise_is_python_noise():
    seeds = [0, 7, 123456789, 2**32 - 1]
    code = (f"const g = require({json.dumps(str(JS))});"
            f"console.log(JSON.stringify({json.dumps(seeds)}.map(s => Array.from(g.noise(s, 128)))));")
    out = json.loads(subprocess.run(["node", "-e", code], capture_output=True, text=True, check=True).stdout)
    np.testing.assert_array_equal(np.asarray(out, np.float32), web.portable_noise(seeds))


def test_page_metadata_has_the_tracks_and_threshold():
    meta = web.page_metadata(PRETRAINED)
    _, info = load_generator(PRETRAINED)
    assert meta["format"] == web.WEB_FORMAT and meta["shape"] == list(SAMPLE_SHAPE) == [17, 64, 72]
    assert meta["threshold"] == info["threshold"] and meta["threshold_source"] == "calibrated"
    assert [t["name"] for t in meta["tracks"]] == [t.name for t in TRACKS]
    assert meta["tracks"][0]["is_drum"] and not any(t["is_drum"] for t in meta["tracks"][1:])
    assert meta["tracks"][5]["name"] == "Bass" and meta["tracks"][5]["program"] == 32
    assert meta["source"]["sha256"] == hashlib.sha256(PRETRAINED.read_bytes()).hexdigest()
    json.dumps(meta)  # plain JSON types


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("onnxscript")
    out = tmp_path_factory.mktemp("onnx") / "generator.onnx"
    assert cli.main(["export", "--format", "onnx", "--checkpoint", str(PRETRAINED), "--out", str(out)]) == 0
    return out


def test_onnx_model_computes_the_generator(exported):
    ort = pytest.importorskip("onnxruntime")
    g, info = load_generator(PRETRAINED)
    z = web.portable_noise(list(range(8)))
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["noise"]
    got = session.run(None, {"noise": z})[0]
    with torch.no_grad():
        want = g(torch.from_numpy(z)).numpy()
    assert got.shape == (8, *SAMPLE_SHAPE)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)  # float32 kernels in another order
    thr = info["threshold"]
    differ = (got > thr) != (want > thr)
    assert np.all(np.abs(want[differ] - thr) < 1e-5)  # notes differ only at the threshold itself
    one = session.run(None, {"noise": z[3:4]})[0]  # any batch size
    np.testing.assert_allclose(one[0], got[3], atol=1e-6)


def test_onnx_export_writes_its_metadata_twice(exported):
    onnx = pytest.importorskip("onnx")
    meta = json.loads(exported.with_suffix(".json").read_text())
    assert meta == web.page_metadata(PRETRAINED)
    model = onnx.load(str(exported))
    assert json.loads({p.key: p.value for p in model.metadata_props}["b2b"]) == meta
    assert exported.stat().st_size < 2_000_000  # the weights are inside, the file stays small
    assert not list(exported.parent.glob(".*.tmp"))


def test_onnx_export_refuses_with_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxscript")
    out = tmp_path / "g.onnx"

    def run(*extra: str) -> str:
        assert cli.main(["export", "--format", "onnx", "--checkpoint", str(PRETRAINED), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        return err

    assert ".onnx" in run("--out", str(tmp_path / "g.pt"))
    assert "calibrate it first" in run("--out", str(out), "--data", "bach")
    assert "does not exist" in run("--out", str(tmp_path / "no" / "g.onnx"))
    # a generator with broken weights
    ckpt = torch.load(PRETRAINED, weights_only=True)
    key = next(k for k, v in ckpt["generator"].items() if v.is_floating_point())
    ckpt["generator"][key] = torch.full_like(ckpt["generator"][key], float("nan"))
    atomic_torch_save(ckpt, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="not finite"):
        web.export_onnx(tmp_path / "nan.pt", out)
    # the exporter fails: its first line, naming the file
    def fail(*a, **k):
        raise RuntimeError("Unsupported operator aten::something\nmore details\nand more")
    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ValueError, match=r"generator.pt: the generator could not be exported to ONNX: "
                                         r"Unsupported operator aten::something$"):
        web.export_onnx(PRETRAINED, out)
    assert "could not be exported" in run("--out", str(out))
    # the exporter's packages are missing
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)
    with pytest.raises(ModuleNotFoundError, match="pip install onnx onnxscript"):
        web.export_onnx(PRETRAINED, out)
    assert "pip install onnx onnxscript" in run("--out", str(out))
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_vendored_runtime_is_the_one_its_readme_names():
    folder = ROOT / "_static" / "onnxruntime-web"
    listed = dict((name, sha) for sha, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", (folder / "README.md").read_text(), re.M))
    assert set(listed) == {"ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"}
    for name, sha in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert "onnxruntime-web" in (ROOT / "NOTICE.md").read_text()
    assert "1.30.0" in (folder / "ort.wasm.min.js").read_text()[:200]


def test_chapter_8_holds_the_generator_element():
    from conftest import load_script

    markup = load_script("check_html_generator").chapter_markup()
    assert markup.startswith('<div class="b2b-generator"') and markup.endswith("</div>")


def _chromium() -> str | None:
    from conftest import load_script

    return load_script("check_html_audio").find_chromium()


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install -y chromium; .ci/run installs it)")
def test_the_page_generates_the_python_window_and_plays_it(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    from conftest import load_script

    check = load_script("check_html_generator")
    rc = check.main(["--harness", str(tmp_path / "site"), "--seed", "11"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "the page's pianoroll is the Python generator's" in out and "click to sound" in out


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_page_synthesizer_is_the_numpy_synthesizer():
    from b2b.music.audio import _tone

    meta = web.page_metadata(PRETRAINED)
    sr, step = 16000, 60.0 / (meta["tempo"] * meta["steps_per_beat"])
    notes = [{"track": 1, "pitch": 60, "start": 0, "end": 4}, {"track": 5, "pitch": 40, "start": 8, "end": 16},
             {"track": 3, "pitch": 67, "start": 6, "end": 7}]  # piano, bass, organ (held: no decay)
    code = (f"const g = require({json.dumps(str(JS))});"
            f"console.log(JSON.stringify(Array.from(g.synthesize({json.dumps(notes)}, {json.dumps(meta)}, {sr}))));")
    page = np.asarray(json.loads(subprocess.run(["node", "-e", code], capture_output=True, text=True,
                                                check=True).stdout))
    want = np.zeros(len(page))
    for n in notes:
        program = meta["tracks"][n["track"]]["program"]
        tone = _tone(n["pitch"], 100, (n["end"] - n["start"]) * step, program, sr)
        at = round(n["start"] * step * sr)
        want[at : at + len(tone)] += tone[: len(want) - at]
    want *= 0.9 / np.abs(want).max()
    assert len(page) == int(np.ceil((64 * step + 0.75) * sr))
    np.testing.assert_allclose(page, want, atol=1e-5)  # measured: 7e-8


def test_the_book_build_exports_the_shipped_generator(tmp_path):
    pytest.importorskip("onnxscript")
    import sys
    import types

    sys.path.insert(0, str(ROOT / "book" / "api" / "_ext"))
    import b2b_static

    app = types.SimpleNamespace(outdir=str(tmp_path), confdir=str(ROOT), builder=types.SimpleNamespace(format="html"))
    b2b_static._export_model(app, RuntimeError("the build failed"))  # nothing after a failed build
    assert not (tmp_path / "_static").exists()
    b2b_static._export_model(app, None)
    meta = json.loads((tmp_path / "_static" / "b2b" / "generator.json").read_text())
    assert meta["source"]["sha256"] == hashlib.sha256(PRETRAINED.read_bytes()).hexdigest()
    assert (tmp_path / "_static" / "b2b" / "generator.onnx").stat().st_size > 100_000


def test_onnx_export_refuses_a_generator_whose_outputs_are_not_finite(tmp_path, capsys):
    """Finite weights x 1e30 overflow inside the network: generate refuses the file, so must export."""
    pytest.importorskip("onnxscript")
    ckpt = torch.load(PRETRAINED, weights_only=True)
    ckpt["generator"] = {k: v * 1e30 if v.is_floating_point() else v for k, v in ckpt["generator"].items()}
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["generator"].values() if v.is_floating_point())
    bad = tmp_path / "huge.pt"
    atomic_torch_save(ckpt, bad)
    out = tmp_path / "g.onnx"
    assert cli.main(["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "s"), "--n", "2"]) == 2
    assert "not finite" in capsys.readouterr().err
    assert cli.main(["export", "--format", "onnx", "--checkpoint", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "huge.pt" in err and "not finite (NaN or inf)" in err, err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_page_sample_is_the_pages_window_in_python(tmp_path):
    """Seed s at the calibrated threshold is generator(portable_noise(s)) > threshold; the walk's ends
    are the two seeds' windows, its middle a great-circle point (norm kept, unlike a straight line)."""
    path = PRETRAINED
    generator, info = load_generator(path)
    with torch.no_grad():
        probs = generator(torch.from_numpy(web.portable_noise([7, 8], info["latent"]))).numpy()
    window, threshold = web.page_sample(path, 7)
    assert threshold == info["threshold"] and window.shape == SAMPLE_SHAPE
    assert np.array_equal(window, probs[0] > threshold)
    assert np.array_equal(web.page_sample(path, 7, 8, walk=1.0)[0], probs[1] > threshold)
    assert np.array_equal(web.page_sample(path, 7, None, walk=1.0)[0], probs[1] > threshold)  # seed + 1
    assert web.page_sample(path, 7, threshold=0.9)[0].sum() <= window.sum()
    a, b = (torch.from_numpy(web.portable_noise(s, info["latent"])[0]) for s in (7, 8))
    mid = web._slerp(a, b, 0.5)
    assert abs(float(mid.norm()) - float((a.norm() + b.norm()) / 2)) < 0.05 * float(a.norm())
    assert float(((a + b) / 2).norm()) < 0.8 * float(a.norm())
    for bad in ({"walk": 1.5}, {"walk": True}, {"threshold": 1.0}):
        with pytest.raises(ValueError):
            web.page_sample(path, 7, **bad)
