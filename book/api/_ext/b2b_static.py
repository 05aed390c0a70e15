"""Sphinx extension: the book's own static files.

1. Keep vendored libraries in ``_static`` from being loaded on every page (below).
2. Write the in-page generator's model: after an HTML build, ``data/pretrained/generator.pt`` is
   exported with :func:`b2b.sampling.web.export_onnx` to ``_static/b2b/generator.onnx`` and
   ``generator.json`` in the built site, where ``_static/b2b-generator.js`` (chapter 9) finds
   it. The model is made from the shipped generator at every build, so the page always plays
   the generator that the chapters evaluate.

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

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config

#: The generator the page runs, relative to the book's root (the folder of ``_config.yml``).
GENERATOR = Path("data") / "pretrained" / "generator.pt"
#: Where its ONNX export goes in the built site.
MODEL = Path("_static") / "b2b" / "generator.onnx"

#: Folders of ``_static`` whose scripts are loaded by their library's own loader.
OWN_LOADERS = ("mathjax/", "ipywidgets/", "onnxruntime-web/")


def _drop_blanket_scripts(app: Sphinx, config: Config) -> None:
    """Remove ``html_js_files`` entries under :data:`OWN_LOADERS` (``config-inited`` handler)."""
    def name(entry: Any) -> str:
        return entry[0] if isinstance(entry, (tuple, list)) else str(entry)

    config.html_js_files = [e for e in config.html_js_files if not name(e).startswith(OWN_LOADERS)]


def _export_model(app: Sphinx, exception: Exception | None) -> None:
    """Export :data:`GENERATOR` to :data:`MODEL` in the HTML output (``build-finished`` handler)."""
    if exception is not None or app.builder.format != "html":
        return
    from b2b.sampling.web import export_onnx

    out = Path(app.outdir) / MODEL
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(Path(app.confdir) / GENERATOR, out)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``config-inited`` and ``build-finished`` handlers."""
    app.connect("config-inited", _drop_blanket_scripts)
    app.connect("build-finished", _export_model)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
