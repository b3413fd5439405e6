"""SPPF: spatial pyramid pooling - fast (YOLOv5 v6.0+, YOLOv8).

Three chained ``k x k`` max-pools are equivalent to SPP's parallel pools of
sizes k, 2k-1, 3k-2 (5, 9, 13 for k=5) at a fraction of the cost.
"""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from .c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG


@MODELS.register_module()
class SPPFBottleneck(BaseModule):
    """1x1 conv (halve channels) -> 3 chained max-pools -> concat -> 1x1 conv.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Max-pool kernel size.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 *,
                 kernel_size: int = 5,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        mid = in_channels // 2
        self.conv1 = ConvModule(
            in_channels, mid, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.pool = nn.MaxPool2d(kernel_size, stride=1,
                                 padding=kernel_size // 2)
        self.conv2 = ConvModule(
            mid * 4, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        outs = [self.conv1(x)]
        for _ in range(3):
            outs.append(self.pool(outs[-1]))
        return self.conv2(torch.cat(outs, dim=1))
