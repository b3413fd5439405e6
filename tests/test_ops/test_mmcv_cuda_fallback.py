"""The CPU round trip that runs mmcv's CPU kernels for foreign tensors."""
import sys

import pytest
import torch
from mmcv.ops import nms

import densekit.ops.mmcv_cuda_fallback as fallback
from densekit.ops.mmcv_cuda_fallback import CPURoundTripExt


class FakeExt:
    """An extension with one in-place op and one returning op."""

    @staticmethod
    def fill(src, out, scale=1.0):
        assert src.dtype == torch.float32 and out.dtype == torch.float32
        out.copy_(src * scale)

    @staticmethod
    def pair(a, b):
        assert a.dtype == torch.float32
        return a + b, [a - b]

    version = '1.0'


def round_trip(ext):
    # float64 plays "another device": copied to float32 for the kernel and
    # brought back as float64
    return CPURoundTripExt(ext, is_foreign=lambda t: t.dtype == torch.float64,
                           to_host=lambda t: t.detach().float(),
                           to_origin=lambda t, like: t.to(like.dtype))


def test_in_place_outputs_and_returns_come_back():
    ext = round_trip(FakeExt)
    src = torch.arange(4, dtype=torch.float64)
    out = torch.zeros(4, dtype=torch.float64)
    ext.fill(src, out, scale=2.0)
    assert out.tolist() == [0, 2, 4, 6] and out.dtype == torch.float64
    total, (diff, ) = ext.pair(src, torch.ones(4, dtype=torch.float64))
    assert total.dtype == diff.dtype == torch.float64
    assert total.tolist() == [1, 2, 3, 4] and diff.tolist() == [-1, 0, 1, 2]
    assert ext.version == '1.0'


def test_unchanged_inputs_are_not_written_back():
    ext = round_trip(FakeExt)
    src = torch.arange(4, dtype=torch.float64, requires_grad=True)
    used = src * 1  # saved for backward by the multiplication below
    loss = (used * used).sum()
    out = torch.zeros(4, dtype=torch.float64)
    ext.fill(used, out)
    assert used._version == 0  # the input was only read
    loss.backward()  # no "modified by an inplace operation" error
    assert torch.equal(src.grad, 2 * src.detach())


def test_local_tensors_call_the_kernel_directly():
    ext = round_trip(FakeExt)
    out = torch.zeros(2)
    ext.fill(torch.ones(2), out)
    assert out.tolist() == [1, 1]


def test_wraps_mmcv_nms_and_keeps_its_results(monkeypatch):
    modules = fallback.mmcv_op_modules()
    names = {m.__name__ for m in modules}
    assert {'mmcv.ops.nms', 'mmcv.ops.focal_loss',
            'mmcv.ops.roi_align'} <= names
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]],
                         dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    expected = nms(boxes, scores, 0.5)
    # ``mmcv.ops.nms`` is the function once mmcv.ops is imported
    nms_module = sys.modules['mmcv.ops.nms']
    original = nms_module.ext_module
    try:
        wrapped = fallback.adapt_mmcv_ops(force=True)
        assert 'mmcv.ops.nms' in wrapped
        assert isinstance(nms_module.ext_module, CPURoundTripExt)
        assert fallback.adapt_mmcv_ops(force=True) == []  # once
        got = nms(boxes, scores, 0.5)
        assert torch.equal(got[0], expected[0])
        assert torch.equal(got[1], expected[1])
    finally:
        for module in modules:
            if isinstance(module.ext_module, CPURoundTripExt):
                module.ext_module = module.ext_module.wrapped_ext
    assert nms_module.ext_module is original
    # without CUDA nothing is wrapped


def test_bfloat16_cpu_tensors_reach_the_float32_kernel():
    """CPU bfloat16 autocast: mmcv's nms takes float32 only."""
    import mmcv.ops.nms  # noqa: F401
    nms_module = sys.modules['mmcv.ops.nms']
    original = nms_module.ext_module
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]],
                         dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    expected = nms(boxes, scores, 0.5)[1]
    try:
        with pytest.raises(RuntimeError):
            nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
        assert fallback.adapt_mmcv_ops(low_precision_cpu=True)
        dets, keep = nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
        assert torch.equal(keep, expected) and dets.dtype == torch.bfloat16
    finally:
        for module in fallback.mmcv_op_modules():
            if isinstance(module.ext_module, CPURoundTripExt):
                module.ext_module = module.ext_module.wrapped_ext
    assert nms_module.ext_module is original
    assert fallback.adapt_mmcv_ops() == []  # nothing needed here
