#!/usr/bin/env bash
# Every GPU check of the project in one call (well under 10 minutes on an H100/H200).
# On a GPU machine with the project installed:   PYTHON=.venv/bin/python bash bench/gpu.sh
# On a machine with torch but without ray/optuna/mlflow and no package index, put their
# wheels in .whl/ first (e.g. `pip wheel -w .whl "ray[tune]" optuna mlflow` where there is
# one); without them the study step is skipped and says so. Results go to $OUT (default
# gpu-out/).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
site="${TMPDIR:-/tmp}/fsvae-site"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site:$PWD"
else
  export PYTHONPATH=$PWD
fi
export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
"$PY" bench/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
