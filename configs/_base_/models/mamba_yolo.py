# Mamba YOLO detector (Wang et al. 2024; official HZAI-ZJNU/Mamba-YOLO,
# ultralytics/cfg/models/mamba-yolo/Mamba-YOLO-{T,B,L}.yaml), T size by
# default; the B and L configs override backbone.arch and neck.deepen_factor.
# Backbone: SimpleStem -> VSSBlock stages with VisionClueMerge downsampling ->
# SPPF; neck: PAFPN with XSSBlocks; head: YOLOv8's decoupled DFL head (the
# official `Detect`). Channels of the neck and head are read from the
# backbone's feature contract by densekit.YOLODetector, so none are written.
num_classes = 80
model = dict(
    type='densekit.YOLODetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='densekit.MambaYOLO',
        arch='T',  # T: depth 0.33, width 0.25, max_channels 1024
        out_indices=(2, 3, 4)),
    # deepen_factor must match the backbone's arch (T/B 0.33, L 0.67): it
    # sets the SS2D modules per XSSBlock (3 scaled: T/B 1, L 2)
    neck=dict(type='densekit.MambaYOLOPAFPN', deepen_factor=0.33),
    bbox_head=dict(
        type='densekit.YOLOv8Head',
        num_classes=num_classes,
        featmap_strides=(8, 16, 32),
        reg_max=16),
    train_cfg=dict(
        assigner=dict(
            type='densekit.BatchTaskAlignedAssigner',
            topk=10,
            alpha=0.5,
            beta=6.0)),
    test_cfg=dict(
        # multi-label NMS with a low threshold, as ultralytics validates
        score_thr=0.001,
        nms_pre=30000,
        nms=dict(type='nms', iou_threshold=0.7),
        max_per_img=300))
