"""Run every chapter the way Colab runs it, under nbval, and fail if a cell raises.

This is the test command's notebook check (``scripts/test.sh``): one execution per chapter that is
both nbval over every notebook (``pytest --nbval-lax``: every cell must run without error) and
the chapter run as a reader runs it in Colab. What a reader does in Colab, simulated on this machine:

1. a runtime with Colab's own packages already installed at Colab's versions (``COLAB_PACKAGES``
   pinned by ``colab/constraints.txt``, Colab's published package list: IPython 7.34, ipykernel
   6.17, ipywidgets 7.7, jupyter_client 7.4, notebook 6.5, numpy, scipy, matplotlib, tqdm,
   music21 9.9.2, ...; torch is the local CPU wheel ``TORCH``, not Colab's build) and **no**
   jupyter-book or myst-nb: a virtual environment built once (``--venv``, default
   ``.colab-venv``, rebuilt when the constraints change) and hard-link copied afresh for every
   chapter, so no chapter sees what another installed. The check adds its test runner
   (``CHECK_PACKAGES``: pytest, pluggy and iniconfig at Colab's own versions, which Colab ships;
   nbval and its dependency coverage, which Colab lacks), installed with the same constraints:
   the build fails if any package then differs from Colab's version;
2. the chapter's **Colab copy** (``colab/book/``, written by ``scripts/colab_notebooks.py``; the
   check refuses stale copies) alone in an empty folder, with a fresh ``HOME`` (no data root, no
   caches but pip's download cache);
3. ``google.colab`` in ``sys.modules`` before the first cell, as in Colab's kernel (an IPython
   startup file in the fresh ``HOME`` registers an empty module of that name; not a cell, so
   nbval's cells are the chapter's), so the chapter's own install cell runs and installs b2b with
   ``%pip`` from ``$B2B_PIP_URL`` = ``git+file://<repo>`` (the repository's committed ``HEAD``);
4. every cell executed top to bottom by ``pytest --nbval-lax`` in that environment, **including**
   cells tagged ``skip-execution`` or ``nbval-skip``: Colab ignores tags, so the chapter is run
   from a copy without them (the committed copy keeps them for the book's own nbval runs), a cell
   nbval still skips fails the chapter, and the first failing cell stops it (``-x``), as a
   failing cell stops Colab's "Run all";
5. ``pip freeze`` before and after: a chapter whose install changed one of Colab's packages fails;
6. once per run, the install cell alone with a repository URL that does not exist: it must fail
   itself, with its message (not pass silently as ``%pip`` does in IPython 7);
7. once per run, the install cell in a runtime used before: b2b of the commit before ``HEAD`` (same
   version number) installed and imported in the kernel, then the install cell for ``HEAD``: pip
   must replace it and the kernel's next ``import b2b`` must give ``HEAD``'s (``REINSTALL_CHECK``).

Usage::

    python scripts/colab_check.py                              # every chapter (colab/book/), on Python 3.13 if it can
    python scripts/colab_check.py colab/book/02_gans.ipynb     # one chapter
    python scripts/colab_check.py --python 3.13 colab/book/02_gans.ipynb   # on Colab's Python
    python scripts/colab_check.py --repo /path/to/clone        # install b2b from another checkout

The environment is built on Colab's default Python, 3.13 (``COLAB_PYTHON``), when an interpreter
is at hand (pyenv's or ``python3.13`` on ``PATH``) and pip can install the CPU torch for it from
this machine's own wheels (:func:`torch_at_hand`): then tinysoundfont, which has no wheel for
3.13, is compiled as in Colab. Otherwise the interpreter running the script is used and the first
line says why (no 3.13; no local torch wheel for it: pip would download a CUDA build of several
gigabytes from the package index). ``--python`` picks one explicitly.

Prints one line per chapter (status, seconds, cells passed) with pytest's closing line under it
and, for a chapter that fails, the cell and the error; a last line with the totals; exits 1 if
any chapter failed. Uncommitted changes are not seen by the chapters (pip
installs the committed ``HEAD``): the script warns when the work tree is dirty.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Colab's published package list (dated in its header); every package below gets its version.
CONSTRAINTS = ROOT / "colab" / "constraints.txt"

#: What a Colab CPU runtime has preinstalled that the chapters touch, installed at the versions of
#: :data:`CONSTRAINTS` (with whatever they pull in). No jupyter-book, no myst-nb.
COLAB_PACKAGES = ["pip", "ipython", "ipykernel", "ipywidgets", "jupyter_client", "notebook", "traitlets",
                  "tornado", "pyzmq", "numpy", "scipy", "matplotlib", "tqdm", "music21", "soundfile",
                  "nbclient", "nbformat"]

#: The notebook test runner the check adds to Colab's packages, installed with Colab's constraints:
#: pytest (with pluggy and iniconfig) is Colab's own at Colab's version; nbval (the version of
#: ``requirements.txt``) and its dependency coverage are not in Colab's list. Nothing else changes.
CHECK_PACKAGES = ["pytest", "nbval==0.11.0"]

#: Colab's torch is 2.11.0+cpu (CUDA on a GPU runtime; a URL line of Colab's list, left out of the
#: constraints file): a download this machine cannot make, so the local CPU wheel stands in for it.
TORCH = "torch==2.13.0"
COLAB_TORCH = "2.11.0+cpu"

#: Pins of the constraints file the local torch cannot live with: torch 2.13 needs
#: setuptools >= 77.0.3, Colab (with its torch 2.11) has 75.2.0.
NOT_PINNED = {"setuptools"}

#: Colab's earlier runtime (2026-07, Python 3.12) differs from the constraints file in these pins.
PY312_PINS = {"numpy": "2.0.2"}

#: Interpreters for ``--python`` (Colab's runtimes: 3.13 by default, 3.12 selectable): pyenv's,
#: else ``python3.X`` on ``PATH``.
PYTHONS = {"3.12": Path("/root/.pyenv/versions/3.12.1/bin/python"),
           "3.13": Path("/root/.pyenv/versions/3.13.0/bin/python")}
#: Colab's default runtime since 2026-08-25: the check runs on it when it can.
COLAB_PYTHON = "3.13"

#: The install cell is run once with this URL: it must fail, and say so itself.
BAD_URL = "git+file:///nonexistent/b2b-repository"
INSTALL_FAILURE = "Check the repository URL"

#: An IPython startup file in the fresh HOME: what makes ``"google.colab" in sys.modules`` true in
#: the kernel before the first cell, as Colab's kernel has imported it.
COLAB_STARTUP = ('# Colab\'s kernel has google.colab imported before the first cell: stand in for it.\n'
                 'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")\n')

#: A chapter should run in this many seconds on a 2-core CPU (a warning above, not a failure:
#: shared machines are noisy).
BUDGET_S = 180

# Runs inside the chapter's venv: refuses an environment with myst_nb (not Colab-like), then is pytest.
_DRIVER = textwrap.dedent(r"""
    import sys
    try:
        import myst_nb  # noqa: F401
    except ImportError:
        import pytest
        sys.exit(pytest.main(sys.argv[1:]))
    print("myst_nb is importable: this is not a Colab-like environment", file=sys.stderr)
    sys.exit(3)
""")

#: pytest's closing line, e.g. "==== 31 passed, 1 warning in 95.12s (0:01:35) ====".
PYTEST_CLOSING = re.compile(r"^=+ .*\b(passed|failed|error|errors|skipped|no tests ran)\b.* in [0-9.]+s.* =+$")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` ("3.13"): pyenv's (:data:`PYTHONS`), else ``python3.13`` on ``PATH``."""
    known = PYTHONS.get(version)
    if known is not None and known.is_file():
        return known
    found = shutil.which(f"python{version}")
    return Path(found) if found else None


def torch_at_hand(python: Path) -> str | None:
    """None if pip can install :data:`TORCH` for ``python`` from this machine's own wheels (a local
    ``file:`` index or ``--find-links`` folder), else why not: a CUDA build of several gigabytes from
    the package index is no stand-in for Colab's CPU torch, and needs a network."""
    try:
        proc = subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                               "--retries", "0", "--timeout", "15",
                               "--ignore-installed", "--report", "-", TORCH],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"pip could not look for {TORCH} ({error})"
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return f"pip finds no {TORCH} wheel for it ({last})"
    try:
        url = json.loads(proc.stdout)["install"][0]["download_info"]["url"]
    except (ValueError, KeyError, IndexError):
        return f"pip's report on {TORCH} could not be read"
    if url.startswith("file:"):
        return None
    return f"its {TORCH} wheel is not on this machine (pip would download {url.rsplit('/', 1)[-1]})"


def choose_python(requested: str | None) -> tuple[Path, str]:
    """The interpreter to build the Colab-like environment on, and a sentence saying why.

    ``--python X`` is used as asked. Otherwise Colab's default, :data:`COLAB_PYTHON`, when an
    interpreter is at hand and a CPU torch for it is installable from this machine's wheels
    (:func:`torch_at_hand`), so its packages without wheels (tinysoundfont) are built from source as
    in Colab; else the interpreter running this script, with the reason printed.
    """
    if requested:
        return PYTHONS.get(requested) or find_python(requested) or PYTHONS[requested], f"Python {requested} (--python)"
    python = find_python(COLAB_PYTHON)
    if python is None:
        return Path(sys.executable), f"no Python {COLAB_PYTHON} here (Colab's default): {sys.executable}"
    problem = torch_at_hand(python)
    if problem:
        return Path(sys.executable), f"Python {COLAB_PYTHON} ({python}) not used: {problem}; {sys.executable} instead"
    return python, f"Python {COLAB_PYTHON}, Colab's default ({python})"


def colab_versions(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """``{normalized name: version}`` of every ``name==version`` line of a constraints file."""
    versions = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#", 1)[0].strip().split("==", 1)
            versions[_normal(name)] = version.strip()
    return versions


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def freeze(python: Path) -> dict[str, str]:
    """``{normalized name: version or URL}`` of what ``pip freeze`` lists for an interpreter."""
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                         check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}).stdout
    result = {}
    for line in out.splitlines():
        for sep in ("==", " @ "):
            if sep in line:
                name, version = line.split(sep, 1)
                result[_normal(name)] = version.strip()
                break
    return result


def changed_packages(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Each package of ``before`` that ``after`` lacks or has at another version, as "name A -> B"."""
    return [f"{name} {version} -> {after.get(name, 'removed')}" for name, version in sorted(before.items())
            if after.get(name) != version]


def ensure_venv(venv: Path, pip_cache: Path, python: Path = Path(sys.executable)) -> Path:
    """Create (once) the Colab-like venv; rebuilt when the packages, constraints or interpreter change."""
    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    pins = {name: v for name, v in colab_versions().items() if name not in NOT_PINNED}
    if version == "3.12":
        pins.update(PY312_PINS)
    constraints = "".join(f"{name}=={v}\n" for name, v in sorted(pins.items()))
    stamp = venv / ".colab-packages"
    want = hashlib.sha256("\n".join([version, TORCH, *COLAB_PACKAGES, *CHECK_PACKAGES, constraints]).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and (venv / "bin" / "python").exists():
        return venv
    print(f"colab: building the Colab-like environment in {venv} (Python {version}; once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    _run([str(python), "-m", "venv", str(venv)])
    (venv / "colab-constraints.txt").write_text(constraints)
    env = {**os.environ, "PIP_CACHE_DIR": str(pip_cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", f"pip=={pins['pip']}"], env=env)  # git+file:// needs pip >= 24
    _run([py, "-m", "pip", "install", "-q", "-c", str(venv / "colab-constraints.txt"), TORCH, *COLAB_PACKAGES,
          *CHECK_PACKAGES], env=env)
    off = off_colab(freeze(venv / "bin" / "python"), pins)
    if off:
        raise SystemExit(f"colab: the Colab-like environment differs from Colab's versions: {'; '.join(off)}")
    stamp.write_text(want)
    return venv


def off_colab(installed: dict[str, str], pins: dict[str, str]) -> list[str]:
    """Each installed package that Colab pins at another version, as "name A (Colab B)"."""
    return [f"{name} {version} (Colab {pins[name]})" for name, version in sorted(installed.items())
            if name in pins and version != pins[name]]


def not_colabs(installed: dict[str, str], constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """The installed packages Colab's list does not have (torch aside: the local wheel stands in for Colab's):
    what the check adds to a Colab runtime."""
    colab = colab_versions(constraints)
    return {name: v for name, v in sorted(installed.items()) if name not in colab and name != "torch"}


def run_copy(nb: "nbformat.NotebookNode") -> "nbformat.NotebookNode":
    """A chapter as Colab runs it, for nbval: every cell's tags dropped (Colab ignores tags; nbval
    would skip ``nbval-skip`` cells, among them the install cell) and the Markdown outputs a copy
    stores for its folded cells removed (running a cell replaces them; nbval refuses a cell that
    holds outputs without having run)."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
        if cell.cell_type == "code":
            cell.outputs = []
    return nb


def junit_result(xml: str) -> dict:
    """``{"passed", "failed", "skipped", "cell", "source", "error"}`` of pytest's JUnit XML for one
    notebook under nbval (items "Cell <n>", n counting code cells from 0); ``cell`` is the first
    cell that failed or was skipped, ``error`` what pytest said about it."""
    import xml.etree.ElementTree as ET

    result = {"passed": 0, "failed": 0, "skipped": 0, "cell": None, "source": "", "error": ""}
    for case in ET.fromstring(xml).iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        kind = "passed" if outcome is None else "skipped" if outcome.tag == "skipped" else "failed"
        result[kind] += 1
        if outcome is not None and result["cell"] is None:
            m = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
            result["cell"] = int(m.group(1)) if m else None
            # pytest writes the escape character of nbval's colours as "#x1B" (not allowed in XML)
            text = re.sub(r"(\x1b|#x1B)\[[0-9;]*m", "", (outcome.text or "").strip() or outcome.get("message") or "")
            if kind == "skipped":
                text = f"nbval skipped this cell (Colab runs every cell): {text.strip()}"
            result["error"] = text.strip()[-3000:]
    return result


def _copy_venv(base: Path, dest: Path) -> None:
    try:  # hard links: seconds instead of copying 1.5 GB; pip replaces files, never edits them
        _run(["cp", "-al", str(base), str(dest)], capture_output=True)
    except subprocess.CalledProcessError:
        shutil.copytree(base, dest, symlinks=True)


def run_chapter(notebook: Path, venv: Path, url: str, pip_cache: Path, timeout: int,
                before: dict[str, str] | None = None, extra_env: dict[str, str] | None = None,
                preinstall: str | None = None) -> dict:
    """Run one chapter the Colab way under nbval; returns ``{"name", "ok", "seconds", "cells",
    "passed", "failed", "skipped", "cell", "source", "error", "pytest", "changed", "audio"}``
    (``cells``: the chapter's code cells, nbval's items; ``cell``: the first that failed, counting
    code cells from 0; ``pytest``: pytest's closing line; ``changed``: Colab's packages, from
    ``before``, that the chapter's installs changed). ``preinstall``: a requirement pip installs
    (without dependencies) into the runtime first, as a runtime used before would have it."""
    import nbformat

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"colab-{notebook.stem}-") as tmp:
        tmp = Path(tmp)
        work, home = tmp / "content", tmp / "home"
        work.mkdir()
        startup = home / ".ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-google-colab.py").write_text(COLAB_STARTUP)
        nb = run_copy(nbformat.read(notebook, as_version=4))
        code = [c for c in nb.cells if c.cell_type == "code"]
        nbformat.write(nb, work / notebook.name)
        runtime = tmp / "venv"
        _copy_venv(venv, runtime)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("B2B_", "PYTHON", "IPYTHON", "VIRTUAL_ENV", "JUPYTER", "OMP_", "MKL_", "PYTEST"))}
        env.update(HOME=str(home), B2B_PIP_URL=url, PIP_CACHE_DIR=str(pip_cache),
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{runtime / 'bin'}:{env.get('PATH', '')}",
                   MPLBACKEND="module://matplotlib_inline.backend_inline", **(extra_env or {}))
        if preinstall:
            _run([str(runtime / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", preinstall],
                 env=env, capture_output=True)
        junit = tmp / "junit.xml"
        cmd = [str(runtime / "bin" / "python"), "-c", _DRIVER, "-p", "no:cacheprovider", "--rootdir", str(work),
               "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={timeout}", "-x",
               f"--junitxml={junit}", "-o", "junit_family=xunit2", notebook.name]
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, text=True, capture_output=True,
                                  timeout=timeout * len(code) + 300)
            output, rc = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            output, rc = f"{e.stdout or ''}{e.stderr or ''}\npytest did not finish in {e.timeout:.0f} s", None
        result = (junit_result(junit.read_text(encoding="utf-8")) if junit.is_file() else
                  {"passed": 0, "failed": 0, "skipped": 0, "cell": None, "source": "",
                   "error": f"pytest exited {rc} without a result: {output[-2000:]}"})
        closing = [line for line in output.splitlines() if PYTEST_CLOSING.match(line.strip())]
        result["pytest"] = closing[-1].strip() if closing else f"(no closing line from pytest; exit {rc})"
        result["cells"] = len(code)
        result["ok"] = rc == 0 and result["passed"] == len(code)
        if not result["ok"] and not result["error"]:
            result["error"] = (f"pytest exit {rc}: {result['passed']} of {len(code)} cells passed\n"
                               + output[-2000:])
        if result["cell"] is not None and result["cell"] < len(code):
            result["source"] = code[result["cell"]].source[:800]
        after = freeze(runtime / "bin" / "python")
        result["changed"] = changed_packages(before, after) if before else []
        result["audio"] = "tinysoundfont" if "tinysoundfont" in after else "no tinysoundfont: b2b's numpy renderer"
    result["name"] = notebook.name
    result["seconds"] = time.perf_counter() - t0
    return result


def install_fails_loudly(notebook: Path, venv: Path, pip_cache: Path, timeout: int) -> str | None:
    """Run a chapter's install cell alone with :data:`BAD_URL`; None if that cell fails with its
    message, else what went wrong."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [next(c for c in nb.cells if c.cell_type == "code")]
    with tempfile.TemporaryDirectory(prefix="colab-bad-url-") as tmp:
        path = Path(tmp) / notebook.name
        nbformat.write(nb, path)
        r = run_chapter(path, venv, BAD_URL, pip_cache, timeout)
    if r["ok"]:
        return f"the install cell passed with a repository that does not exist ({BAD_URL})"
    if r.get("cell") != 0 or INSTALL_FAILURE not in r["error"]:
        return f"the install cell did not fail with its message; cell {r.get('cell')}: {r['error'][-600:]}"
    return None


#: Run after the install cell in a runtime that had imported an older b2b: the kernel's b2b must be
#: the one just installed (pip's record of the commit it installed, the module object replaced).
REINSTALL_CHECK = """\
import importlib.metadata, json, sys
record = json.loads(importlib.metadata.distribution("b2b").read_text("direct_url.json"))
assert record["vcs_info"]["commit_id"] == NEW_COMMIT, (record, NEW_COMMIT)
import b2b
assert b2b is not OLD_B2B and sys.modules["b2b"] is b2b, "the kernel still has the b2b imported before"
assert b2b.__file__ == OLD_B2B.__file__, (b2b.__file__, OLD_B2B.__file__)  # replaced in place, same site
print("b2b replaced by", NEW_COMMIT)
"""


def install_replaces_older(notebook: Path, venv: Path, pip_cache: Path, timeout: int, repo: Path) -> str | None:
    """A runtime used before: b2b of the commit before ``HEAD`` (the same version number, which pip
    alone would keep) installed and imported in the kernel, then the chapter's install cell for
    ``HEAD``. None if the kernel then imports ``HEAD``'s b2b, else what went wrong."""
    import nbformat

    def commit(rev: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", rev], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        old, new = commit("HEAD~1"), commit("HEAD")
    except subprocess.CalledProcessError:
        return "no commit before HEAD to stand for an older b2b"
    install = next(c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import b2b\nOLD_B2B = b2b\nNEW_COMMIT = {new!r}"), install,
        nbformat.v4.new_code_cell(REINSTALL_CHECK)])
    with tempfile.TemporaryDirectory(prefix="colab-reinstall-") as tmp:
        path = Path(tmp) / notebook.name
        nbformat.write(nb, path)
        r = run_chapter(path, venv, f"git+file://{repo}@{new}", pip_cache, timeout,
                        preinstall=f"b2b @ git+file://{repo}@{old}")
    return None if r["ok"] else f"cell {r.get('cell')}: {r['error'][-800:]}"


def main(argv: list[str] | None = None) -> int:
    """Run the chapters given (default: every Colab copy) the Colab way; exit code 1 on failure."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import colab_notebooks

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="chapters to run (default: colab/book/*.ipynb)")
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout that pip installs b2b from (its HEAD)")
    p.add_argument("--venv", type=Path, help="the Colab-like base environment (default: .colab-venv[-3.X])")
    p.add_argument("--python", choices=sorted(PYTHONS),
                   help=f"build it on this Python (default: {COLAB_PYTHON}, Colab's, where an interpreter and a local "
                        "CPU torch wheel for it are at hand; else the one running, with the reason printed)")
    p.add_argument("--jobs", type=int, default=2, help="chapters run at once (default: 2)")
    p.add_argument("--timeout", type=int, default=600, help="seconds one cell may take (default: 600)")
    p.add_argument("--no-bad-url", action="store_true",
                   help="skip the install cell's own checks (a bad URL; an older b2b to replace)")
    p.add_argument("--summary", type=Path, help="also write the counts and seconds as JSON here (scripts/test.sh)")
    p.add_argument("--no-compiler", action="store_true",
                   help="no C/C++ compiler for pip (CC=CXX=false, no cache): a package without a wheel fails to build")
    args = p.parse_args(argv)
    repo = args.repo.resolve()
    python, why = choose_python(args.python)
    if not python.is_file():
        print(f"colab: --python {args.python}: no interpreter at {python}", file=sys.stderr)
        return 2
    print(f"colab: interpreter: {why}", flush=True)
    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    same = python.resolve() == Path(sys.executable).resolve() and not args.python
    venv = (args.venv or ROOT / (".colab-venv" + ("" if same else f"-{version}"))).resolve()
    notebooks = [n.resolve() for n in args.notebooks] or colab_notebooks_paths(repo)
    if not notebooks:
        print(f"colab: no Colab copies in {repo / colab_notebooks.COPIES}: run python scripts/colab_notebooks.py",
              file=sys.stderr)
        return 2
    copies = repo / colab_notebooks.COPIES / "book"
    notebooks = [copies / n.name if n.parent == repo / "book" else n for n in notebooks]  # readers open the copy
    not_copies = [n for n in notebooks if n.parent != copies or not n.is_file()]
    if not_copies:
        print(f"colab: {not_copies[0]} is not a Colab copy (colab/book/*.ipynb)", file=sys.stderr)
        return 2
    book = colab_notebooks.load_book(repo)
    stale = [n.name for n in notebooks if not (repo / "book" / n.name).is_file()
             or not colab_notebooks.is_current(book, repo / "book" / n.name, repo)]
    if stale:
        print(f"colab: stale Colab copies {stale}: run python scripts/colab_notebooks.py", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print(f"colab: warning: {repo} has uncommitted changes; the chapters install its HEAD without them",
              file=sys.stderr)
    pip_cache = (venv.parent / ".colab-venv-pip-cache").resolve()
    ensure_venv(venv, pip_cache, python)
    before = freeze(venv / "bin" / "python")
    url = f"git+file://{repo}"
    torch_from = ("is the local CPU wheel" if "+cpu" in before.get("torch", "") else
                  "comes from the package index (no local CPU wheel for this Python)")
    added = ", ".join(f"{name} {v}" for name, v in not_colabs(before).items())
    print(f"colab: {len(notebooks)} chapter(s) under pytest --nbval-lax, b2b from {url}, {args.jobs} at once; "
          f"Python {_python_version(venv)}, Colab's packages from {CONSTRAINTS.relative_to(ROOT)}; "
          f"torch {before.get('torch')} {torch_from}, not Colab's {COLAB_TORCH}; "
          f"not in Colab's list: {added or 'nothing'}", flush=True)
    t0 = time.perf_counter()
    failed, total, chapters_failed = 0, len(notebooks) + 2 * (not args.no_bad_url), 0
    cells = {"cells": 0, "passed": 0, "failed": 0, "skipped": 0}
    if not args.no_bad_url:
        problem = install_fails_loudly(notebooks[0], venv, pip_cache, args.timeout)
        print(f"colab: {'ok  ' if problem is None else 'FAIL'} the install cell fails itself, with its message, "
              f"for a repository that does not exist" + (f": {problem}" if problem else ""), flush=True)
        failed += problem is not None
        problem = install_replaces_older(notebooks[0], venv, pip_cache, args.timeout, repo)
        print(f"colab: {'ok  ' if problem is None else 'FAIL'} the install cell replaces a b2b installed and imported "
              f"before (a reused runtime) with the one asked for" + (f": {problem}" if problem else ""), flush=True)
        failed += problem is not None
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # no compiler, and no wheel built earlier from pip's cache
        extra = {"CC": "false", "CXX": "false", "PIP_NO_CACHE_DIR": "1"} if args.no_compiler else {}
        futures = [pool.submit(run_chapter, nb, venv, url, pip_cache, args.timeout, before, extra) for nb in notebooks]
        for fut in cf.as_completed(futures):
            r = fut.result()
            ok = r["ok"] and not r["changed"]
            slow = "  (over the 180 s budget)" if r["seconds"] > BUDGET_S else ""
            print(f"colab: {'ok  ' if ok else 'FAIL'} {r['name']}  {r['seconds']:.0f} s{slow}  "
                  f"{r['passed']} of {r['cells']} cells passed  ({r['audio']})\n    {r['pytest']}", flush=True)
            if r["changed"]:
                print(textwrap.indent("changed Colab's packages: " + "; ".join(r["changed"]), "    "), flush=True)
            if not r["ok"]:
                where = f"code cell {r['cell']} of the copy" if r.get("cell") is not None else "(no cell)"
                print(textwrap.indent(f"{where}:\n{r['source']}\n---\n{r['error']}", "    "), flush=True)
            failed += not ok
            chapters_failed += not ok
            for key in cells:
                cells[key] += r.get(key) or 0
    seconds = time.perf_counter() - t0
    others = "".join(f", {cells[k]} {k}" for k in ("failed", "skipped") if cells[k])
    print(f"colab: {total - failed} passed, {failed} failed: {len(notebooks) - chapters_failed} of {len(notebooks)} "
          f"chapters ran the Colab way under nbval, {cells['passed']} of {cells['cells']} code cells passed"
          f"{others} in {seconds:.0f} s")
    if args.summary:
        args.summary.write_text(json.dumps({"chapters": len(notebooks), "chapters_failed": chapters_failed,
                                            "cells": cells["cells"], "cells_passed": cells["passed"],
                                            "cells_failed": cells["failed"], "cells_skipped": cells["skipped"],
                                            "checks_failed": failed, "seconds": seconds}))
    return 1 if failed else 0


def colab_notebooks_paths(repo: Path) -> list[Path]:
    """The Colab copies of a checkout, ``colab/book/*.ipynb``."""
    return sorted((repo / "colab" / "book").glob("*.ipynb"))


def _python_version(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
