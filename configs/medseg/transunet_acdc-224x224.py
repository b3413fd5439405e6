# TransUNet (R50-ViT-B/16) on ACDC (RV, myocardium, LV). The official
# repository has no ACDC trainer; this uses the protocol of the U-Net
# baseline (configs/medseg/unet_acdc-224x224.py: SSL4MIS's fully supervised
# 2D recipe, which is TransUNet's loss and SGD/poly schedule): 224 x 224,
# batch 24, SGD lr 0.01 momentum 0.9 wd 1e-4, poly 0.9 over 30000
# iterations, 0.5 * CE + 0.5 * Dice, per-volume Dice / HD95 at the end.
# Paper (ACDC table): Dice 89.71.
#   python tools/train.py configs/medseg/transunet_acdc-224x224.py
_base_ = [
    '../_base_/models/transunet_r50-vit-b16.py',
    '../_base_/datasets/acdc_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 4
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    backbone=dict(img_size=224),
    decode_head=dict(num_classes=num_classes))
max_iters = 30000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
randomness = dict(seed=1337)  # as the U-Net baseline (SSL4MIS's seed)
