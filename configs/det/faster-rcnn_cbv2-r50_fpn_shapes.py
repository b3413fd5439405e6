# CBNetV2 Faster R-CNN on densekit's synthetic shapes, sized for a CPU:
# faster-rcnn_r50_fpn_shapes.py (the same quarter-width ResNet-50, FPN, heads,
# data and schedule) with the backbone doubled into a Dual-ResNet-50
# (densekit.CBNet, cb_del_stages=1) and the FPN shared by both copies
# (densekit.CBFPN), assistant supervision 0.5: the settings of
# faster-rcnn_cbv2-r50_fpn_1x_coco.py.
#   python tools/train.py configs/det/faster-rcnn_cbv2-r50_fpn_shapes.py
#   python tools/analysis/plugin_benchmark.py   # next to plain Faster R-CNN
_base_ = './faster-rcnn_r50_fpn_shapes.py'
model = dict(
    type='densekit.CBTwoStageDetector',
    backbone=dict(
        _delete_=True,  # the ResNet's arguments move into backbone.backbone
        type='densekit.CBNet',
        backbone={{_base_.model.backbone}},
        num_backbones=2,
        cb_del_stages=1),
    neck=dict(
        _delete_=True,  # FPN's arguments move into neck.neck
        type='densekit.CBFPN',
        neck={{_base_.model.neck}}))
