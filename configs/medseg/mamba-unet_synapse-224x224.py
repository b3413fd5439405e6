# Mamba U-Net in the spirit of VM-UNet (Ruan and Xiang, arXiv:2402.02491),
# U-Mamba (Ma et al., arXiv:2401.04722) and LightM-UNet (Liao et al.,
# arXiv:2403.05246): a visual state-space encoder and decoder joined by
# Swin-Unet skips. densekit's version has no official counterpart: the
# encoder is densekit.MambaYOLO-T (Mamba YOLO's SS2D/VSS backbone; out_indices
# (1, 2, 3, 4): 32/64/128/256 channels at strides 4-32), the decoder is
# densekit.PatchExpandingUNetHead with VSS blocks mirroring the encoder
# stages as Swin-Unet does (1, 1, 3 blocks), Swin-Unet's patch expanding and
# skips. Trained with the swin-unet_synapse-224x224.py protocol but TransUNet's
# SGD lr 0.01 (no ImageNet weights for the encoder). 4.29 M params with
# 9 classes (no official figure to compare with).
#   python tools/train.py configs/medseg/mamba-unet_synapse-224x224.py
_base_ = ['./swin-unet_synapse-224x224.py', '../_base_/models/mamba-unet.py']
model = {{_base_.mamba_unet}}
optim_wrapper = dict(optimizer=dict(lr=0.01))
