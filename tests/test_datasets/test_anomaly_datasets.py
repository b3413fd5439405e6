"""Anomaly-detection data: MVTec AD, MVTec LOCO and VisA loaders on tiny
fixtures written in each dataset's real layout, LoadAnomalyMask and
PackAnomalyInputs, the synthetic MVTec-layout generator and its CLI, and a
full LoadImageFromFile -> LoadAnomalyMask -> Resize -> PackAnomalyInputs
pipeline through MVTecADDataset."""
import hashlib
import importlib.util
import os
import os.path as osp
import re
import warnings

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from densekit.datasets import (ANOMALY_CLASSES, MVTecADDataset,
                               MVTecLOCODataset, VisADataset)
from densekit.datasets.synthetic import (ANOMALY_DEFECT_TYPES,
                                         generate_anomaly_mvtec,
                                         render_anomaly_image)
from densekit.datasets.transforms import LoadAnomalyMask, PackAnomalyInputs
from densekit.registry import DATASETS, TRANSFORMS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 6, 8  # fixture image size


def _write(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), arr), path


def _img(value=100):
    return np.full((H, W, 3), value, np.uint8)


def _mask(*boxes, shape=(H, W), value=255):
    m = np.zeros(shape, np.uint8)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = value
    return m


def _loaded(img_path, mask_path, shape=(H, W)):
    return dict(img_path=img_path, mask_path=mask_path, ori_shape=shape,
                img=np.zeros(shape + (3, ), np.uint8))


# ----------------------------------------------------------------------------
# MVTec AD


@pytest.fixture
def mvtec_root(tmp_path):
    """bottle: 10 train normals, test good x1 + broken x2 with masks."""
    cat = tmp_path / 'bottle'
    for i in range(10):
        _write(cat / 'train' / 'good' / f'{i:03d}.png', _img(i))
    _write(cat / 'test' / 'good' / '000.png', _img())
    for i in range(2):
        _write(cat / 'test' / 'broken' / f'{i:03d}.png', _img())
        _write(cat / 'ground_truth' / 'broken' / f'{i:03d}_mask.png',
               _mask((0, 2, 0, 3 + i)))
    (cat / 'license.txt').write_text('not a folder')
    return tmp_path


def test_mvtec_lists_train_and_test(mvtec_root):
    train = MVTecADDataset(data_root=str(mvtec_root), category='bottle')
    assert len(train) == 10 and not train.test_mode
    assert train.metainfo['classes'] == ANOMALY_CLASSES == ('good',
                                                            'anomalous')
    info = train.get_data_info(3)
    assert info['img_path'] == str(mvtec_root / 'bottle' / 'train' / 'good' /
                                   '003.png')
    assert (info['mask_path'], info['gt_label'], info['defect_type'],
            info['category']) == (None, 0, 'good', 'bottle')

    test = DATASETS.build(dict(type='densekit.MVTecADDataset',
                               data_root=str(mvtec_root), category='bottle',
                               split='test'))
    assert test.test_mode  # a None from a test pipeline must raise
    infos = [test.get_data_info(i) for i in range(len(test))]
    # defect folders in sorted order: broken, good
    assert [(i['defect_type'], i['gt_label']) for i in infos] == [
        ('broken', 1), ('broken', 1), ('good', 0)]
    assert infos[1]['mask_path'] == str(mvtec_root / 'bottle' /
                                        'ground_truth' / 'broken' /
                                        '001_mask.png')
    assert infos[2]['mask_path'] is None
    # a pathlib root and lazy_init work as for any mmengine dataset
    lazy = MVTecADDataset(data_root=mvtec_root, category='bottle',
                          lazy_init=True)
    assert not lazy._fully_initialized and len(lazy) == 10


def test_mvtec_train_val_split(mvtec_root):
    kw = dict(data_root=str(mvtec_root), category='bottle',
              train_val_split=0.2)
    train = MVTecADDataset(**kw)
    val = MVTecADDataset(subset='val', **kw)
    names = lambda ds: [osp.basename(ds.get_data_info(i)['img_path'])  # noqa
                        for i in range(len(ds))]
    assert len(train) == 8 and len(val) == 2
    assert sorted(names(train) + names(val)) == [f'{i:03d}.png'
                                                 for i in range(10)]
    assert names(train) == sorted(names(train))
    # deterministic: sorted names, then permutation of split_seed 0
    order = np.random.default_rng(0).permutation(10)
    assert names(val) == [f'{i:03d}.png' for i in sorted(order[8:])]
    assert names(MVTecADDataset(subset='val', **kw)) == names(val)
    with pytest.raises(ValueError, match='needs split="train"'):
        MVTecADDataset(split='test', **kw)
    with pytest.raises(ValueError, match=r'train_val_split must be None or a '
                       r'float in \(0, 1\), but got 1\.5'):
        MVTecADDataset(data_root=str(mvtec_root), category='bottle',
                       train_val_split=1.5)
    with pytest.raises(ValueError, match="subset='val' needs train_val_split"):
        MVTecADDataset(data_root=str(mvtec_root), category='bottle',
                       subset='val')


def test_mvtec_missing_paths_are_named(mvtec_root):
    root = str(mvtec_root)
    with pytest.raises(FileNotFoundError) as e:
        MVTecADDataset(data_root=root, category='cable')
    msg = str(e.value)
    assert osp.join(root, 'cable') in msg and "['bottle']" in msg
    assert '<data_root>/<category>/train/good/*.png' in msg

    os.rename(mvtec_root / 'bottle' / 'train', mvtec_root / 'bottle' / 'trn')
    with pytest.raises(FileNotFoundError) as e:
        MVTecADDataset(data_root=root, category='bottle')
    assert f'{osp.join(root, "bottle", "train", "good")} does not exist' in \
        str(e.value)
    assert 'normal training images' in str(e.value)
    # the test split does not need train/good ...
    assert len(MVTecADDataset(data_root=root, category='bottle',
                              split='test')) == 3
    # ... but needs test/ and every anomalous image's mask
    os.remove(mvtec_root / 'bottle' / 'ground_truth' / 'broken' /
              '001_mask.png')
    with pytest.raises(FileNotFoundError) as e:
        MVTecADDataset(data_root=root, category='bottle', split='test')
    img = osp.join(root, 'bottle', 'test', 'broken', '001.png')
    expected = osp.join(root, 'bottle', 'ground_truth', 'broken',
                        '001_mask.png')
    assert f'image {img} has no ground-truth mask; expected {expected}' in \
        str(e.value)
    os.rename(mvtec_root / 'bottle' / 'test', mvtec_root / 'bottle' / 'tst')
    with pytest.raises(FileNotFoundError,
                       match=re.escape(osp.join(root, 'bottle', 'test'))):
        MVTecADDataset(data_root=root, category='bottle', split='test')
    with pytest.raises(ValueError, match="split must be one of"):
        MVTecADDataset(data_root=root, category='bottle', split='val')


# ----------------------------------------------------------------------------
# MVTec LOCO


@pytest.fixture
def loco_root(tmp_path):
    cat = tmp_path / 'box'
    for split, num in (('train', 3), ('validation', 2)):
        for i in range(num):
            _write(cat / split / 'good' / f'{i:03d}.png', _img())
    _write(cat / 'test' / 'good' / '000.png', _img())
    for folder in ('logical_anomalies', 'structural_anomalies'):
        _write(cat / 'test' / folder / '000.png', _img())
    gt = cat / 'ground_truth'
    # two defects of one logical anomaly, one mask each; LOCO uses 255
    _write(gt / 'logical_anomalies' / '000' / '000.png', _mask((0, 2, 0, 2)))
    _write(gt / 'logical_anomalies' / '000' / '001.png', _mask((4, 6, 5, 8)))
    _write(gt / 'structural_anomalies' / '000' / '000.png',
           _mask((1, 3, 1, 3)))
    return tmp_path


def test_loco_splits_types_and_mask_union(loco_root):
    kw = dict(data_root=str(loco_root), category='box')
    assert len(MVTecLOCODataset(**kw)) == 3
    val = MVTecLOCODataset(split='validation', **kw)
    assert len(val) == 2 and val.get_data_info(0)['anomaly_type'] == 'good'

    test = MVTecLOCODataset(split='test', **kw)
    infos = [test.get_data_info(i) for i in range(len(test))]
    assert [(i['anomaly_type'], i['defect_type'], i['gt_label'])
            for i in infos] == [('good', 'good', 0),
                                ('logical', 'logical_anomalies', 1),
                                ('structural', 'structural_anomalies', 1)]
    gt_dir = loco_root / 'box' / 'ground_truth' / 'logical_anomalies' / '000'
    assert infos[1]['mask_path'] == [str(gt_dir / '000.png'),
                                     str(gt_dir / '001.png')]
    mask = LoadAnomalyMask()(dict(infos[1], ori_shape=(H, W)))['gt_mask']
    np.testing.assert_array_equal(
        mask, _mask((0, 2, 0, 2), (4, 6, 5, 8), value=1))

    logical = MVTecLOCODataset(split='test', anomaly_types=('good',
                                                           'logical'), **kw)
    assert [logical.get_data_info(i)['anomaly_type']
            for i in range(len(logical))] == ['good', 'logical']
    with pytest.raises(ValueError, match='anomaly_types must be None or'):
        MVTecLOCODataset(split='test', anomaly_types='logical', **kw)
    with pytest.raises(ValueError, match='excludes "good"'):
        MVTecLOCODataset(anomaly_types=('logical', ), **kw)

    for f in os.listdir(gt_dir):
        os.remove(gt_dir / f)
    with pytest.raises(FileNotFoundError) as e:
        MVTecLOCODataset(split='test', **kw)
    assert str(loco_root / 'box' / 'test' / 'logical_anomalies' /
               '000.png') in str(e.value)
    assert f'expected a folder {gt_dir} holding 000.png' in str(e.value)


# ----------------------------------------------------------------------------
# VisA

VISA_CSV = '''object,split,label,image,mask
candle,train,normal,candle/Data/Images/Normal/0000.JPG,
candle,train,normal,candle/Data/Images/Normal/0001.JPG,
candle,test,normal,candle/Data/Images/Normal/0002.JPG,
candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png
pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,
'''  # noqa: E501


@pytest.fixture
def visa_root(tmp_path):
    (tmp_path / 'split_csv').mkdir()
    (tmp_path / 'split_csv' / '1cls.csv').write_text(VISA_CSV)
    for line in VISA_CSV.splitlines()[1:]:
        image, mask = line.split(',')[3:]
        _write(tmp_path / image, _img())
        if mask:
            _write(tmp_path / mask, _mask((2, 4, 2, 4), value=1))
    return tmp_path


def test_visa_csv(visa_root):
    kw = dict(data_root=str(visa_root), category='candle')
    train = VisADataset(**kw)
    assert [osp.basename(train.get_data_info(i)['img_path'])
            for i in range(len(train))] == ['0000.JPG', '0001.JPG']
    test = DATASETS.build(dict(type='densekit.VisADataset', split='test',
                               **kw))
    infos = [test.get_data_info(i) for i in range(len(test))]
    assert [(i['gt_label'], i['defect_type'], i['category'])
            for i in infos] == [(0, 'good', 'candle'),
                                (1, 'anomaly', 'candle')]
    assert infos[0]['mask_path'] is None
    assert infos[1]['mask_path'] == str(visa_root / 'candle' / 'Data' /
                                        'Masks' / 'Anomaly' / '000.png')
    # VisA masks mark defects with small non-zero values
    mask = LoadAnomalyMask()(dict(infos[1], ori_shape=(H, W)))['gt_mask']
    assert mask.sum() == 4 and mask.max() == 1
    with pytest.raises(ValueError, match=r"objects listed: \['candle', "
                       r"'pcb1'\]"):
        VisADataset(data_root=str(visa_root), category='cashew')


def test_visa_bad_csv_is_named(visa_root):
    csv_path = visa_root / 'split_csv' / '1cls.csv'
    csv_path.write_text(VISA_CSV.replace('label,image', 'lbl,image'))
    with pytest.raises(ValueError) as e:
        VisADataset(data_root=str(visa_root), category='candle')
    assert str(csv_path) in str(e.value)
    assert 'need the columns object,split,label,image,mask' in str(e.value)
    assert "missing: ['label']" in str(e.value)

    csv_path.write_text(VISA_CSV.replace('test,anomaly', 'test,bad'))
    with pytest.raises(ValueError, match=f'{re.escape(str(csv_path))} line 5'
                       ": label must be one of"):
        VisADataset(data_root=str(visa_root), category='candle')
    with pytest.raises(FileNotFoundError, match='split_csv/2cls.csv'):
        VisADataset(data_root=str(visa_root), category='candle',
                    ann_file='split_csv/2cls.csv')


# ----------------------------------------------------------------------------
# LoadAnomalyMask and PackAnomalyInputs


def test_load_anomaly_mask_binarises_and_zeros(tmp_path):
    load = TRANSFORMS.build(dict(type='densekit.LoadAnomalyMask'))
    empty = load(_loaded('a.png', None))['gt_mask']
    assert empty.dtype == np.uint8 and empty.shape == (H, W) and \
        not empty.any()
    path = str(tmp_path / 'm.png')
    _write(path, _mask((0, 1, 0, 1), value=7) + _mask((5, 6, 7, 8)))
    mask = load(_loaded('a.png', path))['gt_mask']
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask.sum() == 2 and mask[0, 0] == 1 and mask[5, 7] == 1
    with pytest.raises(KeyError, match='put LoadImageFromFile before'):
        load(dict(mask_path=path))
    with pytest.raises(FileNotFoundError, match='mask nope.png of image '
                       'a.png does not exist'):
        load(_loaded('a.png', 'nope.png'))


def test_load_anomaly_mask_size_mismatch(tmp_path):
    load = LoadAnomalyMask()
    # half-size mask, same aspect ratio: resized (nearest) with a warning
    small = str(tmp_path / 'small.png')
    _write(small, _mask((0, 1, 0, 2), shape=(H // 2, W // 2)))
    with pytest.warns(UserWarning) as record:
        mask = load(_loaded('img.png', small))['gt_mask']
    assert len(record) == 1 and small in str(record[0].message)
    assert '4x3 (WxH)' in str(record[0].message)
    np.testing.assert_array_equal(mask, _mask((0, 2, 0, 4), value=1))
    # different aspect ratio: an error naming the file and both sizes
    wide = str(tmp_path / 'wide.png')
    _write(wide, _mask(shape=(H, W * 2)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ValueError) as e:
            load(_loaded('img.png', wide))
    assert f'mask {wide} is 16x6 (WxH) but its image img.png is 8x6' in \
        str(e.value)


def test_pack_anomaly_inputs():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)
    results = dict(img=img, img_path='x.png', ori_shape=(H, W),
                   img_shape=(H, W), gt_label=1, defect_type='broken',
                   category='bottle', mask_path='m.png',
                   gt_mask=_mask((0, 2, 0, 2), value=1))
    packed = PackAnomalyInputs()(results)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.shape == (3, H, W) and inputs.dtype == torch.uint8
    assert torch.equal(inputs, torch.from_numpy(img).permute(2, 0, 1))
    assert isinstance(sample, BaseDataElement)
    assert sample.gt_label.dtype == torch.long and sample.gt_label.ndim == 0
    assert sample.gt_label.item() == 1
    assert sample.gt_mask.dtype == torch.uint8
    assert sample.gt_mask.shape == (H, W) and sample.gt_mask.sum() == 4
    assert 'anomaly_type' not in sample.metainfo
    assert 'scale_factor' not in sample.metainfo  # absent in results
    # the model adds its outputs to the same sample; the metric reads a dict
    sample.pred_score = torch.tensor(0.5)
    sample.anomaly_map = torch.zeros(H, W)
    d = sample.to_dict()
    assert {'pred_score', 'anomaly_map', 'gt_label', 'gt_mask', 'img_path',
            'ori_shape', 'defect_type', 'category'} <= set(d)
    results['gt_mask'] = np.zeros((3, 4), np.uint8)
    with pytest.raises(ValueError, match='must stay at the original'):
        PackAnomalyInputs()(results)


@pytest.mark.parametrize('resize', ['Resize', 'mmdet.Resize'])
def test_resize_leaves_gt_mask_at_original_size(resize):
    results = dict(img=np.zeros((H, W, 3), np.uint8), ori_shape=(H, W),
                   img_shape=(H, W), gt_mask=_mask((0, 2, 0, 2), value=1))
    gt_mask = results['gt_mask'].copy()
    out = TRANSFORMS.build(dict(type=resize, scale=(16, 16),
                                keep_ratio=False))(results)
    assert out['img'].shape == (16, 16, 3)
    np.testing.assert_array_equal(out['gt_mask'], gt_mask)


# ----------------------------------------------------------------------------
# synthetic MVTec-layout generator


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic_anomaly')
    info = generate_anomaly_mvtec(str(out), num_train=4, num_test_good=2,
                                  num_test_defect=4, img_size=48, seed=5)
    return out, info


def _digest(root):
    files = sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs if f != 'synthetic_meta.json')
    return {f: hashlib.sha1(open(osp.join(root, f), 'rb').read()).hexdigest()
            for f in files}


def test_synthetic_layout_and_masks(synthetic):
    out, info = synthetic
    assert not info['reused']
    assert info['num_images'] == {'train/good': 4, 'test/good': 2,
                                  'test/scratch': 2, 'test/blob': 1,
                                  'test/color': 1}
    cat = out / 'texture'
    assert sorted(os.listdir(cat)) == ['ground_truth', 'test', 'train']
    assert sorted(os.listdir(cat / 'test')) == ['blob', 'color', 'good',
                                                'scratch']
    assert sorted(os.listdir(cat / 'ground_truth' / 'scratch')) == [
        '000_mask.png', '001_mask.png']
    goods = [cv2.imread(str(cat / 'train' / 'good' / f'{i:03d}.png'))
             for i in range(4)]
    assert all(g.shape == (48, 48, 3) for g in goods)
    assert not np.array_equal(goods[0], goods[1])  # alike, not identical
    for defect in ANOMALY_DEFECT_TYPES:
        mask = cv2.imread(str(cat / 'ground_truth' / defect / '000_mask.png'),
                          cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == (48, 48)
        assert set(np.unique(mask)) == {0, 255}


@pytest.mark.parametrize('defect', ANOMALY_DEFECT_TYPES)
def test_synthetic_defect_changes_exactly_its_mask(defect):
    normal, empty = render_anomaly_image(np.random.default_rng([1, 2]), 64)
    assert not empty.any()
    img, mask = render_anomaly_image(np.random.default_rng([1, 2]), 64,
                                     defect)
    changed = (img != normal).any(axis=2)
    assert mask.any() and mask.sum() < 0.2 * mask.size
    assert not changed[~mask].any()  # nothing outside the mask
    assert changed[mask].mean() > 0.9  # and the mask is really painted
    with pytest.raises(ValueError, match='defect must be None or one of'):
        render_anomaly_image(np.random.default_rng(0), 64, 'dent')


def test_synthetic_is_deterministic(synthetic, tmp_path):
    out, _ = synthetic
    again = tmp_path / 'again'
    generate_anomaly_mvtec(str(again), num_train=4, num_test_good=2,
                           num_test_defect=4, img_size=48, seed=5)
    assert _digest(str(again)) == _digest(str(out))
    # no image depends on how many others there are
    fewer = tmp_path / 'fewer'
    generate_anomaly_mvtec(str(fewer), num_train=2, num_test_good=1,
                           num_test_defect=3, img_size=48, seed=5)
    for f, digest in _digest(str(fewer)).items():
        assert _digest(str(out))[f] == digest, f
    other = tmp_path / 'other'
    generate_anomaly_mvtec(str(other), num_train=1, num_test_good=0,
                           num_test_defect=0, img_size=48, seed=6)
    assert _digest(str(other))['texture/train/good/000.png'] != \
        _digest(str(out))['texture/train/good/000.png']


def test_synthetic_reuse_and_foreign_folders(tmp_path):
    kw = dict(num_train=1, num_test_good=1, num_test_defect=1, img_size=32)
    assert not generate_anomaly_mvtec(str(tmp_path), **kw)['reused']
    assert generate_anomaly_mvtec(str(tmp_path), **kw)['reused']
    assert not generate_anomaly_mvtec(str(tmp_path), seed=1, **kw)['reused']
    # a second category shares the root; the first is kept and reusable
    assert not generate_anomaly_mvtec(str(tmp_path), category='wood',
                                      seed=1, **kw)['reused']
    assert generate_anomaly_mvtec(str(tmp_path), seed=1, **kw)['reused']
    assert sorted(os.listdir(tmp_path)) == ['synthetic_meta.json',
                                            'texture', 'wood']
    os.remove(tmp_path / 'texture' / 'train' / 'good' / '000.png')
    assert not generate_anomaly_mvtec(str(tmp_path), seed=1, **kw)['reused']
    # a real dataset's category is never replaced without overwrite
    _write(tmp_path / 'bottle' / 'train' / 'good' / '000.png', _img())
    with pytest.raises(FileExistsError, match='no record of category '
                       "'bottle'"):
        generate_anomaly_mvtec(str(tmp_path), category='bottle', **kw)
    assert osp.isfile(tmp_path / 'bottle' / 'train' / 'good' / '000.png')
    with pytest.raises(ValueError, match='num_train must be an int >= 0'):
        generate_anomaly_mvtec(str(tmp_path), num_train=-1)
    with pytest.raises(ValueError, match='category must be a folder name'):
        generate_anomaly_mvtec(str(tmp_path), category='a/b')


def test_synthetic_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_synthetic', osp.join(REPO_ROOT, 'tools/data/make_synthetic.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = ['anomaly', '--out', str(tmp_path), '--num-train', '2',
            '--num-test-good', '1', '--num-test-defect', '2', '--img-size',
            '32', '--defect-types', 'blob', 'scratch']
    cli.main(argv)
    out = capsys.readouterr().out
    assert 'generated' in out and 'test/blob: 1 images' in out
    assert sorted(os.listdir(tmp_path / 'texture' / 'test')) == [
        'blob', 'good', 'scratch']
    cli.main(argv)
    assert 'reused' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='img_size must be >= 32'):
        cli.main(argv + ['--img-size', '8'])
    assert cli.parse_args(['anomaly']).out == 'data/synthetic_anomaly'


def test_full_pipeline_on_synthetic_set(synthetic):
    out, _ = synthetic
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='densekit.LoadAnomalyMask'),
        dict(type='Resize', scale=(256, 256), keep_ratio=False),
        dict(type='densekit.PackAnomalyInputs'),
    ]
    dataset = DATASETS.build(dict(type='densekit.MVTecADDataset',
                                  data_root=str(out), category='texture',
                                  split='test', pipeline=pipeline))
    assert len(dataset) == 6  # 2 good + 4 defective
    labels = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        sample = dataset[i]
        inputs, data_sample = sample['inputs'], sample['data_samples']
        assert inputs.shape == (3, 256, 256) and inputs.dtype == torch.uint8
        meta = data_sample.metainfo
        assert meta['ori_shape'] == (48, 48) and meta['img_shape'] == (256,
                                                                      256)
        assert meta['scale_factor'] == (256 / 48, 256 / 48)
        assert meta['defect_type'] == info['defect_type']
        assert meta['category'] == 'texture'
        # the mask stays at the original size and matches the file
        assert data_sample.gt_mask.shape == (48, 48)
        if info['mask_path'] is None:
            assert not data_sample.gt_mask.any()
        else:
            expected = cv2.imread(info['mask_path'], cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(data_sample.gt_mask.numpy(),
                                          expected // 255)
            assert data_sample.gt_mask.any()
        labels.append((meta['defect_type'], data_sample.gt_label.item()))
    assert labels.count(('good', 0)) == 2
    assert sum(label for _, label in labels) == 4


def test_synthetic_config_is_mvtec_ad_moved_to_the_bundled_set():
    """The synthetic anomaly config is MVTec AD's, moved to the bundled
    root and category with one worker per loader and no penalty folder."""
    from mmengine.config import Config
    base = osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_',
                    'datasets')
    mvtec = Config.fromfile(osp.join(base, 'mvtec_ad.py')).to_dict()
    synthetic = Config.fromfile(osp.join(base,
                                         'synthetic_anomaly.py')).to_dict()
    loaders = [('train_dataloader', ), ('val_dataloader', ),
               ('test_dataloader', ), ('map_norm_dataloader', ),
               ('custom_hooks', 0, 'map_norm_dataloader')]

    def at(cfg, path):
        for key in path:
            cfg = cfg[key]
        return cfg

    for path in loaders:
        ours, theirs = at(synthetic, path), at(mvtec, path)
        assert ours['dataset']['data_root'] == 'data/synthetic_anomaly'
        assert ours['dataset']['category'] == 'texture'
        assert ours['num_workers'] == 1
        for cfg in (ours, theirs):
            for key in ('data_root', 'category'):
                cfg['dataset'].pop(key)
            cfg.pop('num_workers')
    penalty = synthetic['train_pipeline'][2]
    assert penalty['type'] == 'LoadPenaltyImage' and penalty['img_dir'] is None
    for cfg in (synthetic, mvtec):
        cfg['train_dataloader']['dataset']['pipeline'][2].pop('img_dir')
        for key in ('data_root', 'category', 'penalty_img_dir',
                    'train_pipeline'):
            cfg.pop(key)
    assert synthetic == mvtec
