# FCOS-BVR (RelationNet++, Chi et al., NeurIPS 2020) + ResNet-50 + FPN, 1x
# on COCO. The official code has FCOS only as X101-DCN 2x
# (microsoft/RelationNet2 configs/bvr/fcos_x101_dcn_fpn_relation_coco_2x.py,
# multi-scale training); this keeps that config's
# head and BVR settings on our R50 1x FCOS. Differences from
# ./fcos_r50_fpn_1x_coco.py:
# - FCOSHead "tricks" of the official config: norm_on_bbox,
#   centerness_on_reg, center_sampling (radius 1.5), GIoU loss, conv bias
#   and no norm in the head towers (official norm_cfg=None), test NMS 0.6;
#   not its dcn_on_last_conv, which goes with its DCN backbone;
# - the FCOSHead wrapped in densekit.BVRHead with a keypoint head on the
#   FPN levels (official logits_convs=0, location embedding base 300).
#   python tools/train.py configs/det/bvr_fcos_r50_fpn_1x_coco.py
_base_ = './fcos_r50_fpn_1x_coco.py'

num_classes = 80
channels = 256
strides = [8, 16, 32, 64, 128]

model = dict(
    bbox_head=dict(
        # the FCOSHead settings move one level down, into `bbox_head`
        _delete_=True,
        type='densekit.BVRHead',
        bbox_head=dict(
            type='FCOSHead',
            num_classes=num_classes,
            in_channels=channels,
            stacked_convs=4,
            feat_channels=channels,
            strides=strides,
            norm_cfg=None,
            conv_bias=True,
            norm_on_bbox=True,
            centerness_on_reg=True,
            center_sampling=True,
            center_sample_radius=1.5,
            loss_cls=dict(
                type='FocalLoss',
                use_sigmoid=True,
                gamma=2.0,
                alpha=0.25,
                loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
            loss_centerness=dict(
                type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        keypoint_head=dict(
            type='densekit.BVRKeypointHead',
            num_classes=num_classes,
            in_channels=channels,
            feat_channels=channels,
            stacked_convs=2,
            shared_stacked_convs=0,
            logits_convs=0,  # official FCOS-BVR (RetinaNet/ATSS-BVR: 1)
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
        share_location_embedding=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
