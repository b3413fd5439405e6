# DToP on a small plain ViT (96 channels, 6 blocks, patch 8) trained on the
# synthetic shapes segmentation set (the embedded default: no download).
# Same structure as dtop_vit-b16_ade20k-512x512.py (exits after 1/2, 2/3 and
# all of the blocks, ATM exit heads, threshold 0.9, top-5 context tokens)
# sized for CPU: 192x192 inputs (24x24 tokens), batch 8.
#   python tools/data/make_synthetic.py shapes_seg --out data/synthetic_shapes_seg
#   python tools/train.py configs/seg/dtop_vit-t-p8_shapes.py
#   python tools/analysis/benchmark_dtop.py configs/seg/dtop_vit-t-p8_shapes.py \
#       work_dirs/dtop_vit-t-p8_shapes/iter_1200.pth
_base_ = [
    '../_base_/models/dtop_vit-b16.py', '../_base_/datasets/shapes_seg.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k.py'
]
crop_size = (192, 192)
num_classes = 5
embed_dims = 96
exit_head = dict(
    type='densekit.ATMHead', in_channels=embed_dims, channels=64,
    num_layers=2, num_heads=4, num_classes=num_classes)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=crop_size, patch_size=8, embed_dims=embed_dims,
        num_layers=6, num_heads=3, out_indices=[2, 3, 5],
        drop_path_rate=0.0),
    auxiliary_head=[
        dict(exit_head, in_index=0),
        dict(exit_head, in_index=1),
    ],
    decode_head=dict(exit_head, in_index=2),
    test_cfg=dict(_delete_=True, mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='densekit.CheckSegLabels', num_classes=num_classes),
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
    dict(type='densekit.CheckSegLabels', num_classes=num_classes),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
max_iters = 1600
base_lr = 0.001
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'pos_embed': dict(decay_mult=0.0),
                     'queries': dict(decay_mult=0.0)}),
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
    checkpoint=dict(interval=400, max_keep_ckpts=4))
randomness = dict(seed=0)
