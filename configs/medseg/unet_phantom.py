# U-Net on the synthetic phantom-organ CT (the embedded default: no
# download), CPU-sized: the Synapse recipe (TransUNet's loss, SGD and poly
# decay, its augmentation less the flips, per-volume Dice / HD95) at the
# phantom's native 128 x 128 with a quarter-width UNet (base 16 channels,
# 1/16 of the FLOPs), batch 8 and 400 iterations (about 11 epochs of the
# 288 slices).
# A baseline only: it finds the liver but not the three small organs (also
# with AdamW for 800 iterations: mean Dice 0.25); swin-unet_phantom.py is
# the phantom's learning benchmark (README).
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/unet_phantom.py
_base_ = [
    '../_base_/models/unet_s5-d16_fcn.py', '../_base_/datasets/phantom.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 5  # background + 4 organs (PHANTOM_METAINFO)
base_channels = 16
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(base_channels=base_channels),
    decode_head=dict(
        in_channels=base_channels, channels=base_channels,
        num_classes=num_classes))
max_iters = 400
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
