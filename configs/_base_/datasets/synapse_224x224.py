# Synapse multi-organ CT (8 organs + background) in TransUNet's layout:
#   data/synapse/train_npz/<case>_slice<NNN>.npz     (18 cases, 2211 slices)
#   data/synapse/test_vol_h5/<case>.npy.h5           (12 cases)
#   data/synapse/lists/lists_Synapse/{train,test_vol}.txt (optional)
# (Beckschen/TransUNet datasets/README.md; densekit.SynapseDataset). Slices
# are CT windowed to [-125, 275] HU and scaled to [0, 1] by the release.
#
# Training as TransUNet's RandomGenerator (datasets/dataset_synapse.py):
# with p = 0.5 a random rot90 + flip, otherwise with p = 0.5 a rotation in
# [-20, 20] degrees, then a resize to 224 x 224 (bicubic image, nearest
# label). mmseg's RandomRotFlip rotates the label bilinearly (mmcv.imrotate
# default), which blends organ indices at boundaries, so only its rot90 +
# flip part is used (rotate_prob=0) and the rotation is mmseg's
# RandomRotate (nearest for the label); TransUNet pads rotated labels with
# background, hence seg_pad_val=0. RandomRotate samples a real angle where
# TransUNet draws an integer, and interpolates the image bilinearly where
# TransUNet uses nearest.
#
# Testing as TransUNet's test_single_volume: every slice of every test
# volume resized to 224, the prediction resized back to the slice's original
# size (512 x 512) and scored per volume (Dice, HD95) by
# densekit.VolumeSegMetric. The label is loaded after Resize, so it stays
# at the original size (LoadMedicalSlice's two-step pipeline).
# spacing_from_meta=False: HD95 in voxels, as TransUNet's tables (its h5
# files carry no spacing; densekit's converter writes one, which True uses).
dataset_type = 'densekit.SynapseDataset'
data_root = 'data/synapse'
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
        split='train',
        pipeline=train_pipeline))
# TransUNet has no validation split: the test volumes are scored once, after
# training (val_interval = max_iters in the schedule)
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test_vol',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='densekit.VolumeSegMetric', spacing_from_meta=False)
test_evaluator = val_evaluator
