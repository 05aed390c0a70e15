"""Layer 0, files: writing and reading files safely, used by every layer that writes.

:mod:`b2b.files.atomic`: atomic writes (temporary name, fsync, ``os.replace``), regular files only,
a command's output folder and its lock (``claim_output``, ``FolderLock``), leftovers of killed
runs, bounded JSON reading. No pianorolls, no torch.
"""

from b2b.files.atomic import (FolderLock, FolderLocked, NotARegularFile, atomic_path, atomic_write, check_output,
                              claim_output, read_json, write_text)

__all__ = ["atomic_write", "atomic_path", "write_text", "read_json", "check_output", "claim_output",
           "FolderLock", "FolderLocked", "NotARegularFile"]
