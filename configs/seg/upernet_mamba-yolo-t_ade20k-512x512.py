# UPerNet + the Mamba YOLO-T backbone on ADE20K (150 classes), 512x512 crops, 160k iterations
# (the Swin-T recipe, as VMamba trains its UPerNets).
#   python tools/train.py configs/seg/upernet_mamba-yolo-t_ade20k-512x512.py
_base_ = [
    '../_base_/models/upernet_mamba-yolo-t.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k_adamw.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=2)
