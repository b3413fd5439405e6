"""Cross-scan and cross-merge: 2D feature maps <-> four 1D scan sequences.

Mamba YOLO (Wang et al., arXiv:2406.05835, section "ODSSBlock": the SS2D
operator, taken from VMamba, Liu et al. 2024, "2D-Selective-Scan"): a
selective scan is causal over a 1D sequence, so an H x W map is unfolded
along four routes and each route is scanned independently:

====  ==========================================  ==========================
 k    route                                       sequence position of (h, w)
====  ==========================================  ==========================
 0    row-major (left->right, top->bottom)        ``h * W + w``
 1    column-major (top->bottom, left->right)     ``w * H + h``
 2    route 0 reversed                            ``L - 1 - (h * W + w)``
 3    route 1 reversed                            ``L - 1 - (w * H + h)``
====  ==========================================  ==========================

with ``L = H * W``. :func:`cross_merge` maps the four scanned sequences back
to the row-major layout and sums them; it is the adjoint (transpose) of
:func:`cross_scan`, so ``cross_merge(cross_scan(x)) == 4 * x``.

Both are plain differentiable tensor ops (flip, transpose, reshape). The
official code wraps them in ``torch.autograd.Function`` with hand-written
backward passes; autograd derives the same backward here, and these ops save
no activations, so a custom Function would not save memory.
"""
import torch
from torch import Tensor

NUM_DIRECTIONS = 4


def cross_scan(x: Tensor) -> Tensor:
    """Unfold a 2D map into the four scan sequences.

    Args:
        x (Tensor): Feature map, (B, C, H, W).

    Returns:
        Tensor: (B, 4, C, H * W); dim 1 is the route ``k`` of the module
        docstring.
    """
    row_major = x.flatten(2)                   # (B, C, L)
    col_major = x.transpose(2, 3).flatten(2)   # (B, C, L)
    forward = torch.stack([row_major, col_major], dim=1)  # (B, 2, C, L)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """Fold the four scanned sequences back to row-major order and sum them.

    Args:
        ys (Tensor): Scanned sequences, (B, 4, C, H * W), routes ordered as in
            :func:`cross_scan`.
        height (int): H of the original map.
        width (int): W of the original map.

    Returns:
        Tensor: (B, C, H * W), row-major.
    """
    batch, num_dirs, channels, length = ys.shape
    if num_dirs != NUM_DIRECTIONS or length != height * width:
        raise ValueError(
            'cross_merge expects (B, 4, C, H * W) sequences for an '
            f'H x W = {height} x {width} map, but got shape {tuple(ys.shape)}')
    # undo the reversal of routes 2 and 3 and add them to routes 0 and 1
    ys = ys[:, :2] + ys[:, 2:].flip(-1)
    col_major = ys[:, 1].reshape(batch, channels, width, height)
    return ys[:, 0] + col_major.transpose(2, 3).reshape(
        batch, channels, length)
