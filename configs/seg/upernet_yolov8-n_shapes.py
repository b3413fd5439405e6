# UPerNet + YOLOv8-n's CSPDarknet on the synthetic shapes segmentation set
# (the embedded default: no download). Sized for the 15-minute CPU learning
# benchmark: the 256x256 images trained at 192x192 (predictions are resized
# back to 256x256 for evaluation), batch 8, a 64-channel UPerHead, AdamW,
# 1600 iterations; cross-entropy weighted against the background, which
# covers 92% of the pixels (a plain loss settles on background + circle).
#   python tools/data/make_synthetic.py shapes_seg --out data/synthetic_shapes_seg
#   python tools/train.py configs/seg/upernet_yolov8-n_shapes.py
_base_ = [
    '../_base_/models/upernet_yolov8-n.py', '../_base_/datasets/shapes_seg.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k.py'
]
crop_size = (192, 192)
norm_cfg = dict(type='BN', requires_grad=True)
# ~ 1 / sqrt(pixel frequency) of background, circle, square, triangle, star
# (92.4, 2.9, 1.9, 1.3, 1.4 % of the training pixels), mean about 1.
# mmseg 1.2's weighted cross-entropy cannot index the ignore label 255, so
# training crops never need padding (resize ratio >= 1) and any padding
# would be labelled background (0); the set itself has no unlabelled pixels.
class_weight = [0.2, 1.0, 1.2, 1.4, 1.4]
model = dict(
    data_preprocessor=dict(size=crop_size, seg_pad_val=0),
    decode_head=dict(
        channels=64, num_classes=5, norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
            class_weight=class_weight)),
    auxiliary_head=dict(
        channels=32, num_classes=5, norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4,
            class_weight=class_weight)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='densekit.CheckSegLabels', num_classes=5),
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.95),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='densekit.CheckSegLabels', num_classes=5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
max_iters = 1600
base_lr = 0.002
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.0005),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='PolyLR', eta_min=base_lr * 0.01, power=0.9, begin=100,
         end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=500, max_keep_ckpts=2))
randomness = dict(seed=0)
