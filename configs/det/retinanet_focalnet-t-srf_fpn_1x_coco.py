# RetinaNet + FocalNet-T (SRF) + FPN, 1x on COCO: the backbone-zoo RetinaNet
# (mmdet's RetinaNet, only the backbone swapped; the AdamW 1x schedule of
# the transformer-backbone RetinaNets, _base_/schedules/schedule_1x_adamw.py).
# ImageNet-1K weights: the official focalnet_tiny_srf.pth (microsoft/FocalNet),
# converted to densekit keys with
#   python tools/model_converters/focalnet_to_densekit.py focalnet_tiny_srf.pth checkpoints/focalnet-t-srf_in1k.pth
#   python tools/train.py configs/det/retinanet_focalnet-t-srf_fpn_1x_coco.py
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x_adamw.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.FocalNet',
        arch='T-SRF',
        out_indices=(1, 2, 3),  # strides 8, 16, 32 feed the FPN
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/focalnet-t-srf_in1k.pth')),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
default_hooks = dict(checkpoint=dict(interval=1))
