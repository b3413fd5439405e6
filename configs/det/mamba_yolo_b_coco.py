# Mamba YOLO-B: the T recipe at scale [depth 0.33, width 0.50, max 1024].
# 21.83M params (80 classes), as the official build; published COCO
# val2017 (README, "Mamba YOLO-M"): 19.1M / 45.4 GFLOPs / 49.1 AP.
_base_ = './mamba_yolo_t_coco.py'
model = dict(backbone=dict(arch='B'), neck=dict(deepen_factor=0.33))
