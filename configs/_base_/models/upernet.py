# UPerNet (Xiao et al., ECCV 2018): PPM + FPN fusion head (mmseg's UPerHead)
# and an FCN auxiliary head on the stride-16 map, as mmseg's
# configs/_base_/models/upernet_r50.py; densekit.SegEncoderDecoder fills the
# heads' in_channels from the backbone's feature contract, so each
# _base_/models/upernet_<backbone>.py only adds the backbone (plus
# in_channels for OpenMMLab backbones, which have no contract).
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='densekit.SegEncoderDecoder',
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        type='UPerHead',
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
