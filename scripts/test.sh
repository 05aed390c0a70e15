#!/usr/bin/env bash
# Run every test: set up .venv, then the unit tests (pytest), then nbval over every notebook, run the
# way Colab runs it (scripts/colab_check.py: each chapter's Colab copy alone in an empty folder, in
# a Colab-like environment with Colab's package versions plus pytest and nbval, b2b installed by
# the chapter's own install cell from git+file://, every cell executed by `pytest --nbval-lax`,
# the install cell included). That is one execution per chapter: the copies keep the chapters'
# code cells (tests/test_colab.py), so nbval over book/ as well would run the same cells twice.
# Exits non-zero if any phase fails; the last line says what ran, with counts and times.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
source scripts/setup.sh || exit 1
set +e   # setup.sh sets -e; from here every phase runs and the exit status is decided at the end
setup_s=$((SECONDS - start))
# Two pytest workers on a 2-core machine: one torch/OpenMP thread each, or they fight for cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

t=$SECONDS
python -m pytest -n 2 --dist loadfile tests/ "$@" 2>&1 | tee "$logs/unit.txt"
unit_rc=${PIPESTATUS[0]}
unit_s=$((SECONDS - t))
# pytest's own summary line, e.g. "==== 812 passed, 6 skipped in 250.31s (0:04:10) ====": its counts
unit=$(grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s' "$logs/unit.txt" | tail -1 \
       | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//')

t=$SECONDS
python scripts/colab_check.py --jobs 2 --summary "$logs/colab.json"
colab_rc=$?
colab_s=$((SECONDS - t))
colab=$(python - "$logs/colab.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("did not run to the end")
else:
    ok = s["chapters"] - s["chapters_failed"]
    cells = f"{s['cells']} cells, {s['cells_passed']} passed" + "".join(
        f", {s['cells_' + k]} {k}" for k in ("failed", "skipped") if s["cells_" + k])
    print(f"{s['chapters']} chapters (nbval in the Colab-like env: {cells}) " +
          ("passed" if not s["chapters_failed"] else f"{ok} passed, {s['chapters_failed']} failed") +
          ("" if s["checks_failed"] <= s["chapters_failed"] else "; the install cell's bad-URL check failed"))
EOF
)

status=$(( unit_rc != 0 || colab_rc != 0 ))
echo "test.sh: setup $(fmt $setup_s); unit ${unit:-did not report} in $(fmt $unit_s) (pytest exit $unit_rc); notebooks $colab in $(fmt $colab_s) (exit $colab_rc); total $(fmt $((SECONDS - start)))$([ $status = 0 ] && echo '' || echo '; FAILED')"
exit $status
