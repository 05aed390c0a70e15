"""Run every chapter the way Colab runs it, and fail if one stops.

What a reader does in Colab, simulated on this machine:

1. a runtime with Colab's own packages already installed (torch, numpy, scipy, matplotlib,
   IPython 7.34, ipywidgets 7.7, ipykernel 6) and **no** jupyter-book or myst-nb: a virtual
   environment built once (``--venv``, default ``.colab-venv``) and hard-link copied afresh for
   every chapter, so no chapter sees what another installed;
2. the chapter notebook alone in an empty folder, with a fresh ``HOME`` (no data root, no caches
   but pip's download cache);
3. ``google.colab`` importable (a cell put first that registers an empty module of that name),
   so the chapter's own install cell runs and installs b2b with ``%pip`` from
   ``$B2B_PIP_URL`` = ``git+file://<repo>`` (the repository's committed ``HEAD``);
4. every cell executed top to bottom, **including** cells tagged ``skip-execution`` or
   ``nbval-skip`` (Colab ignores tags), with nbclient.

Usage::

    python scripts/colab_check.py                         # every chapter in book/
    python scripts/colab_check.py book/02_gans.ipynb      # one chapter
    python scripts/colab_check.py --repo /path/to/clone   # install b2b from another checkout

Prints one line per chapter (status, seconds) and, for a chapter that fails, the cell and the
error; exits 1 if any chapter failed. Uncommitted changes are not seen by the chapters (pip
installs the committed ``HEAD``): the script warns when the work tree is dirty.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What a Colab CPU runtime has preinstalled that the chapters touch (Colab's torch is a CUDA
#: build of the same API; the local CPU wheel stands in for it). No jupyter-book, no myst-nb.
COLAB_PACKAGES = [
    "torch==2.13.0",
    "numpy==2.0.2",
    "scipy==1.14.1",
    "matplotlib==3.10.0",
    "ipython==7.34.0",
    "ipywidgets==7.7.1",
    "ipykernel==6.17.1",
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "soundfile==0.13.1",
]

#: The cell put in front of every chapter: what makes ``"google.colab" in sys.modules`` true.
COLAB_CELL = 'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")'

#: A chapter should run in this many seconds on a 2-core CPU (a warning above, not a failure:
#: shared machines are noisy).
BUDGET_S = 180

# Runs inside the chapter's venv: executes the notebook with nbclient and writes a JSON result.
_DRIVER = textwrap.dedent(r"""
    import json, re, sys, time
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb_path, out_path, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = {"ok": False, "cell": None, "source": "", "error": ""}
    try:
        import myst_nb  # noqa: F401
        result["error"] = "myst_nb is importable: this is not a Colab-like environment"
    except ImportError:
        nb = nbformat.read(nb_path, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(sys.argv[4]))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                                skip_cells_with_tag="__colab_runs_every_cell__",
                                resources={"metadata": {"path": str(__import__("pathlib").Path(nb_path).parent)}})
        t0 = time.perf_counter()
        try:
            client.execute()
            result["ok"] = True
        except CellExecutionError as e:
            result["error"] = re.sub(r"\x1b\[[0-9;]*m", "", str(e))[-3000:]
        except Exception as e:  # timeouts, dead kernels
            result["error"] = f"{type(e).__name__}: {e}"[-3000:]
        for i, c in enumerate(nb.cells):
            errs = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
            if errs:
                result["cell"] = i  # 0 is the injected cell: chapter cell i is cell i - 1 of the file
                result["source"] = c.source[:800]
                break
        result["seconds"] = time.perf_counter() - t0
        nbformat.write(nb, nb_path)
    with open(out_path, "w") as f:
        json.dump(result, f)
""")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_venv(venv: Path, pip_cache: Path) -> Path:
    """Create (once) the Colab-like venv; rebuilt when :data:`COLAB_PACKAGES` changes."""
    stamp = venv / ".colab-packages"
    want = hashlib.sha256("\n".join(COLAB_PACKAGES).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and (venv / "bin" / "python").exists():
        return venv
    print(f"colab: building the Colab-like environment in {venv} (once)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    env = {**os.environ, "PIP_CACHE_DIR": str(pip_cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "pip>=24"], env=env)  # git+file:// URLs need pip >= 24
    _run([py, "-m", "pip", "install", "-q", *COLAB_PACKAGES], env=env)
    stamp.write_text(want)
    return venv


def _copy_venv(base: Path, dest: Path) -> None:
    try:  # hard links: seconds instead of copying 1.5 GB; pip replaces files, never edits them
        _run(["cp", "-al", str(base), str(dest)], capture_output=True)
    except subprocess.CalledProcessError:
        shutil.copytree(base, dest, symlinks=True)


def run_chapter(notebook: Path, venv: Path, url: str, pip_cache: Path, timeout: int) -> dict:
    """Run one chapter the Colab way; returns ``{"name", "ok", "seconds", "cell", "source", "error"}``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"colab-{notebook.stem}-") as tmp:
        tmp = Path(tmp)
        work, home = tmp / "content", tmp / "home"
        work.mkdir()
        home.mkdir()
        nb = work / notebook.name
        shutil.copy(notebook, nb)
        runtime = tmp / "venv"
        _copy_venv(venv, runtime)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("B2B_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "OMP_", "MKL_"))}
        env.update(HOME=str(home), B2B_PIP_URL=url, PIP_CACHE_DIR=str(pip_cache),
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{runtime / 'bin'}:{env.get('PATH', '')}",
                   MPLBACKEND="module://matplotlib_inline.backend_inline")
        out = tmp / "result.json"
        proc = subprocess.run([str(runtime / "bin" / "python"), "-c", _DRIVER, str(nb), str(out),
                               str(timeout), COLAB_CELL], cwd=work, env=env, text=True,
                              capture_output=True, timeout=timeout * 4)
        if out.is_file():
            result = json.loads(out.read_text())
        else:
            result = {"ok": False, "cell": None, "source": "",
                      "error": f"driver exited {proc.returncode}: {proc.stderr[-2000:]}"}
    result["name"] = notebook.name
    result["seconds"] = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the chapters given (default: every ``book/*.ipynb``) the Colab way; exit code 1 on failure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="chapters to run (default: book/*.ipynb)")
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout that pip installs b2b from (its HEAD)")
    p.add_argument("--venv", type=Path, default=ROOT / ".colab-venv", help="the Colab-like base environment")
    p.add_argument("--jobs", type=int, default=2, help="chapters run at once (default: 2)")
    p.add_argument("--timeout", type=int, default=600, help="seconds one cell may take (default: 600)")
    args = p.parse_args(argv)
    repo = args.repo.resolve()
    notebooks = [n.resolve() for n in args.notebooks] or sorted((repo / "book").glob("*.ipynb"))
    if not notebooks:
        print(f"colab: no notebooks in {repo / 'book'}", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print(f"colab: warning: {repo} has uncommitted changes; the chapters install its HEAD without them",
              file=sys.stderr)
    pip_cache = args.venv.parent / (args.venv.name + "-pip-cache")
    venv = ensure_venv(args.venv.resolve(), pip_cache.resolve())
    url = f"git+file://{repo}"
    print(f"colab: {len(notebooks)} chapter(s), b2b from {url}, {args.jobs} at once", flush=True)
    failed = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_chapter, nb, venv, url, pip_cache.resolve(), args.timeout) for nb in notebooks]
        for fut in cf.as_completed(futures):
            r = fut.result()
            slow = "  (over the 180 s budget)" if r["seconds"] > BUDGET_S else ""
            print(f"colab: {'ok  ' if r['ok'] else 'FAIL'} {r['name']}  {r['seconds']:.0f} s{slow}", flush=True)
            if not r["ok"]:
                failed += 1
                where = f"cell {r['cell'] - 1} of the chapter" if r.get("cell") else "(no cell output)"
                print(textwrap.indent(f"{where}:\n{r['source']}\n---\n{r['error']}", "    "), flush=True)
    print(f"colab: {len(notebooks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
