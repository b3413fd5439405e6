# UPerNet + ResNet-50 (mmseg's ResNetV1c baseline), as mmseg's
# configs/_base_/models/upernet_r50.py. ResNetV1c is mmseg's (no densekit
# feature contract), so the heads' in_channels are explicit.
_base_ = './upernet.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # ImageNet weights, fetched by mmengine when training starts
    pretrained='open-mmlab://resnet50_v1c',
    backbone=dict(
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
