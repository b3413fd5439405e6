# Focal-UNet (Naderi et al., arXiv:2212.09263; official givkashi/Focal-Unet)
# on ACDC: the Synapse model (FocalNet-T LRF (4, 4, 4, 4) encoder, one focal
# block per decoder level) and the official optimiser (AdamW 1e-4, betas
# (0.5, 0.99)); the official repository has no ACDC trainer, so the warm
# restarts (T_mult 2, 7 periods) are spread over densekit's 30000-iteration
# ACDC length (configs/medseg/unet_acdc-224x224.py): T_0 = 30000 // 127.
#   python tools/train.py configs/medseg/focal-unet_acdc-224x224.py
_base_ = './swin-unet_acdc-224x224.py'
checkpoint_file = 'https://projects4jw.blob.core.windows.net/focalnet/release/classification/focalnet_tiny_lrf.pth'  # noqa
focal_level = 3
focal_window = 3
encoder_depths = (4, 4, 4, 4)
drop_path_rate = 0.2
model = dict(
    backbone=dict(
        _delete_=True,  # a FocalNet replaces the SwinTransformer
        type='densekit.FocalNet',
        arch=dict(embed_dims=96, depths=encoder_depths,
                  focal_levels=focal_level, focal_windows=focal_window),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=drop_path_rate,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint_file,
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
        drop_path_rate=drop_path_rate,
        encoder_depths=None,
        expand_bias=True,
        final_expand_norm=False,
        cls_kernel_size=7))
max_iters = 30000
restart_period = max_iters // 127  # 7 doubling periods span 127 of them
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,  # AdamW replaces SGD (momentum is not an AdamW arg)
        type='AdamW', lr=1e-4, betas=(0.5, 0.99), weight_decay=0.01))
param_scheduler = [
    dict(type='CosineRestartLR',
         periods=[restart_period * 2**k for k in range(7)],
         restart_weights=[1.0] * 7, eta_min=0.0, by_epoch=False, begin=0,
         end=restart_period * 127)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
