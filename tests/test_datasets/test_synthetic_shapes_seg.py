"""The synthetic shapes segmentation set: ADE20K layout, encoding, reuse,
and loading through mmseg with densekit's dataset and label check."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from densekit.datasets.synthetic import (SHAPES_SEG_CLASSES,
                                         generate_shapes_ade,
                                         render_shapes_image, shapes_label_map)
from densekit.registry import DATASETS


@pytest.fixture(scope='module')
def seg_set(tmp_path_factory):
    out = tmp_path_factory.mktemp('shapes_seg')
    info = generate_shapes_ade(str(out), num_train=6, num_val=3, img_size=64,
                               seed=3)
    return out, info


def test_layout_and_encoding(seg_set):
    out, info = seg_set
    assert not info['reused']
    for folder, prefix, count in (('training', 'ADE_train_', 6),
                                  ('validation', 'ADE_val_', 3)):
        for i in range(count):
            stem = f'{prefix}{i + 1:08d}'
            img = cv2.imread(str(out / 'images' / folder / f'{stem}.jpg'))
            seg = cv2.imread(str(out / 'annotations' / folder /
                                 f'{stem}.png'), cv2.IMREAD_UNCHANGED)
            assert img.shape == (64, 64, 3) and seg.shape == (64, 64)
            assert seg.dtype == np.uint8
            # ADE20K encoding: 0 unlabelled, 1 + class index
            assert set(np.unique(seg)) <= set(range(len(SHAPES_SEG_CLASSES)
                                                    + 1))
            assert (seg == 1).any()  # background
            assert (seg >= 2).any()  # at least one shape


def test_same_images_as_detection_set(seg_set):
    out, _ = seg_set
    rng = np.random.default_rng([3, 1, 0])  # seed 3, val split, image 0
    sample = render_shapes_image(rng, img_size=64, min_size=5.0,
                                 max_size=27.5)
    seg = cv2.imread(str(out / 'annotations' / 'validation' /
                         'ADE_val_00000001.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(
        seg, shapes_label_map(sample.labels, sample.masks))


def test_label_map_from_masks():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True
    masks[1, 3, 3] = True
    seg = shapes_label_map(np.array([3, 0]), masks, min_label_area=2)
    expected = np.ones((4, 4), np.uint8)
    expected[:2, :2] = 5  # star = class 4 -> 1 + 4
    expected[3, 3] = 0  # one pixel < min_label_area: unlabelled
    np.testing.assert_array_equal(seg, expected)


def test_reuse_and_refuse_foreign_folder(seg_set, tmp_path):
    out, info = seg_set
    again = generate_shapes_ade(str(out), num_train=6, num_val=3,
                                img_size=64, seed=3)
    assert again['reused'] and again['pixel_counts'] == info['pixel_counts']
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'x.jpg').write_bytes(b'')
    with pytest.raises(FileExistsError, match='not written by this'):
        generate_shapes_ade(str(tmp_path), num_train=1, num_val=1,
                            img_size=32)
    with pytest.raises(ValueError, match='num_train must be an int >= 0'):
        generate_shapes_ade(str(tmp_path), num_train=-1)


def test_dataset_loads_through_mmseg_pipeline(seg_set):
    out, _ = seg_set
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='densekit.ShapesSegDataset', data_root=str(out),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='densekit.CheckSegLabels', num_classes=5),
            dict(type='PackSegInputs')
        ]))
    assert len(dataset) == 3
    assert dataset.metainfo['classes'] == SHAPES_SEG_CLASSES
    sample = dataset[0]
    labels = sample['data_samples'].gt_sem_seg.data
    # reduce_zero_label: background 1 -> 0, shapes 2..5 -> 1..4
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3, 4, 255}
    assert (labels == 0).any()


def test_check_seg_labels_names_the_file(tmp_path):
    from densekit.datasets.transforms import CheckSegLabels
    check = CheckSegLabels(num_classes=5)
    ok = np.array([[0, 4], [255, 1]], np.uint8)
    assert check(dict(gt_seg_map=ok, seg_map_path='a.png')) is not None
    bad = np.array([[0, 7], [255, 9]], np.uint8)
    with pytest.raises(ValueError, match=r'b\.png: labels \[7, 9\] are '
                       r'outside the 5 classes 0\.\.4'):
        check(dict(gt_seg_map=bad, seg_map_path='b.png'))
    with pytest.raises(ValueError, match='labelTrainIds'):
        check(dict(gt_seg_map=bad,
                   seg_map_path=osp.join('gtFine', 'x_gtFine_labelIds.png')))
    with pytest.raises(KeyError, match='after LoadAnnotations'):
        check(dict(img=np.zeros((2, 2, 3))))
