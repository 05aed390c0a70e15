"""Tests of scripts/execute_chapters.py: it fills Jupyter Book's execution cache with what MyST-NB
would execute, under the key MyST-NB looks up, and stops on a chapter that raises, with its traceback."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ec():
    mod = load_script("execute_chapters")
    sys.modules["execute_chapters"] = mod  # its worker processes find run() by the module's name
    yield mod
    del sys.modules["execute_chapters"]


def test_the_chapters_are_the_notebooks_of_the_toc_in_order(ec):
    names = [p.name for p in ec.toc_notebooks()]
    assert names[0] == "01_music_as_data.ipynb" and names[-1] == "appendix_ablation.ipynb"
    assert names == sorted(names)  # the chapters' numbers are the toc's order
    assert all(p.parent == ec.ROOT / "book" for p in ec.toc_notebooks())


def _book(root, cells):
    """A book at ``root``: a toc of two notebooks, ``good`` and ``bad`` (``cells`` are bad's code)."""
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: nb/good\n  - file: nb/bad\n")
    (root / "_config.yml").write_text("execute:\n  timeout: 60\n  allow_errors: false\n")
    (root / "nb").mkdir()
    for name, code in (("good", ["x = 6 * 7", "print(x)"]), ("bad", cells)):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                               "language": "python"}})
        nb.cells = [nbformat.v4.new_markdown_cell("# " + name)] + [nbformat.v4.new_code_cell(c) for c in code]
        nbformat.write(nb, root / "nb" / f"{name}.ipynb")


def test_executed_chapters_are_cached_under_the_key_myst_nb_matches(ec, tmp_path, monkeypatch, capsys):
    from jupyter_cache import get_cache
    from myst_nb.core.read import standard_nb_read

    _book(tmp_path, ["import os", "print(os.getcwd())"])
    monkeypatch.setattr(ec, "ROOT", tmp_path)
    assert ec.main(["--jobs", "2"]) == 0
    cache = get_cache(str(tmp_path / "_build" / ".jupyter_cache"))
    for name, output in (("good", "42\n"), ("bad", f"{tmp_path / 'nb'}\n")):
        # as MyST-NB reads the chapter, and looks it up (myst_nb.core.execute.cache)
        nb = standard_nb_read((tmp_path / "nb" / f"{name}.ipynb").read_text(encoding="utf-8"))
        cache.match_cache_notebook(nb)
        _, merged = cache.merge_match_into_notebook(nb)
        assert merged.cells[-1].outputs[0]["text"] == output  # run in the chapter's folder, as MyST-NB runs it
    assert set(json.loads((tmp_path / "_build" / ".b2b-chapter-seconds.json").read_text())) == {"good.ipynb", "bad.ipynb"}
    capsys.readouterr()
    assert ec.main([]) == 0  # a second run executes nothing
    assert "nothing to execute" in capsys.readouterr().out


def test_a_chapter_that_raises_fails_with_its_traceback_and_is_not_cached(ec, tmp_path, monkeypatch, capsys):
    from jupyter_cache import get_cache

    _book(tmp_path, ["y = 1", "raise RuntimeError('the chapter broke here')"])
    monkeypatch.setattr(ec, "ROOT", tmp_path)
    assert ec.main(["--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    assert "bad.ipynb FAILED" in out and "FAILED: bad.ipynb" in out.splitlines()[-1]
    assert "==== bad.ipynb raised:" in err and "RuntimeError" in err and "the chapter broke here" in err
    cache = get_cache(str(tmp_path / "_build" / ".jupyter_cache"))
    cache.match_cache_notebook(nbformat.read(tmp_path / "nb" / "good.ipynb", as_version=4))  # the good one is kept
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(tmp_path / "nb" / "bad.ipynb", as_version=4))
    with pytest.raises(SystemExit):
        ec.main([str(tmp_path / "elsewhere.ipynb")])  # only notebooks of the toc
