"""The picture of the package's imports: modules, lines, edges, circles, floors.

Reads ``b2b/*.py`` with :mod:`ast` (nothing is imported) and prints, for each module, its lines
and the b2b modules it imports; then the numbers DEVELOPERS.md and the closing notes quote:
modules, lines, edges, circles (strongly connected groups of more than one module), imports of
b2b modules made inside functions (hidden edges), and library modules that import the CLI.
The *floor* of a module is 0 when it imports no b2b module, else one more than the highest
floor it imports: reading the floors from the top down reads the package from the command line
down to the geometry. ``tests/test_package.py`` holds the package to: no circles, no hidden
edges, no library module importing ``b2b.cli``.

Usage::

    python scripts/import_graph.py [--package b2b] [--json]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Module:
    """One module of the package: its name, lines, and the package modules it imports."""

    name: str
    lines: int
    imports: set[str] = field(default_factory=set)          # at module level
    hidden: list[tuple[int, str]] = field(default_factory=list)  # (line, module) inside functions


def _targets(node: ast.AST, package: str, modules: set[str]) -> list[str]:
    """The package modules an ``import``/``from ... import`` node names (``b2b.x`` → ``x``)."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.name.startswith(package + "."):
                out.append(a.name.split(".")[1])
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: "from . import x" / "from .x import y"
            base = package + ("." + base if base else "")
        if base == package:
            out += [a.name for a in node.names if a.name in modules]
        elif base.startswith(package + "."):
            out.append(base.split(".")[1])
    return [m for m in out if m in modules]


def read_package(package: str = "b2b", root: Path = ROOT) -> dict[str, Module]:
    """Every module of ``root/package`` (``__init__`` and ``__main__`` included) and its imports."""
    files = sorted((root / package).glob("*.py"))
    names = {f.stem for f in files}
    mods: dict[str, Module] = {}
    for f in files:
        tree = ast.parse(f.read_text(), str(f))
        m = Module(f.stem, len(f.read_text().splitlines()))
        top = set(id(n) for n in tree.body)
        for node in ast.walk(tree):
            for t in _targets(node, package, names):
                if t == m.name:
                    continue
                if id(node) in top or _under_type_checking(tree, node):
                    m.imports.add(t)
                else:
                    m.hidden.append((node.lineno, t))
        mods[m.name] = m
    return mods


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
        "edges": sum(len(m.imports | {t for _, t in m.hidden}) for m in mods.values()),
        "circles": circles(mods),
        "hidden": sorted(f"{m.name}:{line} -> {t}" for m in mods.values() for line, t in m.hidden),
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
    print(f"{s['modules']} modules, {s['lines']:,} lines, {s['edges']} import edges, "
          f"{len(s['circles'])} circles, {len(s['hidden'])} imports inside functions, "
          f"{len(s['import_cli'])} library modules importing the CLI")
    for c in s["circles"]:
        print("circle:", " <-> ".join(c))
    for h in s["hidden"]:
        print("inside a function:", h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
