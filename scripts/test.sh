#!/usr/bin/env bash
# Run every test: set up .venv, then the unit tests, nbval over every notebook in book/, and every
# chapter the Colab way (scripts/colab_check.py: a Colab-like environment, b2b from git+file://).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
# Two pytest workers on a 2-core machine: one torch/OpenMP thread each, or they fight for cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m pytest -n 2 --dist loadfile tests/ "$@"
python -m pytest -n 2 --dist loadfile --nbval-lax --nbval-current-env -p no:python book/ "$@"
python scripts/colab_check.py --jobs 2
