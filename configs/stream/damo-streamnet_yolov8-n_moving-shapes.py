# DAMO-StreamNet (He et al., IJCAI 2023; zhiqic/DAMO-StreamNet) with YOLOv8-n
# on the synthetic moving shapes: the StreamYOLO config with the long-short
# fusion module (short path: frame t, long path: N=3 past frames, as
# cfgs/streamnet_s.py) and a deformable conv after the fusion (official
# neck_cfg dcn=True; see LongShortTemporalFusion for where it sits here).
#
# Logits distillation (official default) needs a trained still teacher that
# sees the future frame: train configs/stream/still_yolov8-n_moving-shapes.py
# first, then set `teacher_ckpt` below to its checkpoint (editing this file:
# the model and pipeline below are derived from it, so a --cfg-options
# override of teacher_ckpt alone does not enable distillation). With
# teacher_ckpt = None this is DAMO-StreamNet without distillation
# (official cfgs/no_distillation/).
_base_ = './streamyolo_yolov8-n_moving-shapes.py'

num_past_frames = 3
teacher_ckpt = None  # 'work_dirs/still_yolov8-n_moving-shapes/epoch_6.pth'
# the still detector of still_yolov8-n_moving-shapes.py (the teacher must
# use the student's head layout: classes, strides, reg_max)
teacher_cfg = dict(
    type='densekit.YOLODetector',
    backbone=dict(
        type='densekit.YOLOv8CSPDarknet',
        deepen_factor=0.33,
        widen_factor=0.25,
        last_stage_out_channels=1024,
        out_indices=(2, 3, 4)),
    neck=dict(type='densekit.YOLOv8PAFPN', deepen_factor=0.33),
    bbox_head=dict(type='densekit.YOLOv8Head', num_classes=4))

model = dict(
    temporal_fusion=dict(
        _delete_=True,  # DualFlowPerception's arguments do not apply
        type='densekit.LongShortTemporalFusion',
        num_past_frames=num_past_frames,
        dcn_cfg=dict(type='DCN', deform_groups=1)),
    num_past_frames=num_past_frames,
    teacher_cfg=None if teacher_ckpt is None else teacher_cfg,
    teacher_ckpt=teacher_ckpt,
    # official hint factors 0.2 (cfgs/streamnet_*.py, one_factor)
    distill_cfg=dict(cls_weight=0.2, bbox_weight=0.2))

# with a teacher, frame t+1 is appended as the last frame (its input)
train_pipeline = [
    dict(type='densekit.LoadStreamFrames',
         load_future_frame=teacher_ckpt is not None),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='densekit.StreamPad', size=(256, 256), pad_val=dict(img=114)),
    dict(type='densekit.StreamFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='densekit.PackStreamInputs'),
]
train_dataloader = dict(
    dataset=dict(num_past_frames=num_past_frames, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(num_past_frames=num_past_frames))
test_dataloader = val_dataloader
