"""The package documents itself: docstrings, API pages in the book, the table of contents, citations.

- Every public function, class and method of every public ``b2b`` module has its own docstring
  (the book's API reference is generated from them; autodoc silently leaves undocumented members
  out, so this test, and the ``b2b_docstrings`` Sphinx extension under ``-W``, are the guard).
- Every module has a page in ``book/api/`` that autodocs it, and every page is in ``_toc.yml``.
- Every module named in the module table of ``DEVELOPERS.md`` exists, and vice versa.
- Every ``{cite}`` key used in the book is in ``book/references.bib``, which has no duplicate keys,
  and there is exactly one ``{bibliography}`` directive.

Modules are found with ``pkgutil.walk_packages`` (dotted names under ``b2b``, e.g.
``model.networks``; an API page is named by the last part, ``book/api/networks.md``), so a module
added later is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
import yaml

import b2b

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "book" / "api"
BOOK = ROOT / "book"

MODULES = sorted(m.name.removeprefix("b2b.") for m in pkgutil.walk_packages(b2b.__path__, "b2b.")
                 if not m.ispkg and not m.name.rsplit(".", 1)[-1].startswith("_"))
#: the layers (subpackages), each documented by its ``__init__`` docstring on the API index page
PACKAGES = sorted(m.name.removeprefix("b2b.") for m in pkgutil.walk_packages(b2b.__path__, "b2b.") if m.ispkg)


def page_name(module: str) -> str:
    """The API page of a module: ``book/api/<last part of its dotted name>.md``."""
    return module.rsplit(".", 1)[-1]


def contract_modules() -> list[str]:
    """Module names (without ``b2b.``) in the ``## Modules`` table of DEVELOPERS.md."""
    text = (ROOT / "DEVELOPERS.md").read_text(encoding="utf-8")
    section = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    return sorted(re.findall(r"^\|\s*`b2b\.([\w.]+)`\s*\|", section, flags=re.M))


def own_doc(obj: Any) -> str:
    """``obj``'s own docstring, stripped; '' if it has none of its own.

    Inherited docstrings do not count (``inspect.getdoc`` would return a base class's), nor do the
    placeholders Python generates for dataclasses, named tuples and enums.
    """
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = doc.strip() if isinstance(doc, str) else ""
    if inspect.isclass(obj):
        generated = doc.startswith(obj.__name__ + "(") and doc.endswith(")") and "\n" not in doc
        if generated and (dataclasses.is_dataclass(obj) or issubclass(obj, tuple)):
            return ""
        if doc == "An enumeration.":
            return ""
    return doc


def public_objects(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """(qualified name, object) for each public function, class and method defined in ``module``.

    Names bound in the module but defined elsewhere (imports, re-exports) are left to their own
    module. Methods are those defined in the class body (not inherited), including properties,
    static and class methods.
    """
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        yield f"{module.__name__}.{name}", obj
        if not inspect.isclass(obj):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member) or inspect.isclass(member):
                yield f"{module.__name__}.{name}.{attr}", member


def test_the_tests_see_every_module_of_this_checkout():
    # every test here is parametrised by MODULES: they must come from this repository's b2b/ (not
    # an installed copy) and name each of its module files, or the checks pass on nothing
    assert Path(b2b.__file__).resolve().parent == ROOT / "b2b", b2b.__file__
    files = sorted(".".join(p.relative_to(ROOT / "b2b").with_suffix("").parts)
                   for p in (ROOT / "b2b").rglob("*.py") if not p.name.startswith("_"))
    assert MODULES == files
    # one page per module, named by the module's last part: the last parts are unique
    assert len({page_name(m) for m in MODULES}) == len(MODULES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_layer_is_documented_and_names_its_public_parts(package):
    module = importlib.import_module(f"b2b.{package}")
    assert own_doc(module), f"b2b.{package}/__init__.py has no docstring"
    exported = getattr(module, "__all__", None)
    assert exported, f"b2b.{package}/__init__.py must name its public parts in __all__"
    assert all(hasattr(module, n) for n in exported)
    # a name that is also a submodule would hide the module (`from b2b.sampling import generate`)
    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    assert not submodules & set(exported), f"b2b.{package} exports names of its modules: {submodules & set(exported)}"
    index = (API / "index.md").read_text(encoding="utf-8")
    assert f".. automodule:: b2b.{package}\n" in index, f"book/api/index.md must show b2b.{package}'s docstring"


@pytest.mark.parametrize("name", MODULES)
def test_public_objects_have_docstrings(name):
    module = importlib.import_module(f"b2b.{name}")
    assert own_doc(module), f"b2b.{name} has no module docstring"
    missing = [qualname for qualname, obj in public_objects(module) if not own_doc(obj)]
    assert not missing, (
        f"public objects of b2b.{name} without a docstring (DEVELOPERS.md: every public function "
        f"has a short numpy-style docstring): {', '.join(missing)}"
    )


def test_docstring_check_finds_offenders():
    """The checker itself, on a module built here: flags exactly the undocumented public objects."""
    module = ModuleType("b2b_fake_module", "A module docstring.")
    source = '''
import os
from os.path import join

def documented():
    """Has one."""

def bare():
    pass

def _private():
    pass

class Base:
    """Base."""
    def method(self):
        """Documented in the base."""

class Child(Base):
    def method(self):
        pass
    @property
    def size(self):
        return 1
    @staticmethod
    def make():
        """Made."""
    def _hidden(self):
        pass
'''
    module.__dict__["__name__"] = "b2b_fake_module"
    exec(compile(source, "<fake>", "exec"), module.__dict__)
    found = [q for q, obj in public_objects(module) if not own_doc(obj)]
    assert found == [
        "b2b_fake_module.bare",
        "b2b_fake_module.Child",
        "b2b_fake_module.Child.method",
        "b2b_fake_module.Child.size",
    ]
    listed = [q for q, _ in public_objects(module)]
    assert "b2b_fake_module.join" not in listed and "b2b_fake_module._private" not in listed


def test_generated_docstrings_do_not_count():
    @dataclasses.dataclass
    class Window:
        steps: int

    @dataclasses.dataclass
    class Documented:
        """A documented dataclass."""

        steps: int

    assert own_doc(Window) == ""
    assert own_doc(Documented) == "A documented dataclass."


def test_every_module_in_the_contract_exists():
    missing = sorted(set(contract_modules()) - set(MODULES))
    assert not missing, f"modules in the DEVELOPERS.md table but not in b2b/: {missing}"


def test_every_module_is_in_the_contract():
    extra = sorted(set(MODULES) - set(contract_modules()))
    assert not extra, f"modules in b2b/ missing from the DEVELOPERS.md module table: {extra}"


@pytest.mark.parametrize("name", sorted(set(MODULES) | set(contract_modules())))
def test_every_module_has_an_api_page(name):
    page = API / f"{page_name(name)}.md"
    assert page.exists(), f"b2b.{name} has no API page: add book/api/{page_name(name)}.md (see CONTRIBUTING.md)"
    text = page.read_text(encoding="utf-8")
    assert re.search(
        rf"```\{{eval-rst\}}\n\.\. automodule:: b2b\.{re.escape(name)}\n\s+:members:", text
    ), f"{page.name} must autodoc the module: an eval-rst block with '.. automodule:: b2b.{name}' and ':members:'"
    assert text.startswith(f"# `b2b.{name}`"), f"{page.name} must be titled '# `b2b.{name}`: ...'"
    first_paragraph = text.split("\n\n")[1]
    assert re.search(r"\{doc\}`\.\./\w+`", first_paragraph), (
        f"{page.name} must open with a sentence on the idea and a {{doc}} link to its chapter"
    )


def test_every_api_page_documents_a_module():
    for page in API.glob("*.md"):
        if page.stem != "index":
            names = {page_name(m) for m in set(MODULES) | set(contract_modules())}
            assert page.stem in names, f"{page} documents no module"


def toc_files() -> set[str]:
    """Every ``file:`` entry of ``_toc.yml`` (paths without suffix, relative to the root)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("file", "root") and isinstance(value, str):
                    found.add(str(Path(value).with_suffix("")) if Path(value).suffix in (".md", ".ipynb") else value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def test_api_pages_and_references_are_in_the_toc():
    listed = toc_files()
    pages = [f"book/api/{p.stem}" for p in sorted(API.glob("*.md"))] + ["book/references"]
    missing = [p for p in pages if p not in listed]
    assert not missing, (
        f"pages not in _toc.yml (with only_build_toc_files they are not built): {missing}"
    )


def bib_keys() -> list[str]:
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    return re.findall(r"^\s*@\w+\s*\{\s*([^,\s]+)\s*,", text, flags=re.M)


def test_bibliography_keys_are_unique():
    keys = bib_keys()
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"duplicate keys in book/references.bib: {duplicates}"
    assert {"b2b2023", "dong2018musegan", "raffel2016lmd", "gulrajani2017wgangp"} <= set(keys)


def book_sources() -> Iterator[tuple[Path, str]]:
    """(path, markdown text) for every page of the book: .md files and notebooks' markdown cells."""
    for path in sorted(BOOK.rglob("*")):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        if path.suffix == ".md":
            yield path, path.read_text(encoding="utf-8")
        elif path.suffix == ".ipynb":
            nb = json.loads(path.read_text(encoding="utf-8"))
            cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
            yield path, "\n".join("".join(c.get("source", "")) for c in cells)


def test_cited_keys_are_in_the_bibliography():
    keys = set(bib_keys())
    unknown = []
    for path, text in book_sources():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]*)`", text):
            for key in (k.strip() for k in group.split(",")):
                if key and key not in keys:
                    unknown.append(f"{path.relative_to(ROOT)}: {key}")
    assert not unknown, f"cited keys missing from book/references.bib: {unknown}"


def test_one_bibliography_directive():
    """sphinxcontrib-bibtex: one project-wide bibliography, on book/references.md."""
    pages = [p.relative_to(ROOT).as_posix() for p, text in book_sources() if re.search(r"[`:]\{bibliography\}", text)]
    assert pages == ["book/references.md"], pages


def load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("b2b_docstrings", API / "_ext" / "b2b_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_extension_warns_about_missing_docstrings(monkeypatch):
    """The build-time guard: ``b2b_docstrings`` warns (an error under -W) for undocumented objects."""
    ext = load_extension()
    warnings: list[tuple] = []

    class FakeLogger:
        def warning(self, *args, **kwargs):
            warnings.append(args)

    monkeypatch.setattr(ext, "logger", FakeLogger())

    def bare(x):
        return x

    def documented(x):
        """Documented."""
        return x

    class Base:
        """Base."""

        def step(self):
            """Documented in the base only."""

    class Child(Base):
        def step(self):
            return 1

    for obj in (bare, documented, Child, Child.step):
        obj.__module__ = "b2b.fake"
    for name, obj in [("bare", bare), ("documented", documented), ("Child", Child), ("step", Child.step),
                      ("size", property(bare)), ("make", staticmethod(documented)), ("_hidden", bare),
                      ("Tensor", int)]:
        ext.check_member(None, "module", name, obj, False, None)
    flagged = [args[3] for args in warnings]
    assert flagged == [bare.__qualname__, Child.__qualname__, Child.step.__qualname__, bare.__qualname__]


def test_sphinx_extension_is_enabled():
    """_config.yml loads the docstring guard, so the book build fails on a missing docstring."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx = config.get("sphinx", {})
    assert (sphinx.get("local_extensions") or {}).get("b2b_docstrings") == "book/api/_ext", (
        "add to _config.yml under sphinx:  local_extensions: {b2b_docstrings: book/api/_ext}"
    )
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon"} <= set(sphinx.get("extra_extensions", []))


def test_book_build_ignores_hidden_folders(tmp_path):
    """pytest leaves ``.pytest_cache/README.md``; Sphinx reads every .md it finds (the toc filter
    skips hidden folders), so without an exclude pattern ``scripts/test.sh`` followed by
    ``scripts/book.sh`` fails with "document isn't included in any toctree"."""
    from sphinx.util.matching import get_matching_files

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    patterns = list(config.get("exclude_patterns", [])) + ["_build", "**.ipynb_checkpoints"]
    for path in [".pytest_cache/README.md", "book/.hidden/notes.md", "book/intro.md"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("# x\n")
    found = sorted(get_matching_files(tmp_path, exclude_patterns=patterns))
    assert found == ["book/intro.md"], (
        f"hidden files reach the book build: {found}; add \".*\" and \"**/.*\" to exclude_patterns in _config.yml"
    )


def test_markdown_written_by_code_is_parsed_as_myst():
    """A code cell's Markdown output is parsed as MyST (tables, $ maths, roles); MyST-NB's default,
    CommonMark, printed nine of the book's tables as raw pipe text."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["sphinx"]["config"].get("nb_render_markdown_format") == "myst"


def display_maths_in_list_items(markdown: str) -> list[str]:
    """Lines of ``markdown`` where display maths (``$$``) continues a list item, which MyST does not typeset."""
    found, in_item, in_maths, after_blank = [], False, False, False
    for line in markdown.splitlines():
        if in_maths:                                   # inside a $$ block: "+ x" is no list item
            in_maths = line.count("$$") % 2 == 0
            continue
        if not line.strip():
            after_blank = True
            continue
        if re.match(r" {0,3}(?:[-*+]|\d+[.)])\s+\S", line):
            in_item = True
        elif after_blank and not line.startswith("  "):  # an unindented paragraph ends the list
            in_item = False
        after_blank = False
        if in_item and "$$" in line:
            found.append(line.strip())
        in_maths = line.count("$$") % 2 == 1
    return found


def test_display_maths_in_a_list_item_is_found():
    assert display_maths_in_list_items("1. update the critic on\n   $$L_D = x,$$\n   where\n2. once") == ["$$L_D = x,$$"]
    assert display_maths_in_list_items("1. update the critic on $L_D$ (below);\n\n$$L_D = x,$$\n") == []
    assert display_maths_in_list_items("$$\nV = a\n  + b.\n$$\n") == []           # "+ b" continues the maths
    assert display_maths_in_list_items("- an item\n\n  $$x$$\n") == ["$$x$$"]       # indented: still the item


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_display_maths_inside_a_list_item(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    bad = [line for c in cells if c["cell_type"] == "markdown"
           for line in display_maths_in_list_items("".join(c["source"]))]
    assert not bad, f"{path.name}: display maths inside a list item renders raw; give it its own paragraph: {bad}"
