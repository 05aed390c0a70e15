#!/usr/bin/env bash
# Build the book: set up .venv, then execute every chapter and write the HTML.
# Fails if any chapter raises, Sphinx warns, or an in-book link misses its anchor (check_links.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
rm -rf _build/html
jupyter-book build . --all --warningiserror --keep-going
python scripts/check_links.py _build/html
echo "The book is at file://$PWD/_build/html/index.html"
