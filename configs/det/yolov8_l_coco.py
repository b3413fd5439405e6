# YOLOv8-l on COCO 2017, 8 GPUs x 16 images, 500 epochs (ultralytics recipe).
# The model base is at the l scale (deepen 1.0, widen 1.0, last stage 512);
# the n/s/m/x configs override those three numbers.
# Published sizes (ultralytics, 640x640): see README, "YOLOv8 model sizes".
_base_ = [
    '../_base_/models/yolov8.py',
    '../_base_/datasets/coco_detection_yolov8.py',
    '../_base_/schedules/yolov8_500e.py',
    '../_base_/default_runtime.py',
]
