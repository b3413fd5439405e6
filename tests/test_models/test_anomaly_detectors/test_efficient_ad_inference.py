"""The optimised EfficientAD inference path returns the eager maps:
exactly (to float32 rounding) in float32, within bfloat16 rounding in
bfloat16 (the default where the CPU has it); graphs are cached per input
size and rebuilt when the model's weights or statistics change."""
import pytest
import torch
from mmengine.structures import BaseDataElement

import densekit.models  # noqa: F401
from densekit.models.anomaly_detectors import (EfficientAD,
                                               EfficientADInference,
                                               build_inference_path)
from densekit.utils.hardware import cpu_supports_bf16


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
        print(f'max abs difference {(out - ref).abs().max().item():.3g} '
              f'(map range {(ref.max() - ref.min()).item():.3g})')
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
    span = ref.max() - ref.min()
    print(f'bfloat16 vs eager: max abs difference / max |map| {err:.3g}, '
          f'/ range {(combined - ref).abs().max() / span:.3g}')
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
        # the score of the eager maps (maximum of the resized map)
        _, eager_score = model.map_and_score(eager[0][0], (256, 256))
        assert abs(float(out[0].pred_score) - float(eager_score)) < tol
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
    assert build_inference_path(model, 'optimized',
                                dtype='float32').dtype == torch.float32
    with pytest.raises(ValueError, match="'eager' or 'optimized'"):
        build_inference_path(model, 'onnx')
    with pytest.raises(ValueError, match='dtype'):
        EfficientADInference(model, dtype='float16')


def test_float32_option_gives_the_eager_predictions(model, images):
    """``test_cfg.inference_dtype='float32'``: the fused channels-last path
    with the eager path's maps and scores, whatever the CPU."""
    samples = [BaseDataElement(metainfo=dict(ori_shape=(300, 280)))
               for _ in range(2)]
    eager_out = model.predict(images, samples)
    model.test_cfg.update(inference_backend='optimized',
                          inference_dtype='float32')
    try:
        fast_out = model.predict(images, [BaseDataElement(
            metainfo=dict(ori_shape=(300, 280))) for _ in range(2)])
        assert model._inference_path.dtype == torch.float32
        assert model._inference_path.fuse
    finally:
        model.test_cfg.pop('inference_backend')
        model.test_cfg.pop('inference_dtype')
        model._inference_path = None
    for fast, ref in zip(fast_out, eager_out):
        diff = (fast.anomaly_map - ref.anomaly_map).abs().max().item()
        span = (ref.anomaly_map.max() - ref.anomaly_map.min()).item()
        print(f'float32 fused vs eager: max abs difference {diff:.3g} '
              f'(range {span:.3g}), score '
              f'{abs(float(fast.pred_score - ref.pred_score)):.3g}')
        torch.testing.assert_close(fast.anomaly_map, ref.anomaly_map,
                                   rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(fast.pred_score, ref.pred_score,
                                   rtol=1e-3, atol=1e-4)


def test_anomalib_map_order_through_the_fast_path(model, images):
    """The fast path post-processes through the same function: with
    ``map_postprocess='anomalib'`` its float32 maps are the eager ones."""
    anomalib = EfficientAD(map_postprocess='anomalib',
                           allow_random_teacher=True).eval()
    anomalib.load_state_dict(model.state_dict())
    with torch.no_grad():
        eager = anomalib._forward(images)
    fast = EfficientADInference(anomalib, dtype='float32')
    for out, ref in zip(fast(images), eager):
        assert out.shape == ref.shape == (2, 1, 256, 256)
        print(f'max abs difference {(out - ref).abs().max().item():.3g}')
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)
