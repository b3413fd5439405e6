# CBNetV2 Mask R-CNN: Dual-Swin-T + one shared FPN, assistant supervision
# (weight 0.5), 3x COCO with multi-scale + crop augmentation and AdamW: mmdet
# 3.3's mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py with the backbone and
# neck of the official VDIGPKU/CBNetV2 mask_rcnn_cbv2_swin_tiny 3x config.
# Published: 50.2 box / 44.5 mask AP, 76M params, 357 GFLOPs; this build:
# 75.96M params (80 classes; 76.74M with 1x1 convs instead of identities).
#   python tools/train.py configs/det/mask-rcnn_cbv2-swin-t_fpn_3x_coco.py
_base_ = [
    '../_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
model = dict(
    type='densekit.CBTwoStageDetector',
    backbone=dict(
        _delete_=True,  # ResNet's arguments do not apply
        type='densekit.CBNet',
        backbone=dict(
            type='SwinTransformer',
            embed_dims=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            mlp_ratio=4,
            qkv_bias=True,
            qk_scale=None,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=0.2,
            patch_norm=True,
            out_indices=(0, 1, 2, 3),
            with_cp=False,
            convert_weights=True,
            init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
        num_backbones=2,
        # the official CBSwinTransformer's cb_del_stages=1 counts the patch
        # embedding as a stage: it drops only that, densekit's 0
        cb_del_stages=0,
        # as the official: links between equal widths are identities, and
        # the others 1x1 convs with bias and no norm (cb_norm_cfg='auto')
        cb_same_width_identity=True),
    neck=dict(
        _delete_=True,  # FPN's arguments move into neck.neck
        type='densekit.CBFPN',
        neck=dict(
            type='FPN',
            in_channels=[96, 192, 384, 768],
            out_channels=256,
            num_outs=5)))

# augmentation strategy originates from DETR / Sparse RCNN (mmdet's)
backend_args = None
train_pipeline = [
    dict(type='densekit.LoadImageFromFileSafe', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[[
            dict(
                type='RandomChoiceResize',
                scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333),
                        (608, 1333), (640, 1333), (672, 1333), (704, 1333),
                        (736, 1333), (768, 1333), (800, 1333)],
                keep_ratio=True)
        ],
                    [
                        dict(
                            type='RandomChoiceResize',
                            scales=[(400, 1333), (500, 1333), (600, 1333)],
                            keep_ratio=True),
                        dict(
                            type='RandomCrop',
                            crop_type='absolute_range',
                            crop_size=(384, 600),
                            allow_negative_crop=True),
                        dict(
                            type='RandomChoiceResize',
                            scales=[(480, 1333), (512, 1333), (544, 1333),
                                    (576, 1333), (608, 1333), (640, 1333),
                                    (672, 1333), (704, 1333), (736, 1333),
                                    (768, 1333), (800, 1333)],
                            keep_ratio=True)
                    ]]),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# 3x: 36 epochs, x0.1 at 27 and 33, 1000-iteration warm-up
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
# AdamW for 8 GPUs x 2 images; no weight decay on position tables and norms
optim_wrapper = dict(
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(
        _delete_=True,  # SGD's momentum does not apply
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05))
