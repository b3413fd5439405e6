# RetinaNet + TransNeXt-Tiny + FPN, 1x on COCO: the backbone-zoo RetinaNet
# (mmdet's RetinaNet, only the backbone swapped; the AdamW 1x schedule of
# the transformer-backbone RetinaNets, _base_/schedules/schedule_1x_adamw.py).
# ImageNet-1K weights: the official transnext_tiny_224_1k.pth (DaiShiResearch/TransNeXt),
# converted to densekit keys with
#   python tools/model_converters/transnext_to_densekit.py transnext_tiny_224_1k.pth checkpoints/transnext-tiny_in1k.pth
#   python tools/train.py configs/det/retinanet_transnext-tiny_fpn_1x_coco.py
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x_adamw.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.TransNeXt',
        arch='tiny',
        img_size=800,  # CPB tables for the detection scale
        pretrain_size=224,
        out_indices=(1, 2, 3),  # strides 8, 16, 32 feed the FPN
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/transnext-tiny_in1k.pth')),
    neck=dict(in_channels=[144, 288, 576], start_level=0, num_outs=5))
default_hooks = dict(checkpoint=dict(interval=1))
