# YOLOv8-x: YOLOv8-l's recipe at ultralytics' 'x' scale.
_base_ = './yolov8_l_coco.py'
deepen_factor = 1.0
widen_factor = 1.25
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=512),
    neck=dict(deepen_factor=deepen_factor))
