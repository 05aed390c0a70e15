"""Shared pytest fixtures. Keep each fixture small and say which module's tests use it."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from b2b.model.presets import get_preset
from b2b.training.trainer import Trainer, TrainerConfig


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op torch thread for every test: pytest runs two workers on a 2-core machine, and
    oversubscribed spinning threads made the training tests several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- scripts/*.py: the tests of scripts/ablations.py and scripts/recipe_search.py ---------------

def load_script(name: str):
    """Import ``scripts/<name>.py`` (not a package) as a module named ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- b2b.evaluation.evaluate (test_evaluate.py, test_faults.py): a set whose metrics are worked out by hand ---

def triads(n: int) -> np.ndarray:
    """``n`` identical windows, bool ``(n, 17, 64, 72)``: the piano (track 1) plays a C major triad
    (pitch rows 24, 28, 31) on steps 0-7 of every bar, the bass (track 5) row 0 on steps 0-3 of
    every bar; the other tracks are silent (112 of 78,336 cells on)."""
    x = np.zeros((n, 17, 64, 72), dtype=bool)
    for bar in range(4):
        for p in (24, 28, 31):
            x[:, 1, 16 * bar: 16 * bar + 8, p] = True
        x[:, 5, 16 * bar: 16 * bar + 4, 0] = True
    return x


# --- b2b.music.data / b2b.datasets.lpd: LPD-17 files ----------------------------------------------------------

LPD_PROGRAMS = [(0, True)] + [(8 * i, False) for i in range(16)]  # LPD-17 file order


def write_lpd_npz(path, notes, n_ticks, *, resolution=24, downbeats=(0,), bar_ticks=None,
                  lengths=None, name="song"):
    """Write an ``.npz`` in the pypianoroll 0.3.0 layout used by LPD-17.

    notes: {track index: [(pitch, on tick, off tick, velocity), ...]}; tracks without notes are
    stored as empty (0, 128) matrices. Downbeats at ``downbeats`` plus every ``bar_ticks`` after
    the last (default 4 beats). ``lengths`` optionally gives a track's stored length.
    """
    import scipy.sparse

    bar_ticks = 4 * resolution if bar_ticks is None else bar_ticks
    downbeat = np.zeros(n_ticks, bool)
    downbeat[list(downbeats)] = True
    downbeat[downbeats[-1]::bar_ticks] = True
    arrays = {"tempo": np.full(n_ticks, 120.0), "downbeat": downbeat}
    info = {"beat_resolution": resolution, "name": name}
    for i, (program, is_drum) in enumerate(LPD_PROGRAMS):
        if i in notes:
            length = (lengths or {}).get(i, n_ticks)
            roll = np.zeros((length, 128), np.uint8)
            for pitch, on, off, vel in notes[i]:
                roll[on:off, pitch] = vel
        else:
            roll = np.zeros((0, 128), np.uint8)
        csc = scipy.sparse.csc_matrix(roll)
        arrays[f"pianoroll_{i}_csc_data"] = csc.data
        arrays[f"pianoroll_{i}_csc_indices"] = csc.indices
        arrays[f"pianoroll_{i}_csc_indptr"] = csc.indptr
        arrays[f"pianoroll_{i}_csc_shape"] = np.asarray(csc.shape)
        info[str(i)] = {"program": program, "is_drum": is_drum, "name": f"track{i}"}
    path = Path(path)
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("info.json", json.dumps(info), zipfile.ZIP_DEFLATED)
    return path


@pytest.fixture
def lpd_npz_writer():
    """The :func:`write_lpd_npz` helper (tests of b2b.music.data, b2b.datasets.lpd)."""
    return write_lpd_npz


# --- folder permissions: tests that need a user whom permissions bind (test_train, test_lpd) ---

#: The unprivileged user a root test process drops to ('nobody' on Debian and most Linux systems).
NOBODY = 65534


class Unprivileged:
    """Runs a check as a user whom folder permissions bind, also when the tests run as root (as CI
    does: root ignores ``chmod``). As root, :meth:`run` forks a child that drops to uid/gid
    :data:`NOBODY` and runs the check there; otherwise it runs the check in this process.
    ``folder`` is an empty folder that user owns."""

    def __init__(self, folder):
        self.folder = folder
        self.root = os.geteuid() == 0

    def run(self, check):
        """Call ``check()`` as the unprivileged user and return what it returns; an exception it
        raises (a failed assert included) fails the test with the child's traceback."""
        if not self.root:
            return check()
        import pickle
        import traceback

        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            os.close(read)
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                outcome = ("ok", check())
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                outcome = ("error", traceback.format_exc())
            try:
                data = pickle.dumps(outcome)
            except Exception:  # noqa: BLE001
                data = pickle.dumps(("error", f"the check's result cannot be pickled: {outcome[1]!r}"))
            with os.fdopen(write, "wb") as f:
                f.write(data)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            pytest.fail(f"the unprivileged child died (wait status {status}) before it reported")
        kind, value = pickle.loads(data)
        if kind == "error":
            pytest.fail(f"as uid {NOBODY} (dropped from root):\n{value}", pytrace=False)
        return value


@pytest.fixture
def unprivileged():
    """An :class:`Unprivileged` runner and its folder; skips (saying why) where no user whom
    permissions bind can be had: not POSIX, or root without the right to change user."""
    import shutil
    import tempfile
    from pathlib import Path

    if os.name != "posix" or not hasattr(os, "fork"):
        pytest.skip("folder permissions need POSIX users and os.fork")
    # in /tmp (which everyone may cross), not under pytest's 0700 base: uid 65534 must reach it
    base = Path(tempfile.mkdtemp(prefix="b2b-unprivileged-"))
    try:
        base.chmod(0o711)
        folder = base / "work"
        folder.mkdir()
        runner = Unprivileged(folder)
        if runner.root:
            try:
                os.chown(folder, NOBODY, NOBODY)
            except PermissionError:
                pytest.skip(f"root without the right to give a folder to uid {NOBODY} (a user namespace?)")
            try:
                assert runner.run(lambda: os.access(folder, os.W_OK) and os.getuid() == NOBODY)
            except (pytest.fail.Exception, AssertionError) as e:
                pytest.skip(f"root cannot drop to uid {NOBODY} and write in its own folder here: {str(e)[-300:]}")
        yield runner
    finally:
        for p in [base, *base.rglob("*")]:  # the checks may leave folders without permissions
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


# --- b2b.sampling.generate / b2b.evaluation.evaluate: a read-only output folder ---


@pytest.fixture
def read_only_mkdir(monkeypatch):
    """Creating a folder named ``ro`` fails as on a read-only file system (EROFS).

    Tests run as root, where ``chmod`` does not stop a write; this stands in for a read-only
    mount (tests of b2b.sampling.generate and b2b.evaluation.evaluate).
    """
    import errno
    from pathlib import Path

    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self.name == "ro":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real training checkpoint (with a digest): one step of the Trainer on 6 synthetic windows
    (test_generate and test_outputs)."""
    out = tmp_path_factory.mktemp("run")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 17, 64, 72, generator=g) < 0.03).float()
    cfg = TrainerConfig(preset=get_preset("seed").with_training(batch=3, n_critic=1), iterations=1, out=str(out),
                        progress=False, checkpoint_every=1000, sample_every=0, device="cpu", seed=4)
    Trainer(cfg, x).train()
    return out / "checkpoint_00000001.pt"
