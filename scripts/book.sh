#!/usr/bin/env bash
# Build the book: set up .venv, then execute every chapter and write the HTML.
# Fails if any chapter raises, Sphinx warns, an in-book link misses its anchor (check_links.py), or a
# page shows source that did not render: pipe tables, $ maths, MyST roles or directives (check_rendered.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
rm -rf _build/html
jupyter-book build . --all --warningiserror --keep-going
python scripts/check_links.py _build/html
python scripts/check_rendered.py _build/html
echo "The book is at file://$PWD/_build/html/index.html"
