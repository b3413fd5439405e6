#!/usr/bin/env bash
# Build densekit's Python environment into .venv/ (idempotent).
#
# The fragile part of the OpenMMLab stack is mmcv: mmdet 3.3 / mmseg 1.2 refuse
# mmcv >= 2.2, and no mmcv 2.1 wheel exists for torch 2.13, so mmcv 2.1.0 is
# compiled from source with its CPU ops.  That takes ~25 min on 2 cores, so the
# built wheel is cached outside the repo under
#   ${DENSEKIT_CACHE:-~/.cache/densekit}/wheels/mmcv-2.1.0-torch<ver>-py<ver>/
# and every later environment build reuses it.
#
# Usage: tools/setup_env.sh [VENV_DIR]   (default: .venv at the repo root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${DENSEKIT_TORCH_VERSION:-2.13.0}"
MMCV_VERSION="2.1.0"
CACHE="${DENSEKIT_CACHE:-$HOME/.cache/densekit}"
STAMP="$VENV/.densekit-env-ok"

log() { echo "[setup_env] $*"; }

# One build at a time per environment: a second `make env` (another shell, a
# parallel `make test`) waits here for the first instead of compiling mmcv
# again into the same venv.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if ! flock -n 9; then
    log "another build of $VENV is running: waiting for it"
    flock 9
fi

if [[ -f "$STAMP" ]]; then
    log "environment already built at $VENV (remove $STAMP to rebuild)"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

log "installing torch==$TORCH_VERSION (CPU wheel from local disk when present)"
"${PIP[@]}" "torch==$TORCH_VERSION"

PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_TAG-py$PYVER"
mkdir -p "$WHEEL_DIR"

# Build requirements for mmcv; setuptools<70 only for this step (see below).
"${PIP[@]}" -r "$ROOT/requirements/build.txt"

if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    log "no cached mmcv wheel in $WHEEL_DIR: compiling mmcv $MMCV_VERSION with CPU ops (~25 min on 2 cores, once)"
    "${PIP[@]}" "setuptools<70"
    TMP_WHEELS="$(mktemp -d)"
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps \
        --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$TMP_WHEELS"
    mv "$TMP_WHEELS"/mmcv-*.whl "$WHEEL_DIR"/
    rm -rf "$TMP_WHEELS"
    log "cached $(ls "$WHEEL_DIR")"
else
    log "using cached mmcv wheel from $WHEEL_DIR"
fi
"${PIP[@]}" --no-deps "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl

# torch 2.13 declares setuptools>=77; restore a current one once mmcv is built.
"${PIP[@]}" "setuptools>=77"

log "installing runtime, test and deploy requirements"
# deploy.txt: onnx / onnxruntime / openvino for the export parity tests
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
    -r "$ROOT/requirements/deploy.txt"
# the compiled ops are built in place by the next step (and by `make ext`),
# not a second time inside pip's editable build
DENSEKIT_WITH_OPS=0 "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

log "building densekit's C++ ops in place (densekit/_ext*.so, ~1.5 min)"
(cd "$ROOT" && "$PY" setup.py -q build_ext --inplace)

log "checking the stack imports together"
"$PY" - <<'EOF'
import torch, mmengine, mmcv, mmdet, mmseg
from mmcv.ops import nms, RoIAlign  # noqa: F401  (compiled ops present)
import densekit
from densekit.ops import load_ext
ext, reason = load_ext()
assert ext is not None, f'densekit._ext does not import: {reason}'
print(f"torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, densekit {densekit.__version__}")
EOF
touch "$STAMP"
log "done: $VENV"
