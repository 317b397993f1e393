#!/usr/bin/env bash
# Creates (or updates) the two pinned environments. Idempotent: an environment whose
# requirements file has not changed since its last successful install is left alone.
#   .venv           the pipeline environment: Merlin (NVTabular, Merlin Models, merlin-systems) on TF 2.12
#   .venv-features  the features environment: PyTorch, torchvision, transformers
# Usage: scripts/setup.sh [pipeline|features|all|horovod]   (PYTHON=python3.11 for the interpreter)
#   horovod (or MMREC_HOROVOD=1 with pipeline/all): also build Horovod into .venv
#   (requirements/horovod.txt; TensorFlow + Gloo on CPU, about 6 minutes on 2 cores)
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

# Horovod from its sdist, against the installed TensorFlow, with the Gloo controller and CPU
# collectives (no MPI). Rebuilt when its pin or the pipeline lock (TensorFlow's ABI) changes.
ensure_horovod() {
  local venv=.venv req=requirements/horovod.txt stamp=.venv/.mmrec-horovod want
  want=$(cat "$req" requirements/pipeline.lock | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c "import horovod.tensorflow" 2> /dev/null; then
    echo "setup: horovod in $venv is up to date"
    return
  fi
  echo "setup: building horovod into $venv from $req (about 6 minutes on 2 cores)"
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo \
    MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}" \
    "$venv/bin/python" -m pip install -q --no-build-isolation --no-deps -r "$req" 2>&1 \
    | { grep -v '^WARNING: Location' || true; }
  "$venv/bin/python" -c "import horovod.tensorflow as hvd; hvd.init(); assert hvd.gloo_built()"
  "$venv/bin/python" -m pip check
  echo "$want" > "$stamp"
}

case "$which" in
  pipeline) ensure_env .venv requirements/pipeline.txt ;;
  features) ensure_env .venv-features requirements/features.txt ;;
  all) ensure_env .venv requirements/pipeline.txt; ensure_env .venv-features requirements/features.txt ;;
  horovod) ensure_env .venv requirements/pipeline.txt; MMREC_HOROVOD=1 ;;
  *) echo "usage: $0 [pipeline|features|all|horovod]" >&2; exit 2 ;;
esac
if [ "${MMREC_HOROVOD:-0}" = 1 ] && [ "$which" != features ]; then
  ensure_horovod
fi

# Jupyter kernels for notebooks/: both registered inside .venv, where `.venv/bin/jupyter` looks
# (another Jupyter finds them with JUPYTER_PATH=<repo>/.venv/share/jupyter). Cheap and idempotent.
if [ "$which" = all ]; then
  .venv/bin/python -m ipykernel install --prefix .venv --name mmrec-pipeline \
    --display-name "mmrec pipeline (Merlin, TensorFlow)" > /dev/null
  .venv-features/bin/python -m ipykernel install --prefix .venv --name mmrec-features \
    --display-name "mmrec features (PyTorch)" > /dev/null 2>&1
fi
