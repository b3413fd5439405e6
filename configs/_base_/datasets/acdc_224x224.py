# ACDC cardiac cine-MRI (RV, myocardium, LV + background) from the NIfTI
# release (densekit.ACDCDataset):
#   data/acdc/training/patient<NNN>/patient<NNN>_frame<NN>[_gt].nii.gz
#   data/acdc/testing/...   (the 2022 release: data_root='data/ACDC/database')
# One sample per short-axis slice of the ED and ES frames; each volume is
# min-max normalised to [0, 1] (HiLab-git/SSL4MIS
# code/dataloaders/acdc_data_processing.py, the slices the 2D U-Net
# baselines train on).
#
# Training augmentation as the synapse base (TransUNet's RandomGenerator,
# which SSL4MIS's code/dataloaders/dataset.py shares), resized to 224 x 224
# (Swin-Unet's ACDC size; SSL4MIS uses 256). Testing: every slice of the
# test frames at 224, scored at the original size per volume. Trains on
# the 100 'training' patients and tests on the 50 'testing' ones; the
# 70/10/20 split of the papers is ACDCDataset(patients=<list file>).
# spacing_from_meta=False: HD95 in voxels, as the published tables.
dataset_type = 'densekit.ACDCDataset'
data_root = 'data/acdc'
img_scale = (224, 224)
medical_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'volume_id', 'slice_index',
                     'num_slices', 'spacing')  # = MEDICAL_META_KEYS
transunet_augment = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='RandomRotFlip', rotate_prob=0.0, flip_prob=1.0)],
        [dict(type='RandomRotate', prob=0.5, degree=20, pad_val=0,
              seg_pad_val=0)],
    ],
    prob=[0.5, 0.5])
train_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=1),
    transunet_augment,
    dict(type='Resize', scale=img_scale, keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackSegInputs', meta_keys=medical_meta_keys)
]
test_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=1, with_seg=False),
    dict(type='Resize', scale=img_scale, keep_ratio=False,
         interpolation='bicubic'),
    dict(type='densekit.LoadMedicalSlice', with_img=False),
    dict(type='PackSegInputs', meta_keys=medical_meta_keys)
]
train_dataloader = dict(
    batch_size=24,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='training',
        intensity_norm='minmax',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='testing',
        intensity_norm='minmax',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='densekit.VolumeSegMetric', spacing_from_meta=False)
test_evaluator = val_evaluator
