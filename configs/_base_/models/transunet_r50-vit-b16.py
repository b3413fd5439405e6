# TransUNet (Chen et al. 2021, arXiv:2102.04306) with its R50-ViT-B/16
# encoder, as Beckschen/TransUNet builds it (networks/vit_seg_modeling.py,
# vit_seg_configs.py get_r50_b16_config; trainer.py): densekit.ResNetViT
# (weight-standardised GN ResNet with (3, 4, 9) bottlenecks + 12-layer
# ViT-B on the 1/16 map, patch size 1, no class token) and
# densekit.CascadedUpsamplerHead (conv_more 768 -> 512, decoder channels
# (256, 128, 64, 16), skips at strides 8, 4, 2, 3x3 classifier).
# 105,277,081 parameters with 9 classes (the 105.28M of comparison tables).
# - grey slices (LoadMedicalSlice(num_channels=1) in the dataset bases) are
#   repeated to 3 channels inside the backbone, as the official forward does
#   (x.repeat(1, 3, 1, 1)); values in [0, 1] fed unnormalised (mean/std
#   None), no BGR->RGB swap;
# - loss 0.5 * CE + 0.5 * Dice with TransUNet's per-class batch Dice
#   (densekit.ClassDiceLoss), no auxiliary head;
# - the official run starts from the ImageNet-21k R50+ViT-B_16.npz:
#     python tools/model_converters/resnet_vit_to_densekit.py \
#         R50+ViT-B_16.npz r50_vit-b16_in21k.pth --img-size 224
#   then set model.backbone.init_cfg=dict(type='Pretrained',
#   checkpoint='r50_vit-b16_in21k.pth'); without it (the default here, no
#   download in CI) the model trains from scratch.
norm_cfg = dict(type='BN', requires_grad=True)
num_classes = 9
img_size = 224
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
        type='densekit.ResNetViT',
        img_size=img_size,
        in_channels=3,
        grey_to_rgb=True,
        stem_channels=64,
        base_channels=64,
        stage_blocks=(3, 4, 9),
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        drop_rate=0.1,
        attn_drop_rate=0.0,
        out_indices=(0, 1, 2, 4),  # skips /2, /4, /8 and the ViT map /16
        init_cfg=None),
    decode_head=dict(
        type='densekit.CascadedUpsamplerHead',
        in_index=(0, 1, 2, 3),  # in_channels from the backbone's contract
        head_channels=512,
        decoder_channels=(256, 128, 64, 16),
        n_skip=3,
        seg_kernel_size=3,
        dropout_ratio=0.0,
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
