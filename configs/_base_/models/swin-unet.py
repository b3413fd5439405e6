# Swin-Unet (Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical
# Image Segmentation", ECCVW 2022, arXiv:2105.05537), official
# HuCaoFighting/Swin-Unet networks/swin_transformer_unet_skip_expand_decoder_
# sys.py with configs/swin_tiny_patch4_window7_224_lite.yaml:
# - encoder: Swin-T widths (96, 192, 384, 768) and heads (3, 6, 12, 24) but
#   depths (2, 2, 2, 2) ("lite"), window 7, drop path 0.2, ImageNet Swin-T
#   weights (loaded non-strictly: stage 3 keeps 2 of its 6 blocks). Here
#   mmseg's SwinTransformer;
# - decoder: densekit.PatchExpandingUNetHead with Swin blocks (mmseg's
#   SwinBlockSequence). The official decoder ignores DECODER_DEPTHS
#   (2, 2, 2, 1): stage i mirrors encoder stage i (depths[:3], heads[:3],
#   the encoder's drop-path rates);
# - input: the grey slice repeated to 3 channels (x.repeat(1, 3, 1, 1) in
#   networks/vision_transformer.py; LoadMedicalSlice(num_channels=3) in the
#   dataset configs), values in [0, 1] unnormalised as TransUNet's data;
# - loss 0.4 * CE + 0.6 * Dice (trainer.py; TransUNet's per-class Dice,
#   densekit.ClassDiceLoss).
# The official model also loads the Swin-T blocks into its decoder
# (load_from: layers.i -> layers_up.3-i); densekit initialises the decoder
# from scratch (see the head's docstring).
checkpoint_file = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'  # noqa
num_classes = 9
embed_dims = 96
depths = (2, 2, 2, 2)
num_heads = (3, 6, 12, 24)
window_size = 7
drop_path_rate = 0.2
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
        type='SwinTransformer',
        pretrain_img_size=224,
        in_channels=3,
        embed_dims=embed_dims,
        patch_size=4,
        window_size=window_size,
        mlp_ratio=4,
        depths=depths,
        num_heads=num_heads,
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=drop_path_rate,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(
        type='densekit.PatchExpandingUNetHead',
        # mmseg's SwinTransformer has no densekit feature contract
        in_channels=[embed_dims, 2 * embed_dims, 4 * embed_dims,
                     8 * embed_dims],
        in_index=(0, 1, 2, 3),
        block_cfg=dict(
            type='densekit.SwinDecoderStage',
            window_size=window_size,
            mlp_ratio=4,
            qkv_bias=True),
        depths=depths[:3],
        num_heads=num_heads[:3],
        drop_path_rate=drop_path_rate,
        encoder_depths=depths,
        num_classes=num_classes,
        align_corners=False,
        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=False,
                 loss_weight=0.4, loss_name='loss_ce'),
            dict(type='densekit.ClassDiceLoss', loss_weight=0.6,
                 loss_name='loss_dice')
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
