"""C2f: the cross-stage-partial block of YOLOv8 (two convolutions, n
bottlenecks).

Ultralytics names it "CSP Bottleneck with 2 convolutions"; every bottleneck's
output is kept and concatenated, which is what distinguishes it from YOLOv5's
C3 block (only the last bottleneck output is kept there).
"""
from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS

YOLO_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
YOLO_ACT_CFG = dict(type='SiLU', inplace=True)


class C2fBottleneck(BaseModule):
    """Two 3x3 conv-BN-SiLU layers with an optional identity shortcut.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expansion (float): Hidden channels = ``int(out_channels * expansion)``.
        add_identity (bool): Add the input to the output when the channel
            counts match.
        kernel_sizes (Sequence[int]): Kernel sizes of the two convolutions.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 expansion: float = 1.0,
                 add_identity: bool = True,
                 kernel_sizes: Sequence[int] = (3, 3),
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden = int(out_channels * expansion)
        self.conv1 = ConvModule(
            in_channels, hidden, kernel_sizes[0],
            padding=kernel_sizes[0] // 2, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(
            hidden, out_channels, kernel_sizes[1],
            padding=kernel_sizes[1] // 2, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return x + out if self.add_identity else out


@MODELS.register_module()
class C2fLayer(BaseModule):
    """YOLOv8's C2f block.

    ``x -> 1x1 conv -> split in two halves (a, b) -> b feeds a chain of
    bottlenecks -> concat(a, b, every bottleneck output) -> 1x1 conv``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        num_blocks (int): Number of bottlenecks.
        add_identity (bool): Shortcut inside the bottlenecks (True in the
            backbone, False in the neck).
        expansion (float): Split width = ``int(out_channels * expansion)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 num_blocks: int = 1,
                 add_identity: bool = True,
                 expansion: float = 0.5,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.mid_channels = int(out_channels * expansion)
        self.main_conv = ConvModule(
            in_channels, 2 * self.mid_channels, 1,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.final_conv = ConvModule(
            (2 + num_blocks) * self.mid_channels, out_channels, 1,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.blocks = nn.ModuleList(
            C2fBottleneck(
                self.mid_channels, self.mid_channels,
                expansion=1.0, add_identity=add_identity,
                norm_cfg=norm_cfg, act_cfg=act_cfg)
            for _ in range(num_blocks))

    def forward(self, x: Tensor) -> Tensor:
        outs = list(self.main_conv(x).split(self.mid_channels, dim=1))
        for block in self.blocks:
            outs.append(block(outs[-1]))
        return self.final_conv(torch.cat(outs, dim=1))
