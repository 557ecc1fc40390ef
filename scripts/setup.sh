#!/usr/bin/env bash
# Set up .venv for iufbench (idempotent; ~2 min the first time, seconds after).
# torch/torchvision are pinned to the wheels these machines carry; keep the venv's own pip
# (a newer pip resolves avalanche-lib's qpsolvers extra and pulls in jax).
# ray (iufbench sweep) comes in as a dependency of the package, so the tests run it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 -e '.[test,tensorboard,elpv]'
