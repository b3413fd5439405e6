import os.path as osp

import pytest
from mmengine import Config

from densekit.utils import check_dataset_paths
from densekit.utils.dataset_check import find_missing_dataset_paths


def _coco_dataset(data_root,
                  ann_file='annotations/instances_train.json',
                  img_prefix='train/'):
    return dict(
        type='mmdet.CocoDataset',
        data_root=data_root,
        ann_file=ann_file,
        data_prefix=dict(img=img_prefix))


@pytest.fixture
def data_root(tmp_path):
    """A synthetic-shapes-like root holding the train split only."""
    root = tmp_path / 'synthetic_shapes'
    (root / 'annotations').mkdir(parents=True)
    (root / 'annotations' / 'instances_train.json').write_text('{}')
    (root / 'train').mkdir()
    return str(root) + '/'


def test_existing_paths_pass(data_root):
    cfg = Config(
        dict(
            train_dataloader=dict(
                batch_size=2, dataset=_coco_dataset(data_root)),
            val_dataloader=None))  # absent test_dataloader is skipped too
    assert check_dataset_paths(cfg) is None
    assert find_missing_dataset_paths(cfg) == []


def test_missing_ann_file_and_image_dir_are_reported(data_root):
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=_coco_dataset(data_root)),
            val_dataloader=dict(
                dataset=_coco_dataset(
                    data_root,
                    ann_file='annotations/instances_val.json',
                    img_prefix='val/'))))
    with pytest.raises(FileNotFoundError) as excinfo:
        check_dataset_paths(cfg)
    message = str(excinfo.value)
    ann_path = osp.join(data_root, 'annotations/instances_val.json')
    assert f'val_dataloader.dataset.ann_file: {ann_path}' in message
    img_dir = osp.join(data_root, 'val/')
    assert f'val_dataloader.dataset.data_prefix.img: {img_dir}' in message
    assert 'train_dataloader' not in message
    assert message.startswith('check_dataset_paths: 2 dataset path(s)')
    # Both paths share one hint, given once, with the real data_root.
    hint = f'python tools/data/make_synthetic.py shapes --out {data_root}'
    assert message.count(hint) == 1


def test_absolute_paths_are_not_joined(data_root, tmp_path):
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text('{}')
    ok = Config(
        dict(
            test_dataloader=dict(
                dataset=_coco_dataset(data_root, ann_file=str(elsewhere)))))
    check_dataset_paths(ok)

    missing = str(tmp_path / 'nowhere.json')
    bad = Config(
        dict(
            test_dataloader=dict(
                dataset=_coco_dataset(data_root, ann_file=missing))))
    with pytest.raises(
            FileNotFoundError,
            match=f'test_dataloader.dataset.ann_file: {missing}'):
        check_dataset_paths(bad)


def test_wrappers_are_recursed(data_root):
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='mmdet.MultiImageMixDataset',
                    dataset=_coco_dataset(data_root, ann_file='missing.json'),
                    pipeline=[])),
            val_dataloader=dict(
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        _coco_dataset(data_root),
                        dict(
                            type='RepeatDataset',
                            times=2,
                            dataset=_coco_dataset(
                                data_root, img_prefix='missing_dir/')),
                    ]))))
    keys = [item.key for item in find_missing_dataset_paths(cfg)]
    assert keys == [
        'train_dataloader.dataset.dataset.ann_file',
        'val_dataloader.dataset.datasets[1].dataset.data_prefix.img',
    ]
    with pytest.raises(FileNotFoundError) as excinfo:
        check_dataset_paths(cfg)
    for key in keys:
        assert key in str(excinfo.value)


def test_missing_data_root_is_reported(tmp_path):
    root = str(tmp_path / 'synthetic_shapes')
    cfg = dict(train_dataloader=dict(dataset=_coco_dataset(root)))
    keys = [item.key for item in find_missing_dataset_paths(cfg)]
    assert keys == [
        'train_dataloader.dataset.data_root',
        'train_dataloader.dataset.ann_file',
        'train_dataloader.dataset.data_prefix.img',
    ]


@pytest.mark.parametrize(
    'root_name, expected', [
        ('coco', 'https://cocodataset.org/#download'),
        ('ade/ADEChallengeData2016', 'ADEChallengeData2016.zip'),
        ('cityscapes', 'https://www.cityscapes-dataset.com/downloads/'),
        ('my_data', 'check data_root, ann_file and data_prefix'),
    ],
    ids=['coco', 'ade20k', 'cityscapes', 'other'])
def test_download_hints(tmp_path, root_name, expected):
    root = str(tmp_path / root_name) + '/'
    cfg = Config(dict(val_dataloader=dict(dataset=_coco_dataset(root))))
    with pytest.raises(FileNotFoundError, match='How to get the data') as e:
        check_dataset_paths(cfg)
    assert expected in str(e.value)
    assert 'make_synthetic' not in str(e.value)


def test_remote_and_empty_paths_are_skipped(tmp_path):
    local_root = str(tmp_path / 'coco') + '/'
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=_coco_dataset('s3://bucket/coco/')),
            val_dataloader=dict(
                dataset=dict(
                    type='mmseg.ADE20KDataset',
                    data_root='',
                    ann_file='',
                    data_prefix=dict(img_path='', seg_map_path=''))),
            test_dataloader=dict(
                dataset=_coco_dataset(
                    local_root,
                    img_prefix='http://images.example.com/val2017/'))))
    missing = find_missing_dataset_paths(cfg)
    # Only the local data_root/ann_file of the test set can be checked.
    assert [item.key for item in missing] == [
        'test_dataloader.dataset.data_root',
        'test_dataloader.dataset.ann_file',
    ]


def test_rejects_non_config():
    with pytest.raises(TypeError, match='Config'):
        check_dataset_paths(['train_dataloader'])
