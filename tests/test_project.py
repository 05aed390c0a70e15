"""The project's promises about itself: CI runs the README's commands, pins are exact, notebooks clean.

- The publish workflow (``.github/workflows/book.yml``) parses, runs the README Quickstart's
  first command and publishes the folder that command builds and link-checks.
- ``.ci/run`` runs the Quickstart's second command.
- ``requirements.txt`` pins every requirement with ``==``; ``pyproject.toml`` declares ``b2b``.
- Every notebook in ``book/`` is stored without outputs, and its first code cell (the Colab
  install) is tagged ``nbval-skip`` and ``skip-execution`` and does not install torch.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts)


def quickstart_commands() -> list[str]:
    """The commands of the first ``bash`` code block under README's ``## Quickstart``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh|console)?\n(.*?)```", section, flags=re.S)
    assert block, "README's Quickstart has no code block"
    commands = []
    for line in block.group(1).splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def command_lines(script: str) -> list[str]:
    """Non-comment lines of a shell script, whitespace-normalised."""
    lines = []
    for line in script.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(" ".join(shlex.split(line, comments=True)))
    return lines


def normalise(command: str) -> str:
    return " ".join(shlex.split(command, comments=True))


def test_readme_quickstart_has_the_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    assert commands == ["bash scripts/book.sh", "bash scripts/test.sh"]


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def all_steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_workflow_runs_the_readme_book_command(workflow):
    book_command = normalise(quickstart_commands()[0])
    runs = [command_lines(step["run"]) for step in all_steps(workflow) if "run" in step]
    assert any(book_command in lines for lines in runs), (
        f"no workflow step runs the README's book command {book_command!r}: {runs}"
    )


def test_workflow_python_is_one_the_package_supports_and_the_code_parses_on_the_oldest(workflow):
    """CI builds on a Python that pyproject's ``requires-python`` admits, and every module of the
    package parses with the grammar of the oldest Python it admits (syntax newer than the floor
    would break installs the package claims to support, while CI on a newer Python stays green)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    setup = [s for s in all_steps(workflow) if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and SpecifierSet(requires).contains(str(setup[0]["with"]["python-version"])), (requires, setup)
    floor = re.fullmatch(r">=\s*3\.(\d+)", requires.strip())
    assert floor, f"requires-python {requires!r}: expected a floor such as '>=3.10'"
    for path in sorted((ROOT / "b2b").rglob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, int(floor.group(1))))


def test_workflow_installs_cpu_torch(workflow):
    """torch from PyPI on Linux pulls gigabytes of CUDA packages; the CPU index avoids them."""
    env = {**workflow.get("env", {}), **workflow["jobs"]["build"].get("env", {})}
    assert "download.pytorch.org/whl/cpu" in env.get("TORCH_INDEX_URL", "")
    # ... and the set-up script installs torch from that index when the variable is set.
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert '${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}' in setup


def test_workflow_publishes_the_folder_the_book_command_builds_and_checks(workflow):
    """The Pages artifact is the folder that ``scripts/book.sh`` builds and link-checks (a change
    of where the book is built, made in one of the two files only, fails here)."""
    lines = command_lines((ROOT / "scripts" / "book.sh").read_text(encoding="utf-8"))
    checked = {line.split()[-1] for line in lines if line.startswith("python scripts/check_links.py")}
    assert len(checked) == 1, lines
    upload = [s for s in all_steps(workflow) if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"].rstrip("/") == checked.pop().rstrip("/")


def test_ci_runs_the_readme_test_command():
    test_command = normalise(quickstart_commands()[1])
    lines = command_lines((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert test_command in lines, f".ci/run does not run the README's test command {test_command!r}: {lines}"


def test_book_script_fails_on_warnings():
    lines = command_lines((ROOT / "scripts" / "book.sh").read_text(encoding="utf-8"))
    build = [line for line in lines if line.startswith("jupyter-book build")]
    assert build and ("--warningiserror" in build[0] or " -W" in build[0]), build


def test_requirements_are_pinned():
    unpinned = []
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+", line):
            unpinned.append(line)
    assert not unpinned, f"requirements.txt lines not pinned with '==': {unpinned}"


def test_pyproject_declares_the_b2b_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["b2b"] == "b2b.cli:main"


def test_every_notebook_is_a_chapter_of_the_book_in_the_order_of_the_story():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [c["file"] for c in toc["parts"][0]["chapters"]]
    assert chapters == sorted(chapters) and len(chapters) == 9  # 01_… to 09_…: the story's order
    appendix = [c["file"] for part in toc["parts"] if part.get("caption") == "Appendix" for c in part["chapters"]]
    assert chapters + appendix == [str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS]


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


TORCH = re.compile(r"(?<![\w/.-])torch(vision|audio)?(?![\w/.-])")


def installs_torch(source: str) -> bool:
    """Whether any ``pip install`` line of a cell names torch (or torchvision/torchaudio)."""
    for line in source.splitlines():
        if re.search(r"\bpip3?\s+install\b", line):
            after = re.split(r"\binstall\b", line, maxsplit=1)[1].split(" #", 1)[0]
            if TORCH.search(after):
                return True
    return False


def test_installs_torch_detector():
    assert installs_torch("!pip install -q torch==2.13.0 b2b")
    assert installs_torch("%pip install 'torch>=2.1'")
    assert installs_torch("!pip install torchaudio")
    assert not installs_torch("!pip install -q git+https://github.com/b2b-book/b2b")
    assert not installs_torch("import torch\n!pip install --no-deps tinysoundfont==0.3.7")
    assert not installs_torch("!pip install b2b  # torch comes with Colab")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or execution counts; "
        f"run: jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_first_code_cell_is_the_colab_install(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code, f"{path.name} has no code cell"
    first = code[0]
    tags = set(first.get("metadata", {}).get("tags", []))
    assert {"nbval-skip", "skip-execution"} <= tags, (
        f"{path.name}: the first code cell (the Colab install) must be tagged nbval-skip and "
        f"skip-execution, has {sorted(tags)}"
    )
    assert not installs_torch(cell_source(first)), (
        f"{path.name}: the Colab install cell must not install torch (Colab has its own)"
    )


def test_licences_and_citation_agree():
    """MIT code, CC BY 4.0 text; CITATION.cff (CFF 1.2.0) names both and the same repository."""
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "CC-BY-4.0" in (ROOT / "LICENSE-text").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key], key
    assert {"MIT", "CC-BY-4.0"} <= set(cff["license"])
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert cff["repository-code"] == config["repository"]["url"] == project["urls"]["Homepage"]
    titles = " ".join(ref["title"] for ref in cff["references"])
    for work in ("From Bytes to Beats", "MuseGAN", "Lakh Pianoroll", "Audio-to-MIDI", "Wasserstein Generative",
                 "Improved Training of Wasserstein", "Self-Attention Generative"):
        assert work in titles, work


def test_notice_covers_the_third_party_material():
    notice = (ROOT / "NOTICE.md").read_text(encoding="utf-8")
    for thing in ("Lakh Pianoroll Dataset", "Lakh MIDI Dataset", "CC BY 4.0", "music21", "license.txt",
                  "TimGM6mb", "GPL", "tagtraum", "Last.fm", "AllMusic"):
        assert thing in notice, thing


def test_check_links_finds_a_missing_anchor(tmp_path):
    """scripts/check_links.py (run by book.sh after the build) reports links to absent ids."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import check_links

    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "networks.html").write_text('<p id="b2b.model.networks.GenConvNet">x</p>')
    (tmp_path / "src.html").write_text('<a href="api/networks.html#b2b.model.networks.GenConvNet">ok</a>'
                                       '<a href="api/networks.html#b2b.model.attention.SelfAttention">bad</a>'
                                       '<a href="https://example.org/x.html#y">external</a>')
    assert check_links.broken_links(tmp_path) == [("src.html", "api/networks.html#b2b.model.attention.SelfAttention")]
    assert check_links.main([str(tmp_path)]) == 1
    (tmp_path / "src.html").write_text('<a href="api/networks.html#b2b.model.networks.GenConvNet">ok</a>')
    assert check_links.main([str(tmp_path)]) == 0
    assert "python scripts/check_links.py _build/html" in (ROOT / "scripts" / "book.sh").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_write_no_myst_roles(path):
    # display(Markdown(f"... {{doc}}`x` ...")) renders in the book (nb_render_markdown_format: myst)
    # but shows the role as raw text in Colab, which runs the code and renders plain Markdown:
    # code output names chapters and figures in plain words
    nb = json.loads(path.read_text(encoding="utf-8"))
    raw = [c.get("id") for c in nb["cells"] if c["cell_type"] == "code"
           and re.search(r"\{\{?(doc|numref|ref|cite|cite:t|cite:p|eq|func|class|mod|meth)\}\}?`", cell_source(c))]
    assert not raw, f"{path.name}: code cells {raw} write MyST roles into their output (raw text in Colab)"


def test_pyproject_lists_every_layer_of_the_package():
    # setuptools installs only the packages listed: a layer left out is missing from `pip install .`
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "b2b").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml [tool.setuptools]: {sorted(found - listed)}"


def _shipped(rel: str, globs: list[str]) -> bool:
    """Whether setuptools' package-data ``globs`` (``*`` within one path segment) include ``rel``."""
    def rx(glob: str) -> str:
        return "/".join(re.escape(seg).replace(r"\*", "[^/]*") for seg in glob.split("/"))
    return any(re.fullmatch(rx(g), rel) for g in globs)


def test_every_asset_a_chapter_names_is_installed_with_the_package():
    # A chapter opened in Colab reads data.asset(...) from the pip-installed b2b.assets (data/): every
    # file a chapter names, literally or through an f-string (each {...} read as one path segment), must
    # be in pyproject's package data, or the Colab copy fails where the clone works. (A name built from
    # a variable that holds several segments is beyond this scan: the Colab-style run of scripts/test.sh,
    # which installs b2b as a wheel, executes every chapter and catches those.)
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["b2b.assets"]
    assert _shipped("a/x/h.csv", ["a/*/h.csv"]) and not _shipped("a/x/y/h.csv", ["a/*/h.csv", "a/*"])
    data = ROOT / "data"
    named, missing = 0, []
    for page in [*sorted((ROOT / "book").glob("*.ipynb")), ROOT / "book" / "intro.md"]:
        text = (json.loads(page.read_text(encoding="utf-8"))["cells"] if page.suffix == ".ipynb"
                else [{"source": page.read_text(encoding="utf-8")}])
        for cell in text:
            # an f-string's fields may hold quotes of their own ({r['seed']}): read each as one segment first
            source = re.sub(r"\{[^{}]*\}", "{}", "".join(cell["source"]))
            for m in re.finditer(r"""asset\((f?)(["'])([^"']+)\2\)""", source):
                pattern = m.group(3).replace("{}", "*") if m.group(1) else m.group(3)
                for path in data.glob(pattern):
                    if path.is_file():
                        named += 1
                        rel = path.relative_to(data).as_posix()
                        if not _shipped(rel, globs):
                            missing.append(f"{page.name}: {rel}")
    assert named > 20, "the scan found the chapters' assets"
    assert not missing, f"not in pyproject's package data (add a glob): {missing}"
