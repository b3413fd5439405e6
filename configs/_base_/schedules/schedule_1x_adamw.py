# mmdet's 1x schedule (12 epochs, 500-iteration warm-up, x0.1 at epochs 8
# and 11) with AdamW lr 1e-4, wd 0.05 and no decay on norms and biases, as
# the RetinaNets of the transformer backbones (Swin, PVT, SMT) are trained.
_base_ = './schedule_1x.py'
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
