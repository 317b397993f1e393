#!/usr/bin/env bash
# Creates (or updates) the two pinned environments. Idempotent: an environment whose
# requirements file has not changed since its last successful install is left alone.
#   .venv           the pipeline environment: Merlin (NVTabular, Merlin Models, merlin-systems) on TF 2.12
#   .venv-features  the features environment: PyTorch, torchvision, transformers
# Usage: scripts/setup.sh [pipeline|features|all]   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
which=${1:-all}

ensure_env() {
  local venv=$1 req=$2
  local lock=${req%.txt}.lock
  local stamp="$venv/.mmrec-installed"
  local want
  want=$(cat "$req" "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    echo "setup: $venv is up to date"
    return
  fi
  echo "setup: installing $venv from $req (a few minutes the first time)"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q -r "$req" -c "$lock" 2>&1 | { grep -v '^WARNING: Location' || true; }
  "$venv/bin/python" -m pip install -q --no-deps -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
  "$venv/bin/python" -m pip check
  echo "$want" > "$stamp"
}

case "$which" in
  pipeline) ensure_env .venv requirements/pipeline.txt ;;
  features) ensure_env .venv-features requirements/features.txt ;;
  all) ensure_env .venv requirements/pipeline.txt; ensure_env .venv-features requirements/features.txt ;;
  *) echo "usage: $0 [pipeline|features|all]" >&2; exit 2 ;;
esac

# Jupyter kernels for notebooks/: both registered inside .venv, where `.venv/bin/jupyter` looks
# (another Jupyter finds them with JUPYTER_PATH=<repo>/.venv/share/jupyter). Cheap and idempotent.
if [ "$which" = all ]; then
  .venv/bin/python -m ipykernel install --prefix .venv --name mmrec-pipeline \
    --display-name "mmrec pipeline (Merlin, TensorFlow)" > /dev/null
  .venv-features/bin/python -m ipykernel install --prefix .venv --name mmrec-features \
    --display-name "mmrec features (PyTorch)" > /dev/null 2>&1
fi
