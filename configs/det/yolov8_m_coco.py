# YOLOv8-m: YOLOv8-l's recipe at ultralytics' 'm' scale.
_base_ = './yolov8_l_coco.py'
deepen_factor = 0.67
widen_factor = 0.75
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=768),
    neck=dict(deepen_factor=deepen_factor))
