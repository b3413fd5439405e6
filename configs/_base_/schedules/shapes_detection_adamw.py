# The CPU learning recipe of the mmdet detectors on the synthetic shapes
# (RetinaNet / Faster R-CNN and their BVR / CBNetV2 forms, all from
# scratch): AdamW, a 100-iteration linear warm-up, cosine decay to 5% over
# `max_epochs`, gradient clipping. The same schedule for a plug-in and its
# plain counterpart, so tools/analysis/plugin_benchmark.py compares like
# with like.
max_epochs = 2
base_lr = 0.001
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=0, end=max_epochs, T_max=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
