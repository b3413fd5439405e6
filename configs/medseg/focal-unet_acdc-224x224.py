# Focal-UNet (Naderi et al., arXiv:2212.09263; official givkashi/Focal-Unet)
# on ACDC: the Synapse model (FocalNet-T LRF (4, 4, 4, 4) encoder, one focal
# block per decoder level) and the official optimiser (AdamW 1e-4, betas
# (0.5, 0.99)); the official repository has no ACDC trainer, so the warm
# restarts (T_mult 2, 7 periods) are spread over densekit's 30000-iteration
# ACDC length (configs/medseg/unet_acdc-224x224.py): T_0 = 30000 // 127.
#   python tools/train.py configs/medseg/focal-unet_acdc-224x224.py
_base_ = ['./swin-unet_acdc-224x224.py', '../_base_/models/focal-unet.py']
model = {{_base_.focal_unet}}
max_iters = 30000
restart_period = max_iters // 127  # 7 doubling periods span 127 of them
optim_wrapper = dict(optimizer={{_base_.focal_unet_optimizer}})
param_scheduler = [
    dict(type='CosineRestartLR',
         periods=[restart_period * 2**k for k in range(7)],
         restart_weights=[1.0] * 7, eta_min=0.0, by_epoch=False, begin=0,
         end=restart_period * 127)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
