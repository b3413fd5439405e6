#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, no download needed.
#   1. generate the synthetic shapes set (COCO format) under data/
#   2. train YOLOv8-n briefly on it           -> work_dirs/demo_yolov8_n_shapes/
#   3. evaluate the checkpoint (COCO bbox AP) -> printed
#   4. run the image demo on a few val images -> outputs/demo/{vis/,predictions.json}
# DEMO_EPOCHS (default 3) sets the training length; see README for the full
# learning benchmark.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
CONFIG=configs/det/yolov8_n_shapes.py
WORK_DIR=work_dirs/demo_yolov8_n_shapes
OUT_DIR=outputs/demo
EPOCHS="${DEMO_EPOCHS:-3}"

"$PY" tools/data/make_synthetic.py shapes --out data/synthetic_shapes
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
    --cfg-options train_cfg.max_epochs="$EPOCHS" train_cfg.val_interval="$EPOCHS" \
    custom_hooks.1.num_last_epochs=1
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR"
"$PY" demo/image_demo.py data/synthetic_shapes/val --config "$CONFIG" \
    --weights "$CKPT" --out-dir "$OUT_DIR" --limit 8
echo "make demo: annotated images in $OUT_DIR/vis/, predictions in $OUT_DIR/predictions.json"
