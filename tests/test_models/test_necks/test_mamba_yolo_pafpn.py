import pytest
import torch

from densekit.models.necks import MambaYOLOPAFPN


def _feats(channels, size=64, batch=1):
    return [torch.rand(batch, c, size // s, size // s)
            for c, s in zip(channels, (8, 16, 32))]


def test_output_channels_equal_input_channels():
    neck = MambaYOLOPAFPN(in_channels=[16, 32, 64], deepen_factor=0.33,
                          ssm_d_state=4)
    outs = neck(_feats([16, 32, 64]))
    assert [o.shape[1] for o in outs] == neck.out_channels == [16, 32, 64]
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (2, 2)]


@pytest.mark.parametrize('deepen_factor, num_ss2d', [(0.33, 1), (0.67, 2),
                                                     (1.0, 3)])
def test_depth_scales_ss2d_per_block(deepen_factor, num_ss2d):
    neck = MambaYOLOPAFPN(in_channels=[8, 16, 32],
                          deepen_factor=deepen_factor)
    for name in ('top_down_p4', 'top_down_p3', 'bottom_up_p4',
                 'bottom_up_p5'):
        assert len(getattr(neck, name).ss2d) == num_ss2d


def test_channel_mismatch_names_the_key():
    neck = MambaYOLOPAFPN(in_channels=[16, 32, 64], deepen_factor=0.33)
    with pytest.raises(ValueError, match='model.neck.in_channels'):
        neck(_feats([16, 32, 48]))


def test_needs_three_levels():
    with pytest.raises(ValueError, match='three input levels'):
        MambaYOLOPAFPN(in_channels=[16, 32])
