"""b2b.cli: --version, and errors a user can fix shown as one line with exit code 2."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import b2b
from b2b import cli


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"b2b {b2b.__version__}"


def _fake_command(monkeypatch, exc):
    def run(args):
        raise exc

    module = types.SimpleNamespace(add_arguments=lambda p: None, run=run)
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: module)


@pytest.mark.parametrize("exc, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint_00000002.pt"),
     "b2b train: error: /runs/x/checkpoint_00000002.pt: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/runs/x"), "b2b train: error: /runs/x: Permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/run"), "b2b train: error: /ro/run: Read-only file system"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "b2b train: error: /a -> /b: Invalid cross-device link"),
    (FileNotFoundError("--resume: no checkpoint_*.pt in runs/x"), "b2b train: error: --resume: no checkpoint_*.pt in runs/x"),
    (ValueError("first line\n\tsecond line"), "b2b train: error: first line"),
    (MemoryError(), "b2b train: error: out of memory; use smaller sizes (e.g. --batch, --n)"),
])
def test_ordinary_errors_are_one_line(monkeypatch, capsys, exc, line):
    _fake_command(monkeypatch, exc)
    assert cli.main(["train"]) == 2
    err = capsys.readouterr().err
    assert err == line + "\n"


def test_other_errors_still_raise(monkeypatch):
    _fake_command(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["train"])


@pytest.mark.parametrize("kind", ["symlink to the clone", "empty folder"])
def test_python_m_b2b_from_the_folder_holding_a_clone_named_b2b(tmp_path, kind):
    """The folder named b2b in the current folder (the clone itself, or any) must not shadow the
    installed package: `python -m b2b` puts the current folder first on sys.path."""
    root = Path(__file__).resolve().parents[1]
    if kind == "symlink to the clone":
        (tmp_path / "b2b").symlink_to(root, target_is_directory=True)
    else:
        (tmp_path / "b2b").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in (["--version"], ["generate", "--checkpoint", "nope.pt"]):
        r = subprocess.run([sys.executable, "-m", "b2b", *argv], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        out = r.stdout + r.stderr
        assert "Traceback" not in out, out
        if argv == ["--version"]:
            assert r.returncode == 0 and out.strip() == f"b2b {b2b.__version__}"
        else:
            assert r.returncode == 2 and "nope.pt does not exist" in out
