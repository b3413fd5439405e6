# Runtime shared by densekit's segmentation configs: mmseg's defaults.
# Segmentation configs run in mmseg's scope, so every mmseg type (datasets,
# transforms, IoUMetric, visualizer) is found unprefixed; densekit's modules
# are named 'densekit.X' (see README, "Registry rule").
default_scope = 'mmseg'
# densekit.utils.mmengine_patches: the mmengine patches this stack needs
# (torch >= 2.6 checkpoint loading, atomic saves; densekit/utils/compat.py)
custom_imports = dict(
    imports=['densekit.models', 'densekit.datasets', 'densekit.engine',
             'densekit.utils.mmengine_patches'],
    allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to 'gloo' when CUDA is absent
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
