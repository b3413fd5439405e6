# YOLOv8-s neck and head on HorNet-T (7x7): the backbone-zoo YOLO detector
# (YOLOv8's COCO recipe, 640x640; densekit.YOLODetector reads the neck's
# channels from the backbone). No one has published this combination.
# ImageNet-1K weights: the official hornet_tiny_7x7.pth (raoyongming/HorNet),
# converted to densekit keys with
#   python tools/model_converters/hornet_to_densekit.py hornet_tiny_7x7.pth checkpoints/hornet-t-7x7_in1k.pth
#   python tools/train.py configs/det/yolov8-s-head_hornet-t-7x7_coco.py
_base_ = './yolov8_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.HorNet',
        arch='T-7x7',
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/hornet-t-7x7_in1k.pth')))
