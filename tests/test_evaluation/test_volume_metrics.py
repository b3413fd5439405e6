"""densekit.evaluation.functional.volume_metrics and densekit.VolumeSegMetric:
Dice and medpy-style HD95 checked on hand-computed cases and against a
brute-force all-pairs reference, the TransUNet empty-mask policy, and the
metric end to end (slices out of order across volumes, via the Evaluator)."""
import itertools
import logging

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import densekit.evaluation.metrics.volume_metric as vm
from densekit.evaluation import VolumeSegMetric
from densekit.evaluation.functional import (dice_coefficient, hd95,
                                            per_class_volume_metrics,
                                            surface_distances)
from densekit.registry import METRICS

# ------------------------------------------------------- brute force


def _surface_ref(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """Foreground voxels with a background (or out-of-array) neighbour,
    where neighbours are the offsets of ``generate_binary_structure``
    (at most ``connectivity`` nonzero coordinates): medpy's surface,
    written without scipy."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    surface = np.zeros_like(mask)
    for offset in itertools.product((-1, 0, 1), repeat=mask.ndim):
        if not 0 < np.count_nonzero(offset) <= connectivity:
            continue
        shifted = tuple(slice(1 + o, padded.shape[d] - 1 + o)
                        for d, o in enumerate(offset))
        surface |= mask & ~padded[shifted]
    assert surface.shape == padded[inner].shape
    return surface


def _directed_ref(a, b, spacing, connectivity):
    """All-pairs distances from each surface voxel of a (C order) to the
    nearest surface voxel of b."""
    scale = np.ones(a.ndim) if spacing is None else np.asarray(spacing)
    pa = np.argwhere(_surface_ref(a, connectivity)) * scale
    pb = np.argwhere(_surface_ref(b, connectivity)) * scale
    return np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1)).min(1)


def _hd95_ref(a, b, spacing=None, connectivity=1):
    d = np.hstack((_directed_ref(a, b, spacing, connectivity),
                   _directed_ref(b, a, spacing, connectivity)))
    return float(np.percentile(d, 95))


def _cube(shape, start, size=3):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


# ----------------------------------------------------------------- Dice


def test_dice_hand_computed():
    pred = np.zeros((2, 5), dtype=np.uint8)
    gt = np.zeros((2, 5), dtype=np.uint8)
    pred[0, :4] = 1  # 4 voxels
    gt[0, 1:] = 1  # 4 voxels
    gt[1, :2] = 7  # nonzero counts as foreground: 6 voxels in all
    # overlap 3: 2 * 3 / (4 + 6)
    assert dice_coefficient(pred, gt) == pytest.approx(0.6)
    assert dice_coefficient(torch.from_numpy(pred), gt) == pytest.approx(0.6)
    assert dice_coefficient(gt, gt) == 1.0
    assert dice_coefficient(pred, np.zeros_like(gt)) == 0.0
    # medpy's convention when both are empty
    assert dice_coefficient(np.zeros(3), np.zeros(3)) == 1.0
    with pytest.raises(ValueError, match=r'same shape.*\(2, 5\) and \(5,\)'):
        dice_coefficient(pred, gt[0])


# ----------------------------------------------------------------- HD95


def test_hd95_identical_masks_is_zero():
    cube = _cube((6, 7, 8), (1, 2, 3), size=4)
    assert hd95(cube, cube) == 0.0
    assert hd95(cube, cube, spacing=(2.0, 1.0, 0.5)) == 0.0


@pytest.mark.parametrize('k', [1, 2, 3])
def test_hd95_cubes_offset_by_k(k):
    # 3x3x3 cubes, B shifted by k along x: 26 surface voxels each (the
    # centre erodes). For k=2 the A surface layers x=2,3,4 hold 9, 8, 9
    # voxels at distances 2, 1, 0 from B's surface (B's x=4 face is all
    # surface), and symmetrically B->A; the 95th percentile of the 52
    # values falls in the top 18, so HD95 = 2. The same holds for k=1, 3.
    a = _cube((8, 8, 10), (2, 2, 2))
    b = _cube((8, 8, 10), (2, 2, 2 + k))
    assert hd95(a, b) == pytest.approx(k)
    if k == 2:
        d = np.sort(surface_distances(a, b))
        assert d.tolist() == [0.0] * 9 + [1.0] * 8 + [2.0] * 9
    # anisotropic spacing scales the distances along the shifted axis only
    assert hd95(a, b, spacing=(1.0, 1.0, 0.5)) == pytest.approx(0.5 * k)
    assert hd95(a, b, spacing=(3.0, 3.0, 1.0)) == pytest.approx(k)
    bz = _cube((10, 8, 8), (2 + k, 2, 2))
    az = _cube((10, 8, 8), (2, 2, 2))
    assert hd95(az, bz, spacing=(3.0, 1.0, 1.0)) == pytest.approx(3.0 * k)


def test_hd95_is_the_interpolated_percentile_not_the_max():
    a = np.zeros(12, dtype=bool)
    b = a.copy()
    a[0] = True
    b[[0, 10]] = True
    # distances a->b [0], b->a [0, 10]; percentile 95 of [0, 0, 10] with
    # linear interpolation: position 0.95 * 2 = 1.9 -> 0 + 0.9 * 10
    assert hd95(a, b) == pytest.approx(9.0)
    assert hd95(b, a) == pytest.approx(9.0)
    assert hd95(a, b, spacing=0.5) == pytest.approx(4.5)


@pytest.mark.parametrize('seed', range(12))
def test_hd95_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(int(s) for s in rng.integers(3, 9, ndim))
    # sparse blobs, often touching the array boundary (a surface there)
    a = rng.random(shape) < 0.25
    b = rng.random(shape) < 0.25
    a.flat[0] = b.flat[-1] = True
    spacing = None if seed < 4 else tuple(rng.uniform(0.3, 3.0, ndim))
    connectivity = int(1 + seed % ndim)
    fast = hd95(a, b, spacing=spacing, connectivity=connectivity)
    ref = _hd95_ref(a, b, spacing, connectivity)
    print(f'seed {seed}: fast {fast!r} ref {ref!r} diff {abs(fast - ref)}')
    assert fast == pytest.approx(ref, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(
        surface_distances(a, b, spacing, connectivity),
        _directed_ref(a, b, spacing, connectivity), rtol=1e-12, atol=1e-12)


def test_hd95_small_object_in_large_volume_uses_the_crop_exactly():
    # objects far from each other and from the boundary, plus one voxel on
    # the boundary: the crop must not change anything
    shape = (12, 30, 30)
    a = _cube(shape, (3, 4, 5), size=3)
    b = _cube(shape, (5, 20, 22), size=2)
    b[11, 29, 29] = True
    for spacing in (None, (2.5, 0.7, 0.7)):
        assert hd95(a, b, spacing) == pytest.approx(
            _hd95_ref(a, b, spacing), rel=1e-12)


def test_hd95_bad_input():
    a = _cube((5, 5, 5), (1, 1, 1))
    with pytest.raises(ValueError, match='gt contains no foreground'):
        hd95(a, np.zeros_like(a))
    with pytest.raises(ValueError, match='pred contains no foreground'):
        hd95(np.zeros_like(a), a)
    with pytest.raises(ValueError, match='sequence of 3 numbers'):
        hd95(a, a, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match='positive finite'):
        hd95(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r'connectivity must be an int in '
                       r'\[1, 3\].*got 4'):
        hd95(a, a, connectivity=4)


# ------------------------------------------------ per-class, empty policy


def _policy_volumes():
    shape = (4, 6, 6)
    pred = np.zeros(shape, dtype=np.uint8)
    gt = np.zeros(shape, dtype=np.uint8)
    pred[1:3, 1:4, 1:4] = 1  # class 1 in both, shifted by one along x
    gt[1:3, 1:4, 2:5] = 1
    pred[0, 0, 0] = 2  # class 2 predicted only (false positive)
    gt[3, 5, 5] = 3  # class 3 in the ground truth only (missed)
    # class 4 in neither
    return pred, gt


def test_per_class_transunet_policy_reproduces_calculate_metric_percase():
    pred, gt = _policy_volumes()
    dice, dist = per_class_volume_metrics(pred, gt, num_classes=5)
    assert dice.shape == dist.shape == (4, )
    c1_dice = dice_coefficient(pred == 1, gt == 1)
    c1_hd95 = hd95(pred == 1, gt == 1)
    assert c1_dice == pytest.approx(2 * 12 / 36)
    # TransUNet: (dc, hd95) | pred only (1, 0) | otherwise (0, 0)
    np.testing.assert_allclose(dice, [c1_dice, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(dist, [c1_hd95, 0.0, 0.0, 0.0])


def test_per_class_nan_policy():
    pred, gt = _policy_volumes()
    dice, dist = per_class_volume_metrics(pred, gt, 5, empty_policy='nan')
    np.testing.assert_allclose(
        dice, [dice_coefficient(pred == 1, gt == 1), 0.0, 0.0, np.nan])
    np.testing.assert_allclose(
        dist, [hd95(pred == 1, gt == 1), np.nan, np.nan, np.nan])


def test_per_class_spacing_and_ignore_index():
    pred, gt = _policy_volumes()
    base = per_class_volume_metrics(pred, gt, 5)[1][0]
    scaled = per_class_volume_metrics(pred, gt, 5, spacing=(1, 1, 0.5))[1][0]
    assert scaled == pytest.approx(hd95(pred == 1, gt == 1, (1, 1, 0.5)))
    assert scaled == pytest.approx(base / 2)
    # ignoring the voxels of the missed class-3 voxel and of the false
    # positive makes those classes empty in both
    gt_ign = gt.copy()
    gt_ign[3, 5, 5] = 255
    gt_ign[0, 0, 0] = 255
    dice, _ = per_class_volume_metrics(pred, gt_ign, 5, empty_policy='nan',
                                       ignore_index=255)
    assert np.isnan(dice[1:]).all()
    with pytest.raises(ValueError, match=r'gt_vol must hold labels in '
                       r'\[0, 5\), got \[255\]'):
        per_class_volume_metrics(pred, gt_ign, 5)
    with pytest.raises(ValueError, match="empty_policy must be one of"):
        per_class_volume_metrics(pred, gt, 5, empty_policy='zero')
    with pytest.raises(ValueError, match='num_classes must be an int >= 2'):
        per_class_volume_metrics(pred, gt, 1)


# --------------------------------------------------------------- metric

CLASSES = ('background', 'liver', 'kidney')


def _volumes():
    """Two labelled volumes: 'a' (4 slices) predicted perfectly, 'b'
    (3 slices) with the liver shifted along z and the kidney missed in
    one slice."""
    gt_a = np.zeros((4, 8, 8), dtype=np.int64)
    gt_a[1:3, 2:5, 2:5] = 1
    gt_a[0:4, 5:7, 5:7] = 2
    gt_b = np.zeros((3, 8, 8), dtype=np.int64)
    gt_b[0:2, 1:4, 1:4] = 1
    gt_b[:, 6:8, 0:3] = 2
    pred_b = np.zeros_like(gt_b)
    pred_b[1:3, 1:4, 1:4] = 1
    pred_b[1:, 6:8, 0:3] = 2
    gt_b[2, 0, 7] = 255  # ignored
    return {'a': (gt_a.copy(), gt_a), 'b': (pred_b, gt_b)}


def _samples(volumes, spacing=None, skip=()):
    """Slices of all volumes as SegDataSamples, interleaved and shuffled."""
    samples = []
    for vid, (pred, gt) in volumes.items():
        for z in range(pred.shape[0]):
            if (vid, z) in skip:
                continue
            s = SegDataSample(metainfo=dict(
                volume_id=vid, slice_index=z, num_slices=pred.shape[0],
                spacing=None if spacing is None else spacing.get(vid),
                img_path=f'{vid}_{z}.png'))
            s.pred_sem_seg = PixelData(data=torch.from_numpy(pred[z:z + 1]))
            s.gt_sem_seg = PixelData(data=torch.from_numpy(gt[z:z + 1]))
            samples.append(s)
    order = np.random.default_rng(0).permutation(len(samples))
    return [samples[i] for i in order]


def _expected(volumes, spacing=None, policy='transunet'):
    rows = [per_class_volume_metrics(
        pred, gt, 3, spacing=None if spacing is None else spacing.get(vid),
        empty_policy=policy, ignore_index=255)
        for vid, (pred, gt) in sorted(volumes.items())]
    dice = np.nanmean([r[0] for r in rows], 0)
    dist = np.nanmean([r[1] for r in rows], 0)
    out = {'mDice': dice.mean(), 'mHD95': dist.mean()}
    for c, name in enumerate(CLASSES[1:]):
        out[f'Dice/{name}'] = dice[c]
        out[f'HD95/{name}'] = dist[c]
    return out


def _run(samples, batch=3, **kwargs):
    evaluator = Evaluator(dict(type='densekit.VolumeSegMetric', **kwargs))
    evaluator.dataset_meta = dict(classes=CLASSES)
    for start in range(0, len(samples), batch):
        evaluator.process(samples[start:start + batch], data_batch={})
    return evaluator.evaluate(len(samples))


def test_metric_through_evaluator_slices_out_of_order():
    volumes = _volumes()
    samples = _samples(volumes)
    order = [(s.volume_id, s.slice_index) for s in samples]
    assert order != sorted(order)  # really shuffled across volumes
    metrics = _run(samples)
    expected = _expected(volumes)
    assert set(metrics) == {f'volume/{k}' for k in expected}
    for key, value in expected.items():
        assert isinstance(metrics[f'volume/{key}'], float)
        assert metrics[f'volume/{key}'] == pytest.approx(value, abs=1e-12)
    # hand check of 'b': liver 3x3 in z 0-1 vs 1-2 -> Dice 2*9/36 = 0.5;
    # kidney 18 voxels vs 12 predicted, all inside -> 24/30; 'a' perfect
    assert metrics['volume/Dice/liver'] == pytest.approx((1 + 0.5) / 2)
    assert metrics['volume/Dice/kidney'] == pytest.approx((1 + 0.8) / 2)
    assert metrics['volume/HD95/liver'] == pytest.approx(
        hd95(volumes['b'][0] == 1, volumes['b'][1] == 1) / 2)


def test_metric_distributed_path_assembles_in_compute(monkeypatch):
    volumes = _volumes()
    samples = [s.to_dict() for s in _samples(volumes)]
    # world size 1: volumes are scored as they complete, labels released
    eager = VolumeSegMetric(num_classes=3, class_names=CLASSES)
    eager.process({}, samples)
    assert all(r['pred'] is None and r['gt'] is None for r in eager.results)
    assert sum(r['volume_result'] is not None for r in eager.results) == 2
    # world size > 1: every slice is kept (uint8) for mmengine to gather
    monkeypatch.setattr(vm, 'get_world_size', lambda: 2)
    deferred = VolumeSegMetric(num_classes=3, class_names=CLASSES)
    deferred.process({}, samples)
    assert len(deferred.results) == len(samples)
    assert all(r['pred'].dtype == np.uint8 and r['pred'].shape == (8, 8)
               for r in deferred.results)
    # as gathered from two ranks, in another order
    gathered = deferred.results[1::2] + deferred.results[0::2]
    assert deferred.compute_metrics(gathered) == pytest.approx(
        eager.compute_metrics(eager.results))
    assert eager.compute_metrics(eager.results) == pytest.approx(
        _expected(volumes))


def test_metric_incomplete_volume_names_missing_slices(monkeypatch):
    volumes = _volumes()
    samples = _samples(volumes, skip={('a', 1), ('a', 2)})
    with pytest.raises(ValueError, match=r"volume 'a' is incomplete: 2 of 4 "
                       r'slices missing, indices 1-2'):
        _run(samples)
    # the same after gathering in a distributed run
    monkeypatch.setattr(vm, 'get_world_size', lambda: 2)
    metric = VolumeSegMetric(num_classes=3)
    metric.process({}, [s.to_dict() for s in samples])
    with pytest.raises(ValueError, match=r"'a' is incomplete.*indices 1-2"):
        metric.compute_metrics(metric.results)


def test_metric_duplicate_slice_is_an_error(monkeypatch):
    samples = [s.to_dict() for s in _samples(_volumes())]
    metric = VolumeSegMetric(num_classes=3)
    with pytest.raises(ValueError, match="slice 0 of volume 'b' was "
                       'processed twice'):
        metric.process({}, samples + [s for s in samples
                                      if s['volume_id'] == 'b'
                                      and s['slice_index'] == 0])
    monkeypatch.setattr(vm, 'get_world_size', lambda: 2)
    metric = VolumeSegMetric(num_classes=3)
    metric.process({}, samples + samples[:1])
    with pytest.raises(ValueError, match='duplicate slice'):
        metric.compute_metrics(metric.results)


def test_metric_uses_spacing_when_given(monkeypatch):
    volumes = _volumes()
    spacing = {'a': (2.5, 0.8, 0.8), 'b': (2.5, 0.8, 0.8)}
    voxels = _run(_samples(volumes, spacing), spacing_from_meta=False)
    physical = _run(_samples(volumes, spacing))
    expected = _expected(volumes, spacing)
    for key, value in expected.items():
        assert physical[f'volume/{key}'] == pytest.approx(value, abs=1e-12)
    # the liver of 'b' is off by one slice only: 1 voxel -> 2.5 mm
    assert voxels['volume/HD95/liver'] == pytest.approx(0.5)
    assert physical['volume/HD95/liver'] == pytest.approx(2.5 / 2)
    assert physical['volume/mDice'] == voxels['volume/mDice']
    # spacing for one volume only: a warning about mixed units
    logged = []
    monkeypatch.setattr(vm, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    _run(_samples(volumes, {'b': (2.5, 0.8, 0.8)}))
    assert any('mixes physical units and voxels' in m
               and level == logging.WARNING for m, level in logged)


def test_metric_nan_policy_and_per_volume_table(monkeypatch):
    volumes = _volumes()
    pred_b, gt_b = volumes['b']
    volumes['b'] = (np.where(pred_b == 2, 0, pred_b), gt_b)  # kidney missed
    logged = []
    monkeypatch.setattr(vm, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    metrics = _run(_samples(volumes), hd95_empty_policy='nan',
                   log_per_volume=True)
    expected = _expected(volumes, policy='nan')
    for key, value in expected.items():
        assert metrics[f'volume/{key}'] == pytest.approx(value, abs=1e-12)
    # the missed kidney counts as Dice 0 but has no HD95
    assert metrics['volume/Dice/kidney'] == pytest.approx(0.5)
    assert metrics['volume/HD95/kidney'] == 0.0  # only 'a', which is exact
    table = [m for m, level in logged if level == logging.INFO][-1]
    transunet = _run(_samples(volumes))
    assert transunet['volume/Dice/kidney'] == pytest.approx(0.5)
    assert "policy 'nan'" in table and 'per volume:' in table
    assert 'kidney Dice/HD95' in table
    assert any(line.strip().startswith('b ') for line in table.splitlines())


def test_metric_bad_config_and_input():
    with pytest.raises(ValueError, match='hd95_empty_policy must be one of'):
        VolumeSegMetric(num_classes=3, hd95_empty_policy='zero')
    with pytest.raises(ValueError, match='num_classes must be None or an int'):
        VolumeSegMetric(num_classes=1)
    samples = [s.to_dict() for s in _samples(_volumes())]
    metric = METRICS.build(dict(type='densekit.VolumeSegMetric',
                                num_classes=4))
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(ValueError, match=r"num_classes=4 but dataset_meta\["
                       r"'classes'\] has 3 entries"):
        metric.process({}, samples)
    with pytest.raises(ValueError, match='num_classes is None and '
                       'dataset_meta has no'):
        VolumeSegMetric().process({}, samples)
    with pytest.raises(ValueError, match='ignore_index=2 is a valid class'):
        VolumeSegMetric(num_classes=3, ignore_index=2).process({}, samples)
    with pytest.raises(ValueError, match='class_names has 2 entries'):
        VolumeSegMetric(num_classes=3, class_names=('a', 'b')).process(
            {}, samples)
    no_meta = {k: v for k, v in samples[0].items() if k != 'num_slices'}
    with pytest.raises(KeyError, match="has no 'num_slices' metainfo"):
        VolumeSegMetric(num_classes=3).process({}, [no_meta])
    bad = dict(samples[0], pred_sem_seg=dict(data=torch.full((1, 8, 8), 3)))
    with pytest.raises(ValueError, match=r'pred_sem_seg must hold labels in '
                       r'\[0, 3\), got \[3\]'):
        VolumeSegMetric(num_classes=3).process({}, [bad])
    bad = dict(samples[0], slice_index=9)
    with pytest.raises(ValueError, match='0 <= slice_index < num_slices'):
        VolumeSegMetric(num_classes=3).process({}, [bad])
    bad = dict(samples[0], spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match=r'three positive numbers \(z, y, x'):
        VolumeSegMetric(num_classes=3).process({}, [bad])
