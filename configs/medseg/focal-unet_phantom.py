# Focal-UNet (Naderi et al., arXiv:2212.09263; official givkashi/Focal-Unet)
# on the synthetic phantom CT, CPU-sized: a quarter-width FocalNet (embed
# 24, depths (2, 2, 2, 2) instead of the official (4, 4, 4, 4), focal level
# 3, window 3, no ImageNet weights), the official one-block-per-level focal
# decoder, biased (transposed-conv) expanding and 7 x 7 classifier; the
# official AdamW (1e-4, betas (0.5, 0.99)) with 4 doubling warm-restart
# periods of 27 iterations over 400 iterations (27 * 15 = 405).
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/focal-unet_phantom.py
_base_ = './swin-unet_phantom.py'
focal_level = 3
focal_window = 3
model = dict(
    backbone=dict(
        _delete_=True,  # a FocalNet replaces the SwinTransformer
        type='densekit.FocalNet',
        arch=dict(embed_dims=24, depths=(2, 2, 2, 2),
                  focal_levels=focal_level, focal_windows=focal_window),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1),
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
        drop_path_rate=0.1,
        encoder_depths=None,
        expand_bias=True,
        final_expand_norm=False,
        cls_kernel_size=7))
max_iters = 400
restart_period = 27
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,  # AdamW replaces SGD (momentum is not an AdamW arg)
        type='AdamW', lr=1e-4, betas=(0.5, 0.99), weight_decay=0.01))
param_scheduler = [
    dict(type='CosineRestartLR',
         periods=[restart_period * 2**k for k in range(4)],
         restart_weights=[1.0] * 4, eta_min=0.0, by_epoch=False, begin=0,
         end=restart_period * 15)
]
