# RetinaNet + EdgeNeXt-S + FPN, 1x on COCO: the backbone-zoo RetinaNet
# (mmdet's RetinaNet, only the backbone swapped; the AdamW 1x schedule of
# the transformer-backbone RetinaNets, _base_/schedules/schedule_1x_adamw.py).
# ImageNet-1K weights: the official edgenext_small.pth (mmaaz60/EdgeNeXt),
# converted to densekit keys with
#   python tools/model_converters/edgenext_to_densekit.py edgenext_small.pth checkpoints/edgenext-s_in1k.pth
#   python tools/train.py configs/det/retinanet_edgenext-s_fpn_1x_coco.py
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x_adamw.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.EdgeNeXt',
        arch='s',
        out_indices=(1, 2, 3),  # strides 8, 16, 32 feed the FPN
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/edgenext-s_in1k.pth')),
    neck=dict(in_channels=[96, 160, 304], start_level=0, num_outs=5))
default_hooks = dict(checkpoint=dict(interval=1))
