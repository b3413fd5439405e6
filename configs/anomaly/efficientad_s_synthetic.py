# EfficientAD-S on the bundled synthetic texture-defect set (the embedded
# default: no download). Random teacher (no pretrained network here) and
# synthetic penalty images; a CPU-sized schedule.
#   python tools/data/make_synthetic.py anomaly
#   python tools/train.py configs/anomaly/efficientad_s_synthetic.py
_base_ = [
    '../_base_/models/efficientad_s.py',
    '../_base_/datasets/synthetic_anomaly.py',
    '../_base_/schedules/efficientad_70k.py',
    '../_base_/default_runtime_anomaly.py'
]
max_iters = 400
# channels-last convolutions: ~10% faster on CPU, same numbers
model = dict(teacher_checkpoint=None, allow_random_teacher=True,
             channels_last=True)
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False,
         milestones=[int(0.95 * max_iters)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
