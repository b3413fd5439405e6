"""densekit.CBFPN: the shared neck runs on every backbone in training and on
the lead only at test."""
import pytest
import torch
from mmengine.registry import init_default_scope

from densekit.models.necks import CBFPN

CHANNELS = [8, 16, 32]


def per_backbone_feats(num=3):
    return tuple(
        tuple(torch.rand(1, c, 32 // 2**i, 32 // 2**i)
              for i, c in enumerate(CHANNELS)) for _ in range(num))


def fpn(**kwargs):
    return dict(type='mmdet.FPN', out_channels=8, num_outs=3, **kwargs)


@pytest.fixture
def neck():
    init_default_scope('mmdet')
    neck = CBFPN(neck=fpn(in_channels=CHANNELS))
    calls = []
    neck.neck.register_forward_hook(
        lambda module, args, out: calls.append(args[0]))
    return neck, calls


def test_training_runs_the_neck_on_every_backbone(neck):
    neck, calls = neck
    feats = per_backbone_feats()
    outs = neck.train()(feats)
    assert len(calls) == 3 and len(outs) == 3
    for got, per in zip(outs, feats):
        assert [tuple(o.shape) for o in got] == [
            (1, 8, 32 // 2**i, 32 // 2**i) for i in range(3)]
        torch.testing.assert_close(got, tuple(neck.neck(per)))


def test_test_time_runs_the_lead_only(neck):
    neck, calls = neck
    feats = per_backbone_feats()
    with torch.no_grad():
        out = neck.eval()(feats)
    assert len(calls) == 1
    assert calls[0] is feats[-1] or all(
        a is b for a, b in zip(calls[0], feats[-1]))
    assert isinstance(out, tuple) and isinstance(out[0], torch.Tensor)
    with torch.no_grad():
        torch.testing.assert_close(out, tuple(neck.neck(feats[-1])))


def test_a_single_backbones_features_pass_through(neck):
    neck, calls = neck
    feats = per_backbone_feats(1)[0]
    assert len(neck.train()(feats)) == 1
    assert isinstance(neck.eval()(feats)[0], torch.Tensor)


def test_in_channels_are_filled_or_checked():
    init_default_scope('mmdet')
    neck = CBFPN(neck=fpn(), in_channels=CHANNELS)
    assert neck.in_channels == CHANNELS and neck.out_channels == 8
    with pytest.raises(ValueError, match=r'densekit.CBFPN: in_channels='):
        CBFPN(neck=fpn(in_channels=[1, 2, 3]), in_channels=CHANNELS)
