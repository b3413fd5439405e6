# TransUNet (R50-ViT-B/16) on Synapse (8 organs), the official recipe
# (Beckschen/TransUNet train.py, trainer.py trainer_synapse): 224 x 224
# slices, batch 24, SGD lr 0.01 momentum 0.9 wd 1e-4, poly 0.9 over 150
# epochs = 13950 iterations, loss 0.5 * CE + 0.5 * Dice, seed 1234, scored
# per volume (Dice / HD95) on the 12 test volumes after the last iteration.
# Paper (Table 1, R50-ViT-CUP with skips): Dice 77.48, HD95 31.69, with
# the ImageNet-21k initialisation (see the model base for loading it).
#   python tools/train.py configs/medseg/transunet_synapse-224x224.py
_base_ = [
    '../_base_/models/transunet_r50-vit-b16.py',
    '../_base_/datasets/synapse_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 9
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    backbone=dict(img_size=224),
    decode_head=dict(num_classes=num_classes))
randomness = dict(seed=1234)  # TransUNet's default seed
