# DToP on ViT-S/16 (384 channels, 6 heads, 12 blocks) with ATM exit heads,
# ADE20K 512x512: dtop_vit-b16_ade20k-512x512.py with the smaller ViT, the
# same exits (blocks 5, 7, 11) and 384-channel heads, ImageNet-21k ViT-S/16
# initialisation (mmseg's converted DeiT/ViT-S checkpoint).
#   python tools/train.py configs/seg/dtop_vit-s16_ade20k-512x512.py
_base_ = './dtop_vit-b16_ade20k-512x512.py'
checkpoint = ('https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/'
              'segmenter/vit_small_p16_384_20220308-410f6037.pth')
exit_head = dict(
    type='densekit.ATMHead', in_channels=384, channels=384, num_layers=3,
    num_heads=6, num_classes=150, align_corners=False,
    loss_decode=dict(type='densekit.ATMLoss', loss_weight=1.0))
model = dict(
    backbone=dict(
        embed_dims=384, num_heads=6,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    auxiliary_head=[
        dict(exit_head, in_index=0),
        dict(exit_head, in_index=1),
    ],
    decode_head=dict(exit_head, in_index=2))
