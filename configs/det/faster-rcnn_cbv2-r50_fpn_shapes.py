# CBNetV2 Faster R-CNN on densekit's synthetic shapes, sized for a CPU:
# faster-rcnn_cbv2-r50_fpn_1x_coco.py with the ResNet-50 at quarter width
# (base/stem channels 16: outputs 64-512 channels), trained from scratch,
# a 64-channel FPN/RPN, a 256-wide box head, 256x256 inputs, 4 classes.
# An untuned smoke-test recipe, not a benchmark. Generate the data first:
#   python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
#   python tools/train.py configs/det/faster-rcnn_cbv2-r50_fpn_shapes.py
_base_ = './faster-rcnn_cbv2-r50_fpn_1x_coco.py'

# ---------------------------------------------------------------- data
data_root = 'data/synthetic_shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)])
img_scale = (256, 256)
train_batch_size_per_gpu = 8

# ---------------------------------------------------------------- model
width = 16  # ResNet base/stem channels (64 for the real ResNet-50)
fpn_channels = 64
model = dict(
    backbone=dict(
        backbone=dict(
            base_channels=width,
            stem_channels=width,
            frozen_stages=-1,  # nothing pretrained to keep
            norm_eval=False,
            init_cfg=None)),
    neck=dict(
        neck=dict(
            in_channels=[width * 4 * 2**i for i in range(4)],
            out_channels=fpn_channels)),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(
            in_channels=fpn_channels,
            fc_out_channels=256,
            num_classes=len(metainfo['classes']))))

# ------------------------------------------------------------ pipelines
train_pipeline = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='densekit.LoadImageFromFileSafe'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ------------------------------------------------------------- schedule
# the 1x schedule (12 epochs, x0.1 at 8 and 11) with mmdet's linear lr
# scaling: 0.02 for 16 images -> 0.01 for 8, a 100-iteration warm-up
optim_wrapper = dict(optimizer=dict(lr=0.02 * train_batch_size_per_gpu / 16))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
randomness = dict(seed=0)
