"""AnomalyInferencer, draw_anomaly and build_inferencer on EfficientAD.

EfficientAD-S runs at 256x256 whatever the image size (about 0.6-2 s a
forward on a busy CPU), so the module scores two images once and the tests
share them.
"""
import json
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from densekit.apis import (AnomalyInferencer, AnomalyResult, build_inferencer,
                           draw_anomaly)
from densekit.apis.anomaly_inferencer import (DEFAULT_SCORE_THR,
                                              build_anomaly_inference_pipeline)
from densekit.apis.seg_inferencer import config_task
from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'anomaly', 'efficientad_s_synthetic.py')
MVTEC = osp.join(ROOT, 'configs', 'anomaly', 'efficientad_s_mvtec.py')
IMG_SIZE = 128  # the generated images; the model input stays 256x256


def make_checkpoint(path, *, calibrated=True, seed=0):
    """An EfficientAD-S checkpoint with random weights; with ``calibrated``
    its teacher statistics and map quantiles come from random images."""
    from densekit.models import EfficientAD
    torch.manual_seed(seed)
    model = EfficientAD(allow_random_teacher=True)
    if calibrated:
        batches = [torch.rand(2, 3, 256, 256)]
        model.set_teacher_stats(batches)
        model.set_map_quantiles(batches)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def make_images(root):
    """A tiny synthetic set; returns (normal image path, defect path)."""
    from densekit.datasets.synthetic import generate_anomaly_mvtec
    info = generate_anomaly_mvtec(str(root), num_train=4, num_test_good=2,
                                  num_test_defect=3, img_size=IMG_SIZE)
    test = osp.join(info['category_dir'], 'test')
    return (osp.join(test, 'good', '000.png'),
            osp.join(test, 'scratch', '000.png'))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp('ckpt') / 'ead.pth')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp('synthetic_anomaly'))


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # calibrated: no warning
        return AnomalyInferencer(CONFIG, checkpoint, device='cpu')


@pytest.fixture(scope='module')
def scored(inferencer, images):
    """A path and a non-square array (the defect image cropped), scored
    once, with the model's own (N, 1, h, w) maps recorded."""
    model = inferencer.model
    original = model.anomaly_maps
    calls = []

    def spy(normalized):
        maps = original(normalized)
        calls.append((tuple(normalized.shape), maps[0].clone()))
        return maps

    inputs = [images[0], cv2.imread(images[1])[:, :96]]
    model.anomaly_maps = spy  # instance attribute, removed below
    try:
        results = inferencer(inputs)
    finally:
        del model.anomaly_maps
    return inputs, results, calls


def test_results_follow_the_model(inferencer, scored):
    inputs, results, calls = scored
    assert len(results) == len(calls) == 2
    shapes = [(IMG_SIZE, IMG_SIZE), (IMG_SIZE, 96)]
    for result, shape, (net_shape, combined) in zip(results, shapes, calls):
        assert isinstance(result, AnomalyResult)
        assert net_shape == (1, 3, 256, 256)  # the config's Resize
        # the map is at the image size, float32
        assert result.anomaly_map.shape == shape == result.img_shape
        assert result.anomaly_map.dtype == np.float32
        # the score is the model's: the maximum of the combined map (64x64
        # with the 4-px padding) bilinearly resized to the image, as
        # nelson1425's efficientad.py scores (it was the 64x64 maximum)
        assert combined.shape == (1, 1, 64, 64)
        expected = F.interpolate(combined, size=shape, mode='bilinear')
        assert result.score == pytest.approx(float(expected.amax()),
                                             abs=1e-6)
        np.testing.assert_allclose(result.anomaly_map,
                                   expected[0, 0].numpy(), atol=1e-6)
        assert result.anomaly_map.max() == pytest.approx(result.score,
                                                         abs=1e-6)
        assert result.threshold == DEFAULT_SCORE_THR == inferencer.score_thr
        assert result.is_anomalous == (result.score >= DEFAULT_SCORE_THR)
        assert result.calibrated
        assert set(result.timings_ms) == {'preprocess', 'inference',
                                          'postprocess'}
        record = json.loads(json.dumps(result.to_dict()))
        assert record['is_anomalous'] == result.is_anomalous
        assert abs(record['score'] - result.score) < 1e-5
    assert results[0].img_path == inputs[0] and results[1].img_path is None
    assert results[0].score != results[1].score


def test_decision_follows_the_threshold(checkpoint, scored):
    inputs, results, _ = scored
    low, high = sorted(r.score for r in results)
    midpoint = (low + high) / 2
    # model.test_cfg.score_threshold is the default, score_thr wins over it
    options = {'model.test_cfg': dict(score_threshold=midpoint)}
    explicit = AnomalyInferencer(CONFIG, checkpoint, device='cpu',
                                 score_thr=0.7, cfg_options=options)
    assert explicit.score_thr == 0.7
    inferencer = AnomalyInferencer(CONFIG, checkpoint, device='cpu',
                                   cfg_options=options)
    assert inferencer.score_thr == midpoint
    again = inferencer(inputs)
    for before, after in zip(results, again):
        assert after.score == pytest.approx(before.score, abs=1e-6)
        assert after.threshold == midpoint
        assert after.is_anomalous == (before.score == high)


def test_warns_without_quantiles(tmp_path):
    with pytest.warns(UserWarning, match='no checkpoint was given'):
        inferencer = AnomalyInferencer(CONFIG, device='cpu')
    assert not inferencer.calibrated
    stale = make_checkpoint(tmp_path / 'stale.pth', calibrated=False)
    with pytest.warns(UserWarning, match='has_quantiles=False'):
        AnomalyInferencer(CONFIG, stale, device='cpu')


def test_bad_arguments_raise(checkpoint):
    with pytest.raises(ValueError, match='score_thr must be a finite'):
        AnomalyInferencer(CONFIG, checkpoint, score_thr=True)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        AnomalyInferencer(CONFIG, 'missing.pth')
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        pipeline=[dict(type='Resize', scale=(256, 256))]))))
    with pytest.raises(ValueError, match='must start by loading'):
        build_anomaly_inference_pipeline(cfg)
    pipeline = build_anomaly_inference_pipeline(Config.fromfile(CONFIG))
    assert [t['type'] for t in pipeline] == ['Resize', 'PackAnomalyInputs']


def test_build_inferencer_detects_anomaly_configs(checkpoint):
    assert config_task(CONFIG) == config_task(MVTEC) == 'anomaly'
    assert config_task(osp.join(ROOT, 'configs', 'det',
                                'yolov8_n_shapes.py')) == 'det'
    inferencer = build_inferencer(CONFIG, checkpoint, device='cpu',
                                  score_thr=0.5)
    assert isinstance(inferencer, AnomalyInferencer)
    assert inferencer.score_thr == 0.5


def test_draw_anomaly_uses_a_fixed_colour_range():
    img = np.full((64, 80, 3), 120, np.uint8)
    anomaly_map = np.zeros((64, 80), np.float32)
    anomaly_map[20:40, 30:60] = 1.0  # >= 2 * threshold: JET's dark red
    plain = dict(contour=False, label=False)
    vis = draw_anomaly(img, anomaly_map, 1.0, 0.3, **plain)
    assert vis.shape == img.shape and vis.dtype == np.uint8
    # 0.5 * grey 120 + 0.5 * JET: BGR (0, 0, 128) high, (128, 0, 0) at 0
    assert tuple(vis[30, 45]) == (60, 60, 124)
    assert tuple(vis[5, 5]) == (124, 60, 60)
    # equal values, equal colours in images with different maxima (no
    # per-image min-max scaling)
    low_map = np.where(anomaly_map > 0, 0.3, 0).astype(np.float32)
    low = draw_anomaly(img, low_map, 0.3, 0.3, **plain)
    mixed = anomaly_map.copy()
    mixed[0:10, 0:10] = 0.3
    assert np.array_equal(
        draw_anomaly(img, mixed, 1.0, 0.3, **plain)[5, 5], low[30, 45])
    assert not np.array_equal(low[30, 45], vis[30, 45])
    # the contour is white on the square's border only
    outlined = draw_anomaly(img, anomaly_map, 1.0, 0.3, label=False)
    assert outlined[20, 45].min() > 200
    assert np.array_equal(outlined[30, 45], vis[30, 45])
    # the label lands in the requested corner
    labelled = draw_anomaly(img, anomaly_map, 1.0, 0.3, contour=False,
                            corner='bottom-right')
    assert not np.array_equal(labelled[-12:, -30:], vis[-12:, -30:])
    assert np.array_equal(labelled[:20, :20], vis[:20, :20])


def test_draw_anomaly_rejects_bad_input():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='differ'):
        draw_anomaly(img, np.zeros((4, 8)), 0.0, 0.3)
    with pytest.raises(ValueError, match='vmax > vmin'):
        draw_anomaly(img, np.zeros((8, 8)), 0.0, 0.0)
    with pytest.raises(ValueError, match='corner'):
        draw_anomaly(img, np.zeros((8, 8)), 0.0, 0.3, corner='middle')
    with pytest.raises(ValueError, match='finite number'):
        draw_anomaly(img, np.zeros((8, 8)), float('nan'), 0.3)
