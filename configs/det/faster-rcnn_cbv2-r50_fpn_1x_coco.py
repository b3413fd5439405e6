# CBNetV2 Faster R-CNN: Dual-ResNet-50 (cb_del_stages=1) + one shared FPN,
# assistant supervision (weight 0.5), mmdet's 1x COCO schedule: the official
# VDIGPKU/CBNetV2 faster_rcnn_cbv2d1_r50_fpn_1x_coco.py. Published: 40.8 box
# AP, 69M params, 284 GFLOPs; this build: 69.63M params (80 classes; see
# tests/test_models/test_detectors/test_cb_detectors.py).
#   python tools/train.py configs/det/faster-rcnn_cbv2-r50_fpn_1x_coco.py
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
model = dict(
    type='densekit.CBTwoStageDetector',
    backbone=dict(
        _delete_=True,  # the ResNet's arguments move into backbone.backbone
        type='densekit.CBNet',
        # every copy is the base's ImageNet-pretrained ResNet-50
        backbone={{_base_.model.backbone}},
        num_backbones=2,
        cb_del_stages=1),
    neck=dict(
        _delete_=True,  # FPN's arguments move into neck.neck
        type='densekit.CBFPN',
        neck={{_base_.model.neck}}))
