# RetinaNet + ResNet-50 + FPN, 1x on COCO: mmdet's retinanet_r50_fpn_1x_coco
# (published 36.5 box AP), the reference row of the backbone-zoo RetinaNets.
#   python tools/train.py configs/det/retinanet_r50_fpn_1x_coco.py
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(optimizer=dict(lr=0.01))  # mmdet's RetinaNet lr
default_hooks = dict(checkpoint=dict(interval=1))
