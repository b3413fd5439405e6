# YOLOv8-s: YOLOv8-l's recipe at ultralytics' 's' scale.
_base_ = './yolov8_l_coco.py'
deepen_factor = 0.33
widen_factor = 0.5
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=1024),
    neck=dict(deepen_factor=deepen_factor))
