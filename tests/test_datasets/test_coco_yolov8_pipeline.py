"""The COCO YOLOv8 training pipeline (mosaic, affine, albumentations, HSV)
runs on data in COCO's on-disk format."""
import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope

from densekit.datasets.synthetic import SHAPES_METAINFO
from tests.conftest import ROOT


def test_coco_train_pipeline_produces_valid_samples(tiny_shapes):
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(f'{ROOT}/configs/det/yolov8_n_coco.py')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.dataset.update(
        data_root=str(tiny_shapes) + '/',
        metainfo=SHAPES_METAINFO,  # CocoDataset keeps only known classes
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=0))
    # every transform, albumentations ones included, fires
    for transform in dataset_cfg.pipeline:
        if transform['type'] == 'Albu':
            for albu in transform['transforms']:
                albu['p'] = 1.0
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dataset = DATASETS.build(dataset_cfg)
    assert [type(t).__name__ for t in dataset.pipeline][:4] == [
        'Mosaic', 'RandomAffine', 'Resize', 'Pad']
    np.random.seed(0)
    for i in range(4):
        sample = dataset[i]
        img = sample['inputs']
        assert tuple(img.shape) == (3, 640, 640)
        boxes = sample['data_samples'].gt_instances.bboxes.tensor
        assert len(boxes) > 0
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert boxes.min() >= 0 and boxes.max() <= 640
