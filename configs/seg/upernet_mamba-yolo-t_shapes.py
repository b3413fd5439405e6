# UPerNet + the Mamba YOLO-T backbone on the synthetic shapes segmentation
# set: upernet_yolov8-n_shapes.py with the backbone swapped (the heads'
# in_channels follow the backbone's feature contract).
#   python tools/train.py configs/seg/upernet_mamba-yolo-t_shapes.py
_base_ = './upernet_yolov8-n_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.MambaYOLO',
        arch='T',
        out_indices=(1, 2, 3, 4)))
