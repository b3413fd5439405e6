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
