#!/usr/bin/env bash
# Run every test: set up .venv, then the unit tests and nbval over every notebook in book/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
python -m pytest -n 2 --dist loadfile tests/ "$@"
python -m pytest -n 2 --dist loadfile --nbval-lax --nbval-current-env -p no:python book/ "$@"
