# Swin-Unet on Synapse (8 organs), the official recipe (Cao et al., ECCVW
# 2022, arXiv:2105.05537; HuCaoFighting/Swin-Unet README "Train" command,
# train.py, trainer.py): 224 x 224 slices repeated to 3 channels, batch 24,
# SGD lr 0.05 (README / train.sh; train.py's default is 0.01) momentum 0.9
# wd 1e-4, lr = 0.05 * (1 - iter / max_iter) ** 0.9 per iteration over 150
# epochs = 150 * 93 = 13950 iterations, loss 0.4 * CE + 0.6 * Dice, seed
# 1234; per-volume Dice / HD95 on the 12 test volumes after the last
# iteration. Params: 27.17 M (the official model, 9 classes).
#   python tools/train.py configs/medseg/swin-unet_synapse-224x224.py
_base_ = [
    '../_base_/models/swin-unet.py',
    '../_base_/datasets/synapse_224x224.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 9
model = dict(
    data_preprocessor=dict(size=(224, 224)),
    decode_head=dict(num_classes=num_classes))
# Swin-Unet repeats the grey slice 3x so the ImageNet weights load; the base
# pipelines read 1 channel, so both are re-declared (lists replace wholesale)
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
randomness = dict(seed=1234)  # Swin-Unet's (TransUNet's) default seed
