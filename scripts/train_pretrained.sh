#!/usr/bin/env bash
# How data/pretrained/ was made: the exact commands, run from the repository root with .venv
# active, as
#
#     nohup nice -n 5 bash scripts/train_pretrained.sh > /tmp/b2b-pretrained.log 2>&1 &
#
# 1. train the `streams` preset (PRESET) on the embedded Bach dataset with the project's own CLI
#    (skipped when the run's final checkpoint already exists, so steps 2-5 can be redone),
# 2. export the generator only (a small "b2b-generator" file, no critic or optimizer states) with
#    `b2b export --data bach`, which stores the binarization threshold in the file: density-matched,
#    the probability that turns the Bach data's share of on cells on in 1,000 samples of held-out
#    noise (b2b.sampling.generate.calibrate_threshold; the original's fixed 0.9 left its generators silent),
#    so that `b2b generate` and `b2b evaluate` play it at that threshold by default,
# 3. evaluate it against 1,000 real windows with `b2b evaluate` at its stored threshold (report.md,
#    report.csv) and at the preset's own fixed threshold (report_preset_threshold.md/.csv),
# 4. copy the run's history.csv and write provenance.json (commands, git commit, data,
#    iterations, time, device, versions, the threshold and how it was computed).
#
# REEXPORT=1 redoes steps 2-4 from the committed data/pretrained/generator.pt instead of a training
# run (the weights are copied unchanged, checked by their SHA-256; provenance.json keeps its training
# facts and records the re-export). That is how the threshold was added to the shipped file:
#
#     REEXPORT=1 bash scripts/train_pretrained.sh
#
# CHECKPOINT=<a training checkpoint> ships that checkpoint instead of training (steps 2-4 only): how a
# checkpoint of a long run (scripts/long_run.py) becomes the shipped generator. TRAIN_NOTE says how it
# was trained (recorded as the command); the run folder's history.csv is copied; an EMA run exports
# its moving average (b2b.training.ema). PRESET names the preset the run trained (default streams,
# the shipped generator's recipe).
#
#     CHECKPOINT=runs/longrun/lean-s0/checkpoint_00010000.pt PRESET=lean \
#         TRAIN_NOTE="python scripts/long_run.py start --name lean-s0 --preset lean" bash scripts/train_pretrained.sh
#
# GENERATOR=<an exported generator file> ships a generator that scripts/recipe_search.py --best chose
# after its run's training checkpoints were gone (steps 2-4 only; the weights are copied unchanged,
# checked by their SHA-256): FROM is the folder --best wrote (its provenance.json: the run, the step,
# the preset, the training time, the checkpoints considered), HISTORY the run's history.csv and
# TRAJECTORY its trajectory.json (a trajectory.md beside it is copied too); RESULTS is the
# recipe search's results.json, whose provenance names the training commit. How the `streams` run
# replaced the `improved` one (whose files moved to data/ablations/improved/):
#
#     GENERATOR=data/ablations/streams/generator.pt FROM=data/ablations/streams \
#         HISTORY=data/ablations/streams/streams-s0/history.csv TRAJECTORY=data/ablations/streams/trajectory-s0.json \
#         RESULTS=data/ablations/streams/results.json bash scripts/train_pretrained.sh
#
# ITERATIONS and RUN can be overridden from the environment; provenance.json records the values used.
# RESUME=1 continues the run already in RUN (`b2b train --resume`, which accepts a checkpoint of the
# same networks and hyper-parameters under another preset name), e.g. a run of
# scripts/recipe_search.py whose candidate became the `improved` preset; RESUME_NOTE says where the
# earlier steps came from and goes into provenance.json. KEEP is the number of checkpoints kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PRESET=${PRESET:-streams}
CHECKPOINT=${CHECKPOINT:-}
SEED=0
ITERATIONS=${ITERATIONS:-1500}
RUN=${RUN:-/tmp/b2b-pretrained/run}
EVAL=${RUN}-evaluation
DEST=data/pretrained
REEXPORT=${REEXPORT:-}
GENERATOR=${GENERATOR:-}
FROM=${FROM:-}
# one intra-op thread: on a shared 2-core machine two spinning threads waste more than they add
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

RESUME=${RESUME:-}
RESUME_NOTE=${RESUME_NOTE:-}
KEEP=${KEEP:-3}
TRAIN_CMD="b2b train --data bach --preset $PRESET --iterations $ITERATIONS --out $RUN --seed $SEED --checkpoint-every 250 --sample-every 500 --keep $KEEP${RESUME:+ --resume}"
RESUMED_FROM=0
if [ -n "$RESUME" ]; then
    RESUMED_FROM=$(ls "$RUN"/checkpoint_*.pt | tail -1 | sed 's/.*checkpoint_0*\([0-9]*\)\.pt/\1/')
fi
FINAL=$RUN/checkpoint_$(printf %08d "$ITERATIONS").pt

mkdir -p "$(dirname "$RUN")" "$DEST"
GIT_COMMIT=$(git rev-parse HEAD)
GIT_DIRTY=$(git status --porcelain -- b2b | wc -l)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -n "$CHECKPOINT" ]; then
    SOURCE=$CHECKPOINT
    RUN=$(dirname "$CHECKPOINT")
    TRAIN_CMD=${TRAIN_NOTE:-"b2b train --preset $PRESET --out $RUN"}
    EVAL=/tmp/b2b-pretrained/$(basename "$RUN")-evaluation
    mkdir -p /tmp/b2b-pretrained
    echo "[$STARTED] shipping $SOURCE (no training)"
    TRAIN_COMMIT=${TRAIN_COMMIT:-$GIT_COMMIT} TRAIN_DIRTY=0 TRAIN_STARTED=-
elif [ -n "$GENERATOR" ]; then
    for f in "$GENERATOR" "$FROM/provenance.json" "${HISTORY:?HISTORY: the history.csv of the run}" \
             "${TRAJECTORY:?TRAJECTORY: the trajectory.json of the run}" "${RESULTS:?RESULTS: the results.json of the recipe search}"; do
        [ -f "$f" ] || { echo "train_pretrained.sh: $f: no such file" >&2; exit 2; }
    done
    SOURCE=$GENERATOR
    RUN=$(dirname "$GENERATOR")
    EVAL=/tmp/b2b-pretrained/$(basename "$RUN")-evaluation
    mkdir -p /tmp/b2b-pretrained
    echo "[$STARTED] shipping $SOURCE, chosen by $FROM/provenance.json (no training)"
    TRAIN_COMMIT=- TRAIN_DIRTY=0 TRAIN_STARTED=-
elif [ -n "$REEXPORT" ]; then
    SOURCE=$DEST/generator.pt
    echo "[$STARTED] re-exporting $SOURCE (no training)"
    TRAIN_COMMIT=- TRAIN_DIRTY=0 TRAIN_STARTED=-
else
    if [ -e "$FINAL" ]; then
        echo "[$STARTED] training already done: $FINAL"
    else
        echo "[$STARTED] $TRAIN_CMD (OMP_NUM_THREADS=$OMP_NUM_THREADS, git $GIT_COMMIT)"
        echo "$GIT_COMMIT $GIT_DIRTY $STARTED" > "$RUN.git"   # the code the training ran
        $TRAIN_CMD
    fi
    read -r TRAIN_COMMIT TRAIN_DIRTY TRAIN_STARTED < "$RUN.git"
    SOURCE=$FINAL
fi

weights_sha() {  # SHA-256 of the generator's weights: every tensor's name, dtype, shape and bytes, in key order
    python - "$1" <<'PY'
import hashlib, sys
import torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
sd = ckpt.get("generator_ema", ckpt["generator"])  # what export ships: the moving average when the run kept one
h = hashlib.sha256()
for k in sorted(sd):
    v = sd[k].contiguous()
    h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
    h.update(v.numpy().tobytes())
print(h.hexdigest())
PY
}
SHA_BEFORE=$(weights_sha "$SOURCE")
EXPORT_CMD="b2b export --checkpoint $SOURCE --data bach --out $DEST/generator.pt"
echo "[$(date -u +%H:%M:%S)] $EXPORT_CMD"
$EXPORT_CMD
SHA_AFTER=$(weights_sha "$DEST/generator.pt")
if [ "$SHA_BEFORE" != "$SHA_AFTER" ]; then echo "weights changed in export: $SHA_BEFORE -> $SHA_AFTER" >&2; exit 1; fi

EVAL_CMD="b2b evaluate --checkpoint $DEST/generator.pt --data bach --n 1000 --seed $SEED --out $EVAL"
PRESET_THRESHOLD=$(python -c "import sys; from b2b.model.checkpoint import load_generator; print(load_generator(sys.argv[1])[1]['preset_threshold'])" "$DEST/generator.pt")
EVAL_PRESET_CMD="b2b evaluate --checkpoint $DEST/generator.pt --data bach --n 1000 --seed $SEED --threshold $PRESET_THRESHOLD --no-figures --out $EVAL-preset-threshold"
echo "[$(date -u +%H:%M:%S)] $EVAL_CMD"
$EVAL_CMD > "$EVAL.log"
echo "[$(date -u +%H:%M:%S)] $EVAL_PRESET_CMD"
$EVAL_PRESET_CMD > "$EVAL-preset-threshold.log"
cp "$EVAL/report.md" "$EVAL/report.csv" "$EVAL/mgeval.json" "$DEST/"
cp "$EVAL-preset-threshold/report.md" "$DEST/report_preset_threshold.md"
cp "$EVAL-preset-threshold/report.csv" "$DEST/report_preset_threshold.csv"
if [ -n "$GENERATOR" ]; then
    cp "$HISTORY" "$DEST/history.csv"
    cp "$TRAJECTORY" "$DEST/trajectory.json"
    if [ -f "${TRAJECTORY%.json}.md" ]; then cp "${TRAJECTORY%.json}.md" "$DEST/trajectory.md"; else rm -f "$DEST/trajectory.md"; fi
elif [ -z "$REEXPORT" ]; then
    cp "$RUN/history.csv" "$DEST/history.csv"      # the training curves (one row per step)
fi

# the record names the run folder <run>: a machine's folders say nothing to a reader
rec() { printf '%s' "${1//"$RUN"/<run>}"; }
python - "$SOURCE" "$DEST" "$(rec "$TRAIN_CMD")" "$(rec "$EXPORT_CMD")" "$(rec "$EVAL_CMD")" "$(rec "$EVAL_PRESET_CMD")" "$TRAIN_COMMIT" "$TRAIN_DIRTY" \
    "$TRAIN_STARTED" "$GIT_COMMIT" "$SHA_AFTER" "$REEXPORT" "$STARTED" "$RESUMED_FROM" "$RESUME_NOTE" \
    "$GENERATOR" "$FROM" "${RESULTS:-}" <<'PY'
import csv, datetime, json, os, platform, sys
from pathlib import Path

import numpy as np
import torch

from b2b.datasets import bach
from b2b.datasets.catalog import open_dataset
from b2b.evaluation.evaluate import iter_generated, open_generator
from b2b.model.checkpoint import load_checkpoint

(source, dest, train_cmd, export_cmd, eval_cmd, eval_preset_cmd, commit, dirty, started, post_commit, sha,
 reexport, now, resumed_from, resume_note, chosen_file, chosen_from, results) = sys.argv[1:]
path = Path(dest) / "provenance.json"
gen_file = Path(dest) / "generator.pt"
g, t, src, info = open_generator(gen_file)
assert src == "calibrated", src
cal = info["calibration"]
seed = 0


def at(threshold):  # the 1,000 generated windows `b2b evaluate --n 1000 --seed 0` compares
    on = silent = n = 0
    for x in iter_generated(g, info["latent"], 1000, seed, threshold):
        on += int(x.sum()); silent += int((~x.any(axis=(1, 2, 3))).sum()); n += len(x)
    return on / (n * 17 * 64 * 72), silent


def trained_on(step, training):  # the data a run trained on, and how long
    ds = open_dataset("bach")
    meta = ds.meta
    return {"data": {"name": "bach", "windows": len(ds), "pieces": len(meta.get("pieces", {})),
                     "window_rule": meta.get("window_rule"),
                     "summary": bach.summary(ds).replace(str(ds.path), "<data root>/bach")},
            "iterations": int(step), "epochs": step * training["n_critic"] * training["batch"] / len(ds)}


def last_steps(history):  # the history's last row and its last 100 rows' means
    return {"final_history": history[-1],
            "mean_last_100": {k: sum(h[k] for h in history[-100:]) / len(history[-100:])
                              for k in ("loss_d", "loss_g", "wasserstein", "penalty", "grad_norm")}}


density_t, silent_t = at(t)
density_p, silent_p = at(info["preset_threshold"])
threshold = {
    "calibrated": t,
    "stored_in": "generator.pt (keys 'threshold' and 'calibration'; b2b generate/evaluate use it by default)",
    "rule": cal["rule"] + "; density_target = share of on cells in all windows of the Bach data",
    "real_density": cal["density_target"],
    "data": cal["data"], "data_windows": cal["data_windows"],
    "calibration_samples": cal["n_samples"], "calibration_seed": cal["seed"],
    "density_at_calibrated_on_calibration_noise": cal["density_at_threshold"],
    "silent_share_on_calibration_noise": cal["silent_share"],
    "preset": info["preset_threshold"],
    "evaluation_samples": {
        "what": "the 1,000 generated windows of b2b evaluate --n 1000 --seed 0",
        "density_at_calibrated": density_t, "density_at_preset": density_p,
        "silent_windows_at_calibrated": silent_t, "silent_windows_at_preset": silent_p,
    },
}
update = {
    "export_command": export_cmd,
    "generator_weights_sha256": sha,
    "evaluate_command": eval_cmd,
    "evaluate_preset_threshold_command": eval_preset_cmd,
    "threshold": threshold,
    "reports": {"report.md": f"at the stored calibrated threshold {t:.6g} (--threshold auto)",
                "report_preset_threshold.md": f"at the preset's threshold {info['preset_threshold']}"},
}
if reexport:
    provenance = json.loads(path.read_text())
    provenance.update(update)
    provenance["reexport"] = {"what": "weights unchanged (same SHA-256); threshold calibrated and stored, "
                                      "reports redone", "command": "REEXPORT=1 bash scripts/train_pretrained.sh",
                              "git_commit": post_commit, "git_b2b_uncommitted_files": int(dirty), "utc": now}
    provenance.pop("export", None)
elif chosen_file:
    # a generator that scripts/recipe_search.py --best chose: its record says how it was trained
    chosen = json.loads((Path(chosen_from) / "provenance.json").read_text())
    search = json.loads(Path(results).read_text())["provenance"]
    raw = torch.load(source, map_location="cpu", weights_only=True)
    cfg, preset = raw["config"], raw["preset"]
    assert (raw["step"], preset["name"]) == (chosen["step"], chosen["preset"]["name"]), (raw["step"], chosen)
    with open(Path(dest) / "history.csv", newline="") as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    assert int(history[-1]["step"]) == raw["step"], "HISTORY: its last step is not the generator's"
    provenance = {
        "file": "generator.pt",
        "command": (f"b2b train --data bach --preset {preset['name']} --iterations {cfg['iterations']} --seed {cfg['seed']} "
                    f"--checkpoint-every {cfg['checkpoint_every']} --out <run>/{chosen['run']}"),
        "how": f"run {chosen['run']} of `{search['command']}` (scripts/recipe_search.py trains each candidate "
               f"with the Trainer, as b2b train does), chosen by `{chosen['command']}`",
        "script": "scripts/train_pretrained.sh (GENERATOR=...)",
        "environment": {"OMP_NUM_THREADS": "1"},
        "git_commit": search["commit"],
        "git_b2b_uncommitted_files": 0,
        "git_commit_export_and_evaluation": post_commit,
        "started_utc": "-",
        "preset": preset["name"],
        "preset_config": preset,
        "trainer_config": {**cfg, "out": "<run>"},
        **trained_on(raw["step"], preset["training"]),
        "weights": "the trained generator",
        "wall_seconds": float(chosen["train_wall_s"]),
        "device": search["machine"],
        "torch": search["torch"],
        "python": search["python"],
        "finished_utc": search["date"],
        **last_steps(history),
        "chosen_by": chosen["chosen_by"],
        "considered": chosen["considered"],
        **update,
    }
else:
    ckpt = load_checkpoint(source)
    history = ckpt["history"]
    provenance = {
        "file": "generator.pt",
        "command": train_cmd,
        "script": "scripts/train_pretrained.sh",
        "environment": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "git_commit": commit,
        "git_b2b_uncommitted_files": int(dirty),
        "git_commit_export_and_evaluation": post_commit,
        "started_utc": started,
        "preset": ckpt["preset"]["name"],
        "preset_config": ckpt["preset"],
        "trainer_config": {**ckpt["config"], "out": "<run>"},
        **trained_on(ckpt["step"], ckpt["preset"]["training"]),
        "weights": "moving average of the generator (b2b.training.ema)" if "generator_ema" in ckpt else "the trained generator",
        "wall_seconds": float(ckpt["elapsed"]),
        "device": f"cpu ({platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
                  f"{os.environ.get('OMP_NUM_THREADS')} torch thread)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "finished_utc": datetime.datetime.fromtimestamp(os.path.getmtime(source), datetime.timezone.utc).isoformat(timespec="seconds"),
        **last_steps(history),
        **update,
    }
    if int(resumed_from):
        provenance["resumed"] = {"from_step": int(resumed_from), "earlier_steps": resume_note,
                                 "git_commit_of_the_resumed_part": commit}
tmp = path.with_suffix(".json.tmp")
tmp.write_text(json.dumps(provenance, indent=1) + "\n")
os.replace(tmp, path)
print("wrote", path, json.dumps(threshold, indent=1))
PY
echo "[$(date -u +%H:%M:%S)] done"
