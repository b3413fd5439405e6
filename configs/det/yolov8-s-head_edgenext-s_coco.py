# YOLOv8-s neck and head on EdgeNeXt-S: the backbone-zoo YOLO detector
# (YOLOv8's COCO recipe, 640x640; densekit.YOLODetector reads the neck's
# channels from the backbone). No one has published this combination.
# ImageNet-1K weights: the official edgenext_small.pth (mmaaz60/EdgeNeXt),
# converted to densekit keys with
#   python tools/model_converters/edgenext_to_densekit.py edgenext_small.pth checkpoints/edgenext-s_in1k.pth
#   python tools/train.py configs/det/yolov8-s-head_edgenext-s_coco.py
_base_ = './yolov8_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.EdgeNeXt',
        arch='s',
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/edgenext-s_in1k.pth')))
