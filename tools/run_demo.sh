#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, no download needed.
#   1. generate the synthetic shapes set (COCO format) under data/
#   2. for each model (default: YOLOv8-n with the demo schedule,
#      configs/det/yolov8_n_shapes_demo.py: 192x192, 6 epochs, which
#      converges in a few minutes on 2 cores):
#      train                    -> work_dirs/demo_<config>/
#      evaluate (COCO bbox AP)  -> val mAP@0.5 printed
#      image demo on 8 val images -> outputs/demo/<config>/{vis/,predictions.json}
#      verdict: how many of the pictures' objects it found at the demo
#      threshold (tools/analysis/demo_verdict.py)
# DEMO_MODELS picks the configs (configs/det/<name>.py), e.g.
#   DEMO_MODELS="yolov8_n_shapes_demo mamba_yolo_t_shapes" make demo
# adds Mamba YOLO-T, which needs ~16 min to reach val mAP@0.5 0.72 here (see
# README, "Learning benchmark"): DEMO_MAMBA_EPOCHS (default 6) sets its
# length, DEMO_EPOCHS the others' (default: the config's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
MODELS="${DEMO_MODELS:-yolov8_n_shapes_demo}"
SCORE_THR=0.3
START=$(date +%s)

"$PY" tools/data/make_synthetic.py shapes --out data/synthetic_shapes
VAL_ANN=data/synthetic_shapes/annotations/instances_val.json
SUMMARY=()
for NAME in $MODELS; do
    CONFIG="configs/det/$NAME.py"
    WORK_DIR="work_dirs/demo_$NAME"
    OUT_DIR="outputs/demo/$NAME"
    EPOCHS=""
    case "$NAME" in
        mamba_yolo*) EPOCHS="${DEMO_MAMBA_EPOCHS:-6}" ;;
        *) EPOCHS="${DEMO_EPOCHS:-}" ;;
    esac
    OPTIONS=()
    if [ -n "$EPOCHS" ]; then
        OPTIONS=(--cfg-options train_cfg.max_epochs="$EPOCHS"
                 train_cfg.val_interval="$EPOCHS")
    fi
    echo "== $NAME: train${EPOCHS:+ $EPOCHS epoch(s)}, evaluate, demo"
    T0=$(date +%s)
    "$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "${OPTIONS[@]}"
    T1=$(date +%s)
    CKPT="$(cat "$WORK_DIR/last_checkpoint")"
    "$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR" \
        2>&1 | tee "$WORK_DIR/demo_test.log"
    MAP50="$(grep -o 'coco/bbox_mAP_50: [0-9.]*' "$WORK_DIR/demo_test.log" \
             | tail -1 | awk '{print $2}')"
    "$PY" demo/image_demo.py data/synthetic_shapes/val --config "$CONFIG" \
        --weights "$CKPT" --out-dir "$OUT_DIR" --limit 8 \
        --score-thr "$SCORE_THR"
    VERDICT="$("$PY" tools/analysis/demo_verdict.py "$OUT_DIR" "$VAL_ANN" \
               --score-thr "$SCORE_THR" ${MAP50:+--map50 "$MAP50"})"
    SUMMARY+=("$VERDICT; trained $(( (T1 - T0) / 60 ))m$(( (T1 - T0) % 60 ))s; pictures in $OUT_DIR/vis/")
done
echo
echo "make demo ($(( ($(date +%s) - START) / 60 )) min $(( ($(date +%s) - START) % 60 )) s):"
for LINE in "${SUMMARY[@]}"; do
    echo "  $LINE"
done
