# Mamba YOLO detector (Wang et al. 2024; official HZAI-ZJNU/Mamba-YOLO,
# ultralytics/cfg/models/mamba-yolo/Mamba-YOLO-{T,B,L}.yaml), T size by
# default; the B and L configs override backbone.arch and neck.deepen_factor.
# Backbone: SimpleStem -> VSSBlock stages with VisionClueMerge downsampling ->
# SPPF; neck: PAFPN with XSSBlocks; head, assigner and test settings: YOLOv8's
# (the official `Detect`), inherited from yolov8.py. Channels of the neck and
# head are read from the backbone's feature contract by densekit.YOLODetector.
_base_ = './yolov8.py'
model = dict(
    backbone=dict(
        _delete_=True,  # YOLOv8CSPDarknet's arguments do not apply
        type='densekit.MambaYOLO',
        arch='T',  # T: depth 0.33, width 0.25, max_channels 1024
        out_indices=(2, 3, 4)),
    # deepen_factor must match the backbone's arch (T/B 0.33, L 0.67): it
    # sets the SS2D modules per XSSBlock (3 scaled: T/B 1, L 2)
    neck=dict(
        _delete_=True,  # YOLOv8PAFPN's arguments do not apply
        type='densekit.MambaYOLOPAFPN',
        deepen_factor=0.33))
