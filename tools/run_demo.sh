#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, no download needed.
#   1. generate the synthetic shapes set (COCO format) under data/
#   2. for Mamba YOLO-T (the headline model) and YOLOv8-n:
#      train briefly            -> work_dirs/demo_<config>/
#      evaluate (COCO bbox AP)  -> printed
#      image demo on 8 val images -> outputs/demo/<config>/{vis/,predictions.json}
# DEMO_EPOCHS (default 3, YOLOv8-n) and DEMO_MAMBA_EPOCHS (default 4,
# Mamba YOLO-T: with the C++ scan kernel ~1.3 min per epoch) set the training
# length; DEMO_MODELS picks the configs. See README for the learning
# benchmarks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
MODELS="${DEMO_MODELS:-mamba_yolo_t_shapes yolov8_n_shapes}"

"$PY" tools/data/make_synthetic.py shapes --out data/synthetic_shapes
for NAME in $MODELS; do
    CONFIG="configs/det/$NAME.py"
    WORK_DIR="work_dirs/demo_$NAME"
    OUT_DIR="outputs/demo/$NAME"
    case "$NAME" in
        mamba_yolo*) EPOCHS="${DEMO_MAMBA_EPOCHS:-4}" ;;
        *) EPOCHS="${DEMO_EPOCHS:-3}" ;;
    esac
    echo "== $NAME: train $EPOCHS epoch(s), evaluate, demo"
    "$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
        --cfg-options train_cfg.max_epochs="$EPOCHS" \
        train_cfg.val_interval="$EPOCHS" custom_hooks.1.num_last_epochs=1
    CKPT="$(cat "$WORK_DIR/last_checkpoint")"
    "$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR"
    "$PY" demo/image_demo.py data/synthetic_shapes/val --config "$CONFIG" \
        --weights "$CKPT" --out-dir "$OUT_DIR" --limit 8
    echo "make demo: $NAME annotated images in $OUT_DIR/vis/, predictions in $OUT_DIR/predictions.json"
done
