# Mamba U-Net (see mamba-unet_synapse-224x224.py: densekit.MambaYOLO-T
# encoder, VSS-block PatchExpandingUNetHead decoder, no official
# counterpart) on the synthetic phantom CT, CPU-sized: MambaYOLO-T at half
# its width (widen_factor 0.125: 16/32/64/128 channels at strides 4-32,
# about 1.2 M params instead of 4.3 M), the swin-unet_phantom.py protocol
# and its from-scratch AdamW schedule.
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
#   python tools/train.py configs/medseg/mamba-unet_phantom.py
_base_ = './swin-unet_phantom.py'
model = dict(
    backbone=dict(
        _delete_=True,  # a MambaYOLO replaces the SwinTransformer
        type='densekit.MambaYOLO',
        arch='T',
        widen_factor=0.125,
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
