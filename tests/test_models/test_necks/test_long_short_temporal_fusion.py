import pytest
import torch
from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack

from densekit.models.necks import LongShortTemporalFusion

CHANNELS = [12, 24, 48]
SIZES = [8, 4, 2]


def _feats(frames, batch=2):
    return [torch.rand(batch, frames, c, s, s)
            for c, s in zip(CHANNELS, SIZES)]


def test_official_long_channels():
    # streamnet_s: C = 128/256/512, N = 3 -> (21, 42, 85) per past frame
    lsfm = LongShortTemporalFusion(in_channels=[128, 256, 512],
                                   num_past_frames=3)
    assert lsfm.long_channels == [21, 42, 85]
    assert [m.conv.in_channels for m in lsfm.long_fuse_convs] == \
        [63, 126, 255]
    assert [m.conv.out_channels for m in lsfm.long_fuse_convs] == \
        [64, 128, 256]


@pytest.mark.parametrize('num_past', [1, 3])
def test_matches_per_frame_reference(num_past):
    lsfm = LongShortTemporalFusion(in_channels=CHANNELS,
                                   num_past_frames=num_past).eval()
    feats = _feats(num_past + 1)
    with torch.no_grad():
        outs = lsfm(feats)
        for level, (f, out) in enumerate(zip(feats, outs)):
            cur = f[:, -1]
            # reference: a Python loop over the past frames, newest first
            long = torch.cat([lsfm.long_convs[level](f[:, i])
                              for i in reversed(range(num_past))], 1)
            expected = torch.cat([lsfm.short_convs[level](cur),
                                  lsfm.long_fuse_convs[level](long)], 1)
            torch.testing.assert_close(out, expected + cur)
            assert out.shape == cur.shape


def test_past_frames_reach_only_the_long_half():
    lsfm = LongShortTemporalFusion(in_channels=CHANNELS,
                                   num_past_frames=3).eval()
    feats = _feats(4)
    other = [f.clone() for f in feats]
    for f in other:
        f[:, 0] = torch.rand_like(f[:, 0])  # the oldest frame changes
    with torch.no_grad():
        a, b = lsfm(feats), lsfm(other)
    for c, x, y in zip(CHANNELS, a, b):
        half = c - c // 2
        torch.testing.assert_close(x[:, :half], y[:, :half])
        assert not torch.allclose(x[:, half:], y[:, half:])


def test_without_shortcut():
    lsfm = LongShortTemporalFusion(in_channels=CHANNELS, num_past_frames=2,
                                   with_shortcut=False).eval()
    feats = _feats(3)
    with torch.no_grad():
        out = lsfm(feats)[0]
        short = lsfm.short_convs[0](feats[0][:, -1])
    torch.testing.assert_close(out[:, :6], short)


@pytest.mark.parametrize('dcn_type, cls', [('DCN', DeformConv2dPack),
                                           ('DCNv2',
                                            ModulatedDeformConv2dPack)])
def test_deformable_block_runs_on_cpu_with_gradients(dcn_type, cls):
    lsfm = LongShortTemporalFusion(
        in_channels=CHANNELS, num_past_frames=2,
        dcn_cfg=dict(type=dcn_type, deform_groups=1))
    assert all(isinstance(b.conv, cls) for b in lsfm.dcn_blocks)
    feats = [f.requires_grad_() for f in _feats(3)]
    outs = lsfm(feats)
    assert [o.shape for o in outs] == [f[:, -1].shape for f in feats]
    sum(o.sum() for o in outs).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert lsfm.dcn_blocks[0].conv.weight.grad is not None


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='num_past_frames'):
        LongShortTemporalFusion(in_channels=CHANNELS, num_past_frames=0)
    with pytest.raises(ValueError, match='dcn_cfg.type'):
        LongShortTemporalFusion(in_channels=CHANNELS,
                                dcn_cfg=dict(type='Conv2d'))
    with pytest.raises(ValueError, match='long_channels'):
        LongShortTemporalFusion(in_channels=[4, 8, 16], num_past_frames=3)
    lsfm = LongShortTemporalFusion(in_channels=CHANNELS, num_past_frames=3)
    with pytest.raises(ValueError, match=r'T=4'):
        lsfm(_feats(2))
