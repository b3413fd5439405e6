# Runtime shared by densekit's detection configs: mmdet's defaults.
# Detection configs run in mmdet's scope, so every mmdet type (datasets,
# transforms, metrics, visualizer) is found unprefixed; densekit's modules are
# named 'densekit.X' (see README, "Registry rule").
default_scope = 'mmdet'
# densekit.utils.mmengine_patches: the mmengine patches this stack needs
# (torch >= 2.6 checkpoint loading, atomic saves; densekit/utils/compat.py)
custom_imports = dict(
    imports=['densekit.models', 'densekit.datasets', 'densekit.engine',
             'densekit.utils.mmengine_patches'],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to 'gloo' when CUDA is absent
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
