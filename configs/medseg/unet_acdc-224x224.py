# U-Net baseline on ACDC (RV, myocardium, LV), the fully supervised 2D
# U-Net recipe of HiLab-git/SSL4MIS (code/train_fully_supervised_2D.py,
# which uses TransUNet's loss and schedule): batch 24, SGD lr 0.01 momentum
# 0.9 wd 1e-4, poly 0.9 over 30000 iterations, loss 0.5 * CE + 0.5 * Dice;
# 224 x 224 slices (Swin-Unet's ACDC size; SSL4MIS trains at 256), scored
# per volume (Dice / HD95) after the last iteration.
#   python tools/train.py configs/medseg/unet_acdc-224x224.py
_base_ = [
    '../_base_/models/unet_s5-d16_fcn.py',
    '../_base_/datasets/acdc_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 4
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    decode_head=dict(num_classes=num_classes))
max_iters = 30000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
randomness = dict(seed=1337)  # SSL4MIS's default seed
