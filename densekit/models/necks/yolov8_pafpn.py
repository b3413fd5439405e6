"""The YOLO path-aggregation FPN: YOLOv8's (ultralytics ``yolov8.yaml``, head
layers 10-21) and Mamba YOLO's (official yaml ``head`` layers 9-20), which is
the same graph with every C2f replaced by an XSSBlock.

Top-down: upsample P5, concat P4, block -> upsample, concat P3, block
(= out P3). Bottom-up: 3x3 s2 conv, concat, block (= out P4) -> 3x3 s2 conv,
concat P5, block (= out P5). Output channels equal input channels, level by
level; YOLOv8's C2f blocks have no identity shortcut.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG, C2fLayer
from ..layers.mamba_yolo_blocks import XSSBlock
from ..layers.yolo_scaling import make_round

#: the blocks a PAFPN level can use: class, the argument taking the scaled
#: repeat count, and whether it takes ``act_cfg``
PAFPN_BLOCKS = {
    'C2fLayer': (C2fLayer, 'num_blocks', True),
    'XSSBlock': (XSSBlock, 'num_ss2d', False),
}


@MODELS.register_module()
class YOLOv8PAFPN(BaseModule):
    """Path-aggregation FPN over three levels (P3, P4, P5).

    Args:
        in_channels (Sequence[int]): Channels of the P3, P4, P5 inputs, as the
            backbone's ``feature_info`` reports them (already widened).
            ``densekit.YOLODetector`` fills them in.
        deepen_factor (float): Depth multiplier of the blocks' repeats.
        num_csp_blocks (int): Unscaled repeats per block (C2f bottlenecks,
            or SS2D modules chained in an XSS block). Defaults to 3.
        block_cfg (dict, optional): The block of every level: ``type`` one
            of :data:`PAFPN_BLOCKS` plus its arguments. Defaults to
            YOLOv8's ``dict(type='C2fLayer', add_identity=False)``.
        upsample_cfg (dict): ``nn.Upsample`` arguments.
        norm_cfg (dict): BatchNorm of the convs and blocks.
        act_cfg (dict): Activation of the convs (and of C2f).

    Inputs are checked against ``in_channels`` on every call, so a backbone
    swapped in a config without updating the neck fails with a clear message.
    """

    def __init__(self,
                 *,
                 in_channels: Sequence[int],
                 deepen_factor: float = 1.0,
                 num_csp_blocks: int = 3,
                 block_cfg: Optional[dict] = None,
                 upsample_cfg: dict = dict(scale_factor=2, mode='nearest'),
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if len(in_channels) != 3:
            raise ValueError(f'{name} expects three input levels (P3, P4, '
                             f'P5), but got in_channels={in_channels}')
        block_cfg = dict(block_cfg or dict(type='C2fLayer',
                                           add_identity=False))
        block_type = str(block_cfg.pop('type', 'C2fLayer')).split('.')[-1]
        if block_type not in PAFPN_BLOCKS:
            raise ValueError(f'{name}: block_cfg.type must be one of '
                             f'{sorted(PAFPN_BLOCKS)}, got {block_type!r}')
        block, depth_arg, takes_act = PAFPN_BLOCKS[block_type]
        block_cfg.update({depth_arg: make_round(num_csp_blocks,
                                                deepen_factor)},
                         norm_cfg=norm_cfg)
        if takes_act:
            block_cfg['act_cfg'] = act_cfg
        self.in_channels = list(in_channels)
        c3, c4, c5 = self.in_channels
        conv = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.upsample = nn.Upsample(**upsample_cfg)
        self.top_down_p4 = block(c5 + c4, c4, **block_cfg)
        self.top_down_p3 = block(c4 + c3, c3, **block_cfg)
        self.downsample_p3 = ConvModule(c3, c3, 3, stride=2, padding=1, **conv)
        self.bottom_up_p4 = block(c3 + c4, c4, **block_cfg)
        self.downsample_p4 = ConvModule(c4, c4, 3, stride=2, padding=1, **conv)
        self.bottom_up_p5 = block(c4 + c5, c5, **block_cfg)

    @property
    def out_channels(self) -> List[int]:
        return list(self.in_channels)

    def _check_inputs(self, inputs: Sequence[Tensor]) -> None:
        got = [x.shape[1] for x in inputs]
        if got != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} was built with in_channels='
                f'{self.in_channels} but received features with channels '
                f'{got}; set `model.neck.in_channels` to the backbone\'s '
                'feature_info channels (or leave it out under '
                'densekit.YOLODetector)')

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


@MODELS.register_module()
class MambaYOLOPAFPN(YOLOv8PAFPN):
    """Mamba YOLO's PAFPN (Wang et al., "Mamba YOLO: SSMs-Based YOLO For
    Object Detection", arXiv:2406.05835, Fig. 2): :class:`YOLOv8PAFPN` with
    XSS blocks, under the official yaml's argument names.

    Args:
        in_channels (Sequence[int]): As :class:`YOLOv8PAFPN`.
        deepen_factor (float): Depth multiplier of ``num_ss2d`` (T/B 0.33,
            L 0.67). Defaults to 1.0.
        num_ss2d (int): Unscaled SS2D modules chained in each XSS block (the
            yaml's repeat count 3; the official parser passes the scaled
            count into the block instead of repeating the block).
            Defaults to 3.
        mlp_ratio (float): RGBlock hidden ratio. Defaults to 4.0.
        ssm_d_state (int): SS2D state size. Defaults to 16.
        ssm_ratio (float): SS2D inner-channel ratio. Defaults to 2.0.
        upsample_cfg, norm_cfg, act_cfg: As :class:`YOLOv8PAFPN`.
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
        super().__init__(
            in_channels=in_channels, deepen_factor=deepen_factor,
            num_csp_blocks=num_ss2d,
            block_cfg=dict(type='XSSBlock', mlp_ratio=mlp_ratio,
                           ssm_d_state=ssm_d_state, ssm_ratio=ssm_ratio),
            upsample_cfg=upsample_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
            init_cfg=init_cfg)
