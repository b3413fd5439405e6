# YOLOv8-n on densekit's synthetic shapes (the embedded default: no
# download). Generate the data first (make demo does it):
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
# Sized for a 2-core CPU: 256x256 images, a short AdamW schedule (7 epochs,
# about 13 minutes on 2 cores; see README's learning benchmark).
_base_ = [
    '../_base_/models/yolov8.py',
    '../_base_/datasets/coco_detection_yolov8.py',
    '../_base_/default_runtime.py',
]

# ---------------------------------------------------------------- data
data_root = 'data/synthetic_shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)])
img_scale = (256, 256)
train_batch_size_per_gpu = 16
train_num_workers = 2
val_batch_size_per_gpu = 8

# ---------------------------------------------------------------- model
deepen_factor = 0.33
widen_factor = 0.25
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=1024),
    neck=dict(deepen_factor=deepen_factor),
    bbox_head=dict(num_classes=len(metainfo['classes'])))

# ------------------------------------------------------------ pipelines
load_pipeline = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='LoadAnnotations', with_bbox=True),
]
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

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    dataset=dict(
        dataset=dict(
            data_root=data_root,
            metainfo=metainfo,
            ann_file='annotations/instances_train.json',
            data_prefix=dict(img='train/'),
            filter_cfg=dict(filter_empty_gt=False, min_size=0),
            pipeline=load_pipeline),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=val_batch_size_per_gpu,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ------------------------------------------------------------- schedule
max_epochs = 7
close_mosaic_epochs = 2
base_lr = 0.002
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.0005),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=1, end=max_epochs, T_max=max_epochs - 1,
         convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs,
    val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
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
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='auto'))
log_processor = dict(window_size=10)
# a fixed seed makes the learning benchmarks repeatable run to run
randomness = dict(seed=0)
