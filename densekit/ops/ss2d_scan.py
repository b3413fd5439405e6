"""SS2D's four-route selective scan as one CPU op (``densekit._ext``).

:class:`densekit.models.layers.SS2D` unfolds a map into four routes
(row-major, column-major, both reversed), scans each with its own channels
of ``A``, ``D`` and the Δ bias, and merges them back. Unfused, that is a
cross-scan copy of ``x`` and Δ (4 x B D L each), bias + softplus, the scan,
the skip term and a flip / transpose merge of four outputs, each a separate
pass over memory. :func:`ss2d_scan_cpp` does it in one call
(``densekit/ops/csrc/ss2d_scan_cpu.cpp``): it reads ``x`` and Δ in map
order, computes the step size and skip inside, and accumulates the routes
straight into the ``(B, L, D)`` layout that SS2D's LayerNorm reads;
forward and backward, float32 (fp16 / bf16 computed in float32) and
float64. Tested against the unfused path (outputs and every gradient).
"""
from typing import Optional

import torch
from torch import Tensor

from densekit.ops import load_ext

# steps between the saved states the backward pass recomputes from (the
# C++ selective scan's interval)
SS2D_CHUNK = 64
NUM_ROUTES = 4


def ss2d_scan_available() -> bool:
    """Whether ``densekit._ext`` has the fused op (a current build)."""
    ext, _ = load_ext()
    return ext is not None and hasattr(ext, 'ss2d_scan_fwd')


class _SS2DScanCpp(torch.autograd.Function):
    """Autograd wrapper of ``ss2d_scan_fwd`` / ``ss2d_scan_bwd``; keeps the
    inputs and the state entering every chunk between the passes."""

    @staticmethod
    def forward(ctx, x, dts, A, B, C, D, delta_bias, height, width, chunk):
        ext = load_ext()[0]
        save = any(ctx.needs_input_grad[:7])
        y, starts = ext.ss2d_scan_fwd(x, dts, A, B, C, D, delta_bias, height,
                                      width, chunk, save)
        if save:
            ctx.save_for_backward(x, dts, A, B, C, D, delta_bias, starts)
        ctx.geometry = (height, width, chunk)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        ext = load_ext()[0]
        tensors = ctx.saved_tensors
        grads = ext.ss2d_scan_bwd(*tensors, grad_y, *ctx.geometry)
        return (*grads, None, None, None)


def ss2d_scan_cpp(x: Tensor,
                  delta: Tensor,
                  A: Tensor,
                  B: Tensor,
                  C: Tensor,
                  D: Tensor,
                  delta_bias: Tensor,
                  height: int,
                  width: int,
                  chunk_size: Optional[int] = None) -> Tensor:
    """SS2D's cross-scan, selective scan (softplus step sizes) and
    cross-merge in one CPU op.

    Args:
        x (Tensor): (B, D, H * W) the map, row-major (every route's ``u``).
        delta (Tensor): (B, 4, D, H * W) each route's Δ before bias and
            softplus, in map order.
        A (Tensor): (4 D, N), route k's channels at ``k D + d``.
        B (Tensor): (B, 4, N, H * W) in map order.
        C (Tensor): (B, 4, N, H * W) in map order.
        D (Tensor): (4 D,) skip weights.
        delta_bias (Tensor): (4 D,).
        height (int): H. width (int): W.
        chunk_size (int, optional): the backward pass's recompute interval;
            defaults to :data:`SS2D_CHUNK`.

    Returns:
        Tensor: (B, H * W, D), the four routes summed in map order, in the
        compute dtype (float64 when ``x`` is float64, else float32).

    Raises:
        RuntimeError: The extension lacks the op (rebuild it).
    """
    if not ss2d_scan_available():
        raise RuntimeError('densekit._ext has no ss2d_scan_fwd; rebuild it: '
                           '`python setup.py build_ext --inplace`')
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    args = [t.to(dtype) for t in (x, delta, A, B, C, D.reshape(-1),
                                  delta_bias.reshape(-1))]
    with torch.autocast('cpu', enabled=False):
        return _SS2DScanCpp.apply(*args, int(height), int(width),
                                  int(chunk_size or SS2D_CHUNK))


__all__ = ['ss2d_scan_cpp', 'ss2d_scan_available', 'SS2D_CHUNK']
