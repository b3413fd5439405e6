# RetinaNet-BVR on densekit's synthetic shapes: retinanet_r50_fpn_shapes.py
# (the same backbone, FPN, RetinaHead, data and schedule) with the head
# wrapped in densekit.BVRHead, keypoint settings of
# bvr_retinanet_r50_fpn_1x_coco.py at the 64-channel width, except a lighter
# keypoint head for the CPU budget: one conv shared by the three keypoint
# types, one per type, no extra logits convs (4 instead of 12 full-width
# convs per level; a training step of 1.49 s instead of 1.86 s with the
# official two per type plus one before each output, plain RetinaNet 0.73 s;
# batch 8, 256 px, 2 threads).
#   python tools/train.py configs/det/bvr_retinanet_r50_fpn_shapes.py
#   python tools/analysis/plugin_benchmark.py   # next to plain RetinaNet
_base_ = './retinanet_r50_fpn_shapes.py'

channels = 64
model = dict(
    bbox_head=dict(
        _delete_=True,
        type='densekit.BVRHead',
        bbox_head={{_base_.model.bbox_head}},
        keypoint_head=dict(
            type='densekit.BVRKeypointHead',
            num_classes=4,
            in_channels=channels,
            feat_channels=channels,
            stacked_convs=1,
            shared_stacked_convs=1,
            logits_convs=0,
            strides=[8, 16, 32, 64, 128],
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
        # 10 candidates per level, 20 keys per type (official 20 / 50): a
        # shapes image has at most a few objects, and the attention cost
        # grows with the keys
        topk_per_level=10,
        num_keys=20,
        location_embedding=dict(
            type='densekit.BVRLocationEmbedding', base_size=400,
            log_scale=True),
        share_location_embedding=False))
