# U-Net baseline on Synapse (8 organs), TransUNet's protocol and recipe
# (Chen et al. 2021, arXiv:2102.04306; Beckschen/TransUNet train.py,
# trainer.py, utils.py): 224 x 224 slices, batch 24, SGD lr 0.01 momentum
# 0.9 wd 1e-4, poly 0.9 over 150 epochs = 13950 iterations, loss
# 0.5 * CE + 0.5 * Dice, per-volume Dice / HD95 on the 12 test volumes
# after the last iteration. TransUNet's U-Net row (Dice 76.85, HD95 39.70)
# comes from the original paper's U-Net; this is mmseg's UNet-S5-D16.
#   python tools/train.py configs/medseg/unet_synapse-224x224.py
_base_ = [
    '../_base_/models/unet_s5-d16_fcn.py',
    '../_base_/datasets/synapse_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 9
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    decode_head=dict(num_classes=num_classes))
randomness = dict(seed=1234)  # TransUNet's default seed
