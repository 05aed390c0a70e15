"""The package's shape: layers imported from the top down only, imports without circles, none
hidden in functions, the CLI on top.

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


def test_the_layers_are_the_subpackages_in_the_books_order():
    found = sorted(p.parent.name for p in (ROOT / "b2b").glob("*/__init__.py"))
    assert sorted(import_graph.LAYERS) == found
    assert import_graph.LAYERS[0] == "files" and import_graph.LAYERS[-1] == "evaluation"
    # every module of the package sits in a layer, except the command line on top
    top = sorted(m for m in import_graph.read_package("b2b", ROOT) if "." not in m and m not in import_graph.LAYERS)
    assert top == ["__init__", "__main__", "cli"]


def test_no_module_imports_from_a_higher_layer(mods):
    assert import_graph.upward(mods) == []


def test_b2b_modules_are_imported_at_the_top_of_a_module_only(mods):
    # an import inside a function is an edge the reader cannot see at the top of the file
    assert import_graph.summary(mods)["hidden"] == []


def test_library_modules_never_import_the_cli(mods):
    assert import_graph.summary(mods)["import_cli"] == []


def test_the_floors_run_from_the_geometry_up_to_the_commands(mods):
    fl = import_graph.floors(mods)
    assert fl["music.geometry"] == 0 and fl["cli"] == 0          # cli imports commands by name, lazily
    assert fl["music.data"] < fl["datasets.store"] < fl["datasets.catalog"] < fl["training.trainer"]
    assert fl["model.networks"] < fl["model.checkpoint"] < fl["sampling.generate"] < fl["evaluation.evaluate"]
    assert fl["gan.losses"] < fl["gan.step"] < fl["training.trainer"]


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


def test_the_picture_reads_subpackages_and_sees_a_layer_broken(tmp_path):
    pkg = tmp_path / "p"
    for d in ("low", "high"):
        (pkg / d).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from p.low.a import A\n")
    (pkg / "low" / "a.py").write_text("from p.high import b\nA = 1\n")
    (pkg / "high" / "__init__.py").write_text("")
    (pkg / "high" / "b.py").write_text("from p.low import A\nfrom . import c\nfrom p.low.a import A\n")
    (pkg / "high" / "c.py").write_text("import p.low.a\n")
    mods = import_graph.read_package("p", tmp_path)
    assert mods["low"].imports == {"low.a"} and mods["low.a"].imports == {"high.b"}
    assert mods["high.b"].imports == {"low", "high.c", "low.a"} and mods["high.c"].imports == {"low.a"}
    assert import_graph.upward(mods, ["low", "high"]) == ["low.a -> high.b"]
    assert import_graph.circles(mods) == [["high.b", "high.c", "low", "low.a"]]


def test_code_lines_count_statements_not_docstrings_comments_or_blanks():
    text = ('"""Module docstring,\non two lines."""\n'       # 2 docstring lines: 0
            "\n"                                              # blank: 0
            "# a comment\n"                                   # 0
            "X = {\n    'a': 1,  # trailing comment\n}\n"    # 3
            "def f(x):\n    '''Doc.'''\n    return x\n"      # def and return: 2
            'class C:\n    """Doc\n    more."""\n    y = "s"\n')  # class and y: 2
    assert import_graph.code_lines(text) == 7
    assert import_graph.code_lines("") == 0


def test_no_module_shadows_a_torch_module(mods):
    # `from b2b import nn` beside `from torch import nn` gave two different `nn`s in one chapter
    # (torch names that code imports by their short name; b2b.sampling.export beside torch.export is not one)
    short = ("nn", "optim", "autograd", "cuda", "distributed", "utils", "amp", "jit", "onnx", "functional")
    # every part of a dotted name counts: `from b2b.model import nn` would shadow as well
    parts = {part for m in mods for part in m.split(".")}
    shadows = [m for m in sorted(parts) if m in short and importlib.util.find_spec(f"torch.{m}") is not None]
    assert not shadows, f"b2b modules named like torch's: {shadows}"
