#!/usr/bin/env bash
# Every GPU check of the speed work (issue 7) and of IUF on a larger stream (issue 3), in one call,
# most important first, within one time budget. Run from the repository root on a CUDA machine:
#
#   bash scripts/gpu_checks.sh OUT_DIR [SECONDS]
#   ONLY="demo-fp32 demo-bf16" bash scripts/gpu_checks.sh OUT_DIR   # just the named steps
#
# Needs torch with CUDA, timm, numpy, pandas, scikit-learn, scikit-image, scipy, pyyaml, tqdm, and the
# PyPI Lite0 weights package (importable, or copied to .gpu/site). Writes OUT_DIR/log.txt, the bench
# JSON files and OUT_DIR/runs.tgz (run records and matrices, no checkpoints).
set -u
OUT=${1:?usage: gpu_checks.sh OUT_DIR [SECONDS]}
BUDGET=${2:-520}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TQDM_DISABLE=1
export PYTHONUNBUFFERED=1 IUFBENCH_CACHE=/tmp/iufbench-cache
RUNS=/tmp/iufbench-gpu-runs
rm -rf "$RUNS"; mkdir -p "$RUNS"
exec > >(tee -a "$OUT/log.txt") 2>&1
deadline=$((SECONDS + BUDGET))

# step NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, time left); skips it when under 20 s are left.
step() {
  local name=$1 limit=$2; shift 2
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
  local left=$((deadline - SECONDS))
  ((left < limit)) && limit=$left
  if ((limit < 20)); then echo "=== $name: skipped, budget spent"; return; fi
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - t0))s"
}
export DEVICE=${DEVICE:-cuda}  # DEVICE=cpu dry-runs the plumbing

step env 30 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, timm; print(\"torch\", torch.__version__, \"timm\", timm.__version__, torch.cuda.get_device_name())"'
step bench-eager 120 python3 -m iufbench.cli bench --device "$DEVICE" --methods uniad,iuf --out "$OUT/bench_eager.json"
step bench-compiled 200 python3 -m iufbench.cli bench --device "$DEVICE" --methods uniad,iuf --compile --out "$OUT/bench_compiled.json"
step demo-fp32 120 python3 -m iufbench.cli run --protocol demo --methods uniad,iuf --device "$DEVICE" --precision fp32 --out "$RUNS" --run-id gpu_fp32 --no-progress
step demo-bf16 120 python3 -m iufbench.cli run --protocol demo --methods uniad,iuf --device "$DEVICE" --precision bf16 --out "$RUNS" --run-id gpu_bf16 --no-progress
step compare-bf16 30 python3 benchmarks/compare_runs.py "$RUNS/gpu_fp32" "$RUNS/gpu_bf16"
step losses 120 python3 - <<'EOF'
import os
import torch
from iufbench.bench import loss_trajectory
cuda = torch.device(os.environ.get("DEVICE", "cuda"))
for name, arms in (("uniad", [("bf16", False), ("bf16", True)]), ("iuf", [("bf16", False)])):
    plain = loss_trajectory(name, cuda, "fp32")
    print(f"{name} fp32          ", " ".join(f"{v:.4f}" for v in plain))
    for precision, compiled in arms:
        fast = loss_trajectory(name, cuda, precision, compile=compiled)
        worst = max(abs(f - p) / abs(p) for f, p in zip(fast, plain))
        print(f"{name} {precision}{' compiled' if compiled else '         '}", " ".join(f"{v:.4f}" for v in fast),
              f"| max relative difference {worst:.4f}")
EOF
step synth-large 120 python3 -m iufbench.cli run --protocol synth_large --methods iuf --epochs 5 --device "$DEVICE" --out "$RUNS" --run-id gpu_large --no-progress
step bench-ablations 90 python3 -m iufbench.cli bench --device "$DEVICE" --methods iuf_no_oasa,iuf_no_scl,iuf_no_us --out "$OUT/bench_ablations.json"
step bench-b256 90 python3 -m iufbench.cli bench --device "$DEVICE" --methods uniad,iuf --batch-size 256 --out "$OUT/bench_b256.json"
step demo-compiled 150 python3 -m iufbench.cli run --protocol demo --methods uniad,iuf --device "$DEVICE" --precision bf16 --compile --out "$RUNS" --run-id gpu_compiled --no-progress
step compare-compiled 30 python3 benchmarks/compare_runs.py "$RUNS/gpu_fp32" "$RUNS/gpu_compiled"
tar -C "$RUNS" --exclude=checkpoints -czf "$OUT/runs.tgz" . && echo "=== runs.tgz written"
