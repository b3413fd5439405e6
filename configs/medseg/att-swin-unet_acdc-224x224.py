# Att-SwinU-Net (Aghdam et al., "Attention Swin U-Net: Cross-Contextual
# Attention Mechanism for Skin Lesion Segmentation", ISBI 2023,
# arXiv:2210.16898; official NITR098/AttSwinUNet): Swin-Unet with the full
# Swin-T encoder (configs/swin_attention_unet.py: depths (2, 2, 6, 2),
# drop path 0.1), the mirrored decoder (2, 2, 6 blocks; networks/decoder.py
# builds depths[num_layers - 1 - k] like Swin-Unet) and cross-contextual
# attention (CrossViT cross-attention, depth 2, 8 heads of 64) in all three
# skips (mode 'crossvittoken', skip_num '3'). Training as the official
# train.py / trainer.py, which are Swin-Unet's with base_lr 0.01: SGD lr
# 0.01 momentum 0.9 wd 1e-4, poly 0.9, batch 24, 0.4 * CE + 0.6 * Dice.
# The paper evaluates skin lesions; this runs the Swin-Unet acdc protocol.
#   python tools/train.py configs/medseg/att-swin-unet_acdc-224x224.py
_base_ = ['./swin-unet_acdc-224x224.py', '../_base_/models/att-swin-unet.py']
model = {{_base_.att_swin_unet}}
optim_wrapper = dict(optimizer=dict(lr=0.01))
