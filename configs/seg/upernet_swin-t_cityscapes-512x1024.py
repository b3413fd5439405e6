# UPerNet + Swin-T on Cityscapes (19 classes), 512x1024 crops, 80k iterations
# (mmseg's Swin-T UPerNet recipe: AdamW 6e-5, 8 GPUs x 2 images).
#   python tools/train.py configs/seg/upernet_swin-t_cityscapes-512x1024.py
_base_ = [
    '../_base_/models/upernet_swin-t.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_80k_adamw.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))
train_dataloader = dict(batch_size=2)
