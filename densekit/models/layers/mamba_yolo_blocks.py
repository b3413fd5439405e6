"""Building blocks of Mamba YOLO (Wang et al., arXiv:2406.05835): stem,
downsampling and the two SS2D blocks (paper sections named in quotes).

* :class:`SimpleStem` ("Simple Stem"): two 3x3 stride-2 conv-BN layers (GELU,
  then SiLU); the input is downsampled 4x.
* :class:`VisionClueMerge` ("Vision Clue Merge"): 2x downsampling without a
  strided conv: the four pixel phases of every 2x2 cell are stacked on the
  channels (4C) and a 1x1 conv-BN-SiLU projects them.
* :class:`LSBlock` ("LocalSpatial Block"): depthwise 3x3 conv, BN, 1x1 conv,
  GELU, 1x1 conv, with a residual connection.
* :class:`RGBlock` ("ResGated Block"): gated MLP; a 1x1 conv gives two
  halves, one goes through a residual depthwise 3x3 conv and GELU and gates
  the other.
* :class:`VSSBlock` (the backbone's "ODSSBlock"):
  ``x = proj(x); x = x + SS2D(LN(LSBlock(x))); x = x + RGBlock(LN(x))``.
* :class:`XSSBlock` (the ODSSBlock of the PAFPN neck): the same with an
  optional 1x1 input projection and ``num_ss2d`` chained SS2D modules.

Layouts follow the official modules (``HZAI-ZJNU/Mamba-YOLO``,
``ultralytics/nn/modules/mamba_yolo.py``); conv-BN-activation triples are
``nn.Sequential`` with mmcv's child names (``conv``, ``bn``, ``activate``).
Every BatchNorm uses eps 1e-3 and momentum 0.03 because ultralytics'
``initialize_weights`` sets those on all ``nn.BatchNorm2d`` of the official
models after construction.
"""
from collections import OrderedDict
from typing import Optional, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch import Tensor

from .c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG
from .ss2d import SS2D

GELU_CFG = dict(type='GELU')


def conv_bn_act(in_channels: int,
                out_channels: int,
                kernel_size: int = 1,
                *,
                stride: int = 1,
                bias: bool = False,
                norm_cfg: dict = YOLO_NORM_CFG,
                act_cfg: Optional[dict] = YOLO_ACT_CFG) -> nn.Sequential:
    """``conv -> BN -> act`` with mmcv ``ConvModule``'s child names.

    Unlike ``ConvModule`` it keeps a conv bias before BN without a warning
    (several official Mamba YOLO convs have one, and weights must load).
    """
    layers = [('conv', nn.Conv2d(in_channels, out_channels, kernel_size,
                                 stride=stride, padding=kernel_size // 2,
                                 bias=bias)),
              build_norm_layer(norm_cfg, out_channels)]
    if act_cfg is not None:
        layers.append(('activate', build_activation_layer(act_cfg)))
    return nn.Sequential(OrderedDict(layers))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SimpleStem(BaseModule):
    """Two 3x3 stride-2 conv-BN-act layers: (B, C_in, H, W) ->
    (B, C_out, H/4, W/4).

    Args:
        in_channels (int): Input channels (3 for images).
        out_channels (int): Output channels; the first conv has half.
        kernel_size (int): Kernel of both convs. Defaults to 3.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 kernel_size: int = 3,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden = out_channels // 2
        self.conv1 = conv_bn_act(in_channels, hidden, kernel_size, stride=2,
                                 norm_cfg=norm_cfg, act_cfg=GELU_CFG)
        self.conv2 = conv_bn_act(hidden, out_channels, kernel_size, stride=2,
                                 norm_cfg=norm_cfg, act_cfg=YOLO_ACT_CFG)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class VisionClueMerge(BaseModule):
    """Space-to-depth 2x downsampling followed by 1x1 conv-BN-SiLU.

    Args:
        in_channels (int): Input channels C.
        out_channels (int): Output channels.

    The input (B, C, H, W) needs even H and W; the output is
    (B, out_channels, H/2, W/2). Channel order of the stacked phases is
    (even row, even col), (odd row, even col), (even row, odd col),
    (odd row, odd col), as in the official module.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pw_linear = conv_bn_act(4 * in_channels, out_channels, 1,
                                     bias=True, norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(
                'VisionClueMerge needs an even height and width, but got a '
                f'{tuple(x.shape[-2:])} map; pad the input to a multiple of '
                "the network's stride (MambaYOLO pads to 32 itself)")
        return self.pw_linear(torch.cat([
            x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
            x[..., 1::2, 1::2]
        ], dim=1))


class LSBlock(BaseModule):
    """Local spatial block: ``x + fc3(GELU(fc2(BN(dwconv3x3(x)))))``.

    Args:
        channels (int): Input and output channels (the official module's
            hidden width always equals them).
        drop (float): Dropout on the residual branch. Defaults to 0.
    """

    # fc1 -> norm run back to back (densekit.models.utils.fuse_conv_bn)
    fuse_pairs = (('fc1', 'norm'), )

    def __init__(self,
                 channels: int,
                 *,
                 drop: float = 0.0,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Conv2d(channels, channels, 3, padding=1,
                             groups=channels)
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.fc2 = nn.Conv2d(channels, channels, 1)
        self.act = nn.GELU()
        self.fc3 = nn.Conv2d(channels, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (B, C, H, W). Returns: (B, C, H, W)."""
        out = self.fc3(self.act(self.fc2(self.norm(self.fc1(x)))))
        return x + self.drop(out)


class RGBlock(BaseModule):
    """Residual gated MLP: ``fc2(GELU(dwconv(a) + a) * v)``, ``a, v =
    split(fc1(x))``.

    Args:
        in_channels (int): Input channels.
        hidden_channels (int): Nominal hidden width; as in the official
            module the gated width is ``int(2 * hidden_channels / 3)``.
        out_channels (int, optional): Output channels; defaults to
            ``in_channels``.
        drop (float): Dropout after the gate and after ``fc2``.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int,
                 out_channels: Optional[int] = None,
                 *,
                 drop: float = 0.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        out_channels = out_channels or in_channels
        hidden = int(2 * hidden_channels / 3)
        self.fc1 = nn.Conv2d(in_channels, 2 * hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, out_channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (B, C_in, H, W). Returns: (B, C_out, H, W)."""
        x, v = self.fc1(x).chunk(2, dim=1)
        x = self.drop(self.act(self.dwconv(x) + x) * v)
        return self.drop(self.fc2(x))


class _SS2DBlock(BaseModule):
    """Shared body of :class:`VSSBlock` and :class:`XSSBlock` (not public).

    ``x = x + drop_path(ss2d(norm(lsblock(x))))``, then, when ``mlp_ratio >
    0``, ``x = x + drop_path(mlp(norm2(x)))``. Subclasses build ``self.ss2d``
    and the input projection.
    """

    def _build_body(self, channels: int, mlp_ratio: float, drop_path: float,
                    norm_cfg: dict) -> None:
        self.lsblock = LSBlock(channels, norm_cfg=norm_cfg)
        self.norm = LayerNorm2d(channels, eps=1e-6)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()
        self.norm2 = self.mlp = None
        if mlp_ratio > 0:
            self.norm2 = LayerNorm2d(channels, eps=1e-6)
            self.mlp = RGBlock(channels, int(channels * mlp_ratio))

    def _body(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.ss2d(self.norm(self.lsblock(x))))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VSSBlock(_SS2DBlock):
    """Backbone ODSS block: 1x1 conv-BN-SiLU, LSBlock, SS2D, RGBlock.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output (= hidden) channels.
        mlp_ratio (float): RGBlock hidden ratio; 0 drops the MLP branch.
            Defaults to 4.0.
        drop_path (float): Stochastic depth on both residual branches.
            Defaults to 0 (the official models use 0).
        ssm_d_state (int): SS2D state size. Defaults to 16.
        ssm_ratio (float): SS2D inner-channel ratio. Defaults to 2.0.
        ssm_dt_rank (int | str): SS2D ``dt_rank``. Defaults to 'auto'.
        ssm_conv (int): SS2D depthwise kernel. Defaults to 3.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 mlp_ratio: float = 4.0,
                 drop_path: float = 0.0,
                 ssm_d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 ssm_dt_rank: Union[int, str] = 'auto',
                 ssm_conv: int = 3,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.proj_conv = conv_bn_act(in_channels, out_channels, 1, bias=True,
                                     norm_cfg=norm_cfg)
        self.ss2d = SS2D(out_channels, d_state=ssm_d_state,
                         ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank,
                         d_conv=ssm_conv)
        self._build_body(out_channels, mlp_ratio, drop_path, norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self._body(self.proj_conv(x))


class XSSBlock(_SS2DBlock):
    """Neck block: optional 1x1 conv-BN-SiLU, LSBlock, chained SS2D, RGBlock.

    Args:
        in_channels (int): Input channels (e.g. a concatenation in the neck).
        out_channels (int): Output (= hidden) channels; the input projection
            exists only when they differ from ``in_channels``.
        num_ss2d (int): SS2D modules chained in the SSM branch (the yaml's
            scaled repeat count). Defaults to 1.
        mlp_ratio, drop_path, ssm_d_state, ssm_ratio, ssm_dt_rank, ssm_conv:
            As in :class:`VSSBlock`.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 num_ss2d: int = 1,
                 mlp_ratio: float = 4.0,
                 drop_path: float = 0.0,
                 ssm_d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 ssm_dt_rank: Union[int, str] = 'auto',
                 ssm_conv: int = 3,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_ss2d < 1:
            raise ValueError(
                f'XSSBlock: num_ss2d must be >= 1, but got {num_ss2d}')
        self.in_proj = conv_bn_act(in_channels, out_channels, 1,
                                   norm_cfg=norm_cfg) \
            if in_channels != out_channels else nn.Identity()
        self.ss2d = nn.Sequential(*(
            SS2D(out_channels, d_state=ssm_d_state, ssm_ratio=ssm_ratio,
                 dt_rank=ssm_dt_rank, d_conv=ssm_conv)
            for _ in range(num_ss2d)))
        self._build_body(out_channels, mlp_ratio, drop_path, norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self._body(self.in_proj(x))
