"""Folding BatchNorms into convolutions: same outputs, only where the
forward runs conv then BN."""
import os.path as osp
import types

import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.cnn import fuse_conv_bn as mmcv_fuse_conv_bn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.engine.hooks import FuseConvBNHook
from densekit.models.utils.fuse_conv_bn import count_batchnorms, fuse_conv_bn
from densekit.registry import MODELS
from tests.conftest import ROOT


def randomise_batchnorms(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters (a fresh BN is
    the identity in eval mode, which would hide a wrong fold)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)


def build_detector(config: str, dtype=torch.float32) -> nn.Module:
    cfg = Config.fromfile(osp.join(ROOT, config))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    randomise_batchnorms(model)
    return model.to(dtype).eval()


@pytest.mark.parametrize('config,left', [
    ('configs/det/yolov8_n_shapes.py', 0),
    # LSBlock's fc1 -> norm through its fuse_pairs
    ('configs/det/mamba_yolo_t_shapes.py', 0),
])
def test_fused_detector_equals_unfused(config, left):
    model = build_detector(config, torch.float64)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        want = model._forward(x)
        norms, _ = count_batchnorms(model)
        assert fuse_conv_bn(model) is model
        got = model._forward(x)
    remaining, _ = count_batchnorms(model)
    assert remaining < norms // 4
    if left is not None:
        assert remaining == left
    flat_want = [t for level in want for t in level]
    flat_got = [t for level in got for t in level]
    assert len(flat_want) == len(flat_got)
    worst = max(float((g - w).abs().max() / w.abs().max())
                for g, w in zip(flat_got, flat_want))
    print(f'{config}: folded {norms - remaining} of {norms} BatchNorms, max '
          f'rel diff {worst:.1e} (float64)')
    assert worst < 1e-10


class NormFirst(nn.Module):
    """A conv registered before the BN that runs *before* it: mmcv's
    registration-order fusion folds them anyway."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_only_conv_then_bn_is_folded():
    torch.manual_seed(0)
    model = nn.Sequential(
        NormFirst(),
        ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN'),
                   order=('norm', 'conv', 'act')),
        ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN')),
        nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    randomise_batchnorms(model)
    model.eval()
    x = torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        want = model(x)
        mmcv_out = mmcv_fuse_conv_bn(
            __import__('copy').deepcopy(model))(x)
        got = fuse_conv_bn(model)(x)
    # mmcv folds NormFirst's BN into the conv it feeds: wrong
    assert (mmcv_out - want).abs().max() > 1e-2
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    # folded: the conv-norm ConvModule and the Sequential pair
    assert count_batchnorms(model)[0] == 2
    assert isinstance(model[0].bn, nn.BatchNorm2d)
    assert isinstance(model[1].norm, nn.BatchNorm2d)
    assert isinstance(model[2].norm, nn.Identity)
    assert isinstance(model[4], nn.Identity)


def test_batchnorm_without_affine():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False))
    randomise_batchnorms(model)
    x = torch.rand(2, 3, 9, 9)
    with torch.no_grad():
        want = model.eval()(x)
        got = fuse_conv_bn(model)(x)
    assert isinstance(model[1], nn.Identity)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match='training mode'):
        fuse_conv_bn(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)))


def test_hook_folds_the_loaded_model():
    model = build_detector('configs/det/yolov8_n_shapes.py')
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = model._forward(x)
    model.train()  # the test loop calls eval() after before_test
    FuseConvBNHook().before_test(types.SimpleNamespace(model=model))
    assert count_batchnorms(model)[0] == 0
    with torch.no_grad():
        got = model.eval()._forward(x)
    for g, w in zip(sum(map(list, got), []), sum(map(list, want), [])):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-4)
