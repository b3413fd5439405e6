# densekit's synthetic 3D phantom-organ CT (the embedded default: no
# download), written in TransUNet's Synapse layout by
#   python tools/data/make_synthetic.py phantom --out data/synthetic_phantom
# (12 training volumes = 288 npz slices, 4 test volumes, 24 x 128 x 128,
# 4 organs). Read by densekit.SynapseDataset with the phantom classes
# (densekit.datasets.synthetic.PHANTOM_METAINFO, repeated here because a
# config cannot import it). The pipelines are the synapse base's (less
# the flips, below) at the phantom's native 128 x 128 (Resize is then the
# identity; it keeps the two-step test pipeline, and a test may shrink
# img_scale). The h5 test volumes carry their spacing (3.0, 1.5, 1.5) mm,
# so HD95 is in mm.
dataset_type = 'densekit.SynapseDataset'
data_root = 'data/synthetic_phantom'
img_scale = (128, 128)
phantom_metainfo = dict(
    classes=('background', 'liver', 'right_kidney', 'left_kidney',
             'spleen'),
    palette=[[0, 0, 0], [255, 0, 255], [0, 255, 255], [255, 0, 0],
             [255, 255, 0]])
medical_meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'volume_id', 'slice_index',
                     'num_slices', 'spacing')  # = MEDICAL_META_KEYS
# TransUNet's augmentation without its flips: the phantom's right and left
# kidney are the same ellipsoid at mirrored places, told apart by their
# side only, so a flip would give one kidney the other's label (on real CT
# the anatomy around them disambiguates). Rotations of +-20 degrees as
# TransUNet's random_rotate.
train_augment = dict(
    type='RandomRotate', prob=0.5, degree=20, pad_val=0, seg_pad_val=0)
train_pipeline = [
    dict(type='densekit.LoadMedicalSlice', num_channels=1),
    train_augment,
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
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        metainfo=phantom_metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test_vol',
        metainfo=phantom_metainfo,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='densekit.VolumeSegMetric', spacing_from_meta=True)
test_evaluator = val_evaluator
