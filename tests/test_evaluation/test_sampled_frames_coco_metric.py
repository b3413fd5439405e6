"""SampledFramesCocoMetric: frames without a sample are not misses."""
import json

import numpy as np
import pytest
import torch

from tests.test_evaluation.test_streaming_ap import (STATIC, _moving, _xyxy,
                                                     hand_ap, make_gt)


def _evaluate(metric_type, ann_file, fids):
    from mmdet.structures import DetDataSample
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData
    init_default_scope('mmdet')
    evaluator = Evaluator(dict(type=metric_type, ann_file=ann_file,
                               metric='bbox'))
    evaluator.dataset_meta = dict(classes=('person', 'car'))
    for fid in fids:
        sample = DetDataSample(metainfo=dict(img_id=fid, ori_shape=(320,
                                                                    320)))
        sample.pred_instances = InstanceData(
            bboxes=torch.tensor([_xyxy(STATIC), _xyxy(_moving(fid))]),
            scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 0]))
        evaluator.process([sample.to_dict()], dict())
    return evaluator.evaluate(len(fids))


def test_unsampled_frames_are_not_misses(tmp_path):
    ann_file = str(tmp_path / 'val.json')
    with open(ann_file, 'w') as f:
        json.dump(make_gt(num_frames=4), f)
    # a forecaster of frame t+1 has no sample targeting frame 0
    fids = [1, 2, 3]
    plain = _evaluate('CocoMetric', ann_file, fids)
    ours = _evaluate('densekit.SampledFramesCocoMetric', ann_file, fids)
    # mmdet's metric counts frame 0's two objects as missed: 6 of 8 found
    assert plain['coco/bbox_mAP'] == pytest.approx(
        round(float(hand_ap(6, 8)), 3))
    assert ours['coco/bbox_mAP'] == pytest.approx(1.0)
    # all frames sampled: the two agree
    full = _evaluate('densekit.SampledFramesCocoMetric', ann_file,
                     [0, 1, 2, 3])
    assert full['coco/bbox_mAP'] == pytest.approx(1.0)
    assert np.isfinite(full['coco/bbox_mAP_50'])
