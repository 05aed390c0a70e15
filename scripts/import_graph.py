"""The picture of the package's imports: modules, lines, edges, circles, floors.

Reads ``b2b/**/*.py`` with :mod:`ast` (nothing is imported; a module is named by its dotted path
under ``b2b``, ``model.networks``) and prints, for each module, its lines and the b2b modules it
imports, and the lines and code lines (:func:`code_lines`) of each layer (:data:`LAYERS`); then the numbers DEVELOPERS.md and the closing notes quote:
modules, lines, edges, circles (strongly connected groups of more than one module), imports of
b2b modules made inside functions (hidden edges), and library modules that import the CLI.
The *floor* of a module is 0 when it imports no b2b module, else one more than the highest
floor it imports: reading the floors from the top down reads the package from the command line
down to the geometry. ``tests/test_package.py`` holds the package to: no circles, no import from a
lower layer to a higher one, no hidden edges, no library module importing ``b2b.cli``.

Usage::

    python scripts/import_graph.py [--package b2b] [--json]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Module:
    """One module of the package: its name, lines, and the package modules it imports."""

    name: str
    lines: int
    imports: set[str] = field(default_factory=set)          # at module level
    code: int = 0                                            # code lines (see code_lines)
    hidden: list[tuple[int, str]] = field(default_factory=list)  # (line, module) inside functions


#: The package's layers from the bottom up (its subpackages, in the book's order): a module may
#: import modules of its own layer and of layers below it, never above. Top-level modules
#: (``cli``, ``__main__``, ``__init__``) sit above every layer.
LAYERS = ["files", "music", "datasets", "gan", "model", "sampling", "training", "evaluation"]


def code_lines(text: str) -> int:
    """Lines of code in a module's source: lines that hold a token other than a comment, minus
    the lines of docstrings (a string that is the first statement of the module, a class or a
    function). A blank line, a comment line and a docstring line do not count; a statement
    spread over three lines counts three."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER, tokenize.ENCODING}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.difference_update(range(first.lineno, first.end_lineno + 1))
    return len(lines)


def layer(name: str, layers: list[str] = LAYERS) -> int:
    """The layer index of module ``name`` (``"model.networks"`` → index of ``"model"``); a
    top-level module (no layer of its own) is above them all: ``len(layers)``."""
    head = name.split(".")[0]
    return layers.index(head) if head in layers else len(layers)


def _module_name(path: Path, pkg_dir: Path) -> str:
    """``b2b/model/networks.py`` → ``"model.networks"``; ``b2b/model/__init__.py`` → ``"model"``;
    ``b2b/__init__.py`` → ``"__init__"``."""
    parts = list(path.relative_to(pkg_dir).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _targets(node: ast.AST, package: str, modules: set[str], here: str = "") -> list[str]:
    """The package modules an ``import``/``from ... import`` node names (``b2b.model.networks`` →
    ``"model.networks"``; a name that is not a module, ``from b2b.model import GenConvNet``, names
    the subpackage's ``__init__``, ``"model"``). ``here`` is the dotted package the importing file
    sits in (for relative imports)."""
    def longest(dotted: str) -> str | None:
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            if ".".join(parts[:k]) in modules:
                return ".".join(parts[:k])
        return None

    out: list[str] = []
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.name.startswith(package + "."):
                out.append(longest(a.name[len(package) + 1:]))
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: "from . import x" / "from .x import y" / "from .. import z"
            parent = here.split(".") if here else []
            parent = parent[:len(parent) - (node.level - 1)] if node.level > 1 else parent
            base = ".".join([package, *parent] + ([base] if base else []))
        if base == package or base.startswith(package + "."):
            inner = base[len(package) + 1:]
            for a in node.names:
                full = f"{inner}.{a.name}" if inner else a.name
                if full in modules:
                    out.append(full)
                elif inner:
                    out.append(longest(inner))
    return [m for m in out if m in modules]


def read_package(package: str = "b2b", root: Path = ROOT) -> dict[str, Module]:
    """Every module of ``root/package`` and its subpackages (``__init__`` and ``__main__``
    included), named by its dotted path under the package, and its imports."""
    pkg_dir = root / package
    files = sorted(pkg_dir.rglob("*.py"))
    names = {_module_name(f, pkg_dir) for f in files}
    mods: dict[str, Module] = {}
    for f in files:
        text = f.read_text()
        tree = ast.parse(text, str(f))
        m = Module(_module_name(f, pkg_dir), len(text.splitlines()), code=code_lines(text))
        here = ".".join(f.parent.relative_to(pkg_dir).parts)
        top = set(id(n) for n in tree.body)
        for node in ast.walk(tree):
            for t in _targets(node, package, names, here):
                if t == m.name:
                    continue
                if id(node) in top or _under_type_checking(tree, node):
                    m.imports.add(t)
                else:
                    m.hidden.append((node.lineno, t))
        mods[m.name] = m
    return mods


def upward(mods: dict[str, Module], layers: list[str] = LAYERS) -> list[str]:
    """Imports from a lower layer to a higher one (``"music.data -> model.networks"``), sorted:
    :data:`LAYERS` says the order."""
    return sorted(f"{m.name} -> {t}" for m in mods.values()
                  for t in m.imports | {t for _, t in m.hidden} if layer(t, layers) > layer(m.name, layers))


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    """Whether ``node`` sits in a module-level ``if TYPE_CHECKING:`` block."""
    for top in tree.body:
        if isinstance(top, ast.If) and getattr(top.test, "id", getattr(top.test, "attr", "")) == "TYPE_CHECKING":
            if any(n is node for n in ast.walk(top)):
                return True
    return False


def circles(mods: dict[str, Module]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(mods[v].imports | {t for _, t in mods[v].hidden}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return sorted(out)


def floors(mods: dict[str, Module]) -> dict[str, int]:
    """Floor of every module (see the module docstring); needs a package without circles."""
    memo: dict[str, int] = {}

    def floor(v: str) -> int:
        if v not in memo:
            memo[v] = 0
            memo[v] = 1 + max((floor(w) for w in mods[v].imports), default=-1)
        return memo[v]

    return {v: floor(v) for v in mods}


def summary(mods: dict[str, Module]) -> dict:
    """The numbers: modules, lines, edges, circles, hidden edges, library modules importing the CLI."""
    return {
        "modules": len(mods),
        "lines": sum(m.lines for m in mods.values()),
        "code": sum(m.code for m in mods.values()),
        "edges": sum(len(m.imports | {t for _, t in m.hidden}) for m in mods.values()),
        "circles": circles(mods),
        "hidden": sorted(f"{m.name}:{line} -> {t}" for m in mods.values() for line, t in m.hidden),
        "upward": upward(mods),
        "import_cli": sorted(m.name for m in mods.values()
                             if "cli" in m.imports | {t for _, t in m.hidden} and m.name not in ("__main__",)),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the package's floors and numbers (or JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", default="b2b")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = ap.parse_args(argv)
    mods = read_package(args.package)
    s = summary(mods)
    if args.json:
        print(json.dumps({**s, "floors": floors(mods) if not s["circles"] else None}, indent=1))
        return 0
    if not s["circles"]:
        fl = floors(mods)
        for level in sorted(set(fl.values()), reverse=True):
            row = sorted(v for v in fl if fl[v] == level)
            print(f"floor {level}: " + ", ".join(f"{v} ({mods[v].lines})" for v in row))
    for i, name in enumerate(LAYERS):
        inside = [v for v in mods if layer(v) == i]
        print(f"layer {i} {name}: {len(inside)} modules, {sum(mods[v].lines for v in inside):,} lines, "
              f"{sum(mods[v].code for v in inside):,} code lines")
    print(f"{s['modules']} modules, {s['lines']:,} lines ({s['code']:,} code lines), {s['edges']} import edges, "
          f"{len(s['circles'])} circles, {len(s['upward'])} upward imports, {len(s['hidden'])} imports inside functions, "
          f"{len(s['import_cli'])} library modules importing the CLI")
    for c in s["circles"]:
        print("circle:", " <-> ".join(c))
    for u in s["upward"]:
        print("upward (a lower layer importing a higher one):", u)
    for h in s["hidden"]:
        print("inside a function:", h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
