# Focal-UNet (Naderi et al., arXiv:2212.09263; official givkashi/Focal-Unet
# networks/FocalNet/classification/focalUnet.py) as a change of the
# Swin-Unet model (_base_/models/swin-unet.py), with its optimiser:
# - encoder FocalNet-T LRF (focal level 3, window 3) with the registered
#   `focalnet_tiny_lrf` depths (4, 4, 4, 4), drop path 0.2 and ImageNet
#   FocalNet-T LRF weights (loaded non-strictly, as officially);
# - decoder: one focal block per level (`depths = [1, 1, 1, 1]` in
#   FocalNet.__init__), transposed-conv patch expanding (= biased expanding
#   Linears), no norm after the x4 expanding, a 7 x 7 bias-free classifier;
# - AdamW lr 0.01 * 0.01 = 1e-4, betas (0.5, 0.99), weight decay torch's
#   default 0.01.
# The Synapse and ACDC configs apply it over their Swin-Unet config:
#   _base_ = ['./swin-unet_<set>-224x224.py', '../_base_/models/focal-unet.py']
#   model = {{_base_.focal_unet}}
#   optim_wrapper = dict(optimizer={{_base_.focal_unet_optimizer}})
# (mmengine refuses a key given by two bases, so the change is named).
focal_level = 3
focal_window = 3
focal_unet = dict(
    backbone=dict(
        _delete_=True,  # a FocalNet replaces the SwinTransformer
        type='densekit.FocalNet',
        arch=dict(embed_dims=96, depths=(4, 4, 4, 4),
                  focal_levels=focal_level, focal_windows=focal_window),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://projects4jw.blob.core.windows.net/focalnet/release/classification/focalnet_tiny_lrf.pth',  # noqa
            # the (2, 2, 6, 2) checkpoint lacks blocks 2-3 of stages 0, 1, 3
            # and the per-output norms
            allow_missing=[r'stages\.[013]\.blocks\.[23]\.',
                           r'norm[0-3]\.'])),
    decode_head=dict(
        in_channels=None,  # from densekit.FocalNet's feature contract
        block_cfg=dict(
            _delete_=True,  # focal blocks replace the Swin blocks
            type='densekit.FocalNetDecoderStage',
            focal_level=focal_level,
            focal_window=focal_window,
            mlp_ratio=4),
        depths=(1, 1, 1),
        num_heads=None,
        drop_path_rate=0.2,
        encoder_depths=None,
        expand_bias=True,
        final_expand_norm=False,
        cls_kernel_size=7))
focal_unet_optimizer = dict(
    _delete_=True,  # AdamW replaces SGD (momentum is not an AdamW arg)
    type='AdamW', lr=1e-4, betas=(0.5, 0.99), weight_decay=0.01)
