# Faster R-CNN on densekit's synthetic shapes, sized for a CPU: the plain
# counterpart of faster-rcnn_cbv2-r50_fpn_shapes.py and
# bvr_faster-rcnn_r50_fpn_shapes.py. faster-rcnn_r50_fpn_1x_coco.py with the
# ResNet-50 at quarter width (base/stem channels 16: outputs 64-512 channels)
# trained from scratch, a 64-channel FPN/RPN, a 256-wide box head, 256x256
# inputs, 4 classes, the shapes AdamW schedule at 2e-3 for one epoch.
# Fewer RoIs than on COCO (a 256x256 image holds at most 6 objects): 64
# sampled RoIs per image (COCO 512) from 300 proposals (COCO 1000), 300
# proposals at test time (a training step of 1.21 s with 64 RoIs, 1.39 s
# with 128; batch 8, 2 threads, mmcv's RoIAlign). RoIAlign is densekit's
# multi-threaded CPU kernel (densekit.RoIAlign through
# densekit.ScopedRoIExtractor, mmcv's arithmetic; mmcv's op on a GPU):
# mmcv's single-threaded CPU kernel was a quarter of a CBNetV2 step.
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
#   python tools/train.py configs/det/faster-rcnn_r50_fpn_shapes.py
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
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
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(
            type='densekit.ScopedRoIExtractor',
            roi_layer=dict(type='densekit.RoIAlign'),
            out_channels=fpn_channels),
        bbox_head=dict(
            in_channels=fpn_channels, fc_out_channels=256, num_classes=4)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))
# one epoch, the cosine decay over it: Faster R-CNN learns the shapes fast
# (mAP@0.5 0.561 after this epoch, README), and the CBNetV2 form, twice the
# work per step, must train within 15 CPU minutes
optim_wrapper = dict(optimizer=dict(lr=0.002))
max_epochs = 1
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=0.002 * 0.05, by_epoch=True,
         begin=0, end=max_epochs, T_max=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=10)
randomness = dict(seed=0)  # repeatable benchmark runs
