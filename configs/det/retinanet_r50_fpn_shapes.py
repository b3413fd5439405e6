# RetinaNet on densekit's synthetic shapes, sized for a CPU: the plain
# counterpart of bvr_retinanet_r50_fpn_shapes.py. retinanet_r50_fpn_1x_coco.py
# with the ResNet-50 at quarter width (base/stem channels 16: outputs 64-512
# channels) trained from scratch, a 64-channel FPN and head, 256x256 inputs,
# 4 classes, the shapes AdamW schedule. Generate the data first:
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
#   python tools/train.py configs/det/retinanet_r50_fpn_shapes.py
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/shapes_detection.py',
    '../_base_/schedules/shapes_detection_adamw.py',
    '../_base_/default_runtime.py'
]
width = 16  # ResNet base/stem channels (64 for the real ResNet-50)
fpn_channels = 64
model = dict(
    backbone=dict(
        base_channels=width,
        stem_channels=width,
        frozen_stages=-1,  # nothing pretrained to keep
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[width * 4 * 2**i for i in range(4)],
        out_channels=fpn_channels),
    bbox_head=dict(
        num_classes=4, in_channels=fpn_channels, feat_channels=fpn_channels))
# AdamW at twice the shared shapes schedule's rate, 3 epochs (the cosine
# decay over all 3): in 2 epochs mAP@0.5 was 0.305 (plain) / 0.356 (BVR) at
# 2e-3, 0.267 / 0.333 at 1e-3 (BVR then with the official-size keypoint
# head); the third epoch is worth most (README)
optim_wrapper = dict(optimizer=dict(lr=0.002))
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=0.001 * 0.05, by_epoch=True,
         begin=0, end=max_epochs, T_max=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
randomness = dict(seed=0)  # repeatable benchmark runs
