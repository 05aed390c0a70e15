"""Layer 1, music: a window of music as numbers (chapter 1, Music as data).

- :mod:`b2b.music.geometry`: the window shape ``(17, 64, 72)``, the LPD-17 track table, the one
  window validator and binarizer;
- :mod:`b2b.music.data`: Multitrack ⇄ windows ⇄ MIDI, the LPD ``.npz`` reader, ``asset``;
- :mod:`b2b.music.audio`: rendering to waveforms, WAV/MIDI export, notebook players;
- :mod:`b2b.music.plot`: pianorolls, sample grids, the book's style (import it as a module,
  ``from b2b.music import plot``: it loads matplotlib, which the rest of this layer does not).

No torch here.
"""

from b2b.music.audio import to_audio, write_wav
from b2b.music.data import DataError, asset, multitrack_to_windows, windows_to_multitrack, write_midi
from b2b.music.geometry import (LOWEST_PITCH, N_PITCHES, N_STEPS, N_TRACKS, SAMPLE_SHAPE, STEPS_PER_BAR,
                                STEPS_PER_BEAT, TRACKS, as_windows, binarize)

__all__ = ["N_TRACKS", "N_STEPS", "N_PITCHES", "LOWEST_PITCH", "STEPS_PER_BEAT", "STEPS_PER_BAR", "SAMPLE_SHAPE",
           "TRACKS", "as_windows", "binarize", "DataError", "asset", "multitrack_to_windows",
           "windows_to_multitrack", "write_midi", "to_audio", "write_wav"]
