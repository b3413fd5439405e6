# Faster R-CNN-BVR on densekit's synthetic shapes: faster-rcnn_r50_fpn_shapes.py
# (same backbone, FPN, RPN, box head, data and schedule) with the RoI head
# replaced by densekit.BVRRoIHead, keypoint settings of
# bvr_faster-rcnn_r50_fpn_1x_coco.py at the 64-channel width.
#   python tools/train.py configs/det/bvr_faster-rcnn_r50_fpn_shapes.py
#   python tools/analysis/plugin_benchmark.py --pairs faster-rcnn-bvr
_base_ = './faster-rcnn_r50_fpn_shapes.py'

channels = 64
model = dict(
    roi_head=dict(
        type='densekit.BVRRoIHead',
        keypoint_in_levels=(1, 2, 3, 4),
        keypoint_head=dict(
            type='densekit.BVRKeypointHead',
            num_classes=4,
            in_channels=channels,
            feat_channels=channels,
            stacked_convs=2,
            shared_stacked_convs=0,
            logits_convs=1,
            strides=[8, 16, 32, 64],
            keypoint_types=('top_left_corner', 'bottom_right_corner',
                            'center'),
            corner_pooling=False,
            norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
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
