# The bundled synthetic anomaly set (textures with scratches, blobs and
# colour spots; tools/data/make_synthetic.py anomaly) in MVTec AD's layout:
#   data/synthetic_anomaly/texture/{train/good,test/<defect>,ground_truth/<defect>}
# read by the real MVTec AD loader (mvtec_ad.py, moved to this root and
# category), one worker per loader, and no penalty-image folder
# (synthetic penalty images, see densekit.LoadPenaltyImage).
_base_ = './mvtec_ad.py'
data_root = 'data/synthetic_anomaly'
category = 'texture'
penalty_img_dir = None  # synthetic penalty images (LoadPenaltyImage warns)

# lists replace wholesale: the train pipeline is restated for its img_dir,
# the statistics hook for its loader's root
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({{_base_.img_size}}, {{_base_.img_size}}),
         keep_ratio=False),
    dict(type='LoadPenaltyImage', img_dir=penalty_img_dir,
         size={{_base_.img_size}}, grayscale_prob=0.3),
    dict(type='PackAnomalyInputs')
]
train_dataloader = dict(
    num_workers=1,
    dataset=dict(
        data_root=data_root, category=category, pipeline=train_pipeline))
map_norm_dataloader = dict(
    batch_size=1,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type={{_base_.dataset_type}}, split='train', train_val_split=0.1,
        subset='val', pipeline={{_base_.normal_pipeline}},
        data_root=data_root, category=category))
val_dataloader = dict(
    num_workers=1, dataset=dict(data_root=data_root, category=category))
test_dataloader = val_dataloader
custom_hooks = [
    dict(type='EfficientADStatsHook', map_norm_dataloader=map_norm_dataloader)
]
