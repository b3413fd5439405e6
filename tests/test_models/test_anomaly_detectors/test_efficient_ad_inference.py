"""The optimised EfficientAD inference path returns the eager maps:
exactly (to float32 rounding) in float32, within bfloat16 rounding in
bfloat16; graphs are cached per input size and rebuilt when the model's
weights or statistics change."""
import pytest
import torch
from mmengine.structures import BaseDataElement

import densekit.models  # noqa: F401
from densekit.engine.optimizers import cpu_supports_bf16
from densekit.models.anomaly_detectors import (EfficientAD,
                                               EfficientADInference,
                                               build_inference_path)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = EfficientAD(allow_random_teacher=True).eval()
    images = [torch.rand(1, 3, 256, 256) for _ in range(2)]
    model.set_teacher_stats(images)
    model.set_map_quantiles(images)
    return model


@pytest.fixture(scope='module')
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 256, 256)


@pytest.fixture(scope='module')
def eager(model, images):
    with torch.no_grad():
        return model._forward(images)


@pytest.mark.parametrize('channels_last,fuse', [(True, False), (False, True),
                                                (True, True)])
def test_float32_paths_equal_eager(model, images, eager, channels_last,
                                   fuse):
    fast = EfficientADInference(model, channels_last=channels_last,
                                fuse=fuse, dtype='float32')
    for out, ref in zip(fast(images), eager):
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)
    if fuse:
        assert list(fast._graphs) == [(2, 3, 256, 256)]
        fast(images[:1])  # a new size traces a second graph
        assert len(fast._graphs) == 2


@pytest.mark.skipif(not cpu_supports_bf16(), reason='no native bf16 CPU')
def test_bfloat16_path_is_close_and_keeps_float32_maps(model, images, eager):
    fast = EfficientADInference(model, dtype='auto')
    assert fast.dtype == torch.bfloat16
    combined = fast(images)[0]
    assert combined.dtype == torch.float32
    ref = eager[0]
    # bf16 networks: maps within a few percent of their range, and the
    # ranking of pixels nearly unchanged
    err = (combined - ref).abs().max() / ref.abs().max()
    assert err < 0.05
    flat, ref_flat = combined.flatten(), ref.flatten()
    corr = torch.corrcoef(torch.stack([flat, ref_flat]))[0, 1]
    assert corr > 0.99
    assert 'bfloat16' in fast.description


def test_predict_uses_the_backend_and_rebuilds_after_changes(model, images,
                                                             eager):
    model.test_cfg['inference_backend'] = 'optimized'
    try:
        samples = [BaseDataElement(metainfo=dict(ori_shape=(256, 256)))
                   for _ in range(2)]
        out = model.predict(images, samples)
        path = model._inference_path
        assert isinstance(path, EfficientADInference)
        tol = 0.05 * float(eager[0].abs().max())
        assert abs(float(out[0].pred_score) -
                   float(eager[0][0].amax())) < tol
        model.predict(images, samples)
        assert model._inference_path is path  # cached
        model.train()
        model.eval()
        assert model._inference_path is None  # weights may have changed
        model.predict(images[:1], samples[:1])
        model.set_map_quantiles([images[:1]])
        assert model._inference_path is None
    finally:
        model.test_cfg.pop('inference_backend')
    assert build_inference_path(model, 'eager') is model
    with pytest.raises(ValueError, match="'eager' or 'optimized'"):
        build_inference_path(model, 'onnx')
    with pytest.raises(ValueError, match='dtype'):
        EfficientADInference(model, dtype='float16')
