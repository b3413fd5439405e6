"""YOLOv8's CSPDarknet backbone (ultralytics ``yolov8.yaml``, layers 0-9).

Stem conv (stride 2), then four stages of ``3x3 stride-2 conv + C2f``; the
last stage ends with SPPF. Model scales n/s/m/l/x are produced, as in
ultralytics, by ``deepen_factor`` (repeats), ``widen_factor`` (channels) and
``last_stage_out_channels`` (ultralytics' ``max_channels`` cap: 1024 for n/s,
768 for m, 512 for l/x).
"""
from typing import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule

from densekit.registry import MODELS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG, C2fLayer
from ..layers.sppf_bottleneck import SPPFBottleneck
from ..layers.yolo_scaling import make_divisible, make_round
from .base_backbone import BaseBackbone


@MODELS.register_module()
class YOLOv8CSPDarknet(BaseBackbone):
    """CSPDarknet with C2f blocks and SPPF, as in YOLOv8.

    Stage indices: 0 = stem (stride 2), 1..4 = stages of stride 4, 8, 16, 32.
    ``out_indices=(2, 3, 4)`` gives the P3/P4/P5 maps the YOLOv8 neck uses.

    Args:
        deepen_factor (float): Depth multiplier (n/s 0.33, m 0.67, l/x 1.0).
        widen_factor (float): Width multiplier (n 0.25, s 0.5, m 0.75, l 1.0,
            x 1.25).
        last_stage_out_channels (int): Unscaled channels of stage 4 (1024 for
            n/s, 768 for m, 512 for l/x).
        out_indices (Sequence[int]): Stages returned. Defaults to (2, 3, 4).
        frozen_stages (int): See :class:`BaseBackbone`.
        norm_eval (bool): See :class:`BaseBackbone`.
    """
    # columns: in_channels, out_channels, num_blocks, add_identity, use_sppf
    arch_settings = [[64, 128, 3, True, False], [128, 256, 6, True, False],
                     [256, 512, 6, True, False], [512, None, 3, True, True]]

    def __init__(self,
                 *,
                 deepen_factor: float = 1.0,
                 widen_factor: float = 1.0,
                 last_stage_out_channels: int = 1024,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            init_cfg=init_cfg)
        stem_channels = make_divisible(64, widen_factor)
        self.stages.append(
            ConvModule(in_channels, stem_channels, 3, stride=2, padding=1,
                       norm_cfg=norm_cfg, act_cfg=act_cfg))
        self.stage_channels.append(stem_channels)
        self.stage_strides.append(2)

        for i, (c_in, c_out, num_blocks, add_identity,
                use_sppf) in enumerate(self.arch_settings):
            c_in = make_divisible(c_in, widen_factor)
            c_out = make_divisible(
                last_stage_out_channels if c_out is None else c_out,
                widen_factor)
            layers = [
                ConvModule(c_in, c_out, 3, stride=2, padding=1,
                           norm_cfg=norm_cfg, act_cfg=act_cfg),
                C2fLayer(c_out, c_out,
                         num_blocks=make_round(num_blocks, deepen_factor),
                         add_identity=add_identity,
                         norm_cfg=norm_cfg, act_cfg=act_cfg)
            ]
            if use_sppf:
                layers.append(SPPFBottleneck(
                    c_out, c_out, kernel_size=5,
                    norm_cfg=norm_cfg, act_cfg=act_cfg))
            self.stages.append(nn.Sequential(*layers))
            self.stage_channels.append(c_out)
            self.stage_strides.append(2**(i + 2))
        self._check_indices()
