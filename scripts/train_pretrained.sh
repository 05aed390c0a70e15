#!/usr/bin/env bash
# How data/pretrained/ was made: the exact commands, run from the repository root with .venv
# active, as
#
#     nohup nice -n 5 bash scripts/train_pretrained.sh > /tmp/b2b-pretrained.log 2>&1 &
#
# 1. train the `improved` preset on the embedded Bach dataset with the project's own CLI,
# 2. export the generator only (a small "b2b-generator" file, no critic or optimizer states),
# 3. evaluate it against 1,000 real windows with `b2b evaluate` (report.md, report.csv),
# 4. write provenance.json (command, git commit, data, iterations, wall time, device, versions).
#
# ITERATIONS and RUN can be overridden from the environment; provenance.json records the values used.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PRESET=improved
SEED=0
ITERATIONS=${ITERATIONS:-1500}
RUN=${RUN:-/tmp/b2b-pretrained/run}
EVAL=${RUN}-evaluation
DEST=data/pretrained
# one intra-op thread: on a shared 2-core machine two spinning threads waste more than they add
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

TRAIN_CMD="b2b train --data bach --preset $PRESET --iterations $ITERATIONS --out $RUN --seed $SEED --checkpoint-every 250 --sample-every 500"
EVAL_CMD="b2b evaluate --checkpoint $DEST/generator.pt --data bach --n 1000 --seed $SEED --out $EVAL"

mkdir -p "$(dirname "$RUN")" "$DEST"
GIT_COMMIT=$(git rev-parse HEAD)
GIT_DIRTY=$(git status --porcelain -- b2b | wc -l)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$(date +%s)
echo "[$STARTED] $TRAIN_CMD (OMP_NUM_THREADS=$OMP_NUM_THREADS, git $GIT_COMMIT)"
$TRAIN_CMD
T1=$(date +%s)

python - "$RUN" "$DEST/generator.pt" <<'EOF'
import sys
from b2b.train import export_generator, latest_checkpoint
print("export", export_generator(latest_checkpoint(sys.argv[1]), sys.argv[2]))
EOF

echo "[$(date -u +%H:%M:%S)] $EVAL_CMD"
$EVAL_CMD > "$EVAL.log"
cp "$EVAL/report.md" "$EVAL/report.csv" "$DEST/"

python - "$RUN" "$DEST" "$TRAIN_CMD" "$EVAL_CMD" "$GIT_COMMIT" "$GIT_DIRTY" "$STARTED" "$((T1 - T0))" <<'EOF'
import json, os, platform, sys
from pathlib import Path

import torch

from b2b import bach
from b2b.data import open_dataset
from b2b.train import latest_checkpoint, load_checkpoint

run, dest, train_cmd, eval_cmd, commit, dirty, started, wall = sys.argv[1:]
ckpt = load_checkpoint(latest_checkpoint(run))
ds = open_dataset("bach")
meta = ds.meta
history = ckpt["history"]
provenance = {
    "file": "generator.pt",
    "command": train_cmd,
    "script": "scripts/train_pretrained.sh",
    "environment": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    "export": "b2b.train.export_generator(<last checkpoint>, 'data/pretrained/generator.pt')",
    "evaluate_command": eval_cmd,
    "git_commit": commit,
    "git_b2b_uncommitted_files": int(dirty),
    "preset": ckpt["preset"]["name"],
    "preset_config": ckpt["preset"],
    "trainer_config": ckpt["config"],
    "data": {"name": "bach", "windows": len(ds), "pieces": len(meta.get("pieces", {})),
             "window_rule": meta.get("window_rule"),
             "summary": bach.summary(ds).replace(str(ds.path), "<data root>/bach")},
    "iterations": int(ckpt["step"]),
    "epochs": ckpt["step"] * ckpt["config"]["n_critic"] * ckpt["config"]["batch"] / len(ds),
    "wall_seconds": float(wall),
    "training_seconds": float(ckpt["elapsed"]),
    "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, "
              f"{torch.get_num_threads()} torch thread(s))",
    "torch": torch.__version__,
    "python": platform.python_version(),
    "started_utc": started,
    "final_history": history[-1],
    "mean_last_100": {k: sum(h[k] for h in history[-100:]) / len(history[-100:])
                      for k in ("loss_d", "loss_g", "wasserstein", "penalty", "grad_norm")},
}
path = Path(dest) / "provenance.json"
tmp = path.with_suffix(".json.tmp")
tmp.write_text(json.dumps(provenance, indent=1) + "\n")
os.replace(tmp, path)
print("wrote", path)
EOF
echo "[$(date -u +%H:%M:%S)] done"
