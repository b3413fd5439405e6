import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from densekit.datasets.synthetic import (SHAPES_CLASSES, SHAPES_METAINFO,
                                         generate_shapes_coco, mask_to_coco,
                                         render_shapes_image)
from densekit.datasets.synthetic.shapes import MAX_OCCLUSION, META_FILE

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Tiny but not trivial: objects of 10-40 px on 96x96 images.
SMALL = dict(img_size=96, min_size=10, max_size=40, max_objects=5)


def _read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _split_images(info, split):
    img_dir = info['img_dirs'][split]
    return {
        name: cv2.imread(osp.join(img_dir, name))
        for name in sorted(os.listdir(img_dir))
    }


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('shapes'))
    return generate_shapes_coco(out_dir, num_train=8, num_val=4, **SMALL)


def test_layout_and_return_value(dataset):
    out_dir = dataset['out_dir']
    assert dataset['ann_files'] == dict(
        train=osp.join(out_dir, 'annotations', 'instances_train.json'),
        val=osp.join(out_dir, 'annotations', 'instances_val.json'))
    assert dataset['img_dirs'] == dict(
        train=osp.join(out_dir, 'train'), val=osp.join(out_dir, 'val'))
    assert dataset['num_images'] == dict(train=8, val=4)
    assert dataset['reused'] is False
    assert sorted(os.listdir(
        dataset['img_dirs']['val'])) == [f'{i:012d}.jpg' for i in range(1, 5)]
    for split in ('train', 'val'):
        coco = json.loads(_read_bytes(dataset['ann_files'][split]))
        assert set(coco) == {
            'info', 'licenses', 'images', 'annotations', 'categories'
        }
        assert len(coco['annotations']) == dataset['num_instances'][split]


def test_same_seed_is_byte_identical(dataset, tmp_path):
    again = generate_shapes_coco(
        str(tmp_path), num_train=8, num_val=4, **SMALL)
    for split in ('train', 'val'):
        assert _read_bytes(again['ann_files'][split]) == _read_bytes(
            dataset['ann_files'][split])
        first, second = _split_images(dataset,
                                      split), _split_images(again, split)
        assert list(first) == list(second)
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])


def test_other_seed_differs(dataset, tmp_path):
    other = generate_shapes_coco(
        str(tmp_path), num_train=8, num_val=4, seed=1, **SMALL)
    assert _read_bytes(other['ann_files']['train']) != _read_bytes(
        dataset['ann_files']['train'])


def test_val_does_not_depend_on_num_train(dataset, tmp_path):
    other = generate_shapes_coco(
        str(tmp_path), num_train=3, num_val=4, **SMALL)
    assert _read_bytes(other['ann_files']['val']) == _read_bytes(
        dataset['ann_files']['val'])
    ours, theirs = _split_images(dataset, 'val'), _split_images(other, 'val')
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_are_valid_coco(dataset, split):
    coco = COCO(dataset['ann_files'][split])
    assert coco.dataset['categories'] == [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(SHAPES_CLASSES)
    ]
    ann_ids = [ann['id'] for ann in coco.dataset['annotations']]
    assert ann_ids == list(range(1, len(ann_ids) + 1))
    assert sorted(coco.getImgIds()) == list(
        range(1, dataset['num_images'][split] + 1))

    for img_id in coco.getImgIds():
        img_info = coco.imgs[img_id]
        h, w = img_info['height'], img_info['width']
        img = cv2.imread(
            osp.join(dataset['img_dirs'][split], img_info['file_name']))
        assert img.shape == (h, w, 3) == (96, 96, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert len(anns) in range(1, SMALL['max_objects'] + 1)
        union = np.zeros((h, w), np.int64)
        for ann in anns:
            x, y, bw, bh = ann['bbox']
            assert ann['iscrowd'] == 0 and ann['image_id'] == img_id
            assert ann['category_id'] in range(1, len(SHAPES_CLASSES) + 1)
            assert 0 <= x and 0 <= y and bw > 0 and bh > 0
            assert x + bw <= w and y + bh <= h
            assert ann['area'] > 0
            assert all(
                len(poly) >= 6 and len(poly) % 2 == 0
                for poly in ann['segmentation'])
            mask = coco.annToMask(ann).astype(bool)
            union += mask
            ys, xs = np.nonzero(mask)
            mask_box = [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1
            ]
            np.testing.assert_allclose(mask_box, ann['bbox'], atol=1)
            assert abs(mask.sum() - ann['area']) <= 0.05 * ann['area'] + 2
        # Visible regions of different objects do not overlap.
        assert union.max() <= 1


def test_render_shapes_image_occlusion_and_texture():
    for index in range(5):
        sample = render_shapes_image(
            np.random.default_rng([0, 0, index]), min_objects=6)
        num = len(sample.labels)
        assert sample.img.shape == (256, 256, 3)
        assert sample.img.dtype == np.uint8
        assert sample.masks.shape == (num, 256, 256)
        assert num in range(1, 7)
        assert set(sample.labels.tolist()) <= set(range(len(SHAPES_CLASSES)))
        # Visible masks are disjoint and keep >= 70% of each object.
        assert sample.masks.sum(axis=0).max() <= 1
        visible = sample.masks.sum(axis=(1, 2))
        assert np.all(visible >= (1 - MAX_OCCLUSION) * sample.full_areas)
        # The background is textured, not a flat colour.
        background = sample.img[~sample.masks.any(axis=0)]
        assert background.std(axis=0).min() > 5


def test_mask_to_coco_is_pixel_exact():
    from pycocotools import mask as mask_utils
    mask = np.zeros((12, 16), bool)
    mask[2:6, 3:9] = True  # 4x6 block
    mask[6:9, 5] = True  # 1-pixel-wide spike
    mask[9, 10] = True  # separate single pixel
    bbox, area, polygons = mask_to_coco(mask)
    assert bbox == [3.0, 2.0, 8.0, 8.0]
    assert area == 4 * 6 + 3 + 1
    assert len(polygons) == 2
    rles = mask_utils.frPyObjects(polygons, 12, 16)
    decoded = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    np.testing.assert_array_equal(decoded, mask)


def test_metainfo():
    assert SHAPES_METAINFO['classes'] == SHAPES_CLASSES == ('circle', 'square',
                                                            'triangle', 'star')
    assert len(SHAPES_METAINFO['palette']) == len(SHAPES_CLASSES)


def test_reuse_and_regenerate(tmp_path):
    out_dir = str(tmp_path)
    first = generate_shapes_coco(out_dir, num_train=4, num_val=2, **SMALL)
    ann_file = first['ann_files']['train']
    mtime = os.stat(ann_file).st_mtime_ns

    reused = generate_shapes_coco(out_dir, num_train=4, num_val=2, **SMALL)
    assert reused['reused'] is True
    assert reused['num_instances'] == first['num_instances']
    assert os.stat(ann_file).st_mtime_ns == mtime

    # Other parameters: regenerated, and stale images removed.
    smaller = generate_shapes_coco(out_dir, num_train=2, num_val=2, **SMALL)
    assert smaller['reused'] is False
    assert len(os.listdir(smaller['img_dirs']['train'])) == 2
    with open(osp.join(out_dir, META_FILE)) as f:
        meta = json.load(f)
    assert meta['complete'] is True and meta['params']['num_train'] == 2

    # A deleted image makes the dataset incomplete: regenerated.
    os.remove(osp.join(smaller['img_dirs']['val'], '000000000001.jpg'))
    again = generate_shapes_coco(out_dir, num_train=2, num_val=2, **SMALL)
    assert again['reused'] is False
    assert osp.isfile(osp.join(again['img_dirs']['val'], '000000000001.jpg'))

    forced = generate_shapes_coco(
        out_dir, num_train=2, num_val=2, overwrite=True, **SMALL)
    assert forced['reused'] is False


def test_refuses_to_replace_foreign_data(tmp_path):
    os.makedirs(tmp_path / 'train')
    (tmp_path / 'train' / 'mine.jpg').write_bytes(b'not generated here')
    with pytest.raises(FileExistsError, match='overwrite=True'):
        generate_shapes_coco(str(tmp_path), num_train=1, num_val=1, **SMALL)
    assert (tmp_path / 'train' / 'mine.jpg').exists()
    info = generate_shapes_coco(
        str(tmp_path), num_train=1, num_val=1, overwrite=True, **SMALL)
    assert os.listdir(info['img_dirs']['train']) == ['000000000001.jpg']


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(min_objects=3, max_objects=2), ValueError, 'min_objects=3'),
    (dict(min_objects=0), ValueError, 'min_objects=0'),
    (dict(num_train=-1), ValueError, 'num_train=-1'),
    (dict(num_train=2.0), TypeError, 'num_train'),
    (dict(img_size=64, max_size=80), ValueError, 'max_size=80'),
    (dict(min_size=30, max_size=20), ValueError, 'min_size=30'),
    (dict(seed=-1), ValueError, 'seed'),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        generate_shapes_coco(str(tmp_path), **kwargs)
    assert not os.listdir(tmp_path)


def test_cli_writes_dataset(tmp_path, capsys):
    out_dir = tmp_path / 'synthetic_shapes'
    argv = [
        'shapes', '--out',
        str(out_dir), '--num-train', '3', '--num-val', '2', '--img-size', '64'
    ]
    proc = subprocess.run(
        [sys.executable, 'tools/data/make_synthetic.py'] + argv,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60)
    assert proc.returncode == 0, proc.stderr
    ann_file = out_dir / 'annotations' / 'instances_train.json'
    assert str(ann_file) in proc.stdout
    assert len(json.loads(ann_file.read_text())['images']) == 3
    assert sorted(os.listdir(
        out_dir / 'val')) == ['000000000001.jpg', '000000000002.jpg']

    # Second run in-process (cheaper than another interpreter): reused.
    spec = importlib.util.spec_from_file_location(
        'make_synthetic', osp.join(REPO_ROOT, 'tools/data/make_synthetic.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(argv)
    assert 'reused' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='max_size=100'):
        cli.main(argv + ['--max-size', '100'])


def test_loads_as_mmdet_coco_dataset(dataset):
    from mmdet.datasets import CocoDataset
    from mmdet.structures.mask import BitmapMasks

    coco_dataset = CocoDataset(
        data_root=dataset['out_dir'],
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=SHAPES_METAINFO,
        filter_cfg=None,
        test_mode=True,
        pipeline=[
            dict(type='densekit.LoadImageFromFileSafe', strict=True),
            dict(
                type='mmdet.LoadAnnotations',
                with_bbox=True,
                with_mask=True,
                poly2mask=True),
        ])
    assert len(coco_dataset) == 4
    assert coco_dataset.metainfo['classes'] == SHAPES_CLASSES
    coco = COCO(dataset['ann_files']['val'])
    for index in range(len(coco_dataset)):
        sample = coco_dataset[index]
        assert sample['img'].shape == (96, 96, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=sample['img_id']))
        expected = np.array([[x, y, x + w, y + h]
                             for x, y, w, h in (a['bbox'] for a in anns)])
        np.testing.assert_allclose(sample['gt_bboxes'].numpy(), expected)
        np.testing.assert_array_equal(sample['gt_bboxes_labels'],
                                      [a['category_id'] - 1 for a in anns])
        assert isinstance(sample['gt_masks'], BitmapMasks)
        np.testing.assert_array_equal(sample['gt_masks'].areas,
                                      [a['area'] for a in anns])
