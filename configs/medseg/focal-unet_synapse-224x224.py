# Focal-UNet on Synapse (Naderi et al., "Focal-UNet: UNet-like Focal
# Modulation for Medical Image Segmentation", arXiv:2212.09263; official
# givkashi/Focal-Unet networks/FocalNet/classification/focalUnet.py,
# train.py, trainer.py):
# - encoder FocalNet-T LRF (focal level 3, window 3) with the registered
#   `focalnet_tiny_lrf` depths (4, 4, 4, 4) and ImageNet FocalNet-T LRF
#   weights (loaded non-strictly, as officially); decoder: one focal block
#   per level (`depths = [1, 1, 1, 1]` in FocalNet.__init__), the
#   asymmetric depths of the paper; transposed-conv patch expanding
#   (= biased expanding Linears), no norm after the x4 expanding, a 7 x 7
#   bias-free classifier;
# - training: AdamW lr 0.01 * 0.01 = 1e-4 betas (0.5, 0.99) (weight decay:
#   torch's default 0.01), CosineAnnealingWarmRestarts(T_0 = one epoch =
#   93 iterations, T_mult 2) stepped per iteration for 127 epochs
#   (= 1 + 2 + ... + 64: the last restart period ends with training),
#   batch 24, loss 0.4 * CE + 0.6 * Dice, 3-channel input.
# The official FocalNet yaml it reads (focalnet_tiny_lrf.yaml) is not in the
# repository; level 3 / window 3 / drop path 0.2 are FocalNet-T LRF's.
# Params: 44.25 M counted from the official definition (9 classes).
#   python tools/train.py configs/medseg/focal-unet_synapse-224x224.py
_base_ = ['./swin-unet_synapse-224x224.py', '../_base_/models/focal-unet.py']
model = {{_base_.focal_unet}}
iters_per_epoch = 93  # 2211 slices / batch 24
max_iters = 127 * iters_per_epoch
optim_wrapper = dict(optimizer={{_base_.focal_unet_optimizer}})
param_scheduler = [
    dict(type='CosineRestartLR',
         periods=[iters_per_epoch * 2**k for k in range(7)],
         restart_weights=[1.0] * 7, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
