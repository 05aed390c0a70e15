"""Execute the book's chapters that Jupyter Book's execution cache lacks, several at once.

``jupyter-book build`` (``execute_notebooks: cache``) executes the chapters one after another. This
script, run by ``scripts/book.sh`` just before the build, fills the same cache
(``_build/.jupyter_cache``) with the chapters it has no outputs for, ``--jobs`` at a time, the way
MyST-NB would: the notebook as read from ``book/``, executed by jupyter-cache's own
``single_nb_execution`` (nbclient, the chapter's folder as working directory, the ``execute:``
timeout of ``_config.yml``, errors not allowed), and cached under the hash MyST-NB matches (the
code cells and the kernelspec). The build that follows then finds every chapter cached and executes
nothing. A chapter that raises is reported with its traceback and the script exits 1, so the book
is never built from a partial cache.

The longest chapters start first (their last times are kept in ``_build/.b2b-chapter-seconds.json``,
which outlives the cache); chapters without a time start in the table of contents' order.

Usage: ``python scripts/execute_chapters.py [--jobs N] [NOTEBOOK...]``; ``--jobs 1`` is what the
build alone does.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import sys
import time
import traceback as tb
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_notebooks import toc_docnames  # noqa: E402  (the one reader of _toc.yml)

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("_build") / ".jupyter_cache"  # under ROOT, where _config.yml's build puts it
TIMES = Path("_build") / ".b2b-chapter-seconds.json"


def toc_notebooks(root: Path | None = None) -> list[Path]:
    """The ``.ipynb`` files of ``_toc.yml``, in the table of contents' order
    (:func:`colab_notebooks.toc_docnames` reads the table)."""
    root = ROOT if root is None else root
    return [root / f"{name}.ipynb" for name in toc_docnames(root) if (root / f"{name}.ipynb").is_file()]


def config() -> tuple[int, bool]:
    """The cell timeout and allow_errors of ``_config.yml``'s ``execute:`` section."""
    execute = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8")).get("execute", {})
    return int(execute.get("timeout", 30)), bool(execute.get("allow_errors", False))


def run(path: str, timeout: int, allow_errors: bool) -> tuple[str, dict, float, str | None]:
    """Execute one chapter in a worker process; return its executed notebook, seconds and traceback."""
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=allow_errors, meta_override=True)
    return path, result.nb, result.time, (result.exc_string or None) if result.err else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="chapters executed at once (default: the number of CPUs)")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="only these chapters (default: every .ipynb of _toc.yml)")
    args = parser.parse_args(argv)
    chapters = toc_notebooks()
    if args.notebooks:
        wanted = {p.resolve() for p in args.notebooks}
        unknown = wanted - set(chapters)
        if unknown:
            parser.error(f"not a notebook of _toc.yml: {', '.join(sorted(map(str, unknown)))}")
        chapters = [p for p in chapters if p in wanted]
    timeout, allow_errors = config()
    cache = get_cache(str(ROOT / CACHE))
    todo = []
    for path in chapters:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    if not todo:
        print("execute_chapters: every chapter is cached; nothing to execute")
        return 0
    try:
        last = json.loads((ROOT / TIMES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = {}
    # Longest first (the fewest seconds lost at the end); unknown chapters first, in the toc's order.
    todo.sort(key=lambda p: -float(last.get(p.name, float("inf"))))
    jobs = max(1, min(args.jobs, len(todo)))
    print(f"execute_chapters: {len(todo)} chapter(s) to execute, {jobs} at once: "
          + ", ".join(p.name for p in todo), flush=True)
    # The kernels get this process's environment, as under the build (no thread count is imposed:
    # the chapters that train set one torch thread themselves).
    failed: list[str] = []
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run, str(p), timeout, allow_errors): p for p in todo}
        for future in cf.as_completed(futures):
            name = futures[future].name
            try:
                path, nb, seconds, traceback = future.result()
            except Exception as err:  # not the chapter: its worker failed (no kernel, a broken file, ...)
                traceback, seconds = "".join(tb.format_exception(err)), None
            if traceback is not None:  # at once, while the other chapters go on
                failed.append(name)
                print(f"execute_chapters: {name} FAILED" + (f" after {seconds:.0f} s" if seconds else ""),
                      flush=True)
                print(f"\n==== {name} raised:\n{traceback}", file=sys.stderr, flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            last[name] = round(seconds, 1)
            print(f"execute_chapters: {name} executed in {seconds:.0f} s and cached", flush=True)
    (ROOT / TIMES).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / TIMES).write_text(json.dumps(last, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"execute_chapters: {len(todo) - len(failed)} of {len(todo)} chapter(s) executed in "
          f"{time.perf_counter() - start:.0f} s" + (f"; FAILED: {', '.join(failed)} (tracebacks above)" if failed else ""),
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
