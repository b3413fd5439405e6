# Mamba YOLO-T on densekit's synthetic shapes (the embedded default): the
# data, pipelines and schedule of yolov8_n_shapes.py with the Mamba YOLO
# backbone and neck swapped in -- the registry at work: only the two module
# configs change, channels come from the backbone's feature contract.
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
#   python tools/train.py configs/det/mamba_yolo_t_shapes.py
_base_ = './yolov8_n_shapes.py'

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
