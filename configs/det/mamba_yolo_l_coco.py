# Mamba YOLO-L: the T recipe at scale [depth 0.67, width 0.75, max 768].
# 57.63M params (80 classes), as the official build; published COCO
# val2017 (README): 57.6M / 156.2 GFLOPs / 52.1 AP.
_base_ = './mamba_yolo_t_coco.py'
model = dict(backbone=dict(arch='L'), neck=dict(deepen_factor=0.67))
