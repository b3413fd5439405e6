# YOLOv8-x on COCO 2017, 8 GPUs x 16 images, 500 epochs (ultralytics recipe).
# Published (ultralytics, 640x640): see README, "YOLOv8 model sizes".
_base_ = [
    '../_base_/models/yolov8.py',
    '../_base_/datasets/coco_detection_yolov8.py',
    '../_base_/schedules/yolov8_500e.py',
    '../_base_/default_runtime.py',
]
deepen_factor = 1.0
widen_factor = 1.25
last_stage_out_channels = 512
model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        last_stage_out_channels=last_stage_out_channels),
    neck=dict(deepen_factor=deepen_factor))
