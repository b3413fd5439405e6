# UPerNet + YOLOv8-n's CSPDarknet (densekit.YOLOv8CSPDarknet, the detector's
# registration): out_indices (1, 2, 3, 4) give strides 4, 8, 16, 32;
# densekit.SegEncoderDecoder fills the heads' in_channels.
_base_ = './upernet.py'
model = dict(
    backbone=dict(
        type='densekit.YOLOv8CSPDarknet',
        deepen_factor=0.33,
        widen_factor=0.25,
        last_stage_out_channels=1024,
        out_indices=(1, 2, 3, 4)))
