"""The package's shape: imports without circles, none hidden in functions, the CLI on top.

Checked with scripts/import_graph.py (ast, nothing imported), which also draws the floors.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402


@pytest.fixture(scope="module")
def mods():
    return import_graph.read_package("b2b", ROOT)


def test_no_module_imports_another_that_imports_it_back(mods):
    assert import_graph.circles(mods) == []


def test_b2b_modules_are_imported_at_the_top_of_a_module_only(mods):
    # an import inside a function is an edge the reader cannot see at the top of the file
    assert import_graph.summary(mods)["hidden"] == []


def test_library_modules_never_import_the_cli(mods):
    assert import_graph.summary(mods)["import_cli"] == []


def test_the_floors_run_from_the_geometry_up_to_the_commands(mods):
    fl = import_graph.floors(mods)
    assert fl["geometry"] == 0 and fl["cli"] == 0          # cli imports commands by name, lazily
    assert fl["data"] < fl["store"] < fl["datasets"] < fl["train"]
    assert fl["networks"] < fl["checkpoint"] < fl["generate"] < fl["evaluate"]
    assert fl["losses"] < fl["step"] < fl["train"]


def test_the_picture_sees_hidden_imports_and_circles(tmp_path):
    # the checks above can fail: a tiny package with both faults
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "a.py").write_text("from p import b\n")
    (pkg / "b.py").write_text("def f():\n    from p import a\n    return a\n")
    (pkg / "c.py").write_text("from . import a\nfrom p.b import f\n")
    mods = import_graph.read_package("p", tmp_path)
    assert mods["a"].imports == {"b"} and mods["b"].hidden == [(2, "a")] and mods["c"].imports == {"a", "b"}
    assert import_graph.circles(mods) == [["a", "b"]]
    assert import_graph.summary(mods)["hidden"] == ["b:2 -> a"]


def test_no_module_shadows_a_torch_module(mods):
    # `from b2b import nn` beside `from torch import nn` gave two different `nn`s in one chapter
    # (torch names that code imports by their short name; b2b.export beside torch.export is not one)
    short = ("nn", "optim", "autograd", "cuda", "distributed", "utils", "amp", "jit", "onnx", "functional")
    shadows = [m for m in mods if m in short and importlib.util.find_spec(f"torch.{m}") is not None]
    assert not shadows, f"b2b modules named like torch's: {shadows}"
