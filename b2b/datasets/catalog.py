"""Datasets by name, and the ``b2b data`` command that prepares them.

:func:`open_dataset` opens ``"bach"`` (the embedded Bach chorales, installed on first use by
:mod:`b2b.datasets.bach`), ``"lpd17"`` (prepared by ``b2b data lpd17``, :mod:`b2b.datasets.lpd`) or a store folder
(:mod:`b2b.datasets.store`). This module sits above the two sources, so neither imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from b2b.datasets import bach
from b2b.music.data import DataError
from b2b.datasets.store import WindowDataset, default_root, is_store

__all__ = ["open_dataset", "DATA_SOURCES", "add_arguments", "run"]


def open_dataset(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> WindowDataset:
    """Open a prepared dataset: ``"bach"`` (installed on first use), ``"lpd17"``, or a store folder.

    Parameters
    ----------
    name_or_path : str or path
        ``"bach"`` → ``<root>/bach`` (if missing, :func:`b2b.datasets.bach.install` copies the prebuilt
        store that ships with b2b, or builds it);
        ``"lpd17"`` → ``<root>/lpd17`` (prepare it with ``b2b data lpd17``); anything else is
        the path of a store folder.
    root : path, optional
        Data root (default :func:`default_root`).
    """
    root = Path(root).expanduser() if root is not None else default_root()
    if isinstance(name_or_path, str) and name_or_path == "bach":
        path = root / "bach"
        if not is_store(path):
            bach.install(root=root)
        return WindowDataset(path)
    if isinstance(name_or_path, str) and name_or_path == "lpd17":
        path = root / "lpd17"
        if not is_store(path):
            raise DataError(f"{path}: the LPD-17 dataset is not prepared; run `b2b data lpd17` first "
                            "(it downloads and preprocesses the LPD-17 rock subset)")
        return WindowDataset(path)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such dataset; expected 'bach', 'lpd17' or a store folder")
    return WindowDataset(path)


# --------------------------------------------------------------------------- b2b data {bach,lpd17}
# sub-command -> module providing add_arguments(parser) and run(args) -> int
DATA_SOURCES: dict[str, str] = {"bach": "b2b.datasets.bach", "lpd17": "b2b.datasets.lpd"}
_SOURCE_HELP = {
    "bach": "Build the embedded dataset from the Bach chorales bundled with music21 (offline).",
    "lpd17": "Download and prepare the LPD-17 rock subset.",
}


class _LazySourceParser(argparse.ArgumentParser):
    """A sub-command parser that imports its source module only when that sub-command is used."""

    _b2b_module: str = ""
    _b2b_loaded: bool = False

    def _b2b_load(self) -> None:
        if self._b2b_module and not self._b2b_loaded:
            self._b2b_loaded = True
            module = importlib.import_module(self._b2b_module)
            module.add_arguments(self)
            self.set_defaults(_source_module=module)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._b2b_load()
        return super().parse_known_args(args, namespace)

    if hasattr(argparse.ArgumentParser, "parse_known_intermixed_args"):
        def parse_known_intermixed_args(self, args=None, namespace=None):  # type: ignore[override]
            self._b2b_load()
            return super().parse_known_intermixed_args(args, namespace)

    if hasattr(argparse.ArgumentParser, "_parse_known_args2"):
        def _parse_known_args2(self, args, namespace, intermixed):  # type: ignore[override]
            self._b2b_load()
            return super()._parse_known_args2(args, namespace, intermixed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``b2b data`` sub-commands (one per entry of :data:`DATA_SOURCES`)."""
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True,
                                parser_class=_LazySourceParser)
    for name, module in DATA_SOURCES.items():
        p = sub.add_parser(name, help=_SOURCE_HELP.get(name, ""), description=_SOURCE_HELP.get(name, ""))
        p._b2b_module = module


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``b2b data`` sub-command; returns its exit code."""
    module = getattr(args, "_source_module", None)
    if module is None:
        module = importlib.import_module(DATA_SOURCES[args.source])
    return int(module.run(args) or 0)
