# EfficientAD's schedule (Sec. 4 / appendix): 70k iterations of batch size
# 1, Adam lr 1e-4 with weight decay 1e-5, lr x0.1 after 95% (66.5k).
max_iters = 70000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-5))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[int(0.95 * max_iters)],
         gamma=0.1)
]
