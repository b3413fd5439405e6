"""Corner pooling (CornerNet) in pure torch, as BVR's keypoint head uses it.

Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018
(https://arxiv.org/abs/1808.01244); used optionally by RelationNet++ (BVR,
``microsoft/RelationNet2``: ``KeypointHead(corner_pooling=True)`` puts a
top-left / bottom-right pool block after each corner head's convs).

A directional pool takes, for every location, the maximum over all
locations from it to the border in one direction. For ``x: r(N C H W)``::

    top(x)[n, c, i, j]    = max_{i' >= i} x[n, c, i', j]   # looks downwards
    bottom(x)[n, c, i, j] = max_{i' <= i} x[n, c, i', j]   # looks upwards
    left(x)[n, c, i, j]   = max_{j' >= j} x[n, c, i, j']   # looks right
    right(x)[n, c, i, j]  = max_{j' <= j} x[n, c, i, j']   # looks left

These are mmcv's ``CornerPool`` modes (its CUDA/CPU op); here each is a
``torch.cummax`` (flipped for top and left), so it runs on any device and
differentiates through torch's cummax (the gradient goes to the arg max).

``CornerPool`` is CornerNet's pool module (mmdet's ``BiCornerPool``)::

    a = pool_1(conv_1(x)) + pool_2(conv_2(x))       # corner_channels wide
    y = conv_out(relu(bn(conv_a(a)) + bn(conv_skip(x))))

with ``(pool_1, pool_2) = (top, left)`` for the top-left corner and
``(bottom, right)`` for the bottom-right one.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS

# direction -> (dim of an N C H W map, whether to flip before the cummax)
POOL_DIRECTIONS = {
    'top': (2, True),
    'bottom': (2, False),
    'left': (3, True),
    'right': (3, False),
}
# corner -> the two directional pools it sums
CORNER_POOLS = {
    'top_left': ('top', 'left'),
    'bottom_right': ('bottom', 'right'),
}


def directional_pool(x: Tensor, direction: str) -> Tensor:
    """Cumulative max of ``x`` towards one border (see the module docstring).

    Args:
        x (Tensor): Feature map, shape (N, C, H, W).
        direction (str): One of 'top', 'bottom', 'left', 'right'.

    Returns:
        Tensor: Same shape as ``x``.
    """
    if direction not in POOL_DIRECTIONS:
        raise ValueError(f'direction must be one of {list(POOL_DIRECTIONS)},'
                         f' but got {direction!r}')
    if x.dim() != 4:
        raise ValueError(f'expected an (N, C, H, W) map, got shape '
                         f'{tuple(x.shape)}')
    dim, flip = POOL_DIRECTIONS[direction]
    if flip:
        return x.flip(dim).cummax(dim).values.flip(dim)
    return x.cummax(dim).values


@MODELS.register_module()
class CornerPool(BaseModule):
    """CornerNet's corner pooling block for one corner type.

    Args:
        in_channels (int): Channels of the input and the output.
        corner (str): 'top_left' or 'bottom_right'.
        corner_channels (int): Channels of the two pooled branches. BVR
            uses 64 (CornerNet 128). Defaults to 64.
        conv_cfg (dict, optional): Conv config of the ConvModules.
        norm_cfg (dict, optional): Norm config of the ConvModules. Defaults
            to BN.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 *,
                 corner: str = 'top_left',
                 corner_channels: int = 64,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(type='BN',
                                                 requires_grad=True),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if corner not in CORNER_POOLS:
            raise ValueError(f'corner must be one of {list(CORNER_POOLS)}, '
                             f'but got {corner!r}')
        self.corner = corner
        self.directions = CORNER_POOLS[corner]
        kw = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.direction1_conv = ConvModule(in_channels, corner_channels, 3,
                                          padding=1, **kw)
        self.direction2_conv = ConvModule(in_channels, corner_channels, 3,
                                          padding=1, **kw)
        self.aftpool_conv = ConvModule(corner_channels, in_channels, 3,
                                       padding=1, act_cfg=None, **kw)
        self.skip_conv = ConvModule(in_channels, in_channels, 1,
                                    act_cfg=None, **kw)
        self.out_conv = ConvModule(in_channels, in_channels, 3, padding=1,
                                   **kw)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (N, in_channels, H, W). Returns: same shape."""
        d1 = directional_pool(self.direction1_conv(x), self.directions[0])
        d2 = directional_pool(self.direction2_conv(x), self.directions[1])
        y = self.relu(self.aftpool_conv(d1 + d2) + self.skip_conv(x))
        return self.out_conv(y)


def _naive_directional_pool(x: Tensor, direction: str) -> Tensor:
    """Reference path with explicit loops, for tests only (same signature as
    :func:`directional_pool`)."""
    dim, _ = POOL_DIRECTIONS[direction]
    out = torch.empty_like(x)
    size = x.shape[dim]
    for i in range(size):
        if direction in ('top', 'left'):
            span = x.narrow(dim, i, size - i)
        else:
            span = x.narrow(dim, 0, i + 1)
        out.narrow(dim, i, 1).copy_(span.amax(dim, keepdim=True))
    return out
