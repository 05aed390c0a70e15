"""Sphinx extension: warn (an error under ``-W``) when a public ``b2b`` object has no docstring.

Autodoc's ``:members:`` silently leaves out members without a docstring, so a missing docstring
would only make an API page thinner. This extension turns it into a build warning, and the book
builds with warnings as errors. ``tests/test_docs.py`` makes the same check without Sphinx.

Enabled from ``_config.yml``::

    sphinx:
      local_extensions:
        b2b_docstrings: book/api/_ext
"""

from __future__ import annotations

import inspect
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _own_doc(obj: Any) -> str:
    """The object's own docstring (not one inherited from a base class), stripped."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return (doc or "").strip() if isinstance(doc, str) else ""


def _target(obj: Any) -> Any | None:
    """The function or class behind a member (property getter, static/class method), or None."""
    if isinstance(obj, property):
        obj = obj.fget
    obj = getattr(obj, "__func__", obj)
    return obj if inspect.isfunction(obj) or inspect.isclass(obj) else None


def check_member(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any) -> None:
    """``autodoc-skip-member`` handler: warn about a public b2b function, class or method
    without its own docstring; never changes whether the member is skipped."""
    if name.startswith("_"):
        return None
    target = _target(obj)
    if target is None or not (getattr(target, "__module__", None) or "").startswith("b2b"):
        return None
    if not _own_doc(target):
        qualname = getattr(target, "__qualname__", name)
        logger.warning(
            "public %s %s.%s has no docstring (every public function, class and method of b2b "
            "needs one; see DEVELOPERS.md)",
            "class" if inspect.isclass(target) else "function",
            target.__module__,
            qualname,
            type="b2b",
            subtype="docstring",
        )
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the handler with autodoc."""
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-skip-member", check_member)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
