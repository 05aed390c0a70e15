"""Layer 2, datasets: windows on disk, and where they come from (chapters 1 and 8).

- :mod:`b2b.datasets.store`: the compact window store (``write_store``, ``WindowDataset``,
  ``default_root``);
- :mod:`b2b.datasets.bach`: the embedded dataset from the music21 Bach chorales;
- :mod:`b2b.datasets.fetch`: LPD-17's downloads and safe archive extraction;
- :mod:`b2b.datasets.lpd`: LPD-17 genre selection and conversion into the store;
- :mod:`b2b.datasets.catalog`: ``open_dataset`` by name or path and the ``b2b data`` command.
"""

from b2b.datasets.catalog import open_dataset
from b2b.datasets.store import WindowDataset, default_root, is_store, write_store

__all__ = ["open_dataset", "WindowDataset", "default_root", "is_store", "write_store"]
