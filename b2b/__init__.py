"""b2b: From Bytes to Beats.

A reference implementation of a Wasserstein GAN with gradient penalty and self-attention that
generates 17-track, 4-bar pianorolls, and the package behind the book of the same name.
Layers (one folder each, from the bottom up in the book's order; a module imports its own layer
and the layers below it): files, music, datasets, gan, model, sampling, training, evaluation, and
the ``b2b`` command in cli on top (``python scripts/import_graph.py`` draws who imports whom).
Each layer names its public parts, e.g. ``from b2b.model import GenConvNet, build``.
"""

__version__ = "0.1.0"
