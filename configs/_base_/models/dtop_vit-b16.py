# DToP (dynamic token pruning) on a plain ViT-B/16 with attention-to-mask
# exit heads, as the official DToP ADE20K config (zbwxp/Dynamic-Token-
# Pruning, config/prune/prune_segvit_ade20k.py): exits after blocks 5, 7
# and 11, 384-channel ATM heads of 3 layers, threshold 0.9, top-5 context
# tokens per class. The backbone is mmseg's VisionTransformer (no copy),
# with the patch-embedding bias of the official / timm / DeiT ViTs
# (mmseg 1.2.2 defaults patch_bias=False, which would drop a pretrained
# bias silently).
backbone_norm_cfg = dict(type='LN', eps=1e-6, requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
exit_head = dict(
    type='densekit.ATMHead',
    in_channels=768,
    channels=384,
    num_layers=3,
    num_heads=6,
    num_classes=150,
    align_corners=False,
    loss_decode=dict(type='densekit.ATMLoss', loss_weight=1.0))
model = dict(
    type='densekit.DToPEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='VisionTransformer',
        img_size=(512, 512),
        patch_size=16,
        patch_bias=True,
        in_channels=3,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        out_indices=[5, 7, 11],
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        with_cls_token=False,
        final_norm=False,
        norm_cfg=backbone_norm_cfg,
        interpolate_mode='bicubic'),
    # one head per exit: auxiliary_head[i] reads out_indices[i]
    auxiliary_head=[
        dict(exit_head, in_index=0),
        dict(exit_head, in_index=1),
    ],
    decode_head=dict(exit_head, in_index=2),
    # enabled: prune at inference; train: prune in the training forward
    # too (the official fine-tuning stage, see *_prune-ft40k.py)
    pruning=dict(enabled=True, train=False, threshold=0.9, keep_topk=5),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
