"""YOLOWarmupLR: LinearLR whose iteration form lasts at least min_iters
(ultralytics' nw = max(round(warmup_epochs * nb), 100))."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import densekit.engine  # noqa: F401  (registers the scheduler)
from densekit.engine.schedulers import YOLOWarmupLR
from densekit.registry import PARAM_SCHEDULERS


def _optimizer(lr=0.01):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _build(epoch_length, **kwargs):
    init_default_scope('mmdet')
    cfg = dict(type='densekit.YOLOWarmupLR', start_factor=0.001,
               by_epoch=True, begin=0, end=3, convert_to_iter_based=True,
               **kwargs)
    optimizer = _optimizer()
    return optimizer, PARAM_SCHEDULERS.build(
        cfg, default_args=dict(optimizer=OptimWrapper(optimizer),
                               epoch_length=epoch_length))


@pytest.mark.parametrize('epoch_length, end', [
    (3, 100),      # 6 images at batch 2: the minimum decides
    (34, 102),     # 3 epochs are longer than 100 iterations
    (924, 2772),   # COCO at batch 128: unchanged from LinearLR
])
def test_warmup_lasts_max_of_epochs_and_min_iters(epoch_length, end):
    optimizer, scheduler = _build(epoch_length, min_iters=100)
    assert (scheduler.begin, scheduler.end, scheduler.by_epoch) == \
        (0, end, False)
    lrs = []
    for _ in range(end + 2):
        lrs.append(optimizer.param_groups[0]['lr'])
        scheduler.step()
    # mmengine's LinearLR: start_factor * lr at step 0, lr after end - 1
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[end - 1] == pytest.approx(0.01)
    assert lrs[end + 1] == pytest.approx(0.01)
    assert all(b >= a for a, b in zip(lrs, lrs[1:]))
    assert lrs[end - 2] < 0.01


def test_min_iters_zero_is_mmengine_linear_lr():
    from mmengine.optim.scheduler import LinearLR
    _, ours = _build(3, min_iters=0)
    theirs = LinearLR.build_iter_from_epoch(
        _optimizer(), start_factor=0.001, begin=0, end=3, by_epoch=True,
        epoch_length=3)
    assert (ours.begin, ours.end) == (theirs.begin, theirs.end) == (0, 9)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='min_iters must be an int >= 0'):
        YOLOWarmupLR(_optimizer(), min_iters=-1)
    with pytest.raises(ValueError, match='by_epoch=True'):
        YOLOWarmupLR.build_iter_from_epoch(_optimizer(), by_epoch=False,
                                           epoch_length=3)
    with pytest.raises(ValueError, match='epoch_length'):
        YOLOWarmupLR.build_iter_from_epoch(_optimizer(), epoch_length=0)


def test_yolo_schedules_use_it():
    import os.path as osp

    from mmengine.config import Config

    from tests.conftest import ROOT
    for name in ('yolov8_500e.py', 'mamba_yolo_300e.py'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_',
                                       'schedules', name))
        warmup = cfg.param_scheduler[0]
        assert warmup.type == 'densekit.YOLOWarmupLR'
        assert warmup.min_iters == 100 and warmup.end == 3
