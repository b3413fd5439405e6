# UPerNet + the Mamba YOLO-T backbone: densekit.MambaYOLO, the registration
# the detectors use. out_indices (1, 2, 3, 4) give strides 4, 8, 16, 32;
# densekit.SegEncoderDecoder fills the heads' in_channels from the
# backbone's feature contract.
_base_ = './upernet.py'
model = dict(
    backbone=dict(type='densekit.MambaYOLO', arch='T',
                  out_indices=(1, 2, 3, 4)))
