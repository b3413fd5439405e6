# YOLOv8-s neck and head on TransNeXt-Tiny: the backbone-zoo YOLO detector
# (YOLOv8's COCO recipe, 640x640; densekit.YOLODetector reads the neck's
# channels from the backbone). No one has published this combination.
# ImageNet-1K weights: the official transnext_tiny_224_1k.pth (DaiShiResearch/TransNeXt),
# converted to densekit keys with
#   python tools/model_converters/transnext_to_densekit.py transnext_tiny_224_1k.pth checkpoints/transnext-tiny_in1k.pth
#   python tools/train.py configs/det/yolov8-s-head_transnext-tiny_coco.py
_base_ = './yolov8_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='densekit.TransNeXt',
        arch='tiny',
        img_size=640,  # CPB tables for the detection scale
        pretrain_size=224,
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/transnext-tiny_in1k.pth')))
