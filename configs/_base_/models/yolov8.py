# YOLOv8 detector (ultralytics yolov8.yaml), l scale by default; the scale
# configs override deepen_factor / widen_factor / last_stage_out_channels.
# Channel counts of the neck and head are read from the backbone's feature
# contract by densekit.YOLODetector, so none are written here.
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
        type='densekit.YOLOv8CSPDarknet',
        deepen_factor=1.0,
        widen_factor=1.0,
        last_stage_out_channels=512,
        out_indices=(2, 3, 4)),
    neck=dict(type='densekit.YOLOv8PAFPN', deepen_factor=1.0),
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
        # multi-label NMS with a low threshold, as YOLOv8 validates
        score_thr=0.001,
        nms_pre=30000,
        nms=dict(type='nms', iou_threshold=0.7),
        max_per_img=300))
