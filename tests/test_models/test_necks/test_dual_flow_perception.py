import pytest
import torch

from densekit.models.necks import DualFlowPerception

CHANNELS = [8, 16, 32]
SIZES = [8, 4, 2]


def _feats(batch=2, frames=2, channels=CHANNELS):
    return [torch.rand(batch, frames, c, s, s)
            for c, s in zip(channels, SIZES)]


def test_output_shapes_equal_inputs_current_frame():
    dfp = DualFlowPerception(in_channels=CHANNELS).eval()
    feats = _feats()
    outs = dfp(feats)
    assert dfp.out_channels == CHANNELS
    assert [tuple(o.shape) for o in outs] == [
        (2, c, s, s) for c, s in zip(CHANNELS, SIZES)]


def test_official_form_shared_half_conv_plus_current_residual():
    # out = cat(conv(cur), conv(prev)) + cur, one 1x1 conv per level
    dfp = DualFlowPerception(in_channels=CHANNELS).eval()
    assert all(p is None for p in dfp.prev_convs)  # even C: shared conv
    feats = _feats()
    with torch.no_grad():
        outs = dfp(feats)
        for f, conv, out in zip(feats, dfp.cur_convs, outs):
            prev, cur = f[:, 0], f[:, 1]
            expected = torch.cat([conv(cur), conv(prev)], 1) + cur
            torch.testing.assert_close(out, expected)


def test_previous_frame_only_reaches_the_second_half():
    dfp = DualFlowPerception(in_channels=CHANNELS).eval()
    feats = _feats()
    other = [f.clone() for f in feats]
    for f in other:
        f[:, 0] = torch.rand_like(f[:, 0])
    with torch.no_grad():
        a, b = dfp(feats), dfp(other)
    for c, x, y in zip(CHANNELS, a, b):
        torch.testing.assert_close(x[:, :c // 2], y[:, :c // 2])
        assert not torch.allclose(x[:, c // 2:], y[:, c // 2:])


def test_odd_channels_split_current_larger():
    dfp = DualFlowPerception(in_channels=[7, 16, 33])
    assert dfp.prev_convs[0] is not None and dfp.prev_convs[1] is None
    outs = dfp(_feats(channels=[7, 16, 33]))
    assert [o.shape[1] for o in outs] == [7, 16, 33]


@pytest.mark.parametrize('bad', [
    _feats(frames=3),                       # wrong window length
    _feats(channels=[8, 16, 16]),           # wrong channels
    [f[:, 0] for f in _feats()],            # 4-D, frame axis missing
])
def test_bad_inputs_raise(bad):
    dfp = DualFlowPerception(in_channels=CHANNELS)
    with pytest.raises(ValueError, match='DualFlowPerception expects'):
        dfp(bad)
