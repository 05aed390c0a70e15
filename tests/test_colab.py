"""What a chapter needs to run in Colab, checked statically (scripts/colab_check.py runs them).

- The package's dependency floors are met by what a Colab runtime already has (the versions that
  ``scripts/colab_check.py`` installs as Colab's), so installing b2b replaces none of them;
  IPython and ipywidgets are not core dependencies.
- No notebook imports ``myst_nb`` (Colab has none) or shows a ``{glue}`` role in its markdown
  (Colab renders markdown itself and cannot resolve it).
- The install cell installs ``b2b`` from ``$B2B_PIP_URL`` (the Colab test points it at the
  checkout) and otherwise from ``_config.yml``'s ``repository.url``, only in Colab, and raises one
  error saying what to do when ``b2b`` cannot be imported after it.
- The Colab copies (``colab/book/``, ``scripts/colab_notebooks.py``) are up to date, hold no MyST,
  number figures as the book does and keep the chapters' code cells; the launch buttons and the
  README open them.
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

import colab_notebooks  # noqa: E402

COLAB = colab_check.colab_versions()
COPIES = sorted((ROOT / "colab" / "book").glob("*.ipynb"))
#: What MyST looks like in Markdown: a role, a fenced directive, a target.
MYST = re.compile(r"\{[a-z][\w:-]*\}`|^\s*(`{3,}|:{3,})\{|^\s*\([\w.:-]+\)=\s*$", re.M)


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
        have = COLAB.get(colab_check._normal(req.name))
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
    url, branch = colab_notebooks.repository_url(), colab_notebooks.repository_branch()
    assert 'if "google.colab" in sys.modules:' in first
    assert f'os.environ.get("B2B_PIP_URL", "git+{url}@{branch}")' in first, first
    assert first == colab_notebooks.install_cell(url, branch), (
        f"{path.name}: run python scripts/colab_notebooks.py --install-cells")


def test_install_cell_honours_the_configured_branch(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/Someone/fork\n  branch: colab-2\n")
    assert colab_notebooks.repository_branch(tmp_path) == "colab-2"
    assert 'git+https://github.com/Someone/fork@colab-2"' in colab_notebooks.install_cell(
        colab_notebooks.repository_url(tmp_path), colab_notebooks.repository_branch(tmp_path))
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/Someone/fork\n")
    assert colab_notebooks.repository_branch(tmp_path) == "main"
    with pytest.raises(ValueError, match="branch"):
        colab_notebooks.install_cell("https://github.com/a/b", "x; rm -rf /")


def _fake_b2b(site: Path, mark: str, installed: bool = True) -> None:
    """A package named b2b with ``MARK = mark`` in the folder ``site``, with its dist-info if ``installed``
    (else a checkout's folder)."""
    (site / "b2b").mkdir(parents=True, exist_ok=True)
    (site / "b2b" / "__init__.py").write_text(f"MARK = {mark!r}\n")
    if not installed:
        return
    info = site / "b2b-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: b2b\nVersion: 0.1.0\n")


def _run_install_cell(monkeypatch, tmp_path, *, before: str | None, pip_fails: bool = False,
                      shadow: bool = False) -> tuple[list, dict]:
    """Execute the install cell as Colab would, pip replaced by a stand-in that installs a fake b2b
    (``MARK = "new"``) into a folder on ``sys.path``; ``before``: the MARK of a b2b installed and
    imported earlier (a reused runtime), None for a fresh one. Returns pip's calls and the cell's globals."""
    import subprocess

    site = tmp_path / "site"
    site.mkdir()
    if before is not None:
        _fake_b2b(site, before)
    monkeypatch.syspath_prepend(str(site))
    if shadow:  # another b2b earlier on sys.path than the installed one
        _fake_b2b(tmp_path / "clone", "clone", installed=False)
        monkeypatch.syspath_prepend(str(tmp_path / "clone"))
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(colab_notebooks.install_cell("https://github.com/b2b-book/b2b", "main"))
    # only the standard library besides: no b2b of this checkout or of the virtual environment
    mine = {str(site), str(tmp_path / "clone")}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p in mine or (
        p and "site-packages" not in p and Path(p).resolve() != ROOT.resolve())])
    saved = {k: v for k, v in sys.modules.items() if k == "b2b" or k.startswith("b2b.")}
    for name in saved:
        del sys.modules[name]
    if before is not None:
        import importlib
        importlib.invalidate_caches()
        import b2b  # noqa: F401  (imported in the kernel before the cell runs again)
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd[cmd.index("install") + 1:])
        if pip_fails and "tinysoundfont" not in cmd:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Repository not found\n")
        if "tinysoundfont" not in cmd:
            _fake_b2b(site, "new")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setenv("B2B_PIP_URL", "git+https://example.org/nobody/missing@main")
    scope: dict = {}
    try:
        exec(code, scope)
    finally:
        for name in [m for m in sys.modules if m == "b2b" or m.startswith("b2b.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    return calls, scope


def test_install_cell_installs_b2b_in_a_fresh_runtime(monkeypatch, tmp_path):
    calls, scope = _run_install_cell(monkeypatch, tmp_path, before=None)
    url = "git+https://example.org/nobody/missing@main"
    assert calls == [["-q", "--no-deps", "tinysoundfont"], ["-q", f"b2b[notebook] @ {url}"]]
    assert scope["b2b"].MARK == "new" and scope["earlier"] is None


def test_install_cell_replaces_an_older_b2b_and_the_kernel_imports_the_new_one(monkeypatch, tmp_path):
    calls, scope = _run_install_cell(monkeypatch, tmp_path, before="old")
    url = "git+https://example.org/nobody/missing@main"
    assert calls[1:] == [["-q", f"b2b[notebook] @ {url}"], ["-q", "--force-reinstall", "--no-deps", f"b2b @ {url}"]]
    assert scope["earlier"] == "0.1.0"
    assert scope["b2b"].MARK == "new"  # not the module imported before the cell ran


def test_install_cell_fails_when_pip_fails_even_with_an_older_b2b_importable(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError) as failure:
        _run_install_cell(monkeypatch, tmp_path, before="old", pip_fails=True)
    message = str(failure.value)
    assert "Installing b2b from git+https://example.org/nobody/missing@main failed (pip: ERROR: Repository not found)" in message
    for advice in ("Check the repository URL", "run this cell again",
                   "pip install 'b2b[notebook] @ git+https://example.org/nobody/missing@main'"):
        assert advice in message
    assert failure.value.__cause__ is None


def test_install_cell_says_what_to_do_when_another_b2b_hides_the_installed_one(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match=r"comes first on sys.path.*Restart session"):
        _run_install_cell(monkeypatch, tmp_path, before=None, shadow=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_file_that_only_a_clone_has(path):
    code = "\n".join(line.split("#", 1)[0] for line in "\n".join(_cells(path, "code")).splitlines())
    clone_only = [m.group(0) for m in
                  re.finditer(r"""(["'])(?:\.\./|\./)?(?:scripts|data|tests|benchmarks)/[^"'\s]*\1""", code)]
    assert not clone_only, f"{path.name} reads {clone_only}: use b2b.music.data.asset(...) or the package's API"


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


# --- the Colab copies --------------------------------------------------------------------------

def test_copies_are_up_to_date():
    """Outputs aside (the hidden cells' Markdown outputs come from a build when one is at hand)."""
    assert [p.name for p in COPIES] == [p.name for p in colab_notebooks.chapters()]
    book = colab_notebooks.load_book()
    stale = [p.name for p in colab_notebooks.chapters() if not colab_notebooks.is_current(book, p)]
    assert not stale, f"stale Colab copies {stale}: run python scripts/colab_notebooks.py"


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_copy_has_no_myst_left(path):
    left = [m.group(0) for md in _cells(path, "markdown") for m in MYST.finditer(md)]
    assert not left, f"{path.name} shows MyST raw in Colab: {left[:5]}"


def test_the_myst_pattern_can_fail():
    for myst in ("see {numref}`fig-x`", "```{admonition} Solution", ":::{note}", "(fig-label)=",
                 "{cite:t}`a2020`"):
        assert MYST.search(myst), myst
    assert not MYST.search("a set {1, 2} and `code` and ```python")


def _nb(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_copy_keeps_the_chapters_code(path):
    """Every code cell of the chapter, in order, as it is (a hidden one under its form title); the
    cells a copy adds (``b2b_colab`` metadata: the page's generator, the quiz's score) aside."""
    source = _cells(ROOT / "book" / path.name, "code")
    cells = [c for c in _nb(path).cells if c.cell_type == "code"]
    assert cells[0].source == colab_notebooks.install_cell(colab_notebooks.repository_url(),
                                                           colab_notebooks.repository_branch())
    kept = [re.sub(r"^# @title [^\n]+\n", "", c.source) if c.metadata.get("cellView") == "form" else c.source
            for c in cells[1:] if "b2b_colab" not in c.metadata]
    assert kept == source[1:]


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_every_hidden_cell_is_a_form_cell(path):
    """What the book hides (hide-input, hide-cell, remove-input, remove-cell) is a Colab form: a
    ``# @title`` first line and ``cellView: form``, so Colab shows the title (and the output), not the code."""
    chapter = {c.get("id"): c for c in _nb(ROOT / "book" / path.name).cells}
    hidden = 0
    for cell in _nb(path).cells:
        if cell.cell_type != "code" or cell.get("id") not in chapter:
            continue
        if colab_notebooks.is_hidden(chapter[cell["id"]]):
            hidden += 1
            assert cell.metadata.get("cellView") == "form", cell.source[:80]
            assert re.match(r"# @title \S[^\n]*\n", cell.source), cell.source[:80]
        else:
            assert "cellView" not in cell.metadata and not cell.source.startswith("# @title")
    assert hidden == sum(colab_notebooks.is_hidden(c) for c in chapter.values())


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_no_measured_sentence_shows_its_code(path):
    """A remove-input cell that writes Markdown is a form (code folded); what it stores is Markdown only."""
    for cell in _nb(path).cells:
        if cell.cell_type != "code":
            continue
        if "remove-input" in cell.metadata.get("tags", []) and "Markdown(" in cell.source:
            assert cell.metadata.get("cellView") == "form"
        if cell.get("outputs"):
            assert cell.metadata.get("cellView") == "form", "only folded cells keep a build's output"
            for out in cell.outputs:
                assert list(out["data"]) == ["text/markdown"] and not MYST.search(out["data"]["text/markdown"])


def _dropdowns(path: Path) -> int:
    return sum(len(re.findall(r"^[`:]{3,}\{admonition\}.*\n:class: dropdown", md, re.M)) for md in _cells(path, "markdown"))


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_every_solution_is_folded(path):
    """Each solution the book collapses is a ``#### Solution`` heading cell whose id (also in its metadata,
    where Colab reads it) is listed in ``colab.collapsed_sections``; its text and the cells up to the
    next heading of its level or above (the next exercise or solution) fold with it."""
    nb = _nb(path)
    folded = nb.metadata["colab"]["collapsed_sections"]
    assert len(folded) == _dropdowns(ROOT / "book" / path.name)
    cells = {c.get("id"): k for k, c in enumerate(nb.cells)}
    for cid in folded:
        k = cells[cid]
        head = nb.cells[k]
        assert head.cell_type == "markdown" and re.fullmatch(r"#### Solution[^\n]*", head.source)
        assert head.metadata["id"] == cid
        body = nb.cells[k + 1]
        assert body.cell_type == "markdown" and body.source.strip() and not body.source.startswith("#")
        for after in nb.cells[k + 1:]:
            level = colab_notebooks._heading_level(after.source) if after.cell_type == "markdown" else 0
            if 1 <= level <= 4:
                break
            assert after.cell_type == "code" or after is body or after.source.startswith("**Figure"), (
                f"{path.name}: {after.source[:60]!r} would fold with {head.source!r}")


def test_the_book_folds_21_solutions_and_the_copies_fold_them_all():
    assert sum(_dropdowns(p) for p in NOTEBOOKS) == sum(
        len(_nb(p).metadata["colab"]["collapsed_sections"]) for p in COPIES) >= 21


@pytest.mark.parametrize("path", COPIES, ids=lambda p: p.name)
def test_no_page_only_content_in_a_copy(path):
    """The in-page generator becomes the same generator in Python; a quiz gets a cell that scores it."""
    nb = _nb(path)
    assert not any('class="b2b-generator"' in c.source for c in nb.cells if c.cell_type == "markdown")
    chapter = (ROOT / "book" / path.name).read_text(encoding="utf-8")
    added = [c for c in nb.cells if c.cell_type == "code" and "b2b_colab" in c.metadata]
    assert sum(c.metadata["b2b_colab"] == "page-generator" for c in added) == chapter.count('class=\\"b2b-generator\\"')
    quizzes = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and colab_notebooks.QUIZ.search(c.source)]
    for k in quizzes:
        nxt = [c for c in nb.cells[k + 1:] if c.cell_type == "code"][0]
        name = colab_notebooks.QUIZ.search(nb.cells[k].source).group(1)
        assert nxt.metadata.get("b2b_colab") == "quiz-score" and f"print({name}.score(QUIZ_PICKS))" in nxt.source
    for cell in added:
        assert cell.metadata["cellView"] == "form" and "# @param" in cell.source
        compile(cell.source, path.name, "exec")


def test_every_copy_opens_with_its_title_and_prose():
    """Title, the copy's note, the install cell, then the chapter's prose: code that the chapter puts
    before its first prose (chapter 8's box) comes after it."""
    for path in COPIES:
        cells = _nb(path).cells
        assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
        assert cells[1].get("id") == "colab-copy-note"
        assert cells[2].cell_type == "code" and "install b2b" in cells[2].source
        prose = cells[0].source.count("\n") > 0 or cells[3].cell_type == "markdown"
        assert prose, f"{path.name} shows code before its first prose"


def test_launch_buttons_and_readme_open_the_copies():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["path_to_book"] == colab_notebooks.COPIES
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    for chapter in colab_notebooks.chapters():  # the theme opens <path_to_book>/<docname>.ipynb
        assert (ROOT / colab_notebooks.COPIES / chapter.relative_to(ROOT)).is_file()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert colab_notebooks.readme_with_links(colab_notebooks.load_book(), readme) == readme
    owner_name = colab_notebooks.repository_url().removeprefix("https://github.com/")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^\s)`]+)", readme)
    assert links, "README has no Colab link"
    for link in links:
        assert link.startswith(f"{owner_name}/blob/{config['repository']['branch']}/colab/book/"), link
    assert len(links) == len(COPIES)


def test_a_markdown_notebook_without_a_copy_hides_its_launch_button():
    """A MyST Markdown page that runs code (a ``kernelspec`` in its front matter, like the intro) is a
    notebook to the theme, which gives it a Colab button to ``<path_to_book>/<page>.md``: no copy
    exists there, and Colab cannot open Markdown, so the page hides the button."""
    pages = [p for p in (ROOT / "book").glob("*.md")
             if re.match(r"---\n(?:.*\n)*?kernelspec:", p.read_text(encoding="utf-8"))]
    assert pages, "the intro runs a cell: it should be a Markdown notebook"
    for page in pages:
        assert "div.dropdown.dropdown-launch-buttons { display: none !important; }" in page.read_text(encoding="utf-8"), page.name


def _mini_book(tmp_path: Path) -> Path:
    """intro.md with a figure, chapter a (2 figures, one with its output removed), chapter b (2)."""
    import nbformat

    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: C\n"
                                       "    chapters:\n      - file: book/b_second\n      - file: book/a_first\n")
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/Someone/fork\n")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\n```{figure} x.png\n:name: fig-intro\n\nCap\n```\n")

    def fig(name, tags=()):
        return nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"name": name, "caption": "c"}},
                                                             "tags": list(tags)})
    for stem, cells in {"a_first": [fig("fig-a1"), fig("fig-gone", ["remove-output"]), fig("fig-a2")],
                        "b_second": [nbformat.v4.new_code_cell("x = 1"), fig("fig-b1"), fig("fig-b2")]}.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Chapter {stem}"), *cells])
        nbformat.write(nb, tmp_path / "book" / f"{stem}.ipynb")
    (tmp_path / "book" / "references.bib").write_text(
        "@article{zed2020,\n  title={A {GAN} Paper},\n  author={Zed, Ann and Bottou, L{\\'e}on and Cy, Bo},\n"
        "  journal={J},\n  year={2020}\n}\n@book{solo1999,\n  title={Solo},\n  author={Solo, Han},\n  year={1999}\n}\n")
    return tmp_path


def test_figures_are_numbered_across_the_book_in_toc_order(tmp_path):
    # Sphinx (numfig, toctree not numbered) counts figures with one counter over the documents
    # in toctree order: intro 1; b_second (listed first) 2, 3; a_first 4, then 5 (no output, no figure)
    root = _mini_book(tmp_path)
    assert colab_notebooks.figure_numbers(root) == {"fig-intro": "1", "fig-b1": "2", "fig-b2": "3", "fig-a1": "4",
                                                    "fig-a2": "5"}


def test_figures_of_a_numbered_part_are_numbered_per_chapter(tmp_path):
    # numbered: the part's chapters are 1 (b_second) and 2 (a_first), each with its own counter;
    # the intro, outside the numbered part, keeps the plain counter
    root = _mini_book(tmp_path)
    toc = root / "_toc.yml"
    toc.write_text(toc.read_text().replace("  - caption: C\n", "  - caption: C\n    numbered: 1\n"))
    assert "numbered: 1" in toc.read_text()
    assert colab_notebooks.figure_numbers(root) == {"fig-intro": "1", "fig-b1": "1.1", "fig-b2": "1.2",
                                                    "fig-a1": "2.1", "fig-a2": "2.2"}


def test_markdown_becomes_what_colab_renders(tmp_path):
    root = _mini_book(tmp_path)
    book = colab_notebooks.load_book(root)
    assert book.pages_url == "https://someone.github.io/fork/"
    cited = []
    md = ("See {numref}`fig-a2` and {numref}`Plot %s <fig-b1>`, {cite:t}`zed2020` and {cite}`solo1999,zed2020`,\n"
          "{doc}`a_first`, {func}`b2b.gan.toy.train_gan` and {class}`~b2b.model.networks.GenConvNet`.\n"
          "(fig-x)=\n"
          "````{admonition} Solution 2\n:class: dropdown\nRun {numref}`fig-intro`:\n```python\n{numref}`kept`\n```\n````")
    out = colab_notebooks.convert_markdown(book, "book/b_second", md, cited)
    pages = "https://someone.github.io/fork/"
    assert out == (
        "See Figure 5 and Plot 2, Zed et al. [2020] and [Solo, 1999; Zed et al., 2020],\n"
        f"[Chapter a_first]({pages}book/a_first.html), [`b2b.gan.toy.train_gan()`]({pages}book/api/toy.html#b2b.gan.toy.train_gan)"
        f" and [`GenConvNet`]({pages}book/api/networks.html#b2b.model.networks.GenConvNet).\n"
        "> **Solution 2**\n>\n> Run Figure 1:\n> ```python\n> {numref}`kept`\n> ```")
    assert cited == ["zed2020", "solo1999"]
    assert colab_notebooks.reference_line(book.bib["zed2020"]) == "Ann Zed, Léon Bottou and Bo Cy (2020). A GAN Paper. *J*."


def test_copy_of_a_chapter(tmp_path):
    root = _mini_book(tmp_path)
    book = colab_notebooks.load_book(root)
    nb = colab_notebooks.colab_copy(book, root / "book" / "b_second.ipynb", root)
    kinds = [(c.cell_type, c.source.split("\n")[0][:30]) for c in nb.cells]
    assert kinds == [("markdown", "# Chapter b_second"), ("markdown", "*This is the Colab copy of a c"),
                     ("code", "# In Colab only: install b2b ("), ("code", "plot()"), ("markdown", "**Figure 2.** c"),
                     ("code", "plot()"), ("markdown", "**Figure 3.** c")]
    assert "git+https://github.com/Someone/fork" in nb.cells[2].source


@pytest.mark.parametrize("bad", ["{numref}`fig-none`", "{cite}`nobody2000`", "{doc}`missing`", "{eq}`e1`",
                                 "```{glue:figure} x\n```"])
def test_what_colab_cannot_show_is_an_error(tmp_path, bad):
    book = colab_notebooks.load_book(_mini_book(tmp_path))
    with pytest.raises(ValueError, match="book/a_first"):
        colab_notebooks.convert_markdown(book, "book/a_first", bad, [])


def test_figure_numbers_match_the_built_book():
    """Against the HTML of ``bash scripts/book.sh`` (_build/html), when a build is at hand."""
    pages = sorted((ROOT / "_build" / "html" / "book").glob("0*.html"))
    if not pages:
        pytest.skip("no built book in _build/html (bash scripts/book.sh builds it)")
    chapters = sorted((ROOT / "book").glob("0*.ipynb"))
    if max(c.stat().st_mtime for c in chapters) > min(p.stat().st_mtime for p in pages):
        pytest.skip("the book in _build/html is older than a chapter (bash scripts/book.sh rebuilds it)")
    built = {}
    for page in pages:
        for m in re.finditer(r'<figure[^>]*id="([^"]+)"[^>]*>.*?<span class="caption-number">Fig\. ([\d.]+) </span>',
                             page.read_text(encoding="utf-8"), re.S):
            built[m.group(1)] = m.group(2)
    assert built == colab_notebooks.figure_numbers()


# --- the Colab-version environment -------------------------------------------------------------

def test_constraints_are_colabs_published_versions():
    text = colab_check.CONSTRAINTS.read_text(encoding="utf-8")
    assert re.search(r"googlecolab/backend-info.*\n.*\b2026-08-19\b", text), "the file says where and when it is from"
    assert {name: COLAB[name] for name in ("ipython", "ipykernel", "ipywidgets", "jupyter-client", "notebook",
                                           "numpy", "music21", "traitlets", "tornado", "pyzmq", "scipy",
                                           "matplotlib", "tqdm")} == {
        "ipython": "7.34.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1", "jupyter-client": "7.4.9",
        "notebook": "6.5.7", "numpy": "2.1.3", "music21": "9.9.2", "traitlets": "5.7.1", "tornado": "6.5.7",
        "pyzmq": "26.2.1", "scipy": "1.16.3", "matplotlib": "3.10.0", "tqdm": "4.67.3"}
    assert all(colab_check._normal(name) in COLAB for name in colab_check.COLAB_PACKAGES)
    assert "torch" not in COLAB  # the local CPU wheel stands in for Colab's torch


def test_changed_packages_names_each_change_to_colabs_packages():
    before = {"numpy": "2.1.3", "music21": "9.9.2", "tqdm": "4.67.3"}
    after = {"numpy": "2.1.3", "music21": "10.5.1", "b2b": "0.1.0", "mido": "1.3.3"}
    assert colab_check.changed_packages(before, after) == ["music21 9.9.2 -> 10.5.1", "tqdm 4.67.3 -> removed"]
    assert colab_check.changed_packages(before, {**before, "b2b": "0.1.0"}) == []


def test_the_check_adds_only_nbval_to_colabs_packages():
    """pytest is Colab's own (at Colab's version in the constraints); nbval is requirements.txt's."""
    names = {colab_check._normal(p.split("==")[0]): p for p in colab_check.CHECK_PACKAGES}
    assert set(names) == {"pytest", "nbval"}
    assert "pytest" in COLAB and "nbval" not in COLAB
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split()
                if line.startswith("nbval=="))
    assert names["nbval"] == f"nbval=={pins['nbval']}"
    pinned = {"pytest": COLAB["pytest"], "numpy": COLAB["numpy"]}
    assert colab_check.off_colab({"pytest": "9.2.0", "numpy": COLAB["numpy"], "nbval": "0.11.0"}, pinned) == [
        f"pytest 9.2.0 (Colab {COLAB['pytest']})"]
    assert colab_check.not_colabs({"pytest": COLAB["pytest"], "nbval": "0.11.0", "torch": "2.13.0+cpu",
                                   "coverage": "7.18.0"}) == {"coverage": "7.18.0", "nbval": "0.11.0"}


def test_nbval_runs_every_cell_of_the_run_copy_and_stops_at_the_first_failure(tmp_path):
    """What run_chapter does with a chapter, on a small one in this environment (which has nbval):
    the copy without tags runs the nbval-skip cell; -x stops at the failing cell; the JUnit XML
    says which cell failed and why."""
    import subprocess

    import nbformat

    cells = [nbformat.v4.new_markdown_cell("# T"),
             nbformat.v4.new_code_cell("x = 41", metadata={"tags": ["nbval-skip", "skip-execution"]}),
             nbformat.v4.new_code_cell("y = x + 1", outputs=[nbformat.v4.new_output(
                 "display_data", data={"text/markdown": "stored by a build"})]),
             nbformat.v4.new_code_cell("raise ValueError(f'boom {y}')"),
             nbformat.v4.new_code_cell("z = 3")]
    nb = nbformat.v4.new_notebook(cells=cells)
    results = {}
    for name, notebook in {"as_tagged": nb, "run_copy": colab_check.run_copy(nb)}.items():
        (tmp_path / name).mkdir()
        nbformat.write(notebook, tmp_path / name / "t.ipynb")
        xml = tmp_path / name / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path / name),
                        "--nbval-lax", "--nbval-current-env", "-x", f"--junitxml={xml}", "t.ipynb"],
                       cwd=tmp_path / name, capture_output=True, text=True, timeout=300)
        results[name] = colab_check.junit_result(xml.read_text())
    assert nb.cells[1].metadata["tags"] == ["nbval-skip", "skip-execution"]  # the chapter is not changed
    assert nb.cells[2].outputs and not colab_check.run_copy(nb).cells[2].outputs  # a stored output: not run
    copy = results["run_copy"]
    assert (copy["passed"], copy["failed"], copy["skipped"], copy["cell"]) == (2, 1, 0, 2)
    assert "ValueError: boom 42" in copy["error"]
    tagged = results["as_tagged"]  # nbval skips the tagged cell, so the next one fails
    assert (tagged["passed"], tagged["failed"], tagged["skipped"], tagged["cell"]) == (0, 1, 1, 0)
    assert "nbval skipped this cell" in tagged["error"]


# --- how a copy is cut, folded and filled ------------------------------------------------------

def test_markdown_pieces_cut_solutions_exercises_and_the_generator():
    state = {"exercises": False}
    intro = colab_notebooks.markdown_pieces("# T\n\n**1. Not an exercise.** Text.", state)
    assert intro == [("text", "# T\n\n**1. Not an exercise.** Text.")] and not state["exercises"]
    md = ("## Exercises\n\n**1. First.** Ask.\n\n````{admonition} Solution 1\n:class: dropdown\nAnswer\n"
          "```python\n**2. Not a heading.**\n```\n````\n\n**2. Second.** Again.\n\n"
          "```{admonition} A note\n:class: note\nKept.\n```\n"
          '<div class="b2b-generator" data-seed="3" data-seed-b="9"></div>\nAfter.')
    pieces = colab_notebooks.markdown_pieces(md, state)
    assert pieces == [
        ("text", "## Exercises"), ("text", "### 1. First\n\nAsk."),
        ("solution", "Solution 1", "Answer\n```python\n**2. Not a heading.**\n```"),
        ("text", "### 2. Second\n\nAgain.\n\n```{admonition} A note\n:class: note\nKept.\n```"),
        ("generator", {"data-seed": "3", "data-seed-b": "9"}),
        ("text", "After.")]
    assert state["exercises"]
    assert colab_notebooks.markdown_pieces("## Summary\n\n**3. X.** y", state) == [("text", "## Summary\n\n**3. X.** y")]


def _chapter(tmp_path: Path, cells: list) -> Path:
    import nbformat

    root = _mini_book(tmp_path)
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, root / "book" / "a_first.ipynb")
    return root


def test_a_copy_folds_solutions_forms_hidden_code_and_moves_code_before_the_prose(tmp_path):
    import nbformat

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    root = _chapter(tmp_path, [
        md("# Chapter A", id="title"), code("install", id="inst"),
        code('display(Markdown(f"{1 + 1} notes"))', id="box", metadata={"tags": ["remove-input"]}),
        md("Prose first.", id="prose"),
        code("# Draw the thing\nplot()", id="draw", metadata={"tags": ["hide-input"]}),
        code("quiz = listening.listening_quiz(a, b)\ndisplay(quiz)", id="quiz"),
        md("## Exercises\n\n**1. One.** Q?\n\n```{admonition} Solution\n:class: dropdown\nA.\n```", id="ex"),
        code("answer()", id="ans", metadata={"tags": ["hide-cell"]}),
        md("**2. Two.** Q2?", id="ex2")])
    book = colab_notebooks.load_book(root)
    nb = colab_notebooks.colab_copy(book, root / "book" / "a_first.ipynb", root)
    shown = [(c.get("id"), c.source.split("\n")[0]) for c in nb.cells]
    assert shown == [
        ("title", "# Chapter A"), ("colab-copy-note", shown[1][1]), ("inst", "# In Colab only: install b2b (Colab keeps its own torch, numpy and IPython)."),
        ("prose", "Prose first."),
        ("box", "# @title " + colab_notebooks.FORM_TITLES["remove-input"]),
        ("draw", "# @title Draw the thing"), ("quiz", "quiz = listening.listening_quiz(a, b)"),
        ("quiz-quiz-score-1", shown[7][1]),
        ("ex", "## Exercises"), ("ex-part-1", "### 1. One"), ("ex-part-2", "#### Solution"),
        ("ex-part-2-body-1", "A."), ("ans", "# @title " + colab_notebooks.FORM_TITLES["hide-cell"]),
        ("ex2", "### 2. Two")]
    assert nb.metadata["colab"]["collapsed_sections"] == ["ex-part-2"]
    assert nb.cells[10].metadata["id"] == "ex-part-2"
    assert all(nb.cells[k].metadata["cellView"] == "form" for k in (4, 5, 7, 12))
    assert "print(quiz.score(QUIZ_PICKS))" in nb.cells[7].source
    assert "git+https://github.com/Someone/fork@main" in nb.cells[2].source


def test_text_that_would_fold_with_a_solution_is_an_error(tmp_path):
    import nbformat

    root = _chapter(tmp_path, [
        nbformat.v4.new_markdown_cell("# A\n\n## Exercises\n\n```{admonition} Solution\n:class: dropdown\nA.\n```"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("A closing remark, which Colab would fold with the solution.")])
    book = colab_notebooks.load_book(root)
    with pytest.raises(ValueError, match="would be folded with it in Colab"):
        colab_notebooks.colab_copy(book, root / "book" / "a_first.ipynb", root)


def test_outputs_come_from_a_build_of_the_same_code_and_stay_until_the_code_changes(tmp_path):
    import nbformat

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md("# A\n\nProse.", id="t"), code("install", id="i"),
             code('display(Markdown(f"{2} notes"))', id="m", metadata={"tags": ["remove-input"]}),
             code("plt.plot()", id="f", metadata={"tags": ["hide-input"]}),
             code('print(1); show(quiz); display(Markdown("Said"))', id="q", metadata={"tags": ["hide-input"]})]
    root = _chapter(tmp_path, cells)
    chapter = root / "book" / "a_first.ipynb"
    book = colab_notebooks.load_book(root)
    built = nbformat.read(chapter, as_version=4)
    built.cells[2].outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": "2 notes, see {numref}`fig-b1`", "text/plain": "<Markdown>"})]
    built.cells[3].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "AAAA"})]
    built.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                              nbformat.v4.new_output("display_data", data={"text/html": "<div>quiz</div>"}),
                              nbformat.v4.new_output("display_data", data={"text/markdown": "Said",
                                                                           "text/plain": "<Markdown>"})]
    (root / "_build" / ".jupyter_cache" / "executed" / "x").mkdir(parents=True)
    nbformat.write(built, root / "_build" / ".jupyter_cache" / "executed" / "x" / "base.ipynb")
    found = colab_notebooks.stored_outputs(book, chapter, root / "_build", None, root)
    assert list(found) == ["m", "q"]  # a figure is not kept: only Markdown, also beside other outputs
    nb = colab_notebooks.colab_copy(book, chapter, root, outputs=found)
    stored = {c.get("id"): c.outputs for c in nb.cells if c.cell_type == "code"}
    assert [o["data"] for o in stored["m"]] == [{"text/markdown": "2 notes, see Figure 2"}] and stored["f"] == []
    assert [o["data"] for o in stored["q"]] == [{"text/markdown": "Said"}]
    dest = colab_notebooks.copy_path(chapter, root)
    dest.parent.mkdir(parents=True)
    dest.write_text(colab_notebooks.render(nb))
    # without a build, the copy keeps what it has; --check ignores outputs either way
    again = colab_notebooks.stored_outputs(book, chapter, None, dest, root)
    assert colab_notebooks.render(colab_notebooks.colab_copy(book, chapter, root, outputs=again)) == dest.read_text()
    assert colab_notebooks.is_current(book, chapter, root)
    # the chapter's code changes: neither the old build nor the old copy gives outputs any more
    changed = nbformat.read(chapter, as_version=4)
    changed.cells[3].source = "plt.plot(1)"
    nbformat.write(changed, chapter)
    assert colab_notebooks.stored_outputs(book, chapter, root / "_build", dest, root) == {}
    assert not colab_notebooks.is_current(book, chapter, root)


def test_only_blocks_are_for_the_book_or_for_the_copy(tmp_path):
    """Sphinx's {only}: the book (an HTML build) keeps ``html`` blocks; a copy keeps ``colab`` ones."""
    book = colab_notebooks.load_book(_mini_book(tmp_path))
    md = ("Before.\n\n```{only} html\nIn the page: the box runs in your browser.\n```\n\n"
          "```{only} colab\nIn Colab: the cell below runs it in Python, see {numref}`fig-b1`.\n```\n\nAfter.")
    out = colab_notebooks.convert_markdown(book, "book/a_first", md, [])
    assert "In the page" not in out and "In Colab: the cell below runs it in Python, see Figure 2." in out
    assert out.startswith("Before.") and out.endswith("After.")
    assert colab_notebooks.only_in_copy("d", "colab and not html") and not colab_notebooks.only_in_copy("d", "html or latex")
    for bad in ("colab; import os", "__import__('os')", ""):
        with pytest.raises(ValueError):
            colab_notebooks.only_in_copy("d", bad)


def test_the_check_runs_on_colabs_python_when_it_can_and_says_why_not(monkeypatch, tmp_path):
    import subprocess

    py313 = tmp_path / "python3.13"
    py313.write_text("")
    monkeypatch.setattr(colab_check, "find_python", lambda v: None)
    python, why = colab_check.choose_python(None)
    assert python == Path(sys.executable) and why.startswith("no Python 3.13 here")
    monkeypatch.setattr(colab_check, "find_python", lambda v: py313)
    reports = {"url": "file:///opt/wheels/torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"}

    def fake_pip(cmd, **kw):
        assert cmd[0] == str(py313) and "--dry-run" in cmd and colab_check.TORCH in cmd
        report = {"install": [{"download_info": {"url": reports["url"]}}]}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(report), "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert colab_check.choose_python(None) == (py313, f"Python 3.13, Colab's default ({py313})")
    reports["url"] = "https://files.example/torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl"
    python, why = colab_check.choose_python(None)
    assert python == Path(sys.executable)
    assert "not used: its torch==2.13.0 wheel is not on this machine" in why
    assert "torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl" in why
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for torch==2.13.0"))
    assert "pip finds no torch==2.13.0 wheel for it (ERROR: No matching distribution" in colab_check.choose_python(None)[1]
