# StreamYOLO (DFP + trend-aware loss) with YOLOv8-n on densekit's synthetic
# moving shapes (the embedded default: no download). Generate the data:
#   python tools/data/make_synthetic.py moving_shapes \
#       --out data/synthetic_moving_shapes
#   python tools/train.py configs/stream/streamyolo_yolov8-n_moving-shapes.py
# Sized for a 2-core CPU: 256x256 frames, pairs (t-1, t) -> t+1, batch 8,
# a short AdamW schedule (6 epochs of 120 iterations).
_base_ = [
    '../_base_/models/streamyolo_yolov8.py',
    '../_base_/datasets/moving_shapes_stream.py',
    '../_base_/default_runtime.py',
]

deepen_factor = 0.33
widen_factor = 0.25
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=1024),
    neck=dict(deepen_factor=deepen_factor),
    bbox_head=dict(num_classes=4))  # the 4 shape classes

# ------------------------------------------------------------- schedule
max_epochs = 6  # 720 iterations: the still model ~9 min, StreamYOLO ~18 min
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
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='auto'))
log_processor = dict(window_size=10)
randomness = dict(seed=0)
