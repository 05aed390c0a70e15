"""What the experiment scripts record about the code they ran (``ablations.py``, ``recipe_search.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit(*paths: str) -> str:
    """``HEAD``'s commit, marked when ``b2b/`` or ``paths`` have uncommitted changes; "unknown"
    outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "b2b", *paths], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (+ uncommitted changes in b2b/ or the script)" if dirty else "")
