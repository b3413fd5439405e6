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

mmdet's RoI extractors look ``roi_layer`` types up in ``mmcv.ops`` only;
``densekit.ScopedRoIExtractor`` also resolves registry names, so a config
selects this op with ``roi_layer=dict(type='densekit.RoIAlign', ...)``.
"""
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
        pool_mode (str): ``'avg'`` (densekit's kernel on the CPU) or
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


__all__ = ['RoIAlign', 'roi_align', 'uses_cpu_kernel']
