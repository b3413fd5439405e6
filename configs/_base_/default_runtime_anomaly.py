# Runtime shared by densekit's anomaly-detection configs. There is no
# OpenMMLab anomaly codebase, so these configs run in densekit's own scope:
# densekit types are found unprefixed, mmengine/mmcv types (Resize,
# LoadImageFromFile, IterBasedTrainLoop, ...) through the parent registries.
default_scope = 'densekit'
# densekit.utils.mmengine_patches: the mmengine patches this stack needs
# (torch >= 2.6 checkpoint loading, atomic saves; densekit/utils/compat.py)
custom_imports = dict(
    imports=['densekit.models', 'densekit.datasets', 'densekit.engine',
             'densekit.evaluation', 'densekit.utils.mmengine_patches'],
    allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000,
                    max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to 'gloo' when CUDA is absent
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends,
                  name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
