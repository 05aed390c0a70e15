#!/usr/bin/env bash
# Build the book: set up .venv, then execute every chapter and write the HTML.
# Fails if any chapter raises, Sphinx warns, an in-book link misses its anchor (check_links.py), or a
# page shows source that did not render: pipe tables, $ maths, MyST roles or directives (check_rendered.py),
# or an output wider than a 1,300-px window (check_overflow.py, headless Chromium; skipped without one).
# Each chapter is executed at most once: Jupyter Book's execution cache (_config.yml, in
# _build/.jupyter_cache) reuses a chapter's outputs while its code cells are unchanged, so a second
# build with the same notebooks executes nothing. scripts/execute_chapters.py fills that cache before
# the build, one chapter per CPU at once (the build alone executes them one after another). The
# cache keys on code cells only; what the chapters run besides their cells (the package, the
# committed data, the pinned installs) is digested into _build/.b2b-execution-key, and the cache is
# emptied when that digest changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
source scripts/setup.sh
setup_s=$((SECONDS - start))
mkdir -p _build
inputs=(b2b data requirements.txt pyproject.toml)   # what the chapters run besides their cells
key=$(find "${inputs[@]}" -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
if [ ! -f _build/.b2b-execution-key ] || [ "$(cat _build/.b2b-execution-key)" != "$key" ]; then
    [ -d _build/.jupyter_cache ] && echo "== b2b/, data/ or the pins changed: every chapter runs again"
    rm -rf _build/.jupyter_cache
    echo "$key" > _build/.b2b-execution-key   # what is cached from now on ran with this package
fi
rm -rf _build/html
# The chapters the cache lacks are executed first, one per CPU (or BOOK_JOBS) at once, into that same
# cache; a chapter that raises stops here with its traceback. The build then executes nothing.
t=$SECONDS
python scripts/execute_chapters.py ${BOOK_JOBS:+--jobs "$BOOK_JOBS"}
exec_s=$((SECONDS - t))
t=$SECONDS
jupyter-book build . --all --warningiserror --keep-going
build_s=$((SECONDS - t))
t=$SECONDS
python scripts/check_links.py _build/html
python scripts/check_rendered.py _build/html
python scripts/check_overflow.py _build/html --skip-without-browser   # no output scrolls sideways at 1,300 px
check_s=$((SECONDS - t))
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
echo "The book is at file://$PWD/_build/html/index.html"
echo "book.sh: setup $(fmt $setup_s); chapters executed (only where changed) $(fmt $exec_s); build $(fmt $build_s); checks $(fmt $check_s); total $(fmt $((SECONDS - start)))"
