# FCOS (Tian et al., ICCV 2019) + ResNet-50 (caffe) + FPN, GN head, 1x on
# COCO: mmdet 3.3's fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py (published
# 36.6 box AP), written out here because `mmdet::` bases need
# pkg_resources. The reference row for configs/det/bvr_fcos_r50_fpn_1x_coco.py.
#   python tools/train.py configs/det/fcos_r50_fpn_1x_coco.py
_base_ = [
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]

num_classes = 80
channels = 256
strides = [8, 16, 32, 64, 128]
max_epochs = 12  # as ../_base_/schedules/schedule_1x.py
warmup_iters = 500

model = dict(
    type='FCOS',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[102.9801, 115.9465, 122.7717],  # caffe: BGR, std 1
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='caffe',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron/resnet50_caffe')),
    neck=dict(
        type='FPN',
        in_channels=[256, 512, 1024, 2048],
        out_channels=channels,
        start_level=1,
        add_extra_convs='on_output',  # P6, P7 from P5
        num_outs=len(strides),
        relu_before_extra_convs=True),
    bbox_head=dict(
        type='FCOSHead',
        num_classes=num_classes,
        in_channels=channels,
        stacked_convs=4,
        feat_channels=channels,
        strides=strides,
        # norm_cfg: FCOSHead's default, GN with 32 groups
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    # FCOS assigns by box and scale range inside the head: no train_cfg
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))

# mmdet's FCOS: constant 1/3 warm-up instead of the base's linear one
param_scheduler = [
    dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=0.01),  # mmdet's FCOS lr
    paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(checkpoint=dict(interval=1))
