# UPerNet + EdgeNeXt-S on ADE20K (150 classes), 512x512 crops, 160k
# iterations (the Swin-T UPerNet recipe: AdamW 6e-5, 8 GPUs x 2 images).
# densekit.SegEncoderDecoder reads the heads' in_channels from the backbone.
# ImageNet-1K weights: the official edgenext_small.pth (mmaaz60/EdgeNeXt),
# converted to densekit keys with
#   python tools/model_converters/edgenext_to_densekit.py edgenext_small.pth checkpoints/edgenext-s_in1k.pth
#   python tools/train.py configs/seg/upernet_edgenext-s_ade20k-512x512.py
_base_ = [
    '../_base_/models/upernet.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/schedule_160k_adamw.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='densekit.EdgeNeXt',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/edgenext-s_in1k.pth')),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)
