"""densekit.CityscapesMetric: the official evaluation when cityscapesscripts
is installed, a clear message when it is not."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

import densekit.evaluation.metrics.cityscapes_metric as cm
from densekit.registry import METRICS
from tests.conftest import ROOT


def test_without_cityscapesscripts_it_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(cm, 'cityscapesscripts_available', lambda: False)
    logged = []
    logger = MMLogger.get_current_instance()
    monkeypatch.setattr(logger, 'warning', logged.append, raising=False)
    metric = METRICS.build(dict(type='densekit.CityscapesMetric',
                                output_dir=str(tmp_path / 'out')))
    assert not metric.available
    metric.process({}, [dict(seg_map_path='x_gtFine_labelTrainIds.png')])
    assert metric.compute_metrics(metric.results) == {}
    with pytest.raises(ImportError, match='pip install cityscapesscripts'):
        METRICS.build(dict(type='densekit.CityscapesMetric',
                           output_dir=str(tmp_path / 'out'), required=True))


def test_missing_label_ids_are_named(monkeypatch, tmp_path):
    import mmseg.evaluation.metrics.citys_metric as official
    monkeypatch.setattr(cm, 'cityscapesscripts_available', lambda: True)
    monkeypatch.setattr(official, 'CSEval', object(), raising=False)
    labels = SimpleNamespace(
        trainId2label={i: SimpleNamespace(id=i + 7) for i in range(19)})
    monkeypatch.setattr(official, 'CSLabels', labels, raising=False)
    metric = cm.CityscapesMetric(output_dir=str(tmp_path / 'pred'),
                                 keep_results=True)
    assert metric.available
    gt = tmp_path / 'gtFine' / 'val' / 'a'
    gt.mkdir(parents=True)
    train_ids = gt / 'a_000000_000019_gtFine_labelTrainIds.png'
    pred = dict(
        pred_sem_seg=dict(data=torch.zeros(1, 4, 4, dtype=torch.long)),
        img_path=str(tmp_path / 'a_000000_000019_leftImg8bit.png'),
        seg_map_path=str(train_ids))
    with pytest.raises(FileNotFoundError, match='labelIds.png does not'):
        metric.process({}, [pred])
    import cv2
    cv2.imwrite(str(gt / 'a_000000_000019_gtFine_labelIds.png'),
                np.zeros((4, 4), np.uint8))
    metric.process({}, [pred])
    png, label_ids = metric.results[0]
    assert png.endswith('a_000000_000019_leftImg8bit.png')
    assert label_ids.endswith('_gtFine_labelIds.png')


def test_cityscapes_configs_list_both_metrics():
    cfg = Config.fromfile(
        f'{ROOT}/configs/seg/upernet_r50_cityscapes-512x1024.py')
    types = [m['type'] for m in cfg.test_evaluator]
    assert types == ['IoUMetric', 'densekit.CityscapesMetric']
