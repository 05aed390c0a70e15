"""Checkpoint files: their format, where they are, and loading them safely.

Two kinds of file share one format family (``torch.save`` of plain dicts, loaded with
``torch.load(weights_only=True)``):

- a **training checkpoint** (``format`` ``"b2b-checkpoint"``), written by
  :class:`b2b.training.trainer.Trainer` as ``checkpoint_<step:08d>.pt``: both networks, optimizers,
  schedulers, random states, history, the run's config and preset, and a fingerprint of its data;
- an **exported generator** (``format`` ``"b2b-generator"``), written by
  :func:`b2b.sampling.export.export_generator`: the generator's weights, its preset and, when calibrated,
  its binarization threshold.

Both carry ``version`` :data:`FORMAT_VERSION` and ``digest``, which loading verifies (torch does
not check its archive's CRCs, so a damaged file would otherwise load silently). Since 2026-12-07
(``seal`` :data:`SEAL_VERSION`) the digest is the SHA-256 of every entry of the file, tensors and
plain values alike (:func:`tensor_digest`): a changed threshold, calibration, preset, step, data
fingerprint or ``weights`` marker is refused like a flipped weight byte. Files from before still
load, with a one-line note on stderr: those of 2026-12-03 to 12-06 carry a digest of their tensors
only, older ones none. :func:`load_checkpoint` checks any of them and
:func:`load_generator` builds the generator of either. What a training checkpoint needs to be
exact is here too: :func:`rng_state` / :func:`set_rng_state` (every random state a run draws
from) and :func:`data_fingerprint` (a resume on other data is refused).

Training checkpoint (``<out>/checkpoint_<step:08d>.pt``, written atomically by
:func:`save_training_checkpoint` for :meth:`b2b.training.trainer.Trainer.save_checkpoint`, the last ``keep``
kept; :func:`restore_training` loads it back into a run), a dict:

=================  ==========================================================================
``format``         ``"b2b-checkpoint"``; ``version``: ``1``
``step``           completed generator steps (int)
``config``         :class:`b2b.training.trainer.TrainerConfig` as a plain dict (the run's settings)
``preset``         :meth:`b2b.model.presets.Preset.to_dict`: the networks, the training hyper-parameters
                   (``training``) and the sampling threshold; files written before 2026-11-29
                   kept the hyper-parameters in ``config`` (:func:`preset_of` reads both)
``generator``      generator ``state_dict`` (plain module, not DDP-wrapped)
``generator_ema``  only when the preset's ``training.ema`` > 0: the moving average of the
                   generator's weights (:mod:`b2b.training.ema`), which :func:`load_generator` and
                   export take instead of ``generator``
``critic``         critic ``state_dict``
``opt_g/opt_d``    Adam ``state_dict`` of each
``sched_g/d``      StepLR ``state_dict`` of each
``sampler``        ``{"perm": int64 tensor (n,), "cursor": int}`` the batch-index permutation
``rng``            one entry per rank: ``{"torch": uint8 tensor, "cuda": uint8 tensor or None,
                   "batch": uint8 tensor (the sampler's Generator), "numpy": {...}, "python":
                   {...}}`` (:func:`rng_state`)
``data``           ``{"name": str, "n": int, "shape": [17, 64, 72], "fingerprint": "sha256:..."}``
                   (:func:`data_fingerprint` of the windows; a resume on other data is refused)
``history``        list of dict rows (:data:`b2b.training.history.HISTORY_FIELDS`)
``elapsed``        training wall time so far (s)
``seal``           :data:`SEAL_VERSION`: the digest covers every entry (files before it: tensors only)
``digest``         ``"sha256:..."`` of every entry above (:func:`tensor_digest`), added by
                   :func:`atomic_torch_save` and verified on loading
=================  ==========================================================================

:func:`load_checkpoint` loads only tensors and plain data and checks the fields above, so a file
that is not a b2b checkpoint, truncated, damaged (its digest does not match), of an unknown
version or malformed (a sampler that is not a permutation of the data, history rows that are not
numbers, a preset the weights do not fit) gives one line, before a resume writes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import os
import pickle
import random
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from b2b.files.atomic import atomic_write
from b2b.music.geometry import SAMPLE_SHAPE, check_threshold
from b2b.model.networks import DiscConvNet, GenConvNet
from b2b.model.presets import Preset, TrainingConfig

__all__ = ["CHECKPOINT_FORMAT", "GENERATOR_FORMAT", "FORMAT_VERSION", "resolve_device", "atomic_torch_save",
           "latest_checkpoint", "checkpoints", "load_checkpoint", "check_resumable", "save_training_checkpoint",
           "restore_training", "tensor_digest", "load_generator", "preset_of", "data_fingerprint",
           "seed_rng", "rng_state", "gathered_rng_states", "set_rng_state"]

CHECKPOINT_FORMAT = "b2b-checkpoint"
GENERATOR_FORMAT = "b2b-generator"
FORMAT_VERSION = 1
#: What a file's ``digest`` covers: 2, every entry (tensors and plain values); files without a
#: ``seal`` entry have a digest of their tensors only (or none).
SEAL_VERSION = 2
_CKPT_RE = re.compile(r"^checkpoint_(\d+)\.pt$")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as given.

    ValueError naming ``--device`` for anything else (``mps``, ``meta``, ``xla``, a typo) and for
    CUDA (or a CUDA index) this machine does not have: b2b runs on the CPU and on CUDA only.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device: unknown device {str(device)!r} (use auto, cpu or cuda)") from e
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {str(device)!r} is not usable by b2b (use auto, cpu or cuda)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically; a failed write is an OSError naming ``path``.

    The object is serialized in memory first (checkpoints are a few MB), so a full disk or a
    read-only folder surfaces as Python's OSError (ENOSPC, EROFS, ...) from the plain write, not
    as torch's ``RuntimeError ... inline_container.cc ... unexpected pos``, and nothing is left
    under ``path`` or a temporary name.
    """
    if isinstance(obj, dict) and obj.get("format") in (CHECKPOINT_FORMAT, GENERATOR_FORMAT):
        obj = {k: v for k, v in obj.items() if k not in ("digest", "seal")}
        obj["seal"] = SEAL_VERSION
        obj["digest"] = tensor_digest(obj)
    buf = io.BytesIO()
    try:
        torch.save(obj, buf)
    except RuntimeError as e:  # serialization itself failed: nothing was written
        raise ValueError(f"{path}: could not serialize the checkpoint: {str(e).splitlines()[0]}") from e
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def latest_checkpoint(out: str | Path) -> Path | None:
    """The checkpoint with the highest step in folder ``out``, or None."""
    ckpts = checkpoints(Path(out))
    return ckpts[-1] if ckpts else None


def checkpoints(out: Path) -> list[Path]:
    """The ``checkpoint_<step>.pt`` files in folder ``out``, oldest step first."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a b2b checkpoint (or exported generator) on the CPU with ``weights_only=True``.

    Only tensors and plain data are ever loaded. The contents are checked (format, a known
    version, the fields the readers use and their types) so that a bad file gives one line.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        One line naming the file and why: not a torch file, empty, truncated, holds Python objects
        other than tensors and plain data, not a b2b checkpoint, an unknown version, or a
        malformed field (never torch's advice to load unsafely).
    """
    path = Path(path)
    _check_readable(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - never show torch's advice to load unsafely
        raise ValueError(f"checkpoint {path} could not be read as a b2b checkpoint: {_load_failure(path, e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (CHECKPOINT_FORMAT, GENERATOR_FORMAT):
        what = f"format {ckpt.get('format')!r}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise ValueError(f"checkpoint {path} is not a b2b checkpoint: it holds {what}, expected "
                         f"{CHECKPOINT_FORMAT!r} or {GENERATOR_FORMAT!r}")
    if ckpt.get("version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path}: format version {ckpt.get('version')!r} is not known to this "
                         f"b2b (it reads version {FORMAT_VERSION}); use the b2b that wrote it")
    if "seal" in ckpt and ckpt["seal"] != SEAL_VERSION:
        raise ValueError(f"checkpoint {path}: seal {ckpt['seal']!r} is not known to this b2b (it reads seal "
                         f"{SEAL_VERSION}); use the b2b that wrote it")
    if "seal" in ckpt and "digest" not in ckpt:
        raise ValueError(f"checkpoint {path} is damaged: it says it is sealed but carries no digest")
    if "digest" in ckpt and ckpt["digest"] != tensor_digest(ckpt):
        what = "its contents (weights, threshold, preset, step ...)" if "seal" in ckpt else "its tensors"
        raise ValueError(f"checkpoint {path} is damaged: {what} do not match the SHA-256 digest it "
                         "carries (a flipped or overwritten byte, or an edited entry); use another copy")
    problem = _checkpoint_problem(ckpt)
    if problem:
        raise ValueError(f"checkpoint {path} is malformed: {problem}")
    if "seal" not in ckpt:
        _note_unsealed(path, "digest" in ckpt)
    return ckpt


def tensor_digest(obj: Any) -> str:
    """The SHA-256 digest of a checkpoint dict (its ``digest`` entry left out): ``"sha256:<hex>"``.

    Entries are visited in the dict's order (nested dicts, lists and tuples too). A tensor adds
    its place (the keys leading to it), dtype, shape and bytes; with ``seal`` :data:`SEAL_VERSION`
    in ``obj`` every other value (number, string, bool, None) adds its place, type and value too,
    and a dict or list its length, so that any entry that changes behaviour (threshold,
    calibration, preset, step, data fingerprint, ``weights``) changes the digest. Without
    ``seal`` (files of 2026-12-03 to 12-06) only the tensors count.
    """
    h = hashlib.sha256()
    sealed = isinstance(obj, dict) and obj.get("seal") == SEAL_VERSION

    def visit(x: Any, where: str) -> None:
        if isinstance(x, Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"{where}|{str(x.dtype)}|{tuple(x.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            if sealed:
                h.update(f"{where}|dict|{len(x) - (where == '' and 'digest' in x)}|".encode())
            for k, v in x.items():
                if not (where == "" and k == "digest"):
                    visit(v, f"{where}/{k!r}")
        elif isinstance(x, (list, tuple)):
            if sealed:
                h.update(f"{where}|{type(x).__name__}|{len(x)}|".encode())
            for i, v in enumerate(x):
                visit(v, f"{where}/{i}")
        elif sealed:
            h.update(f"{where}|{type(x).__name__}|{x!r}|".encode("utf-8", "backslashreplace"))

    visit(obj, "")
    return "sha256:" + h.hexdigest()


_NOTED: set[str] = set()


def _note_unsealed(path: Path, tensors: bool) -> None:
    """One line on stderr (once per file and process) for a file whose entries are not all sealed."""
    key = str(Path(path).resolve())
    if key in _NOTED:
        return
    _NOTED.add(key)
    what = ("its digest covers the tensors only" if tensors else "it carries no digest")
    print(f"b2b: note: {path} was written before b2b sealed every entry ({what}); it loads, but damage "
          "to its unsealed entries cannot be detected: re-export it to seal it", file=sys.stderr)


def _check_readable(path: Path) -> None:
    """One accurate line when ``path`` cannot be a checkpoint file: missing, a symlink loop, a
    folder, a FIFO or device, or unreadable (FileNotFoundError for missing, else ValueError)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileNotFoundError(f"checkpoint {path} is a symbolic link to a file that does not exist") from None
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"checkpoint {path} is a symbolic link loop, not a file") from None
        raise ValueError(f"checkpoint {path} cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"checkpoint {path} is a folder; expected a checkpoint file (e.g. {path}/checkpoint_*.pt)")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise ValueError(f"checkpoint {path} is {kind}, not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ValueError(f"checkpoint {path} cannot be read ({e.strerror or e}; check its permissions)") from None


def _load_failure(path: Path, e: BaseException) -> str:
    """Why ``torch.load`` failed, in a few words (never torch's multi-line advice)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if not head:
        return "the file is empty"
    if head != b"PK\x03\x04":
        return "not a torch file (a torch file is a zip archive)"
    if isinstance(e, pickle.UnpicklingError):
        return "it holds Python objects other than tensors and plain data, which b2b does not load"
    return f"truncated or corrupt (an incomplete torch archive; {type(e).__name__})"


def _is_state_dict(x: Any) -> bool:
    return isinstance(x, dict) and bool(x) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in x.items())


def preset_of(ckpt: dict[str, Any]) -> Preset:
    """The preset a checkpoint (or generator file) was trained with, hyper-parameters included.

    Files written before 2026-11-29 kept the run's training hyper-parameters in ``config``
    (e.g. ``batch`` 16 beside a preset of batch 64); they are moved into the preset's
    ``training`` here, so old and new files read alike. ValueError/TypeError if malformed.
    """
    preset = Preset.from_dict(ckpt["preset"])
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    legacy = {f.name: config[f.name] for f in dataclasses.fields(TrainingConfig) if config.get(f.name) is not None}
    return preset.with_training(**legacy) if legacy else preset


def check_resumable(ckpt: dict[str, Any], preset: Preset, seed: int, n: int, fingerprint: str, *,
                    data_name: str = "", source: Any = "checkpoint", warn: bool = True) -> None:
    """Refuse a checkpoint that a run cannot continue: ValueError naming ``source`` and the difference.

    The run has ``preset`` (its networks and hyper-parameters must match; its name, description
    and sampling threshold need not), ``seed``, and ``n`` windows whose :func:`data_fingerprint`
    is ``fingerprint``. A checkpoint that predates fingerprints is accepted with a warning on
    stderr (when ``warn``).
    """
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: not a training checkpoint (format {ckpt.get('format')!r}); cannot resume")
    # the networks, hyper-parameters and seed must match; the preset's name, description and
    # sampling threshold need not (a run found under one name may be continued under the name
    # it was given later); fields added since the checkpoint was written take their defaults
    try:
        theirs = preset_of(ckpt).to_dict()
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{source}: malformed preset in checkpoint: {e}") from None
    mine = preset.to_dict()
    diff = [f"{part}.{k} is {theirs[part][k]!r} there, {mine[part][k]!r} here"
            for part in ("generator", "critic", "training") for k in mine[part] if theirs[part].get(k) != mine[part][k]]
    if ckpt["config"].get("seed") != seed:
        diff.append(f"seed is {ckpt['config'].get('seed')!r} there, {seed!r} here")
    if diff:
        raise ValueError(f"{source}: the checkpoint was trained with other settings (preset "
                         f"{ckpt['preset'].get('name')!r}, this run {preset.name!r}): {'; '.join(diff)}; "
                         "resume with the run's own settings (e.g. the same --preset, --batch, --seed)")
    data = ckpt.get("data", {})
    if data.get("n") != n or list(data.get("shape", [])) != list(SAMPLE_SHAPE):
        raise ValueError(f"{source}: checkpoint was trained on {data.get('n')} windows of shape "
                         f"{data.get('shape')}, the dataset has {n} of shape {list(SAMPLE_SHAPE)}")
    if "fingerprint" not in data:
        if warn:
            print(f"b2b: warning: {source} predates data fingerprints; cannot check that the data is the "
                  "same as the run's", file=sys.stderr)
    elif data["fingerprint"] != fingerprint:
        raise ValueError(f"{source}: checkpoint was trained on other data ({data.get('name') or 'unnamed'}, "
                         f"{str(data['fingerprint'])[:19]}...) than this dataset "
                         f"({data_name or 'unnamed'}, {fingerprint[:19]}...), "
                         "though of the same size; resume with the run's --data")


def save_training_checkpoint(state: dict[str, Any], out: Path, keep: int, last_good: Path | None) -> Path:
    """Write ``state`` as ``<out>/checkpoint_<step:08d>.pt`` atomically, keep the last ``keep``; the path.

    A failed write (full disk, read-only folder) is an OSError naming the file, the step and the
    last good checkpoint (``last_good``), which is untouched.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"checkpoint_{state['step']:08d}.pt"
    try:
        atomic_torch_save(state, path)
    except OSError as e:
        if e.errno is None:
            raise
        kept = f"the last good checkpoint is {last_good.name}" if last_good else "no checkpoint was written yet"
        raise OSError(e.errno, f"{e.strerror}; step {state['step']} was not saved ({kept})",
                      e.filename if e.filename is not None else str(path)) from e
    for old in checkpoints(out)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def restore_training(ckpt: dict[str, Any], source: Any, networks: tuple[torch.nn.Module, ...],
                     optimizers: tuple[torch.optim.Optimizer, ...], schedulers: tuple[Any, ...],
                     batch_gen: torch.Generator, device: torch.device, *, rank: int = 0, world: int = 1,
                     seed: int = 0, ema: torch.nn.Module | None = None) -> tuple[int, Tensor, int, list[dict[str, float]], float]:
    """Load a training checkpoint into a run; returns its ``(step, perm, cursor, history, elapsed)``.

    ``networks`` are (generator, critic), ``optimizers`` (opt_g, opt_d) and ``schedulers``
    (sched_g, sched_d) in that order. An optimizer gets the file's state (moments, steps) and
    settings, but how it runs stays the run's (fused, capturable, its learning rate a device tensor
    or a float). The random states are this ``rank``'s when the file has ``world`` of them; with a
    different number of processes the batch order is kept and torch is reseeded with
    ``seed + 1 + rank + 1000 * step``. ``ema``, the run's moving-average generator (:mod:`b2b.training.ema`),
    gets ``generator_ema``. ValueError naming ``source`` for anything that does not fit.
    """
    try:
        if ema is not None:
            if "generator_ema" not in ckpt:
                raise ValueError("no 'generator_ema' (the moving average of the generator) for a run that keeps one")
            networks = (*networks, ema)
        return _restore(ckpt, networks, optimizers, schedulers, batch_gen, device, rank, world, seed)
    except ValueError as e:
        raise ValueError(f"{source}: {str(e).splitlines()[0] if str(e) else 'malformed checkpoint'}") from e
    except (KeyError, TypeError, IndexError, RuntimeError, AttributeError) as e:
        raise ValueError(f"{source}: malformed checkpoint: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from e


def _restore(ckpt: dict[str, Any], networks: tuple[torch.nn.Module, ...], optimizers: tuple[torch.optim.Optimizer, ...],
             schedulers: tuple[Any, ...], batch_gen: torch.Generator, device: torch.device, rank: int, world: int,
             seed: int) -> tuple[int, Tensor, int, list[dict[str, float]], float]:
    try:
        for net, key in zip(networks, ("generator", "critic", "generator_ema")):
            net.load_state_dict(ckpt[key])
    except RuntimeError as e:
        raise ValueError(f"network weights do not fit: {str(e).splitlines()[0]}") from e
    for opt, key in zip(optimizers, ("opt_g", "opt_d")):
        own = [{k: group[k] for k in ("fused", "capturable", "foreach", "lr")} for group in opt.param_groups]
        opt.load_state_dict(ckpt[key])
        for group, mine in zip(opt.param_groups, own):  # the file's rate, in the run's form
            lr = float(group["lr"])
            group.update(mine, lr=torch.tensor(lr, device=mine["lr"].device) if isinstance(mine["lr"], Tensor) else lr)
    for sched, key in zip(schedulers, ("sched_g", "sched_d")):
        sched.load_state_dict(ckpt[key])
    step, rngs = int(ckpt["step"]), ckpt["rng"]
    perm, cursor = ckpt["sampler"]["perm"].clone(), int(ckpt["sampler"]["cursor"])
    if len(rngs) == world:
        set_rng_state(rngs[rank], device, batch_gen)
    else:  # a different number of processes: keep the batch order, reseed the rest per rank
        batch_gen.set_state(rngs[0]["batch"])
        torch.manual_seed(seed + 1 + rank + 1000 * step)
    return step, perm, cursor, list(ckpt.get("history", [])), float(ckpt.get("elapsed", 0.0))


def data_fingerprint(x: Tensor) -> str:
    """SHA-256 of a window tensor's dtype, shape and values: ``"sha256:<hex>"``.

    Binary data is hashed as bools, so the same windows give the same fingerprint whether they
    come as a float tensor or from a store.
    """
    x = x.detach().cpu().contiguous()
    h = hashlib.sha256(f"{str(x.dtype).replace('torch.', '')}{tuple(x.shape)}".encode())
    arr = x.numpy()
    h.update(arr.view(np.uint8) if arr.dtype == np.bool_ else arr)
    return "sha256:" + h.hexdigest()


def seed_rng(seed: int) -> None:
    """Seed torch's (and every CUDA device's), numpy's and Python's generators with ``seed``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state(device: torch.device, batch_gen: torch.Generator) -> dict[str, Any]:
    """Every random state a run draws from, as plain tensors and numbers (``weights_only`` safe):
    torch's (and CUDA's on a CUDA ``device``), the batch sampler's ``batch_gen``, numpy's, Python's."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "batch": batch_gen.get_state(),
            "numpy": _numpy_rng_state(), "python": _python_rng_state()}


def gathered_rng_states(device: torch.device, batch_gen: torch.Generator) -> list[dict[str, Any]]:
    """Every process's :func:`rng_state`, by rank (one entry without DDP; a collective under DDP)."""
    rng = rng_state(device, batch_gen)
    if not (dist.is_available() and dist.is_initialized()):
        return [rng]
    ranks: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, rng)
    return ranks


def set_rng_state(s: dict[str, Any], device: torch.device, batch_gen: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved (CUDA's only on a CUDA ``device``)."""
    torch.set_rng_state(s["torch"])
    if s.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(s["cuda"], device)
    batch_gen.set_state(s["batch"])
    _set_numpy_rng_state(s["numpy"])
    _set_python_rng_state(s["python"])


def _numpy_rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_rng_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_python_rng_state(s: dict[str, Any]) -> None:
    random.setstate((s["version"], tuple(int(v) for v in s["state"].tolist()), s["gauss"]))


def _checkpoint_problem(ckpt: dict[str, Any]) -> str | None:
    """What is wrong with a loaded checkpoint dict of a known format and version, or None."""
    if "preset" not in ckpt:
        return "no 'preset' (the networks' description)"
    try:
        preset_of(ckpt)
    except Exception as e:  # noqa: BLE001 - any failure means a malformed preset
        return f"'preset' is not a valid preset ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if not _is_state_dict(ckpt.get("generator")):
        return "'generator' is not a state dict of tensors"
    preset = preset_of(ckpt)
    problem = _fits(GenConvNet, preset.generator, ckpt["generator"], "generator", preset.name)
    if problem:
        return problem
    if "generator_ema" in ckpt:
        if not _is_state_dict(ckpt["generator_ema"]):
            return "'generator_ema' is not a state dict of tensors"
        problem = _fits(GenConvNet, preset.generator, ckpt["generator_ema"], "generator_ema", preset.name)
        if problem:
            return problem
    step = ckpt.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"'step' is {step!r}, expected an integer >= 0"
    if not isinstance(ckpt.get("config", {}), dict):
        return "'config' is not a dict"
    if not isinstance(ckpt.get("data", {}), dict):
        return "'data' is not a dict"
    if ckpt["format"] != CHECKPOINT_FORMAT:
        return None
    if not isinstance(ckpt.get("config"), dict):
        return "no 'config' dict"
    if not _is_state_dict(ckpt.get("critic")):
        return "'critic' is not a state dict of tensors"
    problem = _fits(DiscConvNet, preset.critic, ckpt["critic"], "critic", preset.name)
    if problem:
        return problem
    for key in ("opt_g", "opt_d", "sched_g", "sched_d"):
        if not isinstance(ckpt.get(key), dict):
            return f"'{key}' is not a dict"
    sampler = ckpt.get("sampler")
    if not (isinstance(sampler, dict) and isinstance(sampler.get("perm"), Tensor) and sampler["perm"].dim() == 1
            and sampler["perm"].dtype == torch.int64 and isinstance(sampler.get("cursor"), int)
            and 0 <= sampler["cursor"] <= len(sampler["perm"])):
        return "'sampler' is not {'perm': int64 tensor (n,), 'cursor': int in 0..n}"
    perm, n = sampler["perm"], (ckpt.get("data") or {}).get("n")
    if isinstance(n, int) and not isinstance(n, bool) and len(perm) != n:
        return f"'sampler' permutes {len(perm)} windows but 'data' says the run had {n}"
    if len(perm) and (int(perm.min()) < 0 or int(perm.max()) >= len(perm)
                      or not bool((torch.bincount(perm, minlength=len(perm)) == 1).all())):
        return f"'sampler' perm is not a permutation of 0..{len(perm) - 1}"
    rng = ckpt.get("rng")
    keys = {"torch", "batch", "numpy", "python"}
    if not (isinstance(rng, list) and rng and all(isinstance(r, dict) and keys <= set(r) for r in rng)):
        return "'rng' is not a list of per-process random states"
    history = ckpt.get("history", [])
    if not isinstance(history, list):
        return "'history' is not a list"
    for i, row in enumerate(history):
        if not (isinstance(row, dict) and all(isinstance(k, str) for k in row)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values())
                and isinstance(row.get("step"), int)):
            return f"'history' row {i} is not a dict of numbers with an integer 'step'"
    if not isinstance(ckpt.get("elapsed", 0.0), (int, float)):
        return "'elapsed' is not a number"
    return None


def _fits(network: type, config: Any, weights: dict[str, Tensor], key: str, name: str) -> str | None:
    """Why ``weights`` do not fit the network the preset's ``config`` describes, or None.

    The network is built on torch's ``meta`` device (shapes only, no memory), so a preset that
    declares absurd sizes (``channels=200000``, ``latent=10**12``) is refused here, before any
    allocation: the file's own tensors must match it, and they are already in memory.
    """
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": the point
            net = network(config)
            net.load_state_dict(weights)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        return f"{key} weights do not fit preset {name!r} ({lines[1] if len(lines) > 1 else lines[0]})"
    except (ValueError, TypeError, OverflowError) as e:
        return f"the preset's {key} cannot be built ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


def load_generator(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> tuple[GenConvNet, dict[str, Any]]:
    """The trained generator of a checkpoint, in eval mode, and what is known about it.

    Parameters
    ----------
    checkpoint_path : str or Path
        A training checkpoint or a file from :func:`export_generator`.
    device : str or torch.device
        Where to put the generator (``"auto"`` allowed).

    Returns
    -------
    generator : GenConvNet
        Maps noise ``(B, latent)`` to probabilities ``(B, 17, 64, 72)``.
    info : dict
        ``preset`` (:class:`b2b.model.presets.Preset`), ``config`` (the TrainerConfig dict), ``step``,
        ``latent``, ``threshold`` (the binarization threshold to use by default: the calibrated
        one stored by :func:`export_generator` when the file has one, else the preset's),
        ``threshold_source`` (``"calibrated"`` or ``"preset"``), ``preset_threshold``, and
        ``calibration`` (how the stored threshold was computed; None without one).

    Raises
    ------
    ValueError
        Not a b2b checkpoint, weights that do not fit the preset or are not finite (NaN or inf),
        or a stored threshold outside (0, 1).
    """
    ckpt = load_checkpoint(checkpoint_path)
    for key in ("preset", "generator"):
        if not isinstance(ckpt.get(key), dict):
            raise ValueError(f"checkpoint {checkpoint_path} has no {key!r} entry: is it a complete b2b checkpoint?")
    preset = preset_of(ckpt)
    g = GenConvNet(preset.generator)
    weights = "generator_ema" if isinstance(ckpt.get("generator_ema"), dict) else "generator"
    try:
        g.load_state_dict(ckpt[weights])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {checkpoint_path}: generator weights do not fit preset {preset.name!r}: {e}") from e
    bad = [k for k, v in g.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"checkpoint {checkpoint_path}: generator weights are not finite (NaN or inf) in "
                         f"{len(bad)} tensor(s), e.g. {bad[0]!r}: the training diverged or the file is damaged")
    g.to(resolve_device(device)).eval()
    preset_threshold = float(preset.threshold)
    threshold, source, calibration = preset_threshold, "preset", None
    if ckpt.get("threshold") is not None:  # stored by export_generator (optional key: older files lack it)
        threshold = check_threshold(ckpt["threshold"], f"checkpoint {checkpoint_path}: stored threshold", text=False)
        source = "calibrated"
        calibration = ckpt.get("calibration") if isinstance(ckpt.get("calibration"), dict) else {}
    info = {"preset": preset, "config": ckpt.get("config", {}), "step": int(ckpt.get("step", 0)),
            "latent": preset.generator.latent, "threshold": threshold, "threshold_source": source,
            "preset_threshold": preset_threshold, "calibration": calibration,
            "weights": "ema" if weights == "generator_ema" or ckpt.get("weights") == "ema" else "trained"}
    return g, info
