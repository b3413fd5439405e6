# ATSS-BVR (RelationNet++, Chi et al., NeurIPS 2020) + ResNet-50 + FPN, 1x
# on COCO. The official code has ATSS only as X101-DCN 2x
# (microsoft/RelationNet2 configs/bvr/atss_x101_dcn_fpn_relation_coco_2x.py,
# multi-scale training); this keeps that config's
# BVR settings on our R50 1x ATSS. Differences from ./atss_r50_fpn_1x_coco.py:
# the ATSSHead (unchanged, but not the official dcn_on_last_conv, which goes
# with its DCN backbone) wrapped in densekit.BVRHead with a keypoint head on
# the FPN levels; location embedding base 300, one embedding shared by both
# branches (official shared_positional_encoding_outer=True).
#   python tools/train.py configs/det/bvr_atss_r50_fpn_1x_coco.py
_base_ = './atss_r50_fpn_1x_coco.py'

num_classes = 80
channels = 256
strides = [8, 16, 32, 64, 128]

model = dict(
    bbox_head=dict(
        # the ATSSHead settings move one level down, into `bbox_head`
        _delete_=True,
        type='densekit.BVRHead',
        bbox_head=dict(
            type='ATSSHead',
            num_classes=num_classes,
            in_channels=channels,
            stacked_convs=4,
            feat_channels=channels,
            anchor_generator=dict(
                type='AnchorGenerator',
                ratios=[1.0],
                octave_base_scale=8,
                scales_per_octave=1,
                strides=strides),
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[.0, .0, .0, .0],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
            loss_centerness=dict(
                type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
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
            loss_heatmap=dict(type='GaussianFocalLoss', loss_weight=0.25),
            loss_offset=dict(type='SmoothL1Loss', beta=1.0,
                             loss_weight=1.0)),
        cls_keypoint_types=('center', ),
        reg_keypoint_types=('top_left_corner', 'bottom_right_corner'),
        num_heads=8,
        topk_per_level=20,  # official keypoint_cfg.max_keypoint_num
        num_keys=50,  # official feature_selection_cfg.cross_level_topk
        location_embedding=dict(
            type='densekit.BVRLocationEmbedding', base_size=300,
            log_scale=True),
        share_location_embedding=True))
