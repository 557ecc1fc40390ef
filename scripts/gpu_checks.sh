#!/usr/bin/env bash
# The GPU checks of issue 15 in one call, most important first, within one time budget. From the
# repository root on a CUDA machine (docs/performance.md, "GPU path", says how to call it):
#
#   bash scripts/gpu_checks.sh OUT_DIR [SECONDS]
#   ONLY="losses-compiled bench-b96" bash scripts/gpu_checks.sh OUT_DIR   # just the named steps
#   DEVICE=cpu QUICK=1 bash scripts/gpu_checks.sh OUT_DIR 900            # dry run of the plumbing
#
# Steps (each under its own limit, skipped once the budget is spent):
#   env              GPU, driver, torch and timm versions
#   bench-uniad      `iufbench bench --compile` of uniad at MVTec 14-1 paper shapes, batch 24
#   bench-iuf        the same for iuf (separate calls: a compile that runs long cannot cost uniad's numbers)
#   acceptance       issue 15's GPU targets read from those JSONs: uniad img/s, iuf step / uniad step,
#                    projected paper-schedule 14-1 iuf run (training + evaluation + features), peak memory
#   batch-B          `iufbench run` of iuf on $BATCH_PROTOCOL (synth_large) at batch B, same epochs
#                    (so the same number of samples) for every B in $BATCHES
#   batch-compare    per batch size: training, evaluation and peak GPU memory from the records, and the
#                    scores (paper ACC / FM, image and pixel AUROC)
#   losses-compiled  losses of 12 incremental updates, compiled against eager, dropout and jitter off (fp32;
#                    LOSS_PRECISIONS="fp32 bf16" adds bf16)
#   bench-b96        `iufbench bench --compile` at batch 96 (speed of a larger batch at paper shapes)
#   bench-eager      the same bench without --compile (the baseline of the compiled numbers)
#
# Needs torch with CUDA, timm, numpy, pandas, scikit-learn, scikit-image, scipy, pyyaml, tqdm, and for
# synth_large the PyPI Lite0 weights package (importable, or copied to .gpu/site). Writes
# OUT_DIR/log.txt, the bench JSON files and OUT_DIR/runs.tgz (run records and matrices, no checkpoints).
set -u
OUT=${1:?usage: gpu_checks.sh OUT_DIR [SECONDS]}
BUDGET=${2:-560}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TQDM_DISABLE=1
export PYTHONUNBUFFERED=1 IUFBENCH_CACHE=${IUFBENCH_CACHE:-/tmp/iufbench-cache}
RUNS=${RUNS:-/tmp/iufbench-gpu-runs}
rm -rf "$RUNS"; mkdir -p "$RUNS"
exec > >(tee -a "$OUT/log.txt") 2>&1
deadline=$((SECONDS + BUDGET))
export DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}

# QUICK=1 shrinks every step so that a CPU runs each one to the end (with 4x the limits: compiling on a
# CPU takes minutes): it proves the plumbing, not speed.
LIMIT_SCALE=1
if [[ -n "${QUICK:-}" ]]; then
  LIMIT_SCALE=4
  BENCH=(--protocol demo --schedule fast --batch-size 4 --eval-batch-size 4 --warmup 0 --repeats 1 --steps 1)
  B96=(--protocol demo --schedule fast --batch-size 8 --eval-batch-size 4 --warmup 0 --repeats 1 --steps 1)
  BATCH_PROTOCOL=${BATCH_PROTOCOL:-demo} BATCHES=${BATCHES:-"4 8"} BATCH_EPOCHS=${BATCH_EPOCHS:-1}
  LOSS_PRECISIONS=${LOSS_PRECISIONS:-fp32}
else
  BENCH=() B96=(--batch-size 96)
  BATCH_PROTOCOL=${BATCH_PROTOCOL:-synth_large} BATCHES=${BATCHES:-"24 96"} BATCH_EPOCHS=${BATCH_EPOCHS:-5}
  LOSS_PRECISIONS=${LOSS_PRECISIONS:-fp32}
fi
export BATCH_PROTOCOL BATCHES BATCH_EPOCHS RUNS LOSS_PRECISIONS

# step NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, time left); skips it when under 20 s are left.
step() {
  local name=$1 limit=$(($2 * LIMIT_SCALE)); shift 2
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
  local left=$((deadline - SECONDS))
  ((left < limit)) && limit=$left
  if ((limit < 20)); then echo "=== $name: skipped, budget spent"; return; fi
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - t0))s"
}

step env 20 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; '"$PY"' -c "import torch, timm; print(\"torch\", torch.__version__, \"timm\", timm.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA\")"'
step bench-uniad 200 "$PY" -m iufbench.cli bench --device "$DEVICE" --methods uniad --compile "${BENCH[@]}" --out "$OUT/bench_uniad.json"
step bench-iuf 280 "$PY" -m iufbench.cli bench --device "$DEVICE" --methods iuf --compile "${BENCH[@]}" --out "$OUT/bench_iuf.json"
step acceptance 20 "$PY" - "$OUT/bench_uniad.json" "$OUT/bench_iuf.json" <<'EOF'
import json, sys
from pathlib import Path
reports = {name: json.loads(Path(p).read_text()) for name, p in zip(("uniad", "iuf"), sys.argv[1:]) if Path(p).is_file()}
rows = {name: r["methods"][0] for name, r in reports.items()}
def verdict(ok): return "met" if ok else "NOT met"
for name, report in reports.items():
    print(f"{name}: bench on {report['host'].get('gpu') or report['device']}, {report['precision']}, batch {report['batch_size']}, "
          f"compiled {report['compile']}, {report['seconds']} s")
uniad, iuf = rows.get("uniad"), rows.get("iuf")
if uniad:
    print(f"uniad training at batch {reports['uniad']['batch_size']}: {uniad['train_img_s']:,.0f} img/s "
          f"(target >= 5,000 at batch 24: {verdict(uniad['train_img_s'] >= 5000)})")
if uniad and iuf:
    ratio = iuf["train_step_ms"] / uniad["train_step_ms"]
    print(f"iuf step {iuf['train_step_ms']:.2f} ms / uniad step {uniad['train_step_ms']:.2f} ms = {ratio:.2f} (target <= 1.3: {verdict(ratio <= 1.3)})")
if iuf and iuf["paper_run_minutes"] is not None:
    print(f"projected paper-schedule {reports['iuf']['protocol']} iuf run: {iuf['paper_run_minutes']:.1f} min = training "
          f"{iuf['paper_train_minutes']:.1f} + evaluation {iuf['paper_eval_minutes']:.1f} (metrics {iuf['metrics_ms_per_image']:.3f} "
          f"ms/image) + features {iuf['paper_features_minutes']:.1f} (target < 15: {verdict(iuf['paper_run_minutes'] < 15)})")
elif iuf:
    print("projected paper-schedule iuf run: n/a (the protocol lists no image counts)")
for name, row in rows.items():
    peak = max(row["train_peak_gib"], row["infer_peak_gib"])
    print(f"{name} peak memory: {peak:.2f} GiB (target < 8: {verdict(peak < 8)})")
missing = {"uniad", "iuf"} - set(rows)
if missing:
    print(f"no bench result for {', '.join(sorted(missing))} (its step ran out of time or failed: see above)")
EOF
for b in $BATCHES; do
  step "batch-$b" 100 "$PY" -m iufbench.cli run --protocol "$BATCH_PROTOCOL" --methods iuf --epochs "$BATCH_EPOCHS" \
    --batch-size "$b" --device "$DEVICE" --out "$RUNS" --run-id "batch$b" --no-progress
done
step batch-compare 20 "$PY" - <<'EOF'
import json, os
from pathlib import Path
import pandas as pd
runs = Path(os.environ["RUNS"])
print(f"iuf on {os.environ['BATCH_PROTOCOL']}, {os.environ['BATCH_EPOCHS']} epochs per task at every batch size (same samples)")
for b in os.environ["BATCHES"].split():
    run = runs / f"batch{b}"
    if not (run / "summary.csv").is_file():
        print(f"batch {b}: no finished run")
        continue
    steps = [s for pair in json.loads((run / "record.json").read_text())["steps"].values() for s in pair.values()]
    train, evaluation = sum(s["train_seconds"] for s in steps), sum(s["eval_seconds"] for s in steps)
    peaks = [s["peak_gpu_mb"] for s in steps if s["peak_gpu_mb"] is not None]
    peak = f"{max(peaks):.0f} MB" if peaks else "n/a"
    summary = pd.read_csv(run / "summary.csv").set_index("metric")
    scores = ", ".join(f"{m.split('_')[0]} ACC {summary.loc[m, 'paper_acc'] * 100:.1f} FM {summary.loc[m, 'paper_fm'] * 100:.1f}"
                       for m in ("image_auroc", "pixel_auroc") if m in summary.index)
    print(f"batch {b}: training {train:.1f} s, evaluation {evaluation:.1f} s, peak GPU {peak}; {scores}")
EOF
step losses-compiled 150 "$PY" - <<'EOF'
import os
import torch
from iufbench.bench import loss_trajectory
device = torch.device(os.environ.get("DEVICE", "cuda"))
# dropout and jitter off: inductor draws other random numbers, so only then is a difference a bug
same = ("model.dropout=0.0", "model.jitter_prob=0.0")
for name in ("uniad", "iuf"):
    for precision in os.environ["LOSS_PRECISIONS"].split():
        plain = loss_trajectory(name, device, precision, overrides=same)
        fast = loss_trajectory(name, device, precision, compile=True, overrides=same)
        worst = max(abs(f - p) / abs(p) for f, p in zip(fast, plain))
        print(f"{name} {precision} eager   ", " ".join(f"{v:.4f}" for v in plain))
        print(f"{name} {precision} compiled", " ".join(f"{v:.4f}" for v in fast), f"| max relative difference {worst:.4f}")
EOF
step bench-b96 150 "$PY" -m iufbench.cli bench --device "$DEVICE" --methods uniad,iuf --compile "${B96[@]}" --out "$OUT/bench_b96.json"
step bench-eager 120 "$PY" -m iufbench.cli bench --device "$DEVICE" --methods uniad,iuf "${BENCH[@]}" --out "$OUT/bench_eager.json"
tar -C "$RUNS" --exclude=checkpoints -czf "$OUT/runs.tgz" . && echo "=== runs.tgz written"
