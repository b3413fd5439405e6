# The two detection plug-ins composed, on densekit's synthetic shapes:
# RetinaNet-BVR (bvr_retinanet_r50_fpn_shapes.py: the BVR head, its keypoint
# head and data / schedule) on a CBNetV2 Dual-ResNet-50 (the composite of
# faster-rcnn_cbv2-r50_fpn_shapes.py: densekit.CBNet, cb_del_stages=1, the
# FPN shared by both copies through densekit.CBFPN). In training the BVR
# head, keypoint losses included, runs on each copy's features, the
# assisting copy's losses weighted 0.5 (``*_aux0`` in the log); at test the
# lead copy alone.
#   python tools/train.py configs/det/bvr_retinanet_cbv2-r50_fpn_shapes.py
_base_ = './bvr_retinanet_r50_fpn_shapes.py'
model = dict(
    type='densekit.CBSingleStageDetector',
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
