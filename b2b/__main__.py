"""``python -m b2b`` is the ``b2b`` command."""

import sys
from pathlib import Path


def _unshadow() -> None:
    """Make ``b2b`` the package this file belongs to when a folder named ``b2b`` shadowed it.

    ``python -m b2b`` puts the current folder first on ``sys.path``. Run from the folder that
    holds a clone named ``b2b`` (or any folder of that name), Python imports that folder as a
    namespace package before the installed b2b: an editable install (``pip install -e .``, as
    ``scripts/setup.sh`` does) is found by a finder that comes after the path's own, so the
    clone's folder would win and ``from b2b import __version__`` fail. The shadowing entries of
    ``sys.path`` are dropped and b2b is imported again, from the install.
    """
    pkg = sys.modules.get("b2b")
    if pkg is None or getattr(pkg, "__file__", None) is not None:
        return  # a regular package: nothing shadowed it
    here = Path(__file__).resolve().parent
    shadows = {str(Path(p).resolve()) for p in getattr(pkg, "__path__", [])} - {str(here)}
    sys.path[:] = [p for p in sys.path if str((Path(p or ".") / "b2b").resolve()) not in shadows]
    del sys.modules["b2b"]
    import b2b  # noqa: F401  (now the installed package)


_unshadow()

from b2b.cli import main  # noqa: E402  (after the package is the right one)

if __name__ == "__main__":
    sys.exit(main())
