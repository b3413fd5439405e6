# Swin-Unet on ACDC (RV, myocardium, LV). The paper reports ACDC at 224 x
# 224 with the Synapse settings (Cao et al., ECCVW 2022, arXiv:2105.05537,
# Sec. 4); the official repository (HuCaoFighting/Swin-Unet) ships only the
# Synapse trainer, so this is its recipe (3-channel input, SGD lr 0.05
# momentum 0.9 wd 1e-4, poly 0.9, batch 24, 0.4 * CE + 0.6 * Dice) over the
# 30000 iterations of densekit's ACDC U-Net baseline
# (configs/medseg/unet_acdc-224x224.py, HiLab-git/SSL4MIS's length).
#   python tools/train.py configs/medseg/swin-unet_acdc-224x224.py
_base_ = [
    '../_base_/models/swin-unet.py',
    '../_base_/datasets/acdc_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 4
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    decode_head=dict(num_classes=num_classes))
# 3 channels as on Synapse (the base pipelines read 1; lists are replaced
# wholesale, so both are re-declared)
train_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=3),
    {{_base_.transunet_augment}},
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackSegInputs', meta_keys={{_base_.medical_meta_keys}})
]
test_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=3, with_seg=False),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=False,
         interpolation='bicubic'),
    dict(type='densekit.LoadMedicalSlice', with_img=False),
    dict(type='PackSegInputs', meta_keys={{_base_.medical_meta_keys}})
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
max_iters = 30000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
randomness = dict(seed=1234)
