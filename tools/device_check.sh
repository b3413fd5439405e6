#!/usr/bin/env bash
# One-shot device check on a bare GPU machine: PyTorch (CUDA) and Triton
# installed, nothing else, no internet. Installs the OpenMMLab stack from a
# folder of carried wheels, builds mmcv from its sdist and densekit's C++
# ops, then runs tools/analysis/device_check.py (every family trains and
# predicts in fp32 and AMP; the Triton scan against the reference; one
# table).
#
# Prepare the wheel folder on a machine with internet, for the GPU
# machine's Python (here 3.12) and platform:
#   pip download -d wheels --python-version 3.12 --only-binary=:all: \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#       mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 \
#       pycocotools albumentations opencv-python-headless scipy \
#       terminaltables shapely tqdm ftfy regex matplotlib addict yapf \
#       rich termcolor six packaging platformdirs pyyaml
#   pip download -d wheels --no-binary :all: --no-deps mmcv==2.1.0
#   pip download -d wheels --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 ninja
# (torch and triton are on the GPU machine already; do not carry them.)
#
# Usage: bash tools/device_check.sh --wheels DIR [--mmcv-cuda] [device_check.py args]
#   --mmcv-cuda   build mmcv with its CUDA ops (tens of minutes); default:
#                 CPU ops only, whose kernels densekit runs on CPU copies of
#                 CUDA tensors (densekit.ops.mmcv_cuda_fallback)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS=""
MMCV_CUDA=0
ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheels) WHEELS="$2"; shift 2 ;;
        --mmcv-cuda) MMCV_CUDA=1; shift ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
log() { echo "[device_check] $*"; }
PIP=("$PY" -m pip install --disable-pip-version-check --no-index)

if [[ -n "$WHEELS" ]]; then
    log "installing the stack from $WHEELS (no index)"
    "${PIP[@]}" --find-links "$WHEELS" mmengine mmdet mmsegmentation \
        pycocotools albumentations opencv-python-headless scipy terminaltables \
        shapely tqdm ftfy \
        regex ninja
    if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
        sdist="$(ls "$WHEELS"/mmcv-2.1.0.tar.gz)"
        log "building mmcv 2.1.0 from $sdist with MAX_JOBS=$(nproc)" \
            "($([[ $MMCV_CUDA == 1 ]] && echo CUDA || echo CPU) ops)"
        MMCV_WITH_OPS=1 FORCE_CUDA=$MMCV_CUDA \
            CUDA_VISIBLE_DEVICES=$([[ $MMCV_CUDA == 1 ]] && echo 0 || echo "") \
            MAX_JOBS="$(nproc)" "${PIP[@]}" --no-build-isolation --no-deps \
            "$sdist"
    fi
fi
log "building densekit's C++ ops in place"
(cd "$ROOT" && "$PY" setup.py -q build_ext --inplace)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
exec "$PY" tools/analysis/device_check.py "${ARGS[@]}"
