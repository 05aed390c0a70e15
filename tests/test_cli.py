"""b2b.cli: --version, and errors a user can fix shown as one line with exit code 2."""

from __future__ import annotations

import errno
import types

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
