#!/usr/bin/env bash
# Score-regression check (what CI runs): train uniad and iuf on the demo protocol, seed 0, and compare
# every stored score with results/reference/demo.json (fails when one drops by more than 0.5 points).
# After an intended change of scores: ./scripts/check_scores.sh --update, and commit the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
# The same kernels (torch, MKL, oneDNN at AVX2) and thread count as when the reference was written,
# whatever this CPU offers: runs are deterministic on one kernel set, not across kernel sets.
# --jobs 1: both methods in this one process with those 2 threads (the default would run them side
# by side with one thread each, which trains to other numbers than the reference's).
export ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/iufbench run --protocol demo --methods uniad,iuf --seeds 0 --out "$out" --run-id check --jobs 1 --no-progress
.venv/bin/iufbench check "$out/check" --against results/reference/demo.json "$@"
