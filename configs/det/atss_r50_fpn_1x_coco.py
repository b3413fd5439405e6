# ATSS (Zhang et al., CVPR 2020) + ResNet-50 + FPN, 1x on COCO: mmdet 3.3's
# atss/atss_r50_fpn_1x_coco.py (published 39.4 box AP), written out here
# because `mmdet::` bases need pkg_resources. The reference row for
# configs/det/bvr_atss_r50_fpn_1x_coco.py.
#   python tools/train.py configs/det/atss_r50_fpn_1x_coco.py
_base_ = [
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]

num_classes = 80
channels = 256
strides = [8, 16, 32, 64, 128]

model = dict(
    type='ATSS',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=channels,
        start_level=1,
        add_extra_convs='on_output',
        num_outs=len(strides)),
    bbox_head=dict(
        type='ATSSHead',
        num_classes=num_classes,
        in_channels=channels,
        stacked_convs=4,
        feat_channels=channels,
        # norm_cfg: ATSSHead's default, GN with 32 groups
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
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100))
optim_wrapper = dict(optimizer=dict(lr=0.01))  # mmdet's ATSS lr
default_hooks = dict(checkpoint=dict(interval=1))
