# Swin-Unet on the synthetic phantom-organ CT (no download), CPU-sized: the
# Synapse protocol (3-channel input, 0.4 * CE + 0.6 * Dice, poly decay,
# per-volume Dice / HD95) at the phantom's native 128 x 128 with a quarter-
# width Swin (embed 24, heads (1, 2, 4, 8), head width 24 as Swin-T's 32 is
# too wide for it), window 4 (the 32/16/8/4 maps of a 128 input tile into
# it without padding; Swin-T's 7 would pad them to 35/21/14/7), no
# ImageNet weights; batch 8, 2000 iterations (about 55 epochs of the 288
# slices, 8.4 min on 2 cores; mean Dice 0.994 on the 4 test volumes, README).
# About 1.7 M params (the official model: 27.2 M).
# Optimiser: AdamW (lr 1e-3, weight decay 0.01, 100 warm-up iterations,
# gradient clipping at 5) instead of the official SGD lr 0.05, which fine-
# tunes an ImageNet Swin-T: from scratch, SGD 0.05 still predicted only
# background after 400 iterations (measured), AdamW had the organs by then.
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/swin-unet_phantom.py
_base_ = [
    '../_base_/models/swin-unet.py', '../_base_/datasets/phantom.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_transunet_14k.py'
]
num_classes = 5  # background + 4 organs (PHANTOM_METAINFO)
embed_dims = 24
depths = (2, 2, 2, 2)
num_heads = (1, 2, 4, 8)
window_size = 4
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(
        embed_dims=embed_dims,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        init_cfg=None),
    decode_head=dict(
        in_channels=[embed_dims, 2 * embed_dims, 4 * embed_dims,
                     8 * embed_dims],
        block_cfg=dict(window_size=window_size),
        depths=depths[:3],
        num_heads=num_heads[:3],
        encoder_depths=depths,
        num_classes=num_classes))
# 3 channels as on Synapse (the base pipelines read 1; lists are replaced
# wholesale, so both are re-declared)
train_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=3),
    {{_base_.train_augment}},
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
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
    clip_grad=dict(max_norm=5.0))
max_iters = 2000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=100, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
