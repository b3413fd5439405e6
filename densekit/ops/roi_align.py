"""RoIAlign with densekit's multi-threaded CPU kernel.

He et al., "Mask R-CNN", ICCV 2017, Sec. 3. Same signature and arithmetic
as mmcv's ``roi_align`` / ``RoIAlign`` (``pool_mode='avg'``), which is the
reference path: CUDA tensors, ``pool_mode='max'``, dtypes other than
float32/float64 and a missing ``densekit._ext`` go to mmcv's op (the last
with a one-time warning). On the CPU the kernels
(``densekit/ops/csrc/roi_align_cpu.cpp``) run RoIs in parallel in the
forward pass and channels in parallel in the backward pass, with the
bilinear weights computed once per RoI; mmcv's CPU kernels are single
threaded and recompute the weights per channel in the backward pass, which
made RoIAlign about a quarter of a CBNetV2 Faster R-CNN training step here
(``tools/analysis/benchmark_roi_align.py`` times both).

On CUDA tensors mmcv's op runs when mmcv was built with its CUDA ops; with
an mmcv built with CPU ops only (the pip source build without a CUDA
toolkit), :func:`roi_align_torch` -- the same arithmetic in pure PyTorch,
differentiable by autograd -- runs instead, with a one-time warning.

mmdet's RoI extractors look ``roi_layer`` types up in ``mmcv.ops`` only;
``densekit.ScopedRoIExtractor`` also resolves registry names, so a config
selects this op with ``roi_layer=dict(type='densekit.RoIAlign', ...)``.
"""
import functools
import logging
from typing import Tuple, Union

import torch
import torch.nn as nn
from mmcv.ops import roi_align as mmcv_roi_align
from mmengine.logging import print_log
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from densekit.ops import BUILD_HINT, load_ext
from densekit.registry import MODELS

_warned_no_ext = []


def _check(input: Tensor, rois: Tensor) -> None:
    """``ValueError`` naming the argument when shapes are off."""
    if input.dim() != 4:
        raise ValueError(f'roi_align: input must be (N, C, H, W) features, '
                         f'got shape {tuple(input.shape)}')
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f'roi_align: rois must be (R, 5) rows (batch_index, '
                         f'x1, y1, x2, y2), got shape {tuple(rois.shape)}')


class _CPURoIAlign(Function):
    """Autograd wrapper of ``densekit._ext.roi_align_fwd`` / ``_bwd``."""

    @staticmethod
    def forward(ctx, input: Tensor, rois: Tensor, output_size: Tuple[int,
                                                                     int],
                spatial_scale: float, sampling_ratio: int,
                aligned: bool) -> Tensor:
        ext, _ = load_ext()
        ctx.params = (spatial_scale, sampling_ratio, aligned)
        ctx.input_shape = input.shape
        ctx.save_for_backward(rois)
        return ext.roi_align_fwd(input, rois.to(input.dtype), output_size[0],
                                 output_size[1], spatial_scale,
                                 sampling_ratio, aligned)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        ext, _ = load_ext()
        (rois, ) = ctx.saved_tensors
        spatial_scale, sampling_ratio, aligned = ctx.params
        batch, channels, height, width = ctx.input_shape
        grad_input = ext.roi_align_bwd(grad_output, rois.to(
            grad_output.dtype), batch, channels, height, width,
                                       spatial_scale, sampling_ratio, aligned)
        return grad_input, None, None, None, None, None


def uses_cpu_kernel(input: Tensor, pool_mode: str = 'avg') -> bool:
    """Whether :func:`roi_align` runs densekit's kernel on ``input``
    (else mmcv's op)."""
    if input.device.type != 'cpu' or pool_mode != 'avg' or \
            input.dtype not in (torch.float32, torch.float64):
        return False
    ext, reason = load_ext()
    if ext is None or not hasattr(ext, 'roi_align_fwd'):
        if not _warned_no_ext:
            _warned_no_ext.append(True)
            why = reason or 'densekit._ext predates roi_align_fwd'
            print_log(f'densekit RoIAlign: the CPU kernel is unavailable '
                      f'({why}); using mmcv\'s single-threaded roi_align. '
                      f'To {BUILD_HINT}.', logger='current',
                      level=logging.WARNING)
        return False
    return True


@functools.lru_cache(maxsize=None)
def mmcv_has_cuda_ops() -> bool:
    """Whether mmcv was compiled with its CUDA ops (cached)."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() != 'not available'


_warned_torch_path = []

# gathered samples per block of RoIs in :func:`roi_align_torch` (each is a
# 4-corner gather of C channels): bounds its memory at ~ 4 x 2**24 values
_TORCH_BLOCK_SAMPLES = 1 << 24


def roi_align_torch(input: Tensor,
                    rois: Tensor,
                    output_size: Union[int, Tuple[int, int]],
                    spatial_scale: float = 1.0,
                    sampling_ratio: int = 0,
                    aligned: bool = True) -> Tensor:
    """RoIAlign (average pooling) in pure PyTorch, any device, gradients by
    autograd: mmcv's ``roi_align_forward`` arithmetic (bin sampling grid,
    ``aligned`` half-pixel shift, minimum 1 px RoIs when not aligned,
    samples beyond one pixel outside the map are zero, coordinates clamped
    to the map before bilinear interpolation). The reference for the
    kernels' tests and the path for CUDA tensors when mmcv has no CUDA ops.

    Args: as :func:`roi_align` (without ``pool_mode``).

    Returns:
        Tensor: ``(R, C, PH, PW)`` pooled features.
    """
    _check(input, rois)
    ph, pw = _pair(output_size)
    num_rois = rois.shape[0]
    _, channels, height, width = input.shape
    if num_rois == 0:
        return input.new_zeros((0, channels, ph, pw))
    rois = rois.to(input.dtype)
    offset = 0.5 if aligned else 0.0
    start_x = rois[:, 1] * spatial_scale - offset
    start_y = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_x
    roi_h = rois[:, 4] * spatial_scale - offset - start_y
    if not aligned:  # mmcv forces malformed RoIs to be 1x1
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / pw, roi_h / ph
    if sampling_ratio > 0:
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
        grid_h = grid_w
    else:  # ceil(roi / bins), computed as mmcv does in the input's dtype
        grid_w = torch.ceil(roi_w / pw).long()
        grid_h = torch.ceil(roi_h / ph).long()
    count = (grid_w * grid_h).clamp(min=1).to(input.dtype)
    gw_max = max(int(grid_w.max()), 1)
    gh_max = max(int(grid_h.max()), 1)

    def axis(start, bin_size, grid, bins, grid_max, size):
        """Sample coordinates (R, bins * grid_max), their validity, and the
        low / high neighbours with the low weight."""
        steps = torch.arange(grid_max, device=input.device, dtype=input.dtype)
        cells = torch.arange(bins, device=input.device, dtype=input.dtype)
        g = grid.clamp(min=1).to(input.dtype)[:, None, None]
        pos = start[:, None, None] + cells[None, :, None] * bin_size[
            :, None, None] + (steps[None, None] + 0.5) * bin_size[
                :, None, None] / g
        used = steps.view(1, 1, -1) < grid.view(-1, 1, 1)
        pos = pos.flatten(1)
        inside = (pos >= -1.0) & (pos <= size) & used.expand(
            -1, bins, -1).flatten(1)
        pos = pos.clamp(min=0)
        low = pos.floor().long()
        at_edge = low >= size - 1
        low = torch.where(at_edge, torch.full_like(low, size - 1), low)
        pos = torch.where(at_edge, low.to(pos.dtype), pos)
        high = torch.where(at_edge, low, low + 1)
        frac = pos - low.to(pos.dtype)
        return inside, low, high, frac

    in_y, y0, y1, ly = axis(start_y, bin_h, grid_h, ph, gh_max, height)
    in_x, x0, x1, lx = axis(start_x, bin_w, grid_w, pw, gw_max, width)
    batch = rois[:, 0].long()
    samples_per_roi = ph * gh_max * pw * gw_max * channels
    block = max(1, _TORCH_BLOCK_SAMPLES // max(samples_per_roi, 1))
    out = []
    for s in range(0, num_rois, block):
        sl = slice(s, s + block)
        feats = input[batch[sl]]  # (r, C, H, W)
        r = feats.shape[0]
        flat = feats.flatten(2)  # (r, C, H * W)

        def corner(yi, xi):
            idx = (yi[:, :, None] * width + xi[:, None, :]).flatten(1)
            return flat.gather(2, idx[:, None].expand(-1, channels, -1)).view(
                r, channels, yi.shape[1], xi.shape[1])

        wy1, wx1 = ly[sl][:, None, :, None], lx[sl][:, None, None, :]
        wy0, wx0 = 1 - wy1, 1 - wx1
        value = (wy0 * wx0 * corner(y0[sl], x0[sl]) +
                 wy0 * wx1 * corner(y0[sl], x1[sl]) +
                 wy1 * wx0 * corner(y1[sl], x0[sl]) +
                 wy1 * wx1 * corner(y1[sl], x1[sl]))
        mask = (in_y[sl][:, :, None] & in_x[sl][:, None, :])[:, None]
        value = value * mask.to(value.dtype)
        value = value.view(r, channels, ph, gh_max, pw, gw_max).sum((3, 5))
        out.append(value / count[sl].view(-1, 1, 1, 1))
    return torch.cat(out)


def _use_torch_path(input: Tensor, pool_mode: str) -> bool:
    """CUDA tensors with an mmcv built without CUDA ops (average pooling)."""
    if input.device.type == 'cpu' or pool_mode != 'avg' or \
            mmcv_has_cuda_ops():
        return False
    if not _warned_torch_path:
        _warned_torch_path.append(True)
        print_log('densekit RoIAlign: mmcv was built without CUDA ops; '
                  'using the pure-PyTorch RoIAlign on '
                  f'{input.device.type} tensors (rebuild mmcv with '
                  'MMCV_WITH_OPS=1 and a CUDA toolkit for its kernel)',
                  logger='current', level=logging.WARNING)
    return True


def roi_align(input: Tensor,
              rois: Tensor,
              output_size: Union[int, Tuple[int, int]],
              spatial_scale: float = 1.0,
              sampling_ratio: int = 0,
              pool_mode: str = 'avg',
              aligned: bool = True) -> Tensor:
    """RoIAlign; the signature of ``mmcv.ops.roi_align``.

    Args:
        input (Tensor): ``(N, C, H, W)`` features.
        rois (Tensor): ``(R, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in
            input-image pixels.
        output_size (int | tuple[int, int]): ``(PH, PW)`` bins.
        spatial_scale (float): Feature-map pixels per image pixel.
        sampling_ratio (int): Points per bin along each axis; 0 (default):
            ``ceil(roi_size / output_size)``.
        pool_mode (str): ``'avg'`` (densekit's kernel on the CPU,
            :func:`roi_align_torch` on CUDA without mmcv's CUDA ops) or
            ``'max'`` (mmcv's op).
        aligned (bool): Shift the RoI by -0.5 px (pixel centers at .5).
            Defaults to True.

    Returns:
        Tensor: ``(R, C, PH, PW)`` pooled features.
    """
    _check(input, rois)
    output_size = _pair(output_size)
    if uses_cpu_kernel(input, pool_mode):
        return _CPURoIAlign.apply(input, rois, output_size,
                                  float(spatial_scale), int(sampling_ratio),
                                  bool(aligned))
    if _use_torch_path(input, pool_mode):
        return roi_align_torch(input, rois, output_size, spatial_scale,
                               sampling_ratio, aligned)
    return mmcv_roi_align(input, rois, output_size, spatial_scale,
                          sampling_ratio, pool_mode, aligned)


@MODELS.register_module()
class RoIAlign(nn.Module):
    """RoIAlign layer; the constructor of ``mmcv.ops.RoIAlign`` (without
    ``use_torchvision``), computed by :func:`roi_align`.

    Args:
        output_size (int | tuple[int, int]): ``(PH, PW)`` bins.
        spatial_scale (float): Feature-map pixels per image pixel. Defaults
            to 1.0.
        sampling_ratio (int): Points per bin along each axis; 0 (default):
            adaptive.
        pool_mode (str): ``'avg'`` or ``'max'``. Defaults to ``'avg'``.
        aligned (bool): Pixel-center alignment. Defaults to True.
    """

    def __init__(self,
                 output_size: Union[int, Tuple[int, int]],
                 spatial_scale: float = 1.0,
                 sampling_ratio: int = 0,
                 pool_mode: str = 'avg',
                 aligned: bool = True) -> None:
        super().__init__()
        if pool_mode not in ('avg', 'max'):
            raise ValueError(f"pool_mode must be 'avg' or 'max', got "
                             f'{pool_mode!r}')
        self.output_size = _pair(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.pool_mode = pool_mode
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        """``(N, C, H, W)`` features, ``(R, 5)`` RoIs -> ``(R, C, PH,
        PW)``."""
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.pool_mode, self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale='
                f'{self.spatial_scale}, sampling_ratio={self.sampling_ratio}, '
                f'pool_mode={self.pool_mode}, aligned={self.aligned}')


__all__ = ['RoIAlign', 'roi_align', 'roi_align_torch', 'uses_cpu_kernel',
           'mmcv_has_cuda_ops']
