# The bundled synthetic anomaly set (textures with scratches, blobs and
# colour spots; tools/data/make_synthetic.py anomaly) in MVTec AD's layout:
#   data/synthetic_anomaly/texture/{train/good,test/<defect>,ground_truth/<defect>}
# read by the real MVTec AD loader; no penalty-image folder (synthetic
# penalty images, see densekit.LoadPenaltyImage).
dataset_type = 'MVTecADDataset'
data_root = 'data/synthetic_anomaly'
category = 'texture'
img_size = 256
penalty_img_dir = None  # synthetic penalty images (LoadPenaltyImage warns)

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
    num_workers=1,
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
    num_workers=1,
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
