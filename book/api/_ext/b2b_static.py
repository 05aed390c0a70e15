"""Sphinx extension: keep vendored libraries in ``_static`` from being loaded on every page.

Jupyter Book 1 adds a ``<script>`` tag for **every** ``.js`` file under ``_static`` to every
page. The vendored libraries there are loaded their own way: MathJax by Sphinx from
``mathjax_path`` (which then loads its extensions and fonts on demand) and the ipywidgets HTML
manager by myst-nb from ``nb_ipywidgets_js``. This extension removes the blanket entries for the
folders in :data:`OWN_LOADERS`, so each library is loaded once, by its own loader.

Enabled from ``_config.yml``::

    sphinx:
      local_extensions:
        b2b_static: book/api/_ext
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config

#: Folders of ``_static`` whose scripts are loaded by their library's own loader.
OWN_LOADERS = ("mathjax/", "ipywidgets/")


def _drop_blanket_scripts(app: Sphinx, config: Config) -> None:
    """Remove ``html_js_files`` entries under :data:`OWN_LOADERS` (``config-inited`` handler)."""
    def name(entry: Any) -> str:
        return entry[0] if isinstance(entry, (tuple, list)) else str(entry)

    config.html_js_files = [e for e in config.html_js_files if not name(e).startswith(OWN_LOADERS)]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``config-inited`` handler."""
    app.connect("config-inited", _drop_blanket_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
