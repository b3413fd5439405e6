"""densekit.evaluation.functional.anomaly_metrics and densekit.AnomalyMetric:
exact ROC AUC / max-F1 / AU-PRO, checked against sklearn, hand-computed
cases and brute-force references, and the metric end to end."""
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement
from scipy import ndimage
from sklearn.metrics import f1_score, roc_auc_score

import densekit.evaluation.metrics.anomaly_metric as am
from densekit.evaluation import AnomalyMetric
from densekit.evaluation.functional import (f1_max, pixel_auroc, pro_auc,
                                            pro_curve, roc_auc)
from densekit.registry import METRICS

# ---------------------------------------------------------------- roc_auc


@pytest.mark.parametrize('seed', range(5))
def test_roc_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(200) < 0.3
    # few distinct values, so many ties across both classes
    scores = rng.integers(0, 6, 200) + labels * rng.integers(0, 3, 200)
    expected = roc_auc_score(labels, scores)
    assert roc_auc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(torch.from_numpy(scores).half(),
                   torch.from_numpy(labels)) == pytest.approx(
                       expected, abs=1e-12)


def test_roc_auc_hand_computed():
    # sklearn's docstring example: 3 of the 4 (pos, neg) pairs ordered
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    # pairs (pos 0.5, neg 0.5) tie = 1/2, the other three are right: 3.5/4
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == 0.875
    assert roc_auc([0.0, 1.0], [1, 0]) == 0.0
    assert roc_auc([3, 3, 3], [0, 1, 1]) == 0.5


def test_roc_auc_bad_input():
    with pytest.raises(ValueError, match='only one class.*0 anomalous and 3'):
        roc_auc([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ValueError, match='must be binary.*\\[2\\]'):
        roc_auc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match='1 NaN'):
        roc_auc([0.1, float('nan'), 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match='3 scores and 2 labels'):
        roc_auc([0.1, 0.2, 0.3], [0, 1])


# ----------------------------------------------------------------- f1_max


def test_f1_max_hand_computed():
    # P = 3; F1 = 2TP / (TP + FP + P) at score >= t:
    # t=.9: 2/4, t=.8: 2/5, t=.7: 4/6, t=.6: 6/7 (best), t=.5: 6/8
    f1, thr = f1_max([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 1, 0])
    assert f1 == pytest.approx(6 / 7)
    assert thr == 0.6
    # perfect separation: F1 = 1 at the lowest anomalous score
    assert f1_max([0.2, 0.7, 0.9], [0, 1, 1]) == (1.0, 0.7)
    # ties: both 0.5 samples flip together, t=.5: 2/(1+1+2) = 0.5; then
    # t=.1: 4/(2+1+2) = 0.8 (best)
    f1, thr = f1_max([0.5, 0.5, 0.1], [1, 0, 1])
    assert f1 == pytest.approx(0.8) and thr == 0.1


def test_f1_max_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.random(60) < 0.4
        scores = np.round(rng.random(60) + 0.3 * labels, 1)
        best = max((f1_score(labels, scores >= t), -t)
                   for t in np.unique(scores))
        f1, thr = f1_max(scores, labels)
        assert f1 == pytest.approx(best[0])
        assert thr == -best[1]


def test_f1_max_needs_a_positive():
    with pytest.raises(ValueError, match='at least one anomalous'):
        f1_max([0.1, 0.2], [0, 0])


# ---------------------------------------------------------------- AU-PRO


def _pro_auc_reference(maps, masks, fpr_limit):
    """Brute force: a loop over thresholds, then segment-wise integration
    clipped at fpr_limit."""
    regions, normal = [], []
    for m, g in zip(maps, masks):
        labelled, n = ndimage.label(g, structure=np.ones((3, 3)))
        regions += [m[labelled == k] for k in range(1, n + 1)]
        normal.append(m[g == 0])
    normal = np.concatenate(normal)
    xs, ys = [0.0], [0.0]
    for t in np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]:
        xs.append(np.mean(normal >= t))
        ys.append(np.mean([np.mean(r >= t) for r in regions]))
    xs.append(1.0)
    ys.append(1.0)
    area = 0.0
    for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        if x0 >= fpr_limit:
            break
        if x1 == x0:
            continue
        xe = min(x1, fpr_limit)
        ye = y0 + (y1 - y0) * (xe - x0) / (x1 - x0)
        area += (xe - x0) * (y0 + ye) / 2
    return area / fpr_limit


def test_pro_auc_perfect_map_is_one():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 16, 16)) < 0.1
    masks[0] = False  # an image without anomaly: normal pixels only
    maps = masks * rng.uniform(0.6, 1.0, masks.shape) + \
        ~masks * rng.uniform(0.0, 0.5, masks.shape)
    assert pro_auc(maps, masks) == pytest.approx(1.0)
    assert pro_auc(torch.from_numpy(maps).float(), torch.from_numpy(masks),
                   fpr_limit=1.0) == pytest.approx(1.0)
    # the exact opposite ranks all normal pixels first: PRO stays 0 until
    # FPR = 1
    assert pro_auc(-maps, masks) == 0.0


def test_pro_auc_hand_computed():
    # image 0: region B, three pixels touching only diagonally (ONE region
    # under 8-connectivity; 4-connectivity would make three), 3 normals;
    # image 1: region A, one pixel, 5 normals. 2 regions, 8 normal pixels.
    masks = np.array([[[1, 0, 1],
                       [0, 1, 0]],
                      [[1, 0, 0],
                       [0, 0, 0]]])
    maps = np.array([[[0.8, 0.7, 0.3],    # B: 0.8, 0.3, 0.2
                      [0.3, 0.2, 0.0]],   # normals: 0.7, 0.3, 0.0
                     [[0.9, 0.0, 0.0],    # A: 0.9
                      [0.0, 0.0, 0.0]]])  # normals: 0.0 x5
    # Each A pixel adds 1/(1*2) to PRO, each B pixel 1/(3*2), each normal
    # pixel 1/8 to FPR. Thresholds from high to low give (FPR, PRO):
    #   t=.9 (A): (0, 1/2)      t=.8 (B): (0, 2/3)
    #   t=.7 (normal): (1/8, 2/3)
    #   t=.3 (B and a normal, tied): (2/8, 5/6)  -- one sloped segment
    #   t=.2 (B): (2/8, 1)      t=0 (the 6 other normals): (1, 1)
    fprs, pros = pro_curve(maps, masks)
    np.testing.assert_allclose(fprs, [0, 0, 0, 1 / 8, 2 / 8, 2 / 8, 1, 1])
    np.testing.assert_allclose(pros,
                               [0, 1 / 2, 2 / 3, 2 / 3, 5 / 6, 1, 1, 1])
    # Up to FPR 0.3: [0, 1/8] at 2/3 -> 1/12; [1/8, 2/8] from 2/3 to 5/6
    # -> 1/8 * 3/4 = 3/32; [2/8, 0.3] at 1 -> 1/20. Sum 109/480, / 0.3.
    assert pro_auc(maps, masks) == pytest.approx(109 / 480 / 0.3)
    # Up to FPR 0.2 the limit cuts the sloped segment: PRO(0.2) =
    # 2/3 + (1/6) * (0.075 / 0.125) = 23/30, so the area is
    # 1/12 + 0.075 * (2/3 + 23/30) / 2 = 329/2400, / 0.2.
    assert pro_auc(maps, masks, fpr_limit=0.2) == pytest.approx(
        329 / 2400 / 0.2)
    assert pro_auc(torch.from_numpy(maps), torch.from_numpy(masks)) == \
        pytest.approx(109 / 480 / 0.3)
    # images of different sizes go in as a list
    small = ([maps[0], maps[1, :1]], [masks[0], masks[1, :1]])
    assert pro_auc(*small, fpr_limit=0.2) == pytest.approx(
        _pro_auc_reference(*small, 0.2))


@pytest.mark.parametrize('seed', range(6))
def test_pro_auc_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, h, w = 3, 9, 11
    masks = ndimage.binary_dilation(rng.random((n, h, w)) < 0.04,
                                    structure=np.ones((1, 2, 2)))
    masks[seed % n] = False  # one image without anomaly
    if not masks.any():
        masks[0, 0, 0] = True
    # quantised scores: ties within and across regions and normal pixels
    maps = np.round(rng.random((n, h, w)) + 0.4 * masks, 1)
    for limit in (0.05, 0.3, 1.0):
        assert pro_auc(maps, masks, fpr_limit=limit) == pytest.approx(
            _pro_auc_reference(list(maps), list(masks), limit), abs=1e-12)


def test_pro_auc_bad_input():
    maps = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match='no anomalous region'):
        pro_auc(maps, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match='no normal pixel'):
        pro_auc(maps, np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match='fpr_limit must be in'):
        pro_auc(maps, np.eye(4)[None].repeat(2, 0), fpr_limit=0)
    with pytest.raises(ValueError, match=r'\(4, 4\) but gt_masks\[0\] has '
                                         r'\(3, 3\)'):
        pro_auc(maps, np.zeros((2, 3, 3)))


def test_pixel_auroc_is_roc_auc_over_pixels():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 8, 8)) < 0.2
    maps = np.round(rng.random((3, 8, 8)) + 0.3 * masks, 1)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(maps, masks) == pytest.approx(expected)
    assert pixel_auroc(list(maps), list(masks * 255)) == pytest.approx(
        expected)


# ---------------------------------------------------------- AnomalyMetric


def _dataset(seed=0, size=(12, 16)):
    """Six normal and six anomalous samples of two defect types, as the
    tensors a model and an MVTec-style dataset give."""
    rng = np.random.default_rng(seed)
    h, w = size
    samples = []
    for i in range(12):
        anomalous = i >= 6
        mask = np.zeros(size, dtype=np.uint8)
        if anomalous:
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            mask[y:y + rng.integers(2, 5), x:x + rng.integers(2, 5)] = 1
        amap = rng.random(size) * 0.6 + mask * rng.uniform(0.1, 0.6)
        samples.append(dict(
            pred_score=float(amap.max()) + 0.1 * rng.random(),
            anomaly_map=torch.from_numpy(amap).float()[None],  # 1xHxW
            gt_label=int(anomalous),
            gt_mask=torch.from_numpy(mask),
            img_path=f'bottle/test/{i}.png',
            category='bottle',
            defect_type=('good', 'broken', 'contamination')[
                0 if not anomalous else 1 + i % 2]))
    return samples


def _expected(samples, maps=None, masks=None, limit=0.3):
    scores = [s['pred_score'] for s in samples]
    labels = [s['gt_label'] for s in samples]
    maps = [s['anomaly_map'][0].half().float().numpy()
            for s in samples] if maps is None else maps
    masks = [s['gt_mask'].numpy() for s in samples] if masks is None \
        else masks
    return {
        'image_AUROC': roc_auc_score(labels, scores),
        'pixel_AUROC': roc_auc_score(np.concatenate(
            [m.ravel() for m in masks]), np.concatenate(
                [m.ravel() for m in maps])),
        'AU-PRO': _pro_auc_reference(maps, masks, limit),
        'image_F1max': f1_max(scores, labels)[0],
        'pixel_F1max': f1_max(np.concatenate(maps),
                              np.concatenate(masks))[0],
    }


def test_metric_through_evaluator():
    samples = _dataset()
    elements = []
    for s in samples:
        meta = {k: s[k] for k in ('img_path', 'category', 'defect_type')}
        elements.append(BaseDataElement(
            metainfo=meta, pred_score=torch.tensor(s['pred_score']),
            anomaly_map=s['anomaly_map'], gt_label=torch.tensor(
                s['gt_label']), gt_mask=s['gt_mask']))
    evaluator = Evaluator(dict(type='densekit.AnomalyMetric'))
    for start in range(0, 12, 4):
        evaluator.process(elements[start:start + 4], data_batch={})
    metrics = evaluator.evaluate(12)
    expected = _expected(samples)
    assert set(metrics) == {f'anomaly/{k}' for k in expected}
    for key, value in expected.items():
        assert isinstance(metrics[f'anomaly/{key}'], float)
        assert metrics[f'anomaly/{key}'] == pytest.approx(value, abs=1e-9)


def test_metric_options_subset_and_registry():
    metric = METRICS.build(dict(type='densekit.AnomalyMetric',
                                metric='image_auroc'))
    samples = _dataset()
    metric.process({}, samples)
    # no map is stored when no pixel metric is asked for
    assert 'anomaly_map' not in metric.results[0]
    assert metric.compute_metrics(metric.results) == {
        'image_AUROC': pytest.approx(_expected(samples)['image_AUROC'])}


def test_metric_stores_float16_and_warns_beyond_it(monkeypatch):
    logged = []
    monkeypatch.setattr(am, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    metric = AnomalyMetric()
    samples = _dataset()
    metric.process({}, samples[:2])
    assert metric.results[0]['anomaly_map'].dtype == np.float16
    assert metric.results[0]['anomaly_map'].shape == (12, 16)
    big = dict(samples[2], anomaly_map=samples[2]['anomaly_map'] * 1e6)
    metric.process({}, [big, big])
    assert metric.results[2]['anomaly_map'].dtype == np.float32
    warnings = [m for m, level in logged if level == logging.WARNING]
    assert len(warnings) == 1 and "map_dtype='float32'" in warnings[0]
    full = AnomalyMetric(map_dtype='float32')
    full.process({}, samples[:1])
    assert full.results[0]['anomaly_map'].dtype == np.float32


def test_metric_map_hw_and_1hw_agree():
    samples = _dataset()
    flat = [dict(s, anomaly_map=s['anomaly_map'][0],
                 gt_mask=s['gt_mask'].numpy()) for s in samples]
    a, b = AnomalyMetric(), AnomalyMetric()
    a.process({}, samples)
    b.process({}, flat)
    assert a.compute_metrics(a.results) == b.compute_metrics(b.results)


def test_metric_missing_masks_skip_pixel_metrics(monkeypatch):
    logged = []
    monkeypatch.setattr(am, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    samples = _dataset()
    expected = _expected(samples)
    # a dataset without masks: key missing or None
    no_masks = [{k: v for k, v in s.items() if k != 'gt_mask'}
                for s in samples[:6]] + [dict(s, gt_mask=None)
                                         for s in samples[6:]]
    metric = AnomalyMetric()
    metric.process({}, no_masks)
    metrics = metric.compute_metrics(metric.results)
    assert set(metrics) == {'image_AUROC', 'image_F1max'}
    assert metrics['image_AUROC'] == pytest.approx(expected['image_AUROC'])
    assert any('no gt_mask' in m and 'skipped' in m and
               level == logging.INFO for m, level in logged)
    # one anomalous image without a mask: skipped with a warning naming it
    logged.clear()
    metric = AnomalyMetric()
    metric.process({}, samples[:-1] + [dict(samples[-1], gt_mask=None)])
    assert 'AU-PRO' not in metric.compute_metrics(metric.results)
    assert any(level == logging.WARNING and 'bottle/test/11.png' in m
               for m, level in logged)


def test_metric_normal_images_without_masks_are_all_normal():
    samples = _dataset()
    metric = AnomalyMetric()
    metric.process({}, [dict(s, gt_mask=None) for s in samples[:6]] +
                   samples[6:])
    metrics = metric.compute_metrics(metric.results)
    for key, value in _expected(samples).items():
        assert metrics[key] == pytest.approx(value, abs=1e-9)


def test_metric_map_size_downsamples():
    samples = _dataset(size=(16, 24))
    metric = AnomalyMetric(map_size=(8, 12), pro_fpr_limit=0.2)
    metric.process({}, samples)
    assert metric.results[0]['anomaly_map'].shape == (8, 12)
    assert metric.results[0]['gt_mask'].shape == (8, 12)
    maps = [F.interpolate(s['anomaly_map'][None], (8, 12), mode='area')[0, 0]
            .half().float().numpy() for s in samples]
    masks = [F.interpolate(s['gt_mask'][None, None].float(), (8, 12),
                           mode='nearest-exact')[0, 0].numpy() != 0
             for s in samples]
    metrics = metric.compute_metrics(metric.results)
    for key, value in _expected(samples, maps, masks, limit=0.2).items():
        assert metrics[key] == pytest.approx(value, abs=1e-9)
    # an int is a square size; growing uses bilinear
    up = AnomalyMetric(map_size=32)
    up.process({}, samples[:1])
    assert up.results[0]['anomaly_map'].shape == (32, 32)


def test_metric_per_defect():
    good = [0.1, 0.2, 0.3]
    broken = [0.9, 0.25]   # beats 3 + 2 of the 3 good ones: 5/6
    scratch = [0.05]       # beats none: 0
    samples = [dict(pred_score=s, gt_label=0, defect_type='good')
               for s in good]
    samples += [dict(pred_score=s, gt_label=1, defect_type='broken')
                for s in broken]
    samples += [dict(pred_score=s, gt_label=1, defect_type='scratch')
                for s in scratch]
    metric = AnomalyMetric(metric='image_auroc', per_defect=True)
    metric.process({}, samples)
    assert metric.compute_metrics(metric.results) == {
        'image_AUROC': pytest.approx(5 / 9),
        'image_AUROC/broken': pytest.approx(5 / 6),
        'image_AUROC/scratch': 0.0}
    with pytest.raises(KeyError, match="'defect_type'"):
        metric.process({}, [dict(pred_score=0.1, gt_label=0)])


def test_metric_bad_arguments_and_inputs():
    with pytest.raises(KeyError, match="unknown metric.*'auroc'.*"
                                       "'image_auroc', 'pixel_auroc'"):
        AnomalyMetric(metric=('image_auroc', 'auroc'))
    with pytest.raises(ValueError, match='pro_fpr_limit'):
        AnomalyMetric(pro_fpr_limit=1.5)
    with pytest.raises(ValueError, match='map_size'):
        AnomalyMetric(map_size=(8, 0))
    with pytest.raises(ValueError, match='map_dtype'):
        AnomalyMetric(map_dtype='float64')
    metric = AnomalyMetric()
    sample = _dataset()[0]
    with pytest.raises(ValueError, match=r'bottle/test/0.png.*\(12, 16\) but '
                                         r'gt_mask has \(6, 8\)'):
        metric.process({}, [dict(sample, gt_mask=torch.zeros(6, 8))])
    with pytest.raises(KeyError, match="no 'anomaly_map'"):
        metric.process({}, [{k: v for k, v in sample.items()
                             if k != 'anomaly_map'}])
    with pytest.raises(ValueError, match='gt_label must be 0'):
        metric.process({}, [dict(sample, gt_label=2)])
    with pytest.raises(ValueError, match='anomaly_map contains NaN'):
        metric.process({}, [dict(sample, anomaly_map=sample['anomaly_map'] *
                                 float('nan'))])
    with pytest.raises(ValueError, match='single number'):
        metric.process({}, [dict(sample, pred_score=torch.zeros(2))])
    # only normal images: image AUROC is undefined
    metric.process({}, [sample, sample])
    with pytest.raises(ValueError, match='0 anomalous and 2 normal'):
        metric.compute_metrics(metric.results)
