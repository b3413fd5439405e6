"""Parity of densekit's CPU RoIAlign kernel with mmcv's ``roi_align``.

mmcv's op is the reference path (same signature, same arithmetic). The
extension is part of the build, so these tests fail, rather than skip, when
it is missing.
"""
import pytest
import torch
from mmcv.ops import roi_align as mmcv_roi_align

import densekit.ops.roi_align as roi_align_module
from densekit.ops import load_ext
from densekit.ops.roi_align import RoIAlign, roi_align, uses_cpu_kernel


def make_rois(num, batch, size, dtype=torch.float64, seed=0, max_side=None):
    """``(num, 5)`` RoIs over a ``size``-px image: some past its borders,
    some tiny, one of zero width."""
    gen = torch.Generator().manual_seed(seed)
    max_side = size if max_side is None else max_side
    xy = torch.rand(num, 2, generator=gen, dtype=dtype) * (size + 40) - 20
    wh = torch.rand(num, 2, generator=gen, dtype=dtype) * max_side
    wh[0] = torch.tensor([0.0, 5.0], dtype=dtype)  # zero width
    wh[1] = torch.tensor([0.3, 0.2], dtype=dtype)  # under a pixel
    index = torch.randint(0, batch, (num, 1), generator=gen).to(dtype)
    return torch.cat([index, xy, xy + wh], 1)


def run(fn, feats, rois, grad, **kwargs):
    x = feats.clone().requires_grad_()
    out = fn(x, rois, **kwargs)
    out.backward(grad)
    return out.detach(), x.grad


def test_extension_has_roi_align():
    ext, reason = load_ext()
    assert ext is not None, f'densekit._ext is not importable ({reason})'
    assert hasattr(ext, 'roi_align_fwd') and hasattr(ext, 'roi_align_bwd')
    assert uses_cpu_kernel(torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 1, 3])
@pytest.mark.parametrize('output_size', [7, (3, 5)])
def test_float64_matches_mmcv(aligned, sampling_ratio, output_size):
    feats = torch.randn(3, 5, 20, 24, dtype=torch.float64)
    rois = make_rois(120, 3, size=96)
    kwargs = dict(output_size=output_size, spatial_scale=0.25,
                  sampling_ratio=sampling_ratio, pool_mode='avg',
                  aligned=aligned)
    ref_out = mmcv_roi_align(feats, rois, **kwargs)
    grad = torch.randn_like(ref_out)
    ref = run(mmcv_roi_align, feats, rois, grad, **kwargs)
    out = run(roi_align, feats, rois, grad, **kwargs)
    assert out[0].shape == (120, 5, *torch.nn.modules.utils._pair(
        output_size))
    torch.testing.assert_close(out[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[1], ref[1], rtol=1e-12, atol=1e-12)
    # the zero-width RoI pools nothing when aligned (no points)
    if aligned and sampling_ratio == 0:
        assert out[0][0].abs().max() == 0


def test_float32_fpn_levels_match_mmcv():
    """mmdet's use: 7 x 7 bins, adaptive sampling, four FPN strides."""
    for stride in (4, 8, 16, 32):
        feats = torch.randn(4, 16, 256 // stride, 256 // stride)
        rois = make_rois(64, 4, size=256, dtype=torch.float32, seed=stride,
                         max_side=8 * stride)
        kwargs = dict(output_size=7, spatial_scale=1 / stride,
                      sampling_ratio=0, pool_mode='avg', aligned=True)
        grad = torch.randn(64, 16, 7, 7)
        ref = run(mmcv_roi_align, feats, rois, grad, **kwargs)
        out = run(roi_align, feats, rois, grad, **kwargs)
        # float32 rounding (FMA contraction may differ between the builds)
        torch.testing.assert_close(out[0], ref[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out[1], ref[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('max_block_samples', [1, 500, 5000])
def test_backward_in_blocks_matches_mmcv(max_block_samples):
    """The backward pass's RoI blocks (one RoI at a time, a few, all of
    them) give the same gradient."""
    ext, _ = load_ext()
    feats = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    rois = make_rois(40, 2, size=64, max_side=64)
    grad = torch.randn(40, 3, 7, 7, dtype=torch.float64)
    ref = run(mmcv_roi_align, feats, rois, grad, output_size=7,
              spatial_scale=0.25, sampling_ratio=0, pool_mode='avg',
              aligned=True)[1]
    out = ext.roi_align_bwd(grad, rois, 2, 3, 16, 16, 0.25, 0, True,
                            max_block_samples=max_block_samples)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    feats = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    # inside the map and away from pixel centers: differentiable there
    rois = torch.tensor([[0, 3.3, 2.1, 17.7, 15.2], [1, 1.2, 6.6, 9.9, 20.1]],
                        dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: roi_align(x, rois, (2, 3), 0.25, 2, 'avg', True),
        (feats, ))


def test_empty_rois_and_module():
    layer = RoIAlign(7, spatial_scale=0.5)
    feats = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = layer(feats, torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)
    out.sum().backward()
    assert feats.grad.shape == feats.shape and feats.grad.abs().sum() == 0
    assert 'output_size=(7, 7)' in repr(layer)


def test_other_paths_go_to_mmcv():
    feats = torch.randn(1, 2, 8, 8)
    assert not uses_cpu_kernel(feats, pool_mode='max')
    assert not uses_cpu_kernel(feats.half())
    rois = torch.tensor([[0, 1.0, 1.0, 12.0, 14.0]])
    torch.testing.assert_close(
        roi_align(feats, rois, 2, 0.5, 2, 'max', True),
        mmcv_roi_align(feats, rois, 2, 0.5, 2, 'max', True))


def test_missing_extension_falls_back(monkeypatch):
    monkeypatch.setattr(roi_align_module, 'load_ext',
                        lambda: (None, 'ImportError: test'))
    monkeypatch.setattr(roi_align_module, '_warned_no_ext', [])
    feats = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 12.0, 14.0]])
    assert not uses_cpu_kernel(feats)
    torch.testing.assert_close(roi_align(feats, rois, 2, 0.5),
                               mmcv_roi_align(feats, rois, 2, 0.5))


@pytest.mark.parametrize('rois,match', [
    (torch.tensor([[2.0, 0, 0, 4, 4]]), r'rois\[0, 0\] = 2 is not a batch '
     r'index in \[0, 2\)'),
    (torch.tensor([[0.5, 0, 0, 4, 4]]), 'is not a batch index'),
    (torch.tensor([[0.0, 0, 0, 4, 4], [1.0, 5, 0, 4, 4]]),
     r'rois\[1\] = .* has x2 < x1 or y2 < y1'),
])
def test_bad_rois_raise(rois, match):
    with pytest.raises(RuntimeError, match=match):
        roi_align(torch.randn(2, 1, 8, 8), rois, 2)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r'rois must be \(R, 5\)'):
        roi_align(torch.randn(1, 1, 8, 8), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r'input must be \(N, C, H, W\)'):
        roi_align(torch.randn(1, 8, 8), torch.zeros(3, 5), 2)
    with pytest.raises(ValueError, match='pool_mode'):
        RoIAlign(7, pool_mode='mean')


# -- the pure-PyTorch path (CUDA tensors without mmcv's CUDA ops) ----------
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('output_size', [7, (3, 5)])
def test_torch_path_matches_mmcv(aligned, sampling_ratio, output_size,
                                 monkeypatch):
    feats = torch.randn(3, 5, 20, 24, dtype=torch.float64)
    rois = make_rois(60, 3, size=96)
    kwargs = dict(output_size=output_size, spatial_scale=0.25,
                  sampling_ratio=sampling_ratio, aligned=aligned)
    grad = torch.randn(60, 5, *torch.nn.modules.utils._pair(output_size),
                       dtype=torch.float64)
    ref = run(mmcv_roi_align, feats, rois, grad, pool_mode='avg', **kwargs)
    # small blocks: the RoI blocking must not change anything
    monkeypatch.setattr(roi_align_module, '_TORCH_BLOCK_SAMPLES', 5000)
    out = run(roi_align_module.roi_align_torch, feats, rois, grad, **kwargs)
    diff = max(float((a - b).abs().max()) for a, b in zip(out, ref))
    print(f'roi_align_torch vs mmcv (float64): max abs diff {diff:.2e}')
    torch.testing.assert_close(out[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[1], ref[1], rtol=1e-12, atol=1e-12)
    empty = roi_align_module.roi_align_torch(feats, rois[:0], **kwargs)
    assert empty.shape == (0, 5, *torch.nn.modules.utils._pair(output_size))


def test_cuda_tensors_without_mmcv_cuda_ops_take_the_torch_path(monkeypatch):
    calls = []
    monkeypatch.setattr(roi_align_module, 'mmcv_has_cuda_ops', lambda: False)
    monkeypatch.setattr(roi_align_module, 'roi_align_torch',
                        lambda *a, **k: calls.append(a) or 'torch')

    class FakeCuda(torch.Tensor):  # a CPU tensor that says it is on CUDA
        @property
        def device(self):
            return torch.device('cuda', 0)

    feats = torch.zeros(1, 1, 4, 4).as_subclass(FakeCuda)
    rois = torch.tensor([[0.0, 0, 0, 2, 2]])
    assert roi_align(feats, rois, 2) == 'torch' and calls
    monkeypatch.setattr(roi_align_module, 'mmcv_has_cuda_ops', lambda: True)
    assert not roi_align_module._use_torch_path(feats, 'avg')
