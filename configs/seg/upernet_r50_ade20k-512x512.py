# UPerNet + ResNet-50 (ResNetV1c) on ADE20K (150 classes), 512x512 crops, 160k iterations
# (mmseg's upernet_r50 recipe: SGD 0.01, poly decay, 4 GPUs x 4 images).
#   python tools/train.py configs/seg/upernet_r50_ade20k-512x512.py
_base_ = [
    '../_base_/models/upernet_r50.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime_seg.py', '../_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
train_dataloader = dict(batch_size=4)
