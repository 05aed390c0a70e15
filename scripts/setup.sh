#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install everything b2b needs.
# Sourced by scripts/book.sh and scripts/test.sh; safe to run again (it skips what is done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "b2b needs Python >= 3.10"'

stamp=.venv/.b2b-installed
want=$(cat requirements.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== setting up .venv (Python: $("$PYTHON" --version))"
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch alone first, pinned: an unpinned or ranged torch pulls gigabytes of CUDA packages.
    # Set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) to choose a torch build.
    .venv/bin/python -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
        "$(grep -E '^torch==' requirements.txt)"
    .venv/bin/python -m pip install --quiet -r requirements.txt
    .venv/bin/python -m pip install --quiet --no-deps tinysoundfont==0.3.7 -e .
    echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# The embedded dataset (music21's Bach chorales): the store b2b ships, copied into the data root once
# (a second; `b2b data bach --force` builds the same store from the corpus: 25-30 s on a first run,
# and tests/test_bach.py builds it once to check that it is the same).
python -c 'from b2b.datasets.bach import install; install()'
