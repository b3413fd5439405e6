"""Mamba YOLO's PAFPN neck (official yaml ``head`` layers 9-20).

Wang et al., "Mamba YOLO: SSMs-Based YOLO For Object Detection"
(arXiv:2406.05835), Fig. 2 / "PAFPN":
YOLOv8's PAFPN with every C2f replaced by an XSSBlock. Top-down: upsample P5,
concat P4, XSS (layer 11) -> upsample, concat P3, XSS (layer 14 = out P3).
Bottom-up: 3x3 s2 conv, concat layer 11, XSS (17 = out P4) -> 3x3 s2 conv,
concat P5, XSS (20 = out P5). Output channels equal input channels, level by
level (the yaml's widths equal the backbone's at every scale).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from ..layers.yolo_scaling import make_round
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG
from ..layers.mamba_yolo_blocks import XSSBlock


@MODELS.register_module()
class MambaYOLOPAFPN(BaseModule):
    """Path-aggregation FPN with XSS blocks over three levels (P3, P4, P5).

    Args:
        in_channels (Sequence[int]): Channels of the P3, P4, P5 inputs, as the
            backbone's ``feature_info`` reports them (already widened).
            ``densekit.YOLODetector`` fills them in.
        deepen_factor (float): Depth multiplier of ``num_ss2d`` (T/B 0.33,
            L 0.67). Defaults to 1.0.
        num_ss2d (int): Unscaled SS2D modules chained in each XSS block (the
            yaml's repeat count 3; the official parser passes the scaled
            count into the block instead of repeating the block).
            Defaults to 3.
        mlp_ratio (float): RGBlock hidden ratio. Defaults to 4.0.
        ssm_d_state (int): SS2D state size. Defaults to 16.
        ssm_ratio (float): SS2D inner-channel ratio. Defaults to 2.0.
        upsample_cfg (dict): ``nn.Upsample`` arguments.
        norm_cfg (dict): BatchNorm of the convs and XSS blocks.
        act_cfg (dict): Activation of the downsampling convs.

    Inputs are checked against ``in_channels`` on every call.
    """

    def __init__(self,
                 *,
                 in_channels: Sequence[int],
                 deepen_factor: float = 1.0,
                 num_ss2d: int = 3,
                 mlp_ratio: float = 4.0,
                 ssm_d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 upsample_cfg: dict = dict(scale_factor=2, mode='nearest'),
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3:
            raise ValueError(
                'MambaYOLOPAFPN expects three input levels (P3, P4, P5), but '
                f'got in_channels={in_channels}')
        self.in_channels = list(in_channels)
        c3, c4, c5 = self.in_channels
        block = dict(num_ss2d=make_round(num_ss2d, deepen_factor),
                     mlp_ratio=mlp_ratio, ssm_d_state=ssm_d_state,
                     ssm_ratio=ssm_ratio, norm_cfg=norm_cfg)
        conv = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.upsample = nn.Upsample(**upsample_cfg)
        self.top_down_p4 = XSSBlock(c5 + c4, c4, **block)
        self.top_down_p3 = XSSBlock(c4 + c3, c3, **block)
        self.downsample_p3 = ConvModule(c3, c3, 3, stride=2, padding=1, **conv)
        self.bottom_up_p4 = XSSBlock(c3 + c4, c4, **block)
        self.downsample_p4 = ConvModule(c4, c4, 3, stride=2, padding=1, **conv)
        self.bottom_up_p5 = XSSBlock(c4 + c5, c5, **block)

    @property
    def out_channels(self) -> List[int]:
        return list(self.in_channels)

    def _check_inputs(self, inputs: Sequence[Tensor]) -> None:
        got = [x.shape[1] for x in inputs]
        if got != self.in_channels:
            raise ValueError(
                f'MambaYOLOPAFPN was built with in_channels={self.in_channels}'
                f' but received features with channels {got}; set '
                '`model.neck.in_channels` to the backbone\'s feature_info '
                'channels (or leave it out under densekit.YOLODetector)')

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Args: inputs (Sequence[Tensor]): P3, P4, P5 maps (strides 8-32),
        (B, C_i, H_i, W_i) with ``C_i = in_channels[i]``.

        Returns:
            tuple[Tensor]: fused P3, P4, P5 maps with the input shapes.
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
