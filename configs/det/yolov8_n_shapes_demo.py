# YOLOv8-n on the synthetic shapes, sized for `make demo` on 2 CPU cores:
# yolov8_n_shapes.py at 192x192 (0.56x the pixels of 256x256 per step) for
# 6 epochs at AdamW lr 3e-3, the last 3 without mosaic: the most val mAP per
# minute of the schedules tried here (README, "Two commands": 5 epochs at
# 2e-3 gave mAP@0.5 0.945, this one 0.975; 256x256 needs 7 epochs, 13.5 min).
_base_ = './yolov8_n_shapes.py'

img_scale = (192, 192)
train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0),
    dict(
        type='RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_translate_ratio=0.1,
        scaling_ratio_range=(0.5, 1.5),
        border=(-img_scale[0] // 2, -img_scale[1] // 2),
        border_val=(114, 114, 114)),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 6
close_mosaic_epochs = 3
base_lr = 0.003
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=1, end=max_epochs, T_max=max_epochs - 1,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=base_lr))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        strict_load=False,
        priority=49),
    dict(type='densekit.CloseMosaicHook', num_last_epochs=close_mosaic_epochs),
]
