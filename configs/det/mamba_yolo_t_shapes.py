# Mamba YOLO-T on densekit's synthetic shapes (the embedded default): the
# data and pipelines of yolov8_n_shapes.py with the Mamba YOLO backbone and
# neck swapped in -- the registry at work: only the two module configs
# change, channels come from the backbone's feature contract.
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
#   python tools/train.py configs/det/mamba_yolo_t_shapes.py
# Sized for the 15-minute CPU learning benchmark with the C++ scan kernel
# (about 0.1 s per 160x160 image for forward + backward on 2 cores; the
# pure-PyTorch scan is ~3x slower, `tools/analysis/benchmark_train.py`):
# 160x160 inputs, batch 8, the first 1000 training images, 6 epochs, the
# last 2 without mosaic.
_base_ = './yolov8_n_shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,  # YOLOv8CSPDarknet's arguments do not apply
        type='densekit.MambaYOLO',
        arch='T',
        out_indices=(2, 3, 4)),
    neck=dict(
        _delete_=True,  # YOLOv8PAFPN's arguments do not apply
        type='densekit.MambaYOLOPAFPN',
        deepen_factor=0.33))

img_scale = (160, 160)
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
    batch_size=8,
    dataset=dict(dataset=dict(indices=1000), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 6
base_lr = 0.002
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=1, end=max_epochs, T_max=max_epochs - 1,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        update_buffers=True,
        strict_load=False,
        priority=49),
    dict(type='densekit.CloseMosaicHook', num_last_epochs=2),
]
