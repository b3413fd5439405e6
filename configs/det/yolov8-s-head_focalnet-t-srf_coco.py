# YOLOv8-s neck and head on FocalNet-T (SRF): the backbone-zoo YOLO detector
# (YOLOv8's COCO recipe, 640x640; densekit.YOLODetector reads the neck's
# channels from the backbone). No one has published this combination.
# ImageNet-1K weights: the official focalnet_tiny_srf.pth (microsoft/FocalNet),
# converted to densekit keys with
#   python tools/model_converters/focalnet_to_densekit.py focalnet_tiny_srf.pth checkpoints/focalnet-t-srf_in1k.pth
#   python tools/train.py configs/det/yolov8-s-head_focalnet-t-srf_coco.py
_base_ = './yolov8_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.FocalNet',
        arch='T-SRF',
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/focalnet-t-srf_in1k.pth')))
