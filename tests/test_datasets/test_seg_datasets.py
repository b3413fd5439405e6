"""ADE20K and Cityscapes read from fixtures in their exact on-disk layouts,
through mmseg's dataset classes and densekit's configs' pipelines."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.registry import DATASETS
from densekit.utils.dataset_check import (check_dataset_paths,
                                          find_missing_dataset_paths)
from tests.conftest import ROOT

CFG = osp.join(ROOT, 'configs', 'seg')


def make_ade20k(root, num=2, size=(24, 32)):
    """ADEChallengeData2016: images/*.jpg, annotations/*.png (0..150)."""
    rng = np.random.default_rng(0)
    for split, prefix in (('training', 'ADE_train_'),
                          ('validation', 'ADE_val_')):
        for i in range(num):
            stem = f'{prefix}{i + 1:08d}'
            img_dir = root / 'images' / split
            ann_dir = root / 'annotations' / split
            img_dir.mkdir(parents=True, exist_ok=True)
            ann_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img_dir / f'{stem}.jpg'),
                        rng.integers(0, 255, (*size, 3), dtype=np.uint8))
            ann = rng.integers(0, 151, size, dtype=np.uint8)
            ann[0, :3] = (0, 1, 150)
            cv2.imwrite(str(ann_dir / f'{stem}.png'), ann)
    return root


def make_cityscapes(root, train_ids=True, size=(16, 32)):
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/... maps."""
    rng = np.random.default_rng(0)
    for split, city in (('train', 'aachen'), ('val', 'frankfurt')):
        stem = f'{city}_000000_000019'
        img_dir = root / 'leftImg8bit' / split / city
        gt_dir = root / 'gtFine' / split / city
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        cv2.imwrite(str(img_dir / f'{stem}_leftImg8bit.png'),
                    rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        label_ids = rng.integers(0, 34, size, dtype=np.uint8)
        cv2.imwrite(str(gt_dir / f'{stem}_gtFine_labelIds.png'), label_ids)
        if train_ids:
            ids = rng.integers(0, 19, size, dtype=np.uint8)
            ids[0, 0] = 255
            cv2.imwrite(str(gt_dir / f'{stem}_gtFine_labelTrainIds.png'),
                        ids)
    return root


def build_dataset(config, data_root, split='val'):
    cfg = Config.fromfile(osp.join(CFG, config))
    init_default_scope(cfg.default_scope)
    loader = cfg.val_dataloader if split == 'val' else cfg.train_dataloader
    ds_cfg = loader.dataset.copy()
    ds_cfg.data_root = str(data_root)
    if split == 'val':  # the test pipeline, minus resizing to 2048
        ds_cfg.pipeline = [t for t in ds_cfg.pipeline
                           if t['type'] != 'Resize']
    return cfg, DATASETS.build(ds_cfg)


def test_ade20k_layout_and_reduce_zero_label(tmp_path):
    root = make_ade20k(tmp_path / 'ADEChallengeData2016')
    cfg, dataset = build_dataset('upernet_r50_ade20k-512x512.py', root)
    assert len(dataset) == 2 and len(dataset.metainfo['classes']) == 150
    labels = dataset[0]['data_samples'].gt_sem_seg.data[0]
    raw = cv2.imread(str(root / 'annotations' / 'validation' /
                         'ADE_val_00000001.png'), cv2.IMREAD_UNCHANGED)
    # 0 (other) -> 255, k -> k - 1
    expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
    np.testing.assert_array_equal(labels.numpy(), expected)
    assert check_dataset_paths(
        Config(dict(val_dataloader=dict(dataset=dict(
            data_root=str(root), data_prefix=cfg.val_dataloader.dataset
            .data_prefix))))) is None


def test_ade20k_training_pipeline_runs(tmp_path):
    root = make_ade20k(tmp_path / 'ADEChallengeData2016', size=(600, 640))
    _, dataset = build_dataset('upernet_r50_ade20k-512x512.py', root,
                               split='train')
    sample = dataset[0]
    assert tuple(sample['inputs'].shape[1:]) == (512, 512)


def test_cityscapes_layout(tmp_path):
    root = make_cityscapes(tmp_path / 'cityscapes')
    _, dataset = build_dataset('upernet_r50_cityscapes-512x1024.py', root)
    assert len(dataset) == 1 and len(dataset.metainfo['classes']) == 19
    labels = dataset[0]['data_samples'].gt_sem_seg.data
    assert labels[0, 0, 0] == 255 and labels.max() == 255
    assert set(labels.unique().tolist()) - {255} <= set(range(19))


def test_cityscapes_without_label_train_ids_says_how_to_make_them(tmp_path):
    root = make_cityscapes(tmp_path / 'cityscapes', train_ids=False)
    cfg = Config.fromfile(osp.join(CFG, 'upernet_r50_cityscapes-512x1024.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(root)
    missing = find_missing_dataset_paths(cfg)
    assert [m.key for m in missing] == [
        'train_dataloader.dataset.data_prefix.seg_map_path',
        'val_dataloader.dataset.data_prefix.seg_map_path',
        'test_dataloader.dataset.data_prefix.seg_map_path'
    ]
    with pytest.raises(FileNotFoundError,
                       match=r'(?s)_gtFine_labelTrainIds\.png.*'
                       r'tools/dataset_converters/cityscapes\.py'):
        check_dataset_paths(cfg)


def test_cityscapes_label_ids_instead_of_train_ids_name_the_file(tmp_path):
    root = make_cityscapes(tmp_path / 'cityscapes')
    cfg = Config.fromfile(osp.join(CFG, 'upernet_r50_cityscapes-512x1024.py'))
    init_default_scope('mmseg')
    ds_cfg = cfg.val_dataloader.dataset.copy()
    ds_cfg.data_root = str(root)
    ds_cfg.seg_map_suffix = '_gtFine_labelIds.png'  # raw ids 0..33
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] != 'Resize']
    dataset = DATASETS.build(ds_cfg)
    with pytest.raises(ValueError, match=r'frankfurt_000000_000019_gtFine_'
                       r'labelIds\.png: labels .* outside the 19 classes'):
        dataset[0]


def test_missing_synthetic_seg_data_says_how_to_generate(tmp_path):
    cfg = Config.fromfile(osp.join(CFG, 'upernet_yolov8-n_shapes.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = str(tmp_path / 'synthetic_shapes_seg')
    with pytest.raises(FileNotFoundError,
                       match='make_synthetic.py shapes_seg --out'):
        check_dataset_paths(cfg)
