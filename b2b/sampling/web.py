"""The generator in a web page: ONNX export, noise a browser can reproduce, the page's metadata.

Chapter 9's in-page generator (``_static/b2b-generator.js``) runs the exported model with
onnxruntime-web in the reader's browser, with no kernel and no server:

* :func:`export_onnx` writes the generator of a b2b file as ``generator.onnx`` (noise
  ``(B, latent)`` -> probabilities ``(B, 17, 64, 72)``) and, beside it, ``generator.json``:
  :func:`page_metadata`, the threshold, the geometry and the track table the page needs to
  binarize, draw and play a window. The same JSON is stored in the model's ``metadata_props``
  under the key ``"b2b"``.
* :func:`portable_noise` is the noise of a numbered *seed*, defined by integer arithmetic
  (mulberry32) and the Box–Muller transform, so Python and the page's JavaScript twin
  (``noise`` in ``_static/b2b-generator.js``) draw the same numbers: the page's seed 7 is
  Python's seed 7.
* :func:`page_sample` is the page's generator in Python (a seed, a second seed, the walk between
  them and a threshold -> the window the page draws): what a notebook, which cannot run the
  page's script, shows instead (the chapter's Colab copy).

``b2b export --format onnx --checkpoint data/pretrained/generator.pt --out generator.onnx``
runs :func:`export_onnx` from the command line; the book's build does it for the published page
(``book/api/_ext/b2b_static.py``). Exporting needs the ``onnx`` and ``onnxscript`` packages
(``pip install onnx onnxscript``); checking the file needs ``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from b2b.files.atomic import atomic_path, check_output, claim_output, temporary_re
from b2b.music.audio import synth_recipe  # the page plays tracks with the offline synthesizer's recipes
from b2b.model.checkpoint import load_generator
from b2b.sampling.generate import iter_generate
from b2b.music.geometry import LOWEST_PITCH, SAMPLE_SHAPE, STEPS_PER_BEAT, TRACKS

__all__ = ["NOISE", "WEB_FORMAT", "portable_noise", "page_sample", "page_metadata", "export_onnx", "ONNX_OPSET"]

#: Name of the noise definition shared with the page (see :func:`portable_noise`).
NOISE = "mulberry32-box-muller"
#: ``format`` of the metadata written beside the ONNX model.
WEB_FORMAT = "b2b-web-generator"
#: ONNX opset of the exported model (onnxruntime-web 1.30 runs up to opset 23).
ONNX_OPSET = 18
#: Samples drawn (noise seed 0) to check that the generator's outputs are finite before exporting.
OUTPUT_CHECK_SAMPLES = 8
#: Tempo (beats per minute) the page plays at, as :func:`b2b.music.audio.render` by default.
PAGE_TEMPO = 120.0

_M32 = 0xFFFFFFFF


def _mulberry32(state: int) -> tuple[int, int]:
    """One step of mulberry32: ``(new state, 32-bit output)``; all arithmetic modulo 2**32."""
    a = (state + 0x6D2B79F5) & _M32
    t = ((a ^ (a >> 15)) * (a | 1)) & _M32
    t = ((t + (((t ^ (t >> 7)) * (t | 61)) & _M32)) & _M32) ^ t
    return a, (t ^ (t >> 14)) & _M32


def portable_noise(seeds: int | list[int], latent: int = 128) -> np.ndarray:
    """Standard normal noise ``(len(seeds), latent)`` float32, one row per 32-bit seed.

    Row ``i`` is drawn from mulberry32 seeded with ``seeds[i]``: each pair of 32-bit outputs
    ``(x1, x2)`` gives ``u = (x + 0.5) / 2**32`` in (0, 1) and, by Box–Muller,
    ``sqrt(-2 ln u1) * cos(2 pi u2)`` and ``sqrt(-2 ln u1) * sin(2 pi u2)``, in that order. The
    page computes the same in JavaScript (doubles, rounded to float32 at the end).

    Parameters
    ----------
    seeds : int or sequence of int
        Seeds in ``[0, 2**32)``; an int gives one row.
    latent : int
        Noise size.
    """
    rows = list(seeds) if isinstance(seeds, (list, tuple, range, np.ndarray)) else [seeds]
    out = np.empty((len(rows), latent), np.float32)
    for i, seed in enumerate(rows):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _M32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        state, values = int(seed), []
        while len(values) < latent:
            state, x1 = _mulberry32(state)
            state, x2 = _mulberry32(state)
            r = math.sqrt(-2.0 * math.log((x1 + 0.5) / 4294967296.0))
            angle = 2.0 * math.pi * ((x2 + 0.5) / 4294967296.0)
            values += [r * math.cos(angle), r * math.sin(angle)]
        out[i] = values[:latent]
    return out


def page_sample(checkpoint_path: str | Path, seed: int, seed_b: int | None = None, walk: float = 0.0,
                threshold: float | None = None) -> tuple[np.ndarray, float]:
    """The window the page's generator draws, computed in Python.

    The page (``_static/b2b-generator.js``) draws noise for ``seed`` and ``seed_b`` with
    :func:`portable_noise`, moves ``walk`` of the way from the first to the second along a great
    circle (spherical interpolation, :func:`b2b.sampling.generate.interpolate_latents`), runs the
    generator and keeps the cells above the threshold. This does the same with the checkpoint
    itself.

    Parameters
    ----------
    checkpoint_path : str or Path
        A generator or training checkpoint (:func:`b2b.model.checkpoint.load_generator`).
    seed, seed_b : int
        Seeds in ``[0, 2**32)``; ``seed_b`` None: ``seed + 1``.
    walk : float
        In [0, 1]: 0 is ``seed``'s window, 1 is ``seed_b``'s.
    threshold : float or None
        Cells with probability above it are notes; None: the file's (calibrated) threshold.

    Returns
    -------
    (numpy.ndarray, float)
        The window ``(17, 64, 72)`` bool and the threshold used.
    """
    if isinstance(walk, bool) or not isinstance(walk, (int, float, np.floating)) or not 0.0 <= float(walk) <= 1.0:
        raise ValueError(f"walk: expected a number in [0, 1], got {walk!r}")
    generator, info = load_generator(Path(checkpoint_path))
    thr = float(info["threshold"]) if threshold is None else float(threshold)
    if not 0.0 < thr < 1.0:
        raise ValueError(f"threshold: expected a number strictly between 0 and 1, got {threshold!r}")
    seed_b = seed + 1 if seed_b is None else seed_b
    a, b = (torch.from_numpy(portable_noise(s, int(info["latent"]))[0]) for s in (seed, seed_b))
    z = a if walk == 0 else b if walk == 1 else _slerp(a, b, float(walk))
    generator.eval()
    with torch.no_grad():
        probs = generator(z.view(1, -1).float())[0].cpu().numpy()
    return probs > thr, thr


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The point ``t`` of the way from ``a`` to ``b`` on a great circle, as ``slerp`` in the page's
    script (linear when the angle is under 1e-6)."""
    a64, b64 = a.double(), b.double()
    omega = torch.arccos(((a64 @ b64) / (a64.norm() * b64.norm())).clamp(-1.0, 1.0))
    if omega < 1e-6:
        return ((1 - t) * a64 + t * b64).float()
    return ((torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)).float()


def page_metadata(checkpoint_path: str | Path) -> dict[str, Any]:
    """What the page needs besides the weights, as plain JSON types.

    Keys: ``format``, ``version``, ``latent``, ``shape`` ``[17, 64, 72]``, ``lowest_pitch``
    (MIDI number of pitch row 0), ``steps_per_beat``, ``tempo`` (beats per minute),
    ``threshold`` and ``threshold_source`` (as :func:`b2b.model.checkpoint.load_generator` gives them),
    ``noise`` (:data:`NOISE`), ``tracks`` (per track: ``name``, ``program``, ``is_drum`` and the
    numpy synthesizer's recipe of its General MIDI family: ``partials`` (relative amplitudes of
    harmonics 1, 2, ...), ``attack``, ``decay`` (None: held) and ``release``, in seconds) and
    ``source`` (file name, SHA-256, training step, preset).
    """
    path = Path(checkpoint_path)
    return _metadata(path, load_generator(path)[1])


def _metadata(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """:func:`page_metadata` of the file ``path`` whose :func:`b2b.model.checkpoint.load_generator` info is ``info``."""
    tracks = []
    for t in TRACKS:
        partials, attack, decay, release = synth_recipe(t.program)
        tracks.append({"name": t.name, "program": t.program, "is_drum": t.is_drum, "partials": list(partials),
                       "attack": attack, "decay": decay, "release": release})
    return {
        "format": WEB_FORMAT, "version": 1, "latent": int(info["latent"]), "shape": list(SAMPLE_SHAPE),
        "lowest_pitch": LOWEST_PITCH, "steps_per_beat": STEPS_PER_BEAT, "tempo": PAGE_TEMPO,
        "threshold": float(info["threshold"]), "threshold_source": info["threshold_source"], "noise": NOISE,
        "tracks": tracks,
        "source": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                   "step": int(info["step"]), "preset": info["preset"].name},
    }


def export_onnx(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write the generator of ``checkpoint_path`` as an ONNX model, and its page metadata.

    The model maps ``noise`` ``(B, latent)`` float32 to ``probabilities`` ``(B, 17, 64, 72)``
    (the generator in eval mode: batch norm uses its running statistics), opset
    :data:`ONNX_OPSET`, weights inside the file. :func:`page_metadata` goes into the model's
    ``metadata_props`` (key ``"b2b"``) and into ``out_path`` with the suffix ``.json``. Both
    files are written atomically.

    Raises
    ------
    ValueError
        ``out_path`` does not end in ``.onnx``, the checkpoint is not a usable generator, or
        the exporter cannot translate it (the exporter's first line is given).
    ModuleNotFoundError
        ``onnx`` or ``onnxscript`` is not installed.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ValueError(f"out: {out_path} should end in .onnx")
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise ModuleNotFoundError(f"exporting to ONNX needs the {package!r} package: "
                                      "pip install onnx onnxscript", name=package) from None
    import onnx

    g, info = load_generator(checkpoint_path)
    try:  # finite weights can still give NaN (e.g. weights x 1e30): refuse as generate and evaluate do
        for _ in iter_generate(g, OUTPUT_CHECK_SAMPLES, seed=0):
            pass
    except ValueError as e:
        raise ValueError(f"checkpoint {checkpoint_path}: {e}") from None
    meta = _metadata(Path(checkpoint_path), info)
    z = torch.zeros(2, meta["latent"])
    quiet = logging.getLogger("torch.onnx")  # it warns that torchvision's operators are not registered
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                g, (z,), dynamo=True, input_names=["noise"], output_names=["probabilities"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                opset_version=ONNX_OPSET, verbose=False, optimize=True)
    except Exception as e:  # the exporter raises its own error types
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ValueError(f"checkpoint {checkpoint_path}: the generator could not be exported to ONNX: "
                         f"{first}") from e
    finally:
        quiet.setLevel(level)
    model = program.model_proto
    model.metadata_props.add(key="b2b", value=json.dumps(meta))
    onnx.checker.check_model(model)
    text = json.dumps(meta, indent=1) + "\n"
    side = out_path.with_suffix(".json")
    check_output(side)
    leftovers = re.compile(f"{temporary_re(out_path.name).pattern}|{temporary_re(side.name).pattern}")
    lock = claim_output(out_path, f"--out {out_path}", file=True, pattern=leftovers)
    try:
        with atomic_path(out_path) as tmp:
            Path(tmp).write_bytes(model.SerializeToString())
        with atomic_path(side) as tmp:
            Path(tmp).write_text(text)
    finally:
        lock.release()
    return out_path
