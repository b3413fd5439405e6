import pytest
import torch

from densekit.models.necks import YOLOv8PAFPN


def _feats(channels, size=64, batch=2):
    return [torch.rand(batch, c, size // s, size // s)
            for c, s in zip(channels, (8, 16, 32))]


def test_output_channels_equal_input_channels():
    neck = YOLOv8PAFPN(in_channels=[16, 32, 64], deepen_factor=0.33)
    outs = neck(_feats([16, 32, 64]))
    assert [o.shape[1] for o in outs] == neck.out_channels == [16, 32, 64]
    assert [o.shape[-1] for o in outs] == [8, 4, 2]


def test_channel_mismatch_names_the_key():
    neck = YOLOv8PAFPN(in_channels=[16, 32, 64])
    with pytest.raises(ValueError, match='model.neck.in_channels'):
        neck(_feats([16, 32, 48]))


def test_needs_three_levels():
    with pytest.raises(ValueError, match='three input levels'):
        YOLOv8PAFPN(in_channels=[16, 32])


def test_block_cfg_picks_the_block_and_scales_its_depth():
    """One PAFPN: XSS blocks through block_cfg give MambaYOLOPAFPN's
    modules and keys; an unknown block is named."""
    from densekit.models.necks import MambaYOLOPAFPN
    torch.manual_seed(0)
    xss = YOLOv8PAFPN(in_channels=[8, 16, 32], deepen_factor=0.67,
                      block_cfg=dict(type='XSSBlock', ssm_d_state=4))
    torch.manual_seed(0)
    mamba = MambaYOLOPAFPN(in_channels=[8, 16, 32], deepen_factor=0.67,
                           ssm_d_state=4)
    assert list(xss.state_dict()) == list(mamba.state_dict())
    assert len(xss.top_down_p4.ss2d) == 2
    feats = [torch.rand(1, c, 64 // s, 64 // s)
             for c, s in zip((8, 16, 32), (8, 16, 32))]
    xss.eval(), mamba.eval()
    for a, b in zip(xss(feats), mamba(feats)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='block_cfg.type'):
        YOLOv8PAFPN(in_channels=[8, 16, 32], block_cfg=dict(type='Nope'))
