# StreamYOLO (DFP + trend-aware loss) with the Mamba YOLO-T backbone and
# neck on the synthetic moving shapes: the YOLOv8-n config with the two
# module configs swapped (as configs/det/mamba_yolo_t_shapes.py does);
# channels of the fusion neck and head come from the backbone's contract.
_base_ = './streamyolo_yolov8-n_moving-shapes.py'

model = dict(
    backbone=dict(
        _delete_=True,  # YOLOv8CSPDarknet's arguments do not apply
        type='densekit.MambaYOLO',
        arch='T',
        out_indices=(2, 3, 4)),
    neck=dict(
        _delete_=True,  # YOLOv8PAFPN's arguments do not apply
        type='densekit.MambaYOLOPAFPN',
        deepen_factor=0.33))
