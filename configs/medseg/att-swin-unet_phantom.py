# Att-SwinU-Net (Aghdam et al., ISBI 2023, arXiv:2210.16898; official
# NITR098/AttSwinUNet) on the synthetic phantom CT, CPU-sized: the
# swin-unet_phantom.py model with the official encoder depth pattern
# (2, 2, 6, 2), its mirrored decoder and the cross-contextual skip
# attention made narrow (2 heads of 16 instead of 8 of 64), and
# swin-unet_phantom.py's from-scratch AdamW schedule (the official SGD lr
# 0.01 is in att-swin-unet_synapse-224x224.py).
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/att-swin-unet_phantom.py
_base_ = './swin-unet_phantom.py'
depths = (2, 2, 6, 2)
drop_path_rate = 0.1
model = dict(
    backbone=dict(depths=depths, drop_path_rate=drop_path_rate),
    decode_head=dict(
        depths=depths[:3],
        encoder_depths=depths,
        drop_path_rate=drop_path_rate,
        skip_attention=dict(
            type='densekit.CrossContextualAttention', depth=2, num_heads=2,
            head_dims=16)))
