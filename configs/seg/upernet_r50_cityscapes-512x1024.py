# UPerNet + ResNet-50 (ResNetV1c) on Cityscapes (19 classes), 512x1024 crops, 80k iterations
# (mmseg's upernet_r50 recipe: SGD 0.01, poly decay, 4 GPUs x 2 images).
#   python tools/train.py configs/seg/upernet_r50_cityscapes-512x1024.py
_base_ = [
    '../_base_/models/upernet_r50.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))
train_dataloader = dict(batch_size=2)
