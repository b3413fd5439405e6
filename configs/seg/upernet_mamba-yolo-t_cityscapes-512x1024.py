# UPerNet + the Mamba YOLO-T backbone on Cityscapes (19 classes), 512x1024 crops, 80k iterations
# (the Swin-T recipe, as VMamba trains its UPerNets).
#   python tools/train.py configs/seg/upernet_mamba-yolo-t_cityscapes-512x1024.py
_base_ = [
    '../_base_/models/upernet_mamba-yolo-t.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_80k_adamw.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))
train_dataloader = dict(batch_size=2)
