# Mamba YOLO's COCO schedule (official mbyolo_train.py defaults on top of
# ultralytics 8.2.29's default.yaml): 300 epochs of SGD (lr 0.01, momentum
# 0.937, nesterov), batch 512 (8 GPUs x 64), 3 warm-up epochs (at least 100
# iterations, as ultralytics), linear decay to lr * 0.01, EMA of the weights,
# mosaic closed for the last 10 epochs.
# As in yolov8_500e.py the head multiplies its losses by the global batch
# size (ultralytics does), so lr does not scale with the batch; weight decay
# does (ultralytics: wd * batch / nbs, nbs = 64 -> 0.004 at batch 512).
# Not reproduced: ultralytics' warm-up of the bias lr (from 0.1) and of the
# momentum (from 0.8).
max_epochs = 300
close_mosaic_epochs = 10
warmup_epochs = 3
base_lr = 0.01
lr_factor = 0.01
total_batch_size = 512  # 8 GPUs x 64 images
weight_decay = 0.0005 * total_batch_size / 64
val_interval = 10

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD',
        lr=base_lr,
        momentum=0.937,
        nesterov=True,
        weight_decay=weight_decay),
    # ultralytics decays neither norm weights nor any parameter whose name
    # contains "bias" (which includes SS2D's dt_projs_bias); it does decay
    # SS2D's A_logs, Ds, x_proj_weight and dt_projs_weight
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'dt_projs_bias': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0))

param_scheduler = [
    dict(  # ultralytics: max(3 epochs, 100 iterations)
        type='densekit.YOLOWarmupLR',
        start_factor=0.001,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        min_iters=100,
        convert_to_iter_based=True),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=lr_factor,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=val_interval,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])
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

# mmengine scales lr by (actual batch / base_batch_size) with --auto-scale-lr
auto_scale_lr = dict(enable=False, base_batch_size=total_batch_size)
