# YOLOv8-s neck and head on SMT-S: the backbone-zoo YOLO detector
# (YOLOv8's COCO recipe, 640x640; densekit.YOLODetector reads the neck's
# channels from the backbone). No one has published this combination.
# ImageNet-1K weights: the official smt_small.pth (AFeng-x/SMT),
# converted to densekit keys with
#   python tools/model_converters/smt_to_densekit.py smt_small.pth checkpoints/smt-s_in1k.pth
#   python tools/train.py configs/det/yolov8-s-head_smt-s_coco.py
_base_ = './yolov8_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.SMT',
        arch='S',
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/smt-s_in1k.pth')))
