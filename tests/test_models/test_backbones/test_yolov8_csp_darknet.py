import pytest
import torch

from densekit.models.backbones import YOLOv8CSPDarknet


@pytest.mark.parametrize('out_indices', [(2, 3, 4), (1, 4), (0, )])
def test_outputs_follow_feature_info(out_indices):
    model = YOLOv8CSPDarknet(deepen_factor=0.33, widen_factor=0.25,
                             out_indices=out_indices)
    feats = model(torch.rand(2, 3, 64, 96))
    assert len(feats) == len(out_indices)
    for feat, info in zip(feats, model.feature_info):
        assert feat.shape == (2, info['channels'], 64 // info['stride'],
                              96 // info['stride'])


def test_scale_channels_match_ultralytics():
    # max_channels caps the last stage: n/s 1024, m 768, l/x 512
    expected = dict(
        n=(0.33, 0.25, 1024, [64, 128, 256]),
        s=(0.33, 0.5, 1024, [128, 256, 512]),
        m=(0.67, 0.75, 768, [192, 384, 576]),
        l=(1.0, 1.0, 512, [256, 512, 512]),
        x=(1.0, 1.25, 512, [320, 640, 640]))
    for name, (d, w, last, channels) in expected.items():
        model = YOLOv8CSPDarknet(deepen_factor=d, widen_factor=w,
                                 last_stage_out_channels=last)
        assert model.out_channels == channels, name
        assert model.out_strides == [8, 16, 32]


@pytest.mark.parametrize('kwargs', [dict(out_indices=(5, )),
                                    dict(out_indices=()),
                                    dict(frozen_stages=7)])
def test_bad_indices_raise_value_error(kwargs):
    with pytest.raises(ValueError, match='YOLOv8CSPDarknet'):
        YOLOv8CSPDarknet(deepen_factor=0.33, widen_factor=0.25, **kwargs)
