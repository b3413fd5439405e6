# Argoverse-HD (Li et al., ECCV 2020, mtli/sAP annotations) as a streaming
# set: frames t-N..t -> boxes of frame t+1, 8 classes, 1200x1920 frames
# resized to StreamYOLO's 600x960 (cfgs/*_s50_onex_dfp_tal_flip.py:
# input_size = test_size = (600, 960), no mosaic / HSV, horizontal flip).
# Expected layout (Argoverse 1.1 tracking + the Argoverse-HD annotations):
#   data/Argoverse-1.1/tracking/{train,val}/<log>/ring_front_center/*.jpg
#   data/Argoverse-HD/annotations/{train,val}.json  (seq_dirs are
#       'train/<log>/ring_front_center', relative to the tracking folder)
# The shared dataset/loader/evaluator blocks are moving_shapes_stream.py's.
_base_ = './moving_shapes_stream.py'

data_root = 'data/'
img_prefix = 'Argoverse-1.1/tracking/'
train_ann_file = 'Argoverse-HD/annotations/train.json'
val_ann_file = 'Argoverse-HD/annotations/val.json'
metainfo = dict(
    classes=('person', 'bicycle', 'car', 'motorcycle', 'bus', 'truck',
             'traffic_light', 'stop_sign'),
    palette=[(220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230),
             (0, 60, 100), (0, 0, 70), (250, 170, 30), (220, 220, 0)])
img_scale = (960, 600)  # (width, height)
backend_args = None

train_pipeline = [
    dict(type='densekit.LoadStreamFrames', backend_args=backend_args),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='densekit.StreamFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='densekit.PackStreamInputs'),
]
test_pipeline = [
    dict(type='densekit.LoadStreamFrames', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='densekit.LoadStreamAnnotations', with_bbox=True),
    dict(type='densekit.PackStreamInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img=img_prefix),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img=img_prefix),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator
