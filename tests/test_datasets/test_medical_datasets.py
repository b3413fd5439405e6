"""Medical slice data: SynapseDataset and ACDCDataset on tiny fixtures written
in each real format (TransUNet npz slices and .npy.h5 volumes, ACDC NIfTI),
LoadMedicalSlice, their error messages, the NIfTI -> slices converter and its
CLI, the phantom generator and its make_synthetic sub-command, and a
LoadMedicalSlice -> Resize -> PackSegInputs pipeline through the dataset."""
import importlib.util
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

from densekit.datasets import (ACDC_CLASSES, MEDICAL_META_KEYS,
                               PHANTOM_CLASSES, PHANTOM_METAINFO,
                               SYNAPSE_CLASSES, ACDCDataset, SynapseDataset)
from densekit.datasets.converters import (SYNAPSE_LABEL_MAP,
                                          convert_nifti_to_slices,
                                          find_acdc_pairs,
                                          find_synapse_raw_pairs)
from densekit.datasets.synthetic import (generate_phantom_synapse,
                                         phantom_metainfo,
                                         render_phantom_volume)
from densekit.datasets.transforms import LoadMedicalSlice
from densekit.registry import DATASETS, TRANSFORMS

h5py = pytest.importorskip('h5py')
nib = pytest.importorskip('nibabel')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 6, 8  # fixture slice size


def _load_tool(rel_path, name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO_ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(seed, shape):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _label(seed, shape, high=9):
    return np.random.default_rng(seed).integers(0, high, shape,
                                                dtype=np.uint8)


# ----------------------------------------------------------------------------
# Synapse (TransUNet layout)


def _write_h5(path, image, label, spacing=None):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with h5py.File(path, 'w') as f:
        f.create_dataset('image', data=image)
        f.create_dataset('label', data=label)
        if spacing is not None:
            f.attrs['spacing'] = np.asarray(spacing)


@pytest.fixture
def synapse_root(tmp_path):
    """train: case0005 (3 slices), case0006 (2); test: case0001 (D=4, with
    a spacing attribute), case0002 (D=3, none); TransUNet's lists (in an
    order that is not sorted)."""
    root = tmp_path / 'Synapse'
    (root / 'train_npz').mkdir(parents=True)
    train = [('case0006', 2), ('case0005', 3)]
    names = []
    for v, (case, depth) in enumerate(train):
        for z in range(depth):
            name = f'{case}_slice{z:03d}'
            # TransUNet's released slices: float image, float label
            np.savez(root / 'train_npz' / (name + '.npz'),
                     image=_image(10 * v + z, (H, W)),
                     label=_label(10 * v + z, (H, W)).astype(np.float32))
            names.append(name)
    _write_h5(str(root / 'test_vol_h5' / 'case0001.npy.h5'),
              _image(100, (4, H, W)), _label(100, (4, H, W)),
              spacing=(5.0, 0.75, 0.75))
    _write_h5(str(root / 'test_vol_h5' / 'case0002.npy.h5'),
              _image(101, (3, H, W)),
              _label(101, (3, H, W)).astype(np.float32))
    lists = root / 'lists' / 'lists_Synapse'
    lists.mkdir(parents=True)
    (lists / 'train.txt').write_text('\n'.join(names) + '\n')
    (lists / 'test_vol.txt').write_text('case0002\ncase0001\n')
    return root


def test_synapse_train_lists_slices_from_list(synapse_root):
    ds = DATASETS.build(dict(type='densekit.SynapseDataset',
                             data_root=str(synapse_root)))
    assert ds.metainfo['classes'] == SYNAPSE_CLASSES
    assert len(SYNAPSE_CLASSES) == 9 and not ds.test_mode
    assert len(ds) == 5
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # list order (case0006 first), volume and slice from the file name
    assert [(i['volume_id'], i['slice_index']) for i in infos] == [
        ('case0006', 0), ('case0006', 1), ('case0005', 0), ('case0005', 1),
        ('case0005', 2)]
    assert [i['num_slices'] for i in infos] == [2, 2, 3, 3, 3]
    info = infos[2]
    assert info['img_path'] == str(synapse_root / 'train_npz' /
                                   'case0005_slice000.npz')
    assert info['seg_map_path'] == info['img_path']
    assert info['spacing'] is None and info['intensity_norm'] is None
    assert info['num_classes'] == 9


def test_synapse_train_globs_without_lists(synapse_root):
    (synapse_root / 'lists' / 'lists_Synapse' / 'train.txt').unlink()
    # slice 10 sorts before slice 2 as a string; listing must be numeric
    np.savez(synapse_root / 'train_npz' / 'case0005_slice010.npz',
             image=_image(0, (H, W)), label=_label(0, (H, W)))
    ds = SynapseDataset(str(synapse_root))
    assert [(i['volume_id'], i['slice_index'])
            for i in map(ds.get_data_info, range(len(ds)))] == [
                ('case0005', 0), ('case0005', 1), ('case0005', 2),
                ('case0005', 10), ('case0006', 0), ('case0006', 1)]
    assert len(SynapseDataset(str(synapse_root), list_dir=None)) == 6


def test_synapse_test_one_sample_per_slice(synapse_root):
    ds = SynapseDataset(str(synapse_root), split='test_vol')
    assert ds.test_mode and len(ds) == 3 + 4
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [(i['volume_id'], i['slice_index'], i['num_slices'])
            for i in infos] == [('case0002', z, 3) for z in range(3)] + [
                ('case0001', z, 4) for z in range(4)]
    assert infos[0]['img_path'].endswith('test_vol_h5/case0002.npy.h5')
    # spacing: the h5 attribute, else None
    assert infos[0]['spacing'] is None
    assert infos[3]['spacing'] == (5.0, 0.75, 0.75)
    # the spacing argument wins: one for all, or per volume, or a JSON file
    ds = SynapseDataset(str(synapse_root), split='test',
                        spacing=(2.0, 1.0, 1.0))
    assert {ds.get_data_info(i)['spacing'] for i in range(7)} == {
        (2.0, 1.0, 1.0)}
    (synapse_root / 'spacing.json').write_text(
        json.dumps({'case0002': [3, 0.5, 0.5]}))
    ds = SynapseDataset(str(synapse_root), split='test',
                        spacing='spacing.json')
    assert ds.get_data_info(0)['spacing'] == (3.0, 0.5, 0.5)
    assert ds.get_data_info(3)['spacing'] == (5.0, 0.75, 0.75)  # attribute


@pytest.mark.parametrize('num_channels', [3, 1])
def test_load_synapse_slices(synapse_root, num_channels):
    load = TRANSFORMS.build(dict(type='densekit.LoadMedicalSlice',
                                 num_channels=num_channels))
    train = SynapseDataset(str(synapse_root))
    results = load(train.get_data_info(2))  # case0005_slice000
    with np.load(synapse_root / 'train_npz' / 'case0005_slice000.npz') as d:
        image, label = d['image'], d['label']
    assert results['img'].shape == (H, W, num_channels)
    assert results['img'].dtype == np.float32
    for c in range(num_channels):
        np.testing.assert_array_equal(results['img'][..., c], image)
    assert results['gt_seg_map'].dtype == np.uint8
    np.testing.assert_array_equal(results['gt_seg_map'], label)
    assert results['ori_shape'] == results['img_shape'] == (H, W)
    assert results['seg_fields'] == ['gt_seg_map']
    assert (results['volume_id'], results['slice_index'],
            results['num_slices']) == ('case0005', 0, 3)

    test = SynapseDataset(str(synapse_root), split='test')
    results = load(test.get_data_info(5))  # case0001 slice 2
    with h5py.File(synapse_root / 'test_vol_h5' / 'case0001.npy.h5') as f:
        image, label = f['image'][2], f['label'][2]
    np.testing.assert_array_equal(results['img'][..., 0], image)
    np.testing.assert_array_equal(results['gt_seg_map'], label)
    assert results['spacing'] == (5.0, 0.75, 0.75)


def test_load_medical_slice_fills_volume_keys_and_caches(synapse_root):
    load = LoadMedicalSlice(cache_size=1)
    # without a dataset: volume keys come from the file name
    results = load(dict(img_path=str(synapse_root / 'train_npz' /
                                     'case0006_slice001.npz')))
    assert (results['volume_id'], results['slice_index'],
            results['num_slices'], results['spacing']) == ('case0006', 1,
                                                           None, None)
    vol1 = str(synapse_root / 'test_vol_h5' / 'case0001.npy.h5')
    vol2 = str(synapse_root / 'test_vol_h5' / 'case0002.npy.h5')
    results = load(dict(img_path=vol1, slice_index=3))
    assert (results['volume_id'], results['num_slices'],
            results['spacing']) == ('case0001', 4, (5.0, 0.75, 0.75))
    assert load.cached_volumes() == (vol1, )
    load(dict(img_path=vol2, slice_index=0))
    assert load.cached_volumes() == (vol2, )  # LRU of one volume
    # picklable with open volumes (spawned workers); the copy starts empty
    clone = pickle.loads(pickle.dumps(load))
    assert clone.cached_volumes() == ()
    assert clone(dict(img_path=vol2, slice_index=2))['img'].shape == (H, W,
                                                                      3)


def test_synapse_errors(synapse_root, tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError,
                       match=f'data_root {missing} does not exist.*'
                       'train_npz'):
        SynapseDataset(str(missing))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError,
                       match=f'{empty / "test_vol_h5"} does not exist; it '
                       'should hold the test volumes'):
        SynapseDataset(str(empty), split='test')
    with pytest.raises(ValueError, match="split must be one of.*'val'"):
        SynapseDataset(str(synapse_root), split='val')
    with pytest.raises(FileNotFoundError, match='custom/train.txt does not '
                       'exist'):
        SynapseDataset(str(synapse_root), list_dir='custom')
    with pytest.raises(ValueError, match='spacing must be None or three'):
        SynapseDataset(str(synapse_root), spacing=(1.0, -1.0, 1.0))

    lists = synapse_root / 'lists' / 'lists_Synapse'
    (lists / 'test_vol.txt').write_text('case0001\ncase0099\n')
    with pytest.raises(FileNotFoundError,
                       match=r"test_vol.txt line 2 lists 'case0099' but "
                       r'.*case0099.npy.h5 does not exist'):
        SynapseDataset(str(synapse_root), split='test')
    (lists / 'test_vol.txt').write_text('case0001\n')
    _write_h5(str(synapse_root / 'test_vol_h5' / 'case0001.npy.h5'),
              np.zeros((4, H, W), np.float32), np.zeros((4, H, W + 1)))
    with pytest.raises(ValueError, match=r'case0001.npy.h5: image shape '
                       r'\(4, 6, 8\) and label shape \(4, 6, 9\) differ'):
        SynapseDataset(str(synapse_root), split='test')
    with h5py.File(synapse_root / 'test_vol_h5' / 'case0001.npy.h5',
                   'w') as f:
        f.create_dataset('img', data=np.zeros((4, H, W)))
    with pytest.raises(ValueError, match=r"no dataset\(s\) \['image', "
                       r"'label'\].*found \['img'\]"):
        SynapseDataset(str(synapse_root), split='test')

    (lists / 'train.txt').write_text('case0005_slice000\nbad_name\n')
    np.savez(synapse_root / 'train_npz' / 'bad_name.npz', image=np.zeros(2))
    with pytest.raises(ValueError, match=r'bad_name.npz \(from .*train.txt '
                       r'line 2\) is not named <case>_slice<NNN>.npz'):
        SynapseDataset(str(synapse_root))


def test_load_medical_slice_errors(synapse_root):
    load = LoadMedicalSlice()
    npz = synapse_root / 'train_npz' / 'case0005_slice001.npz'
    np.savez(npz, image=np.zeros((H, W)), label=np.full((H, W), 9))
    with pytest.raises(ValueError, match=f'{npz}: label values \\[9\\] are '
                       'outside the 9 classes 0..8'):
        load(dict(img_path=str(npz), num_classes=9))
    np.savez(npz, image=np.zeros((H, W)), label=np.full((H, W), 0.5))
    with pytest.raises(ValueError, match=f'{npz}: label holds non-integer '
                       'values \\[0.5\\]'):
        load(dict(img_path=str(npz)))
    np.savez(npz, image=np.zeros((H, W)), label=np.zeros((H, W + 1)))
    with pytest.raises(ValueError, match=f'{npz}: image shape \\(6, 8\\) and '
                       'label shape \\(6, 9\\) differ'):
        load(dict(img_path=str(npz)))
    np.savez(npz, img=np.zeros((H, W)))
    with pytest.raises(ValueError, match=r"no key\(s\) \['image', 'label'\]"
                       r".*found \['img'\]"):
        load(dict(img_path=str(npz)))
    with pytest.raises(FileNotFoundError, match='nope.npz does not exist'):
        load(dict(img_path=str(synapse_root / 'nope.npz')))
    h5 = str(synapse_root / 'test_vol_h5' / 'case0001.npy.h5')
    with pytest.raises(IndexError, match='slice_index 4 is out of range for '
                       f'{h5}, which has 4 slices'):
        load(dict(img_path=h5, slice_index=4))
    with pytest.raises(ValueError, match='slice 1 of "label" values'):
        LoadMedicalSlice(num_classes=2)(dict(img_path=h5, slice_index=1))
    with pytest.raises(ValueError, match='unknown medical image format'):
        load(dict(img_path='x.png'))
    with pytest.raises(ValueError, match='num_channels must be 1 or 3'):
        LoadMedicalSlice(num_channels=2)


def test_missing_optional_packages_name_the_fix(synapse_root, monkeypatch):
    monkeypatch.setitem(sys.modules, 'h5py', None)  # import fails
    with pytest.raises(ImportError, match='pip install h5py'):
        SynapseDataset(str(synapse_root), split='test')
    monkeypatch.setitem(sys.modules, 'nibabel', None)
    nii = synapse_root / 'a.nii.gz'
    nii.write_bytes(b'')
    with pytest.raises(ImportError, match='pip install nibabel'):
        LoadMedicalSlice()(dict(img_path=str(nii), slice_index=0,
                                seg_map_path=str(nii)))


# ----------------------------------------------------------------------------
# ACDC (NIfTI)

# A rotated, anisotropic affine: zooms (x, y, z) = (1.5, 1.25, 8.0) mm.
_ROT = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3),
                                                  np.cos(0.3), 0], [0, 0, 1]])
ACDC_AFFINE = np.eye(4)
ACDC_AFFINE[:3, :3] = _ROT @ np.diag([1.5, 1.25, 8.0])
ACDC_AFFINE[:3, 3] = (-120.0, 35.5, 12.0)


def _write_nii(path, data, affine=ACDC_AFFINE):
    os.makedirs(osp.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


@pytest.fixture
def acdc_root(tmp_path):
    """training/patient001 frames 01 and 12 ((x, y, z) = (8, 6, 3)) and
    patient002 frame 01 ((8, 6, 2)), with a 4d cine and Info.cfg."""
    root = tmp_path / 'ACDC'
    volumes = {}
    for patient, frame, depth in (('patient001', 1, 3), ('patient001', 12, 3),
                                  ('patient002', 1, 2)):
        folder = root / 'training' / patient
        stem = f'{patient}_frame{frame:02d}'
        seed = frame + 100 * int(patient[-1])
        image = (_image(seed, (W, H, depth)) * 900).astype(np.int16)
        label = _label(seed, (W, H, depth), high=4)
        _write_nii(folder / (stem + '.nii.gz'), image)
        _write_nii(folder / (stem + '_gt.nii.gz'), label)
        volumes[stem] = (image, label)
    _write_nii(root / 'training' / 'patient001' / 'patient001_4d.nii.gz',
               np.zeros((W, H, 3, 2), np.int16))
    (root / 'training' / 'patient001' / 'Info.cfg').write_text('ED: 1\n')
    return root, volumes


def test_acdc_lists_slices_with_header_spacing(acdc_root):
    root, _ = acdc_root
    ds = DATASETS.build(dict(type='densekit.ACDCDataset',
                             data_root=str(root)))
    assert ds.metainfo['classes'] == ACDC_CLASSES and not ds.test_mode
    assert len(ds) == 3 + 3 + 2
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [(i['volume_id'], i['slice_index'], i['num_slices'])
            for i in infos] == (
                [('patient001_frame01', z, 3) for z in range(3)] +
                [('patient001_frame12', z, 3) for z in range(3)] +
                [('patient002_frame01', z, 2) for z in range(2)])
    # header zooms (x, y, z) = (1.5, 1.25, 8) reordered to (z, y, x)
    assert all(i['spacing'] == pytest.approx((8.0, 1.25, 1.5))
               for i in infos)
    assert infos[0]['seg_map_path'].endswith(
        'patient001/patient001_frame01_gt.nii.gz')
    assert infos[0]['intensity_norm'] == 'minmax'
    assert infos[0]['num_classes'] == 4
    ds = ACDCDataset(str(root), patients=['patient002'])
    assert len(ds) == 2
    (root / 'val.txt').write_text('patient001\n')
    assert len(ACDCDataset(str(root), patients='val.txt')) == 6


@pytest.mark.parametrize('norm', ['minmax', 'zscore', None])
def test_load_acdc_slices(acdc_root, norm):
    root, volumes = acdc_root
    ds = ACDCDataset(str(root), intensity_norm=norm)
    load = LoadMedicalSlice()
    image, label = volumes['patient001_frame12']
    vol = image.astype(np.float64)
    if norm == 'minmax':
        expected = (vol - vol.min()) / (vol.max() - vol.min())
    elif norm == 'zscore':
        expected = (vol - vol.mean()) / vol.std()
    else:
        expected = vol
    for z in range(3):
        results = load(ds.get_data_info(3 + z))
        # (D, H, W) slice z is the NIfTI array's [:, :, z] transposed
        np.testing.assert_allclose(results['img'][..., 0],
                                   expected[:, :, z].T, rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_array_equal(results['gt_seg_map'],
                                      label[:, :, z].T)
        assert results['img'].shape == (H, W, 3)
        assert results['spacing'] == pytest.approx((8.0, 1.25, 1.5))


def test_acdc_errors(acdc_root, tmp_path):
    root, _ = acdc_root
    with pytest.raises(FileNotFoundError, match='testing does not exist.*'
                       'patient<NNN>_frame<NN>_gt.nii.gz'):
        ACDCDataset(str(root), split='testing')
    with pytest.raises(FileNotFoundError, match=r"patient folder\(s\) "
                       r"\['patient009'\] not found"):
        ACDCDataset(str(root), patients=['patient009'])
    with pytest.raises(ValueError, match='intensity_norm must be None or '
                       "one of \\('minmax', 'zscore'\\), but got 'max'"):
        ACDCDataset(str(root), intensity_norm='max')
    folder = root / 'training' / 'patient002'
    _write_nii(folder / 'patient002_frame01_gt.nii.gz',
               np.zeros((W, H + 1, 2), np.uint8))
    with pytest.raises(ValueError, match=r'patient002_frame01.nii.gz '
                       r'\(image\) and .*patient002_frame01_gt.nii.gz '
                       r'\(label\): image shape \(2, 6, 8\) and label shape '
                       r'\(2, 7, 8\) differ'):
        ACDCDataset(str(root))
    _write_nii(folder / 'patient002_frame01_gt.nii.gz',
               np.full((W, H, 2), 7, np.uint8))
    ds = ACDCDataset(str(root), patients=['patient002'])
    with pytest.raises(ValueError, match='patient002_frame01_gt.nii.gz: '
                       'slice 0 of the label volume values \\[7\\] are '
                       'outside the 4 classes 0..3'):
        LoadMedicalSlice()(ds.get_data_info(0))
    os.remove(folder / 'patient002_frame01_gt.nii.gz')
    with pytest.raises(FileNotFoundError, match='patient002_frame01.nii.gz '
                       'has no label; expected .*patient002_frame01_gt'):
        ACDCDataset(str(root))


# ----------------------------------------------------------------------------
# NIfTI -> TransUNet slices


@pytest.fixture
def synapse_raw(tmp_path):
    """RawData/Training/img/img000{1,2}.nii.gz with 13-organ raw labels."""
    src = tmp_path / 'RawData' / 'Training'
    volumes = {}
    for case, depth in ((1, 3), (2, 2)):
        rng = np.random.default_rng(case)
        hu = rng.uniform(-400, 500, (W, H, depth)).astype(np.float32)
        raw = rng.integers(0, 14, (W, H, depth)).astype(np.uint8)
        affine = np.diag([0.7, 0.7, 2.5 * case, 1.0])
        _write_nii(src / 'img' / f'img{case:04d}.nii.gz', hu, affine)
        _write_nii(src / 'label' / f'label{case:04d}.nii.gz', raw, affine)
        volumes[f'case{case:04d}'] = (hu, raw)
    return src, volumes


def test_converter_round_trip(synapse_raw, tmp_path):
    src, volumes = synapse_raw
    pairs = find_synapse_raw_pairs(str(src))
    assert [p.volume_id for p in pairs] == ['case0001', 'case0002']
    out = tmp_path / 'Synapse'
    info = convert_nifti_to_slices(pairs, str(out), test_ids=['case0002'],
                                   label_map=SYNAPSE_LABEL_MAP,
                                   num_classes=9)
    assert info['train_ids'] == ('case0001', ) and info['test_ids'] == (
        'case0002', )
    assert info['num_train_slices'] == 3
    assert info['spacing']['case0002'] == pytest.approx((5.0, 0.7, 0.7))
    lut = np.zeros(14, np.uint8)
    for raw_id, new in SYNAPSE_LABEL_MAP.items():
        lut[raw_id] = new

    def expected(case):
        hu, raw = volumes[case]
        img = (np.clip(hu, -125, 275) + 125) / 400
        return img.transpose(2, 1, 0), lut[raw].transpose(2, 1, 0)

    load = LoadMedicalSlice(num_channels=1)
    train = SynapseDataset(str(out))  # reads the converter's lists
    img, lab = expected('case0001')
    assert len(train) == 3
    for z in range(3):
        info_z = train.get_data_info(z)
        assert (info_z['volume_id'], info_z['slice_index']) == ('case0001',
                                                                z)
        results = load(info_z)
        np.testing.assert_allclose(results['img'][..., 0], img[z],
                                   atol=1e-6)
        np.testing.assert_array_equal(results['gt_seg_map'], lab[z])
    test = SynapseDataset(str(out), split='test')
    img, lab = expected('case0002')
    assert len(test) == 2
    assert test.get_data_info(0)['spacing'] == pytest.approx((5.0, 0.7, 0.7))
    for z in range(2):
        results = load(test.get_data_info(z))
        np.testing.assert_allclose(results['img'][..., 0], img[z],
                                   atol=1e-6)
        np.testing.assert_array_equal(results['gt_seg_map'], lab[z])
    # raw organs outside TransUNet's 8 (e.g. 5 esophagus) became background
    assert set(np.unique(lab)) <= set(range(9))
    train = SynapseDataset(str(out), spacing='spacing.json')
    assert train.get_data_info(0)['spacing'] == pytest.approx(
        (2.5, 0.7, 0.7))

    with pytest.raises(FileExistsError, match='pass overwrite=True'):
        convert_nifti_to_slices(pairs, str(out))
    with pytest.raises(ValueError, match=r"test_ids \['case0009'\] are not "
                       'among the volumes'):
        convert_nifti_to_slices(pairs, str(out), test_ids=['case0009'],
                                overwrite=True)
    with pytest.raises(ValueError, match='label values .* outside the 9 '
                       'classes'):  # raw labels 0..13 without the mapping
        convert_nifti_to_slices(pairs, str(out), num_classes=9,
                                overwrite=True)


def test_converter_cli_and_acdc_layout(acdc_root, synapse_raw, tmp_path,
                                       capsys):
    tool = _load_tool('tools/dataset_converters/nifti_to_slices.py',
                      'nifti_to_slices')
    root, volumes = acdc_root
    out = tmp_path / 'acdc_slices'
    assert tool.main([str(root / 'training'), str(out), '--layout', 'acdc',
                      '--test-ids', 'patient002_frame01']) == 0
    assert sorted(os.listdir(out / 'test_vol_h5')) == [
        'patient002_frame01.npy.h5']
    assert len(os.listdir(out / 'train_npz')) == 6
    ds = SynapseDataset(str(out), split='test',
                        metainfo=dict(classes=ACDC_CLASSES))
    image, label = volumes['patient002_frame01']
    results = LoadMedicalSlice()(ds.get_data_info(1))
    vol = image.astype(np.float64)
    np.testing.assert_allclose(results['img'][..., 0],
                               ((vol - vol.min()) / np.ptp(vol))[:, :, 1].T,
                               atol=1e-6)
    np.testing.assert_array_equal(results['gt_seg_map'], label[:, :, 1].T)
    assert results['spacing'] == pytest.approx((8.0, 1.25, 1.5))
    assert [p.volume_id for p in find_acdc_pairs(str(root / 'training'))
            ] == ['patient001_frame01', 'patient001_frame12',
                  'patient002_frame01']

    src, _ = synapse_raw
    assert tool.main([str(src), str(tmp_path / 'syn')]) == 0
    assert 'TransUNet\'s test cases present (2 of 12)' in \
        capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / 'syn' / 'test_vol_h5')) == [
        'case0001.npy.h5', 'case0002.npy.h5']
    assert tool.main([str(tmp_path / 'none'), str(tmp_path / 'x')]) == 1
    assert 'img does not exist; the layout expected' in \
        capsys.readouterr().err


# ----------------------------------------------------------------------------
# Synthetic phantoms

SMALL = dict(num_train_volumes=2, num_test_volumes=2, size=(8, 32, 32))


def test_phantom_layout_deterministic_and_consistent(tmp_path):
    out_a, out_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    info = generate_phantom_synapse(out_a, **SMALL)
    assert not info['reused'] and info['classes'] == PHANTOM_CLASSES
    assert PHANTOM_CLASSES == ('background', 'liver', 'right_kidney',
                               'left_kidney', 'spleen')
    assert sorted(os.listdir(osp.join(out_a, 'test_vol_h5'))) == [
        'case5001.npy.h5', 'case5002.npy.h5']
    assert len(os.listdir(osp.join(out_a, 'train_npz'))) == 16
    lists = osp.join(out_a, 'lists', 'lists_Synapse')
    assert open(osp.join(lists, 'test_vol.txt')).read().split() == [
        'case5001', 'case5002']
    assert open(osp.join(lists, 'train.txt')).read().split()[:2] == [
        'case0001_slice000', 'case0001_slice001']
    assert generate_phantom_synapse(out_a, **SMALL)['reused']
    generate_phantom_synapse(out_b, **SMALL)
    for rel in ('train_npz/case0002_slice005.npz',
                'test_vol_h5/case5002.npy.h5'):
        a, b = (LoadMedicalSlice()(dict(img_path=osp.join(o, rel),
                                        slice_index=5))
                for o in (out_a, out_b))
        np.testing.assert_array_equal(a['img'], b['img'])
        np.testing.assert_array_equal(a['gt_seg_map'], b['gt_seg_map'])

    # the files hold the volumes render_phantom_volume draws from the
    # per-volume generator: npz slices stack to the same labels as h5
    for split_index, case in ((0, 'case0002'), (1, 'case5001')):
        image, label = render_phantom_volume(
            np.random.default_rng([0, split_index, int(case[-1]) - 1]),
            SMALL['size'])
        assert image.dtype == np.float32 and label.dtype == np.uint8
        assert 0 <= image.min() and image.max() <= 1
        assert set(np.unique(label)) == set(range(5))  # every organ
        if split_index == 0:
            slices = [np.load(osp.join(out_a, 'train_npz',
                                       f'{case}_slice{z:03d}.npz'))
                      for z in range(8)]
            got_img = np.stack([s['image'] for s in slices])
            got_lab = np.stack([s['label'] for s in slices])
        else:
            with h5py.File(osp.join(out_a, 'test_vol_h5',
                                    case + '.npy.h5')) as f:
                got_img, got_lab = f['image'][()], f['label'][()]
                assert tuple(f.attrs['spacing']) == (3.0, 1.5, 1.5)
        np.testing.assert_array_equal(got_img, image)
        np.testing.assert_array_equal(got_lab, label)
    # a different seed gives different volumes
    image_s1, _ = render_phantom_volume(np.random.default_rng([1, 0, 1]),
                                        SMALL['size'])
    assert not np.array_equal(image_s1, image)

    ds = SynapseDataset(out_a, split='test', metainfo=PHANTOM_METAINFO)
    assert len(ds) == 16 and ds.get_data_info(0)['spacing'] == (3.0, 1.5,
                                                                1.5)
    ds = SynapseDataset(out_a, metainfo=PHANTOM_METAINFO,
                        spacing='spacing.json')
    assert len(ds) == 16 and ds.get_data_info(0)['spacing'] == (3.0, 1.5,
                                                                1.5)


def test_phantom_organs_touch_and_options(tmp_path):
    # neighbouring organs share faces in most volumes
    touching = 0
    for i in range(4):
        _, label = render_phantom_volume(np.random.default_rng([0, 0, i]),
                                         (12, 48, 48), num_organs=6)
        assert set(np.unique(label)) == set(range(7))
        a, b = label[:, :, :-1], label[:, :, 1:]
        touching += bool(np.any((a > 0) & (b > 0) & (a != b)))
    assert touching >= 3
    assert phantom_metainfo(2)['classes'] == ('background', 'liver',
                                              'right_kidney')
    with pytest.raises(ValueError, match='num_organs must be an int in '
                       '1..6, but got 7'):
        generate_phantom_synapse(str(tmp_path / 'x'), num_organs=7)
    with pytest.raises(ValueError, match='size must be three ints'):
        generate_phantom_synapse(str(tmp_path / 'x'), size=(8, 8, 8))
    foreign = tmp_path / 'foreign'
    (foreign / 'train_npz').mkdir(parents=True)
    (foreign / 'train_npz' / 'mine.npz').write_bytes(b'')
    with pytest.raises(FileExistsError, match='no synthetic_meta.json'):
        generate_phantom_synapse(str(foreign), **SMALL)


def test_make_synthetic_phantom(tmp_path, capsys):
    tool = _load_tool('tools/data/make_synthetic.py', 'make_synthetic')
    out = str(tmp_path / 'phantom')
    tool.main(['phantom', '--out', out, '--num-train', '1', '--num-test',
               '1', '--size', '4', '32', '32', '--num-organs', '3'])
    text = capsys.readouterr().out
    assert 'generated in' in text and 'liver, right_kidney, left_kidney' \
        in text
    assert len(os.listdir(osp.join(out, 'train_npz'))) == 4
    assert tool.parse_args(['phantom']).out == 'data/synthetic_phantom'


# ----------------------------------------------------------------------------
# Pipeline


@pytest.mark.parametrize('split', ['train', 'test'])
def test_pipeline_resize_pack(synapse_root, split):
    from mmengine.dataset import pseudo_collate
    from mmseg.models import SegDataPreProcessor

    pipeline = [
        dict(type='densekit.LoadMedicalSlice'),
        dict(type='Resize', scale=(224, 224), keep_ratio=False),
        dict(type='mmseg.PackSegInputs', meta_keys=MEDICAL_META_KEYS),
    ]
    ds = SynapseDataset(str(synapse_root), split=split, pipeline=pipeline)
    index = 4 if split == 'train' else 5
    packed = ds[index]
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.shape == (3, 224, 224) and inputs.dtype == torch.float32
    assert sample.gt_sem_seg.data.shape == (1, 224, 224)
    meta = sample.metainfo
    info = ds.get_data_info(index)
    for key in ('volume_id', 'slice_index', 'num_slices', 'spacing'):
        assert meta[key] == info[key], key
    assert meta['ori_shape'] == (H, W) and meta['img_shape'] == (224, 224)
    # resized with nearest neighbour: only labels of the slice
    raw = LoadMedicalSlice()(ds.get_data_info(index))
    assert set(sample.gt_sem_seg.data.unique().tolist()) <= set(
        np.unique(raw['gt_seg_map']).tolist())
    assert float(inputs.min()) >= 0 and float(inputs.max()) <= 1
    # mmseg's preprocessor keeps float [0, 1] inputs with mean/std None
    pre = SegDataPreProcessor(mean=None, std=None, bgr_to_rgb=False,
                              size=(224, 224))
    batch = pre(pseudo_collate([ds[index], ds[index - 1]]), training=True)
    assert batch['inputs'].shape == (2, 3, 224, 224)
    torch.testing.assert_close(batch['inputs'][0], inputs)


def test_test_pipeline_keeps_ground_truth_at_original_size(synapse_root):
    pipeline = [
        dict(type='densekit.LoadMedicalSlice', with_seg=False),
        dict(type='Resize', scale=(224, 224), keep_ratio=False),
        dict(type='densekit.LoadMedicalSlice', with_img=False),
        dict(type='mmseg.PackSegInputs', meta_keys=MEDICAL_META_KEYS),
    ]
    ds = SynapseDataset(str(synapse_root), split='test', pipeline=pipeline)
    packed = ds[0]
    assert packed['inputs'].shape == (3, 224, 224)
    assert packed['data_samples'].gt_sem_seg.data.shape == (1, H, W)
    assert packed['data_samples'].metainfo['ori_shape'] == (H, W)
