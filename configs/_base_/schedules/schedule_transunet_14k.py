# TransUNet's Synapse schedule (Beckschen/TransUNet trainer.py
# trainer_synapse, train.py defaults): SGD lr 0.01, momentum 0.9, weight
# decay 1e-4 on every parameter, batch 24, 150 epochs with
# lr = 0.01 * (1 - iter / max_iterations) ** 0.9 per iteration (no warm-up,
# no floor). As iterations: 2211 training slices (lists_Synapse/train.txt)
# / 24 per batch = 93 batches per epoch (the last one partial, drop_last
# False), max_iterations = 150 * 93 = 13950. A child with another length
# re-declares max_iters, param_scheduler and train_cfg (derived values do
# not follow an overridden max_iters).
max_iters = 150 * 93
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
# TransUNet evaluates the last epoch's weights on the test volumes only
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters // 3, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
