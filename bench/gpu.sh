#!/usr/bin/env bash
# Every GPU check of the project in one device call (well under 10 minutes on an H100/H200).
# Needs the ray/optuna/mlflow wheels in .whl/ (../shared/device/make-wheels.sh, run from the
# repo root); without them the study step is skipped and says so. Call through the device
# tool with carry [".whl"]:   bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
site="${TMPDIR:-/tmp}/fsvae-site"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site:$PWD"
else
  export PYTHONPATH=$PWD
fi
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
OUT=${OUT:-gpu-out}
python3 bench/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
