"""EfficientADStatsHook: quantiles of the saved weights go into every
checkpoint, and a validation right after that checkpoint reuses them."""
from types import SimpleNamespace
from unittest import mock

import torch
from mmengine.structures import BaseDataElement

import densekit.models  # noqa: F401
from densekit.engine.hooks import EfficientADStatsHook
from densekit.models.anomaly_detectors import EfficientAD


def normal_loader(n=2):
    return [dict(inputs=[torch.randint(0, 256, (3, 256, 256),
                                       dtype=torch.uint8)],
                 data_samples=[BaseDataElement()]) for _ in range(n)]


def test_checkpoint_gets_quantiles_and_val_reuses_them():
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True)
    model.set_teacher_stats([torch.rand(1, 3, 256, 256)])
    hook = EfficientADStatsHook(map_norm_dataloader=normal_loader())
    hook._map_norm_loader = hook._map_norm_cfg  # a list, used as loader
    runner = SimpleNamespace(model=model, iter=399)
    checkpoint = dict(meta=dict(iter=400), state_dict={
        k: v.clone() for k, v in model.state_dict().items()})
    assert not bool(checkpoint['state_dict']['has_quantiles'])
    with mock.patch.object(model, 'set_map_quantiles',
                           wraps=model.set_map_quantiles) as spy:
        hook.before_save_checkpoint(runner, checkpoint)
        assert spy.call_count == 1
        assert bool(checkpoint['state_dict']['has_quantiles'])
        torch.testing.assert_close(checkpoint['state_dict']['quantiles'],
                                   model.quantiles)
        runner.iter = 400  # the loop has counted the step: same weights
        hook.before_val_epoch(runner)
        assert spy.call_count == 1
        runner.iter = 600  # trained further: recomputed
        hook.before_val_epoch(runner)
        assert spy.call_count == 2
        hook.before_test_epoch(runner)  # tests always recompute
        assert spy.call_count == 3
