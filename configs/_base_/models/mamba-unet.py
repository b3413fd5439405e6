# densekit's Mamba U-Net as a change of the Swin-Unet model
# (_base_/models/swin-unet.py): the encoder is densekit.MambaYOLO-T (Mamba
# YOLO's SS2D/VSS backbone; out_indices (1, 2, 3, 4): 32/64/128/256
# channels at strides 4-32), the decoder densekit.PatchExpandingUNetHead
# with VSS blocks mirroring the encoder stages as Swin-Unet does (1, 1, 3
# blocks), Swin-Unet's patch expanding and skips.
# The Synapse and ACDC configs apply it over their Swin-Unet config:
#   _base_ = ['./swin-unet_<set>-224x224.py', '../_base_/models/mamba-unet.py']
#   model = {{_base_.mamba_unet}}
# (mmengine refuses a key given by two bases, so the change is named).
mamba_unet = dict(
    backbone=dict(
        _delete_=True,  # a MambaYOLO replaces the SwinTransformer
        type='densekit.MambaYOLO',
        arch='T',
        in_channels=3,
        out_indices=(1, 2, 3, 4)),
    decode_head=dict(
        in_channels=None,  # from densekit.MambaYOLO's feature contract
        block_cfg=dict(
            _delete_=True,  # VSS blocks replace the Swin blocks
            type='densekit.VSSDecoderStage',
            mlp_ratio=4.0,
            ssm_d_state=16,
            ssm_ratio=2.0),
        depths=(1, 1, 3),
        num_heads=None,
        drop_path_rate=0.0,  # Mamba YOLO's blocks train without it
        encoder_depths=None))
