# Faster R-CNN + ResNet-50 + FPN, 1x on COCO: mmdet's
# faster-rcnn_r50_fpn_1x_coco (published 37.4 box AP), the plain counterpart
# of bvr_faster-rcnn_r50_fpn_1x_coco.py and faster-rcnn_cbv2-r50_fpn_1x_coco.py.
#   python tools/train.py configs/det/faster-rcnn_r50_fpn_1x_coco.py
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
default_hooks = dict(checkpoint=dict(interval=1))
