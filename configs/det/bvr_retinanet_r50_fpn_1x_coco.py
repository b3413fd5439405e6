# RetinaNet-BVR (RelationNet++, Chi et al., NeurIPS 2020) + ResNet-50 + FPN,
# 1x on COCO, after microsoft/RelationNet2's
# configs/bvr/retinanet_r50_fpn_relation_coco_1x.py (published 38.5 box AP;
# plain RetinaNet 36.5). Differences from our RetinaNet: GN in the FPN and
# in the head towers (as the official config), and the RetinaHead wrapped
# in densekit.BVRHead with a keypoint head on the FPN levels.
#   python tools/train.py configs/det/bvr_retinanet_r50_fpn_1x_coco.py
_base_ = './retinanet_r50_fpn_1x_coco.py'

num_classes = 80
channels = 256
strides = [8, 16, 32, 64, 128]
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model = dict(
    neck=dict(norm_cfg=norm_cfg),
    bbox_head=dict(
        # the RetinaHead settings move one level down, into `bbox_head`
        _delete_=True,
        type='densekit.BVRHead',
        bbox_head=dict(
            type='RetinaHead',
            num_classes=num_classes,
            in_channels=channels,
            stacked_convs=4,
            feat_channels=channels,
            norm_cfg=norm_cfg,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=strides),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[.0, .0, .0, .0],
                target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        keypoint_head=dict(
            type='densekit.BVRKeypointHead',
            num_classes=num_classes,
            in_channels=channels,
            feat_channels=channels,
            stacked_convs=2,
            shared_stacked_convs=0,
            logits_convs=1,
            strides=strides,
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
        topk_per_level=20,  # official keypoint_cfg.max_keypoint_num
        num_keys=50,  # official feature_selection_cfg.cross_level_topk
        location_embedding=dict(
            type='densekit.BVRLocationEmbedding', base_size=400,
            log_scale=True),
        share_location_embedding=False))
