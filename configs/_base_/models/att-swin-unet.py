# Att-SwinU-Net (Aghdam et al., ISBI 2023, arXiv:2210.16898; official
# NITR098/AttSwinUNet) as a change of the Swin-Unet model
# (_base_/models/swin-unet.py): the full Swin-T encoder
# (configs/swin_attention_unet.py: depths (2, 2, 6, 2), drop path 0.1), the
# mirrored decoder (2, 2, 6 blocks; networks/decoder.py builds
# depths[num_layers - 1 - k] like Swin-Unet) and cross-contextual attention
# (CrossViT cross-attention, depth 2, 8 heads of 64) in all three skips
# (mode 'crossvittoken', skip_num '3').
# The Synapse and ACDC configs apply it over their Swin-Unet config:
#   _base_ = ['./swin-unet_<set>-224x224.py', '../_base_/models/att-swin-unet.py']
#   model = {{_base_.att_swin_unet}}
# (mmengine refuses a key given by two bases, so the change is named).
att_swin_unet = dict(
    backbone=dict(depths=(2, 2, 6, 2), drop_path_rate=0.1),
    decode_head=dict(
        depths=(2, 2, 6),
        encoder_depths=(2, 2, 6, 2),
        drop_path_rate=0.1,
        skip_attention=dict(
            type='densekit.CrossContextualAttention', depth=2, num_heads=8,
            head_dims=64)))
