#!/usr/bin/env bash
# Score-regression check (what CI runs): train uniad and iuf on the demo protocol, seed 0, and compare
# every stored score with results/reference/demo.json (fails when one drops by more than 0.5 points).
# After an intended change of scores: ./scripts/check_scores.sh --update, and commit the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/iufbench run --protocol demo --methods uniad,iuf --seeds 0 --out "$out" --run-id check --no-progress
.venv/bin/iufbench check "$out/check" --against results/reference/demo.json "$@"
