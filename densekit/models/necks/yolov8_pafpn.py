"""YOLOv8's PAFPN neck (ultralytics ``yolov8.yaml``, head layers 10-21).

Top-down: upsample P5, concat P4, C2f -> upsample, concat P3, C2f (= out P3).
Bottom-up: 3x3 s2 conv, concat, C2f (= out P4) -> 3x3 s2 conv, concat P5,
C2f (= out P5). Output channels equal input channels, level by level, and the
neck's C2f blocks have no identity shortcut.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from ..layers.yolo_scaling import make_round
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG, C2fLayer


@MODELS.register_module()
class YOLOv8PAFPN(BaseModule):
    """Path-aggregation FPN with C2f blocks over three levels (P3, P4, P5).

    Args:
        in_channels (Sequence[int]): Channels of the P3, P4, P5 inputs, as the
            backbone's ``feature_info`` reports them (already widened).
        deepen_factor (float): Depth multiplier of the C2f repeats.
        num_csp_blocks (int): Unscaled C2f repeats. Defaults to 3.

    Inputs are checked against ``in_channels`` on every call, so a backbone
    swapped in a config without updating the neck fails with a clear message.
    """

    def __init__(self,
                 *,
                 in_channels: Sequence[int],
                 deepen_factor: float = 1.0,
                 num_csp_blocks: int = 3,
                 upsample_cfg: dict = dict(scale_factor=2, mode='nearest'),
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3:
            raise ValueError('YOLOv8PAFPN expects three input levels (P3, P4, '
                             f'P5), but got in_channels={in_channels}')
        self.in_channels = list(in_channels)
        c3, c4, c5 = self.in_channels
        n = make_round(num_csp_blocks, deepen_factor)
        conv = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.upsample = nn.Upsample(**upsample_cfg)
        self.top_down_p4 = C2fLayer(c5 + c4, c4, num_blocks=n,
                                    add_identity=False, **conv)
        self.top_down_p3 = C2fLayer(c4 + c3, c3, num_blocks=n,
                                    add_identity=False, **conv)
        self.downsample_p3 = ConvModule(c3, c3, 3, stride=2, padding=1, **conv)
        self.bottom_up_p4 = C2fLayer(c3 + c4, c4, num_blocks=n,
                                     add_identity=False, **conv)
        self.downsample_p4 = ConvModule(c4, c4, 3, stride=2, padding=1, **conv)
        self.bottom_up_p5 = C2fLayer(c4 + c5, c5, num_blocks=n,
                                     add_identity=False, **conv)

    @property
    def out_channels(self) -> List[int]:
        return list(self.in_channels)

    def _check_inputs(self, inputs: Sequence[Tensor]) -> None:
        got = [x.shape[1] for x in inputs]
        if got != self.in_channels:
            raise ValueError(
                f'YOLOv8PAFPN was built with in_channels={self.in_channels} '
                f'but received features with channels {got}; set '
                '`model.neck.in_channels` to the backbone\'s feature_info '
                'channels')

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Args: inputs (Sequence[Tensor]): P3, P4, P5 maps (strides 8-32).

        Returns:
            tuple[Tensor]: fused P3, P4, P5 maps with the input channels.
        """
        self._check_inputs(inputs)
        p3, p4, p5 = inputs
        mid4 = self.top_down_p4(torch.cat([self.upsample(p5), p4], 1))
        out3 = self.top_down_p3(torch.cat([self.upsample(mid4), p3], 1))
        out4 = self.bottom_up_p4(
            torch.cat([self.downsample_p3(out3), mid4], 1))
        out5 = self.bottom_up_p5(
            torch.cat([self.downsample_p4(out4), p5], 1))
        return out3, out4, out5
