"""b2b: From Bytes to Beats.

A reference implementation of a Wasserstein GAN with gradient penalty and self-attention that
generates 17-track, 4-bar pianorolls, and the package behind the book of the same name.
Modules (one idea each): data, bach, lpd, audio, plot, toy, losses, attention, nn, train,
generate, metrics, evaluate, cli.
"""

__version__ = "0.1.0"
