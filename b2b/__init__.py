"""b2b: From Bytes to Beats.

A reference implementation of a Wasserstein GAN with gradient penalty and self-attention that
generates 17-track, 4-bar pianorolls, and the package behind the book of the same name.
Modules (one idea each), from the bottom up: geometry, data, store, fetch, bach, lpd, datasets,
audio, plot, toy, losses, step, attention, streams, refiner, fast, networks, checkpoint,
cudagraph, runfolder, train, generate, export, web, metrics, twosample, scorecard, evaluate, listening, and
the ``b2b`` command in cli (``python scripts/import_graph.py`` draws who imports whom).
"""

__version__ = "0.1.0"
