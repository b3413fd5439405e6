# Faster R-CNN-BVR (RelationNet++, Chi et al., NeurIPS 2020, Table 6:
# Faster R-CNN R-50 1x +BVR) + ResNet-50 + FPN, 1x on COCO. The official
# release has no two-stage config; this one follows the paper: the RoI
# features of the proposals (after the two shared fcs, 1024-d) are the
# queries of densekit.BVRRoIHead, centre keys for classification, corner
# keys for regression, from a keypoint head on FPN levels P3-P6 (strides 8
# to 64, the levels of the one-stage BVR configs but P7, which Faster R-CNN's
# FPN does not have). Keypoint settings as bvr_retinanet_r50_fpn_1x_coco.py.
#   python tools/train.py configs/det/bvr_faster-rcnn_r50_fpn_1x_coco.py
_base_ = './faster-rcnn_r50_fpn_1x_coco.py'

num_classes = 80
channels = 256
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model = dict(
    roi_head=dict(
        type='densekit.BVRRoIHead',
        keypoint_in_levels=(1, 2, 3, 4),
        keypoint_head=dict(
            type='densekit.BVRKeypointHead',
            num_classes=num_classes,
            in_channels=channels,
            feat_channels=channels,
            stacked_convs=2,
            shared_stacked_convs=0,
            logits_convs=1,
            strides=[8, 16, 32, 64],
            keypoint_types=('top_left_corner', 'bottom_right_corner',
                            'center'),
            corner_pooling=False,
            norm_cfg=norm_cfg,
            loss_heatmap=dict(type='GaussianFocalLoss', loss_weight=0.25),
            loss_offset=dict(type='SmoothL1Loss', beta=1.0,
                             loss_weight=1.0)),
        cls_keypoint_types=('center', ),
        reg_keypoint_types=('top_left_corner', 'bottom_right_corner'),
        num_heads=8,
        topk_per_level=20,
        num_keys=50,
        location_embedding=dict(
            type='densekit.BVRLocationEmbedding', base_size=400,
            log_scale=True),
        share_location_embedding=False))
