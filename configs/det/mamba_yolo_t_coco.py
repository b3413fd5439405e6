# Mamba YOLO-T on COCO 2017, 640x640, 8 GPUs x 64 images, 300 epochs
# (official recipe: mbyolo_train.py + ultralytics default.yaml; YOLOv8's
# augmentation, see configs/_base_/datasets/coco_detection_yolov8.py).
# Sizes (80 classes): 6.13M params, as the official build; published
# COCO val2017 (README): 5.8M / 13.2 GFLOPs / 44.5 AP (yaml: 6.1M, 14.3G).
# The B and L configs override backbone.arch and neck.deepen_factor.
_base_ = [
    '../_base_/models/mamba_yolo.py',
    '../_base_/datasets/coco_detection_yolov8.py',
    '../_base_/schedules/mamba_yolo_300e.py',
    '../_base_/default_runtime.py',
]
train_batch_size_per_gpu = 64  # 8 GPUs -> total_batch_size 512
train_dataloader = dict(batch_size=train_batch_size_per_gpu)
