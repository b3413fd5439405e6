# MVTec AD, one category per run (EfficientAD trains one model per
# category). Layout as downloaded from mvtec.com:
#   data/mvtec_anomaly_detection/<category>/train/good/*.png
#   data/mvtec_anomaly_detection/<category>/test/<defect>/*.png
#   data/mvtec_anomaly_detection/<category>/ground_truth/<defect>/*_mask.png
# Choose the category with the environment variable MVTEC_CATEGORY
# (default bottle), e.g.  MVTEC_CATEGORY=carpet python tools/train.py ...
# Penalty images (Sec. 3.2): an ImageNet (or Imagenette) train folder at
# data/imagenet/train; without it LoadPenaltyImage warns and draws
# synthetic images.
dataset_type = 'MVTecADDataset'
data_root = 'data/mvtec_anomaly_detection'
category = '{{$MVTEC_CATEGORY:bottle}}'
img_size = 256
penalty_img_dir = 'data/imagenet/train'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='LoadPenaltyImage', img_dir=penalty_img_dir, size=img_size,
         grayscale_prob=0.3),
    dict(type='PackAnomalyInputs')
]
normal_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackAnomalyInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnomalyMask'),  # at the original size, for the metric
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackAnomalyInputs')
]
train_dataloader = dict(
    batch_size=1,  # the paper's; other sizes work (with a warning)
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, category=category,
        split='train', train_val_split=0.1, subset='train',
        pipeline=train_pipeline))
# the held-out 10% of train/good for map normalisation (Sec. 3.4)
map_norm_dataloader = dict(
    batch_size=1,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, category=category,
        split='train', train_val_split=0.1, subset='val',
        pipeline=normal_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, category=category,
        split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='AnomalyMetric',
    metric=('image_auroc', 'pixel_auroc', 'au_pro', 'image_f1_max'),
    pro_fpr_limit=0.3)
test_evaluator = val_evaluator
custom_hooks = [
    dict(type='EfficientADStatsHook', map_norm_dataloader=map_norm_dataloader)
]
