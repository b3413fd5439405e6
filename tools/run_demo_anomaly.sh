#!/usr/bin/env bash
# `make demo-anomaly`: EfficientAD-S on the embedded synthetic anomaly set.
#   1. generate the synthetic texture-defect set (MVTec AD layout) under data/
#   2. train EfficientAD-S briefly (DEMO_ANOMALY_ITERS, default 150; bfloat16
#      autocast with --amp where the CPU supports it), evaluate (image/pixel
#      AUROC, AU-PRO), run the image demo on test images of every defect type
#      -> outputs/demo/efficientad_s_synthetic/{vis/,maps/,predictions.json}
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
ITERS="${DEMO_ANOMALY_ITERS:-150}"
CONFIG=configs/anomaly/efficientad_s_synthetic.py
WORK_DIR=work_dirs/demo_efficientad_s_synthetic
OUT_DIR=outputs/demo/efficientad_s_synthetic
AMP=$("$PY" -c "from densekit.engine.optimizers import cpu_supports_bf16 as f; print('--amp' if f() else '')")

"$PY" tools/data/make_synthetic.py anomaly --out data/synthetic_anomaly
echo "== efficientad_s_synthetic: train $ITERS iterations $AMP, evaluate, demo"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" $AMP \
    --cfg-options train_cfg.max_iters="$ITERS" train_cfg.val_interval="$ITERS" \
    "param_scheduler.0.milestones=[$((ITERS * 95 / 100))]" \
    default_hooks.checkpoint.interval="$ITERS"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR"
for DEFECT in good scratch blob color; do
    "$PY" demo/image_demo.py "data/synthetic_anomaly/texture/test/$DEFECT" \
        --config "$CONFIG" --weights "$CKPT" --out-dir "$OUT_DIR/$DEFECT" \
        --limit 2
done
echo "make demo-anomaly: heat maps in $OUT_DIR/<defect>/vis/, scores in $OUT_DIR/<defect>/predictions.json"
