# The classic U-Net (Ronneberger et al., MICCAI 2015) as mmseg's
# configs/_base_/models/fcn_unet_s5-d16.py builds it: mmseg's UNet backbone
# (5 stages, base 64 channels, stride 16 at the bottleneck) and an FCN head
# on the full-resolution decoder output (in_index=4). Changes for the
# TransUNet-protocol medical baseline (Beckschen/TransUNet trainer.py,
# utils.py; HiLab-git/SSL4MIS code/train_fully_supervised_2D.py):
# - one grey input channel (LoadMedicalSlice(num_channels=1)), values in
#   [0, 1] fed unnormalised as TransUNet does (mean=None, std=None), no
#   BGR->RGB swap;
# - BN instead of SyncBN (the recipe trains on one GPU, batch 24);
# - no auxiliary head (TransUNet and SSL4MIS train one output);
# - loss 0.5 * CE + 0.5 * Dice with TransUNet's per-class batch Dice
#   (densekit.ClassDiceLoss; mmseg 1.2's DiceLoss pools all classes of a
#   sample into one Dice, which the background dominates).
# UNet has no densekit feature contract, so in_channels are explicit.
norm_cfg = dict(type='BN', requires_grad=True)
num_classes = 9
base_channels = 64
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None,
    std=None,
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='densekit.SegEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='UNet',
        in_channels=1,
        base_channels=base_channels,
        num_stages=5,
        strides=(1, 1, 1, 1, 1),
        enc_num_convs=(2, 2, 2, 2, 2),
        dec_num_convs=(2, 2, 2, 2),
        downsamples=(True, True, True, True),
        enc_dilations=(1, 1, 1, 1, 1),
        dec_dilations=(1, 1, 1, 1),
        with_cp=False,
        conv_cfg=None,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='ReLU'),
        upsample_cfg=dict(type='InterpConv'),
        norm_eval=False),
    decode_head=dict(
        type='FCNHead',
        in_channels=base_channels,
        in_index=4,
        channels=64,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=False,
                 loss_weight=0.5, loss_name='loss_ce'),
            dict(type='densekit.ClassDiceLoss', loss_weight=0.5,
                 loss_name='loss_dice')
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
