#!/usr/bin/env bash
# How data/pretrained/ was made: the exact commands, run from the repository root with .venv
# active, as
#
#     nohup nice -n 5 bash scripts/train_pretrained.sh > /tmp/b2b-pretrained.log 2>&1 &
#
# 1. train the `improved` preset on the embedded Bach dataset with the project's own CLI
#    (skipped when the run's final checkpoint already exists, so steps 2-5 can be redone),
# 2. export the generator only (a small "b2b-generator" file, no critic or optimizer states),
# 3. calibrate a binarization threshold: the (1 - d) quantile of the generator's probabilities on
#    1,000 samples of noise seed SEED + 1, d the share of on-cells in the 1,000 real windows that
#    `b2b evaluate --seed SEED` compares with (the preset's fixed 0.9 leaves this generator silent),
# 4. evaluate it against those real windows with `b2b evaluate` at the calibrated threshold
#    (report.md, report.csv) and at the preset's threshold (report_preset_threshold.md/.csv),
# 5. copy the run's history.csv and write provenance.json (commands, git commit, data,
#    iterations, time, device, versions).
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
FINAL=$RUN/checkpoint_$(printf %08d "$ITERATIONS").pt

mkdir -p "$(dirname "$RUN")" "$DEST"
GIT_COMMIT=$(git rev-parse HEAD)
GIT_DIRTY=$(git status --porcelain -- b2b | wc -l)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -e "$FINAL" ]; then
    echo "[$STARTED] training already done: $FINAL"
else
    echo "[$STARTED] $TRAIN_CMD (OMP_NUM_THREADS=$OMP_NUM_THREADS, git $GIT_COMMIT)"
    echo "$GIT_COMMIT $GIT_DIRTY $STARTED" > "$RUN.git"   # the code the training ran
    $TRAIN_CMD
fi
read -r TRAIN_COMMIT TRAIN_DIRTY TRAIN_STARTED < "$RUN.git"

python - "$FINAL" "$DEST/generator.pt" <<'PY'
import sys
from b2b.train import export_generator
print("export", export_generator(sys.argv[1], sys.argv[2]))
PY

THRESHOLD=$(python - "$DEST/generator.pt" "$SEED" <<'PY'
import sys
import numpy as np
from b2b.evaluate import load_real
from b2b.generate import generate
from b2b.train import load_generator
g, info = load_generator(sys.argv[1])
seed = int(sys.argv[2])
real = load_real("bach", 1000, seed)               # the real windows of `b2b evaluate --n 1000 --seed`
probs = generate(g, 1000, seed=seed + 1).numpy()   # calibration noise, not the evaluation's
print(f"{float(np.quantile(probs, 1 - real.mean())):.3f}")
PY
)
EVAL_CMD="b2b evaluate --checkpoint $DEST/generator.pt --data bach --n 1000 --seed $SEED --threshold $THRESHOLD --out $EVAL"
EVAL_PRESET_CMD="b2b evaluate --checkpoint $DEST/generator.pt --data bach --n 1000 --seed $SEED --no-figures --out $EVAL-preset-threshold"
echo "[$(date -u +%H:%M:%S)] calibrated threshold $THRESHOLD; $EVAL_CMD"
$EVAL_CMD > "$EVAL.log"
echo "[$(date -u +%H:%M:%S)] $EVAL_PRESET_CMD"
$EVAL_PRESET_CMD > "$EVAL-preset-threshold.log"
cp "$EVAL/report.md" "$EVAL/report.csv" "$DEST/"
cp "$RUN/history.csv" "$DEST/history.csv"      # the training curves (one row per step)
cp "$EVAL-preset-threshold/report.md" "$DEST/report_preset_threshold.md"
cp "$EVAL-preset-threshold/report.csv" "$DEST/report_preset_threshold.csv"

python - "$FINAL" "$DEST" "$TRAIN_CMD" "$EVAL_CMD" "$EVAL_PRESET_CMD" "$TRAIN_COMMIT" "$TRAIN_DIRTY" "$THRESHOLD" \
    "$TRAIN_STARTED" "$GIT_COMMIT" <<'PY'
import datetime, json, os, platform, sys
from pathlib import Path

import numpy as np
import torch

from b2b import bach
from b2b.data import open_dataset
from b2b.evaluate import load_real
from b2b.generate import generate
from b2b.train import load_checkpoint, load_generator

final, dest, train_cmd, eval_cmd, eval_preset_cmd, commit, dirty, threshold, started, post_commit = sys.argv[1:]
ckpt = load_checkpoint(final)
ds = open_dataset("bach")
meta = ds.meta
history = ckpt["history"]
seed = ckpt["config"]["seed"]
g, info = load_generator(Path(dest) / "generator.pt")
probs = generate(g, 1000, seed=seed).numpy()       # the evaluation's samples
real = load_real("bach", 1000, seed)
t, t0 = float(threshold), info["threshold"]
provenance = {
    "file": "generator.pt",
    "command": train_cmd,
    "script": "scripts/train_pretrained.sh",
    "environment": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    "export": "b2b.train.export_generator(<final checkpoint>, 'data/pretrained/generator.pt')",
    "evaluate_command": eval_cmd,
    "evaluate_preset_threshold_command": eval_preset_cmd,
    "git_commit": commit,
    "git_b2b_uncommitted_files": int(dirty),
    "git_commit_export_and_evaluation": post_commit,
    "started_utc": started,
    "preset": ckpt["preset"]["name"],
    "preset_config": ckpt["preset"],
    "trainer_config": ckpt["config"],
    "data": {"name": "bach", "windows": len(ds), "pieces": len(meta.get("pieces", {})),
             "window_rule": meta.get("window_rule"),
             "summary": bach.summary(ds).replace(str(ds.path), "<data root>/bach")},
    "iterations": int(ckpt["step"]),
    "epochs": ckpt["step"] * ckpt["config"]["n_critic"] * ckpt["config"]["batch"] / len(ds),
    "wall_seconds": float(ckpt["elapsed"]),
    "device": f"cpu ({platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
              f"{os.environ.get('OMP_NUM_THREADS')} torch thread)",
    "torch": torch.__version__,
    "python": platform.python_version(),
    "finished_utc": datetime.datetime.fromtimestamp(os.path.getmtime(final), datetime.timezone.utc).isoformat(timespec="seconds"),
    "final_history": history[-1],
    "mean_last_100": {k: sum(h[k] for h in history[-100:]) / len(history[-100:])
                      for k in ("loss_d", "loss_g", "wasserstein", "penalty", "grad_norm")},
    "threshold": {
        "calibrated": t,
        "rule": "(1 - d) quantile of the generator's probabilities on 1,000 samples of noise seed "
                "seed + 1; d = share of on-cells in the 1,000 real windows of b2b evaluate --seed seed",
        "real_density": float(real.mean()),
        "preset": t0,
        "evaluation_samples": {
            "max_probability": float(probs.max()), "median_probability": float(np.median(probs)),
            "density_at_calibrated": float((probs >= t).mean()),
            "density_at_preset": float((probs >= t0).mean()),
            "silent_windows_at_calibrated": int((~(probs >= t).any(axis=(1, 2, 3))).sum()),
            "silent_windows_at_preset": int((~(probs >= t0).any(axis=(1, 2, 3))).sum()),
        },
    },
    "reports": {"report.md": f"at the calibrated threshold {t}",
                "report_preset_threshold.md": f"at the preset's threshold {t0}"},
}
path = Path(dest) / "provenance.json"
tmp = path.with_suffix(".json.tmp")
tmp.write_text(json.dumps(provenance, indent=1) + "\n")
os.replace(tmp, path)
print("wrote", path)
PY
echo "[$(date -u +%H:%M:%S)] done"
