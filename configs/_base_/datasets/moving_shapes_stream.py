# densekit's synthetic moving-shapes videos (Argoverse-HD layout, 4 shape
# classes, 256x256, 30 FPS) as a streaming-perception set: each sample is
# frame t with `num_past_frames` past frames, its targets are the boxes of
# frame t + `forecast_offset`. Generate the data first:
#   python tools/data/make_synthetic.py moving_shapes \
#       --out data/synthetic_moving_shapes
# Augmentation is StreamYOLO's (cfgs/*_s50_onex_dfp_tal_flip.py: no mosaic,
# no HSV, horizontal flip only), applied identically to every frame of the
# stacked (H, W, 3T) image. The val set keeps forecast_offset: the COCO
# metric scores each forecast against the frame it forecasts (the dataset's
# img_id is the target frame's), over the frames that have a sample
# (densekit.SampledFramesCocoMetric: frames without one are not misses).
# Children change the window with
#   train_dataloader = dict(dataset=dict(num_past_frames=3))
# (and the same for val_dataloader), since base variables are substituted
# when this file is read.
dataset_type = 'densekit.ArgoverseHDDataset'
data_root = 'data/synthetic_moving_shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)])
img_scale = (256, 256)  # (width, height)
num_past_frames = 1  # StreamYOLO's (t-1, t) pair
forecast_offset = 1  # predict frame t+1
train_batch_size_per_gpu = 8
train_num_workers = 2
val_batch_size_per_gpu = 8
backend_args = None

train_pipeline = [
    dict(type='densekit.LoadStreamFrames', backend_args=backend_args),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # an int pad value pads every one of the 3T channels
    dict(type='densekit.StreamPad', size=img_scale, pad_val=dict(img=114)),
    dict(type='densekit.StreamFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='densekit.PackStreamInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadStreamFrames', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='densekit.StreamPad', size=img_scale, pad_val=dict(img=114)),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='densekit.PackStreamInputs'),
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='frames/'),
        num_past_frames=num_past_frames,
        forecast_offset=forecast_offset,
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=val_batch_size_per_gpu,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='frames/'),
        num_past_frames=num_past_frames,
        forecast_offset=forecast_offset,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='densekit.SampledFramesCocoMetric',
    ann_file=data_root + 'annotations/val.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
