# RetinaNet-BVR on a backbone-zoo backbone: bvr_retinanet_r50_fpn_1x_coco.py
# with the ResNet-50 swapped for FocalNet-T (SRF), as
# retinanet_focalnet-t-srf_fpn_1x_coco.py swaps it in plain RetinaNet (same
# AdamW 1e-4 / wd 0.05). No published figure exists for this combination.
# ImageNet-1K weights: the official focalnet_tiny_srf.pth, converted with
#   python tools/model_converters/focalnet_to_densekit.py focalnet_tiny_srf.pth checkpoints/focalnet-t-srf_in1k.pth
#   python tools/train.py configs/det/bvr_retinanet_focalnet-t-srf_fpn_1x_coco.py
_base_ = './bvr_retinanet_r50_fpn_1x_coco.py'

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
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
