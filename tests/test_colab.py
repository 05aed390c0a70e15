"""What a chapter needs to run in Colab, checked statically (scripts/colab_check.py runs them).

- The package's dependency floors are met by what a Colab runtime already has (the versions that
  ``scripts/colab_check.py`` installs as Colab's), so installing b2b replaces none of them;
  IPython and ipywidgets are not core dependencies.
- No notebook imports ``myst_nb`` (Colab has none) or shows a ``{glue}`` role in its markdown
  (Colab renders markdown itself and cannot resolve it).
- The install cell installs ``b2b`` from ``$B2B_PIP_URL`` (the Colab test points it at the
  checkout) and otherwise from the published repository, only in Colab.
- No notebook reads files that only a clone has (``scripts/``, ``data/`` by relative path).
- ``scripts/test.sh`` (the README's test command) runs the Colab check.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))
import colab_check  # noqa: E402

COLAB = {Requirement(p).name.lower(): str(next(iter(Requirement(p).specifier)).version)
         for p in colab_check.COLAB_PACKAGES}


def _cells(path: Path, kind: str) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == kind]


def test_dependency_floors_keep_colabs_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = [Requirement(r) for r in project["dependencies"]]
    assert not {r.name.lower() for r in core} & {"ipython", "ipywidgets", "ipykernel"}, (
        "IPython/ipywidgets are for the chapters only: keep them in an extra")
    extras = [Requirement(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
    for req in core + extras:
        have = COLAB.get(req.name.lower())
        if have is not None:
            assert req.specifier.contains(have, prereleases=True), (
                f"{req} would replace Colab's {req.name} {have}")


def test_the_floor_check_can_fail():
    assert not Requirement("ipython>=8").specifier.contains(COLAB["ipython"])
    assert not Requirement("ipywidgets>=8").specifier.contains(COLAB["ipywidgets"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_myst_nb_and_no_glue_roles(path):
    code = "\n".join(_cells(path, "code"))
    assert not re.search(r"^\s*(from myst_nb|import myst_nb)", code, re.M), f"{path.name} imports myst_nb"
    roles = [m.group(0) for md in _cells(path, "markdown") for m in re.finditer(r"\{glue(:\w+)?\}`[^`]*`", md)]
    directives = [m.group(0) for md in _cells(path, "markdown") for m in re.finditer(r"```\{glue(:\w+)?\}", md)]
    assert not roles and not directives, f"{path.name}: Colab shows these raw: {(roles + directives)[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_install_cell_installs_from_b2b_pip_url_in_colab_only(path):
    first = _cells(path, "code")[0]
    assert 'if "google.colab" in sys.modules:' in first
    assert re.search(r'os\.environ\.get\("B2B_PIP_URL", "git\+https://github\.com/b2b-book/b2b"\)', first), first
    assert re.search(r'%pip install -q "b2b(\[notebook\])? @ \$B2B_PIP_URL"', first), first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_file_that_only_a_clone_has(path):
    code = "\n".join(line.split("#", 1)[0] for line in "\n".join(_cells(path, "code")).splitlines())
    clone_only = [m.group(0) for m in
                  re.finditer(r"""(["'])(?:\.\./|\./)?(?:scripts|data|tests|benchmarks)/[^"'\s]*\1""", code)]
    assert not clone_only, f"{path.name} reads {clone_only}: use b2b.data.asset(...) or the package's API"


def test_the_readme_test_command_runs_the_colab_check():
    lines = [line.strip() for line in (ROOT / "scripts" / "test.sh").read_text().splitlines()]
    assert any(line.startswith("python scripts/colab_check.py") for line in lines)


def test_mathjax_is_served_from_the_book_and_loaded_once():
    """MathJax comes from _static (offline pages), and JB1's blanket script tags are dropped."""
    import types

    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    path = config["sphinx"]["config"]["mathjax_path"]
    assert not path.startswith(("http:", "https:", "//")), path
    assert (ROOT / "_static" / path).is_file()
    assert (ROOT / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    sys.path.insert(0, str(ROOT / "book" / "api" / "_ext"))
    import b2b_static

    cfg = types.SimpleNamespace(html_js_files=["mathjax/tex-chtml.js", "mathjax/input/tex/extensions/ams.js",
                                               ("ipywidgets/embed.js", {}), "onnxruntime-web/ort.wasm.min.js",
                                               "mine.js"])
    b2b_static._drop_blanket_scripts(None, cfg)
    assert cfg.html_js_files == ["mine.js"]
