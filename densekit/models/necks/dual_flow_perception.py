"""StreamYOLO's Dual-Flow Perception module (DFP).

Yang et al., "Real-time Object Detection for Streaming Perception", CVPR 2022,
Sec. 3.2; official ``yancie-yjr/StreamYOLO:exps/model/dfp_pafpn.py``. The
backbone and the PAFPN run on the current and the previous frame with shared
weights; per pyramid level the *PAFPN outputs* of both frames go through one
shared 1x1 Conv-BN-SiLU (``jian0/1/2`` officially) that halves the channels,
the two halves are concatenated (current first) and the current frame's PAFPN
output is added as a residual::

    out_l = cat(conv_l(cur_l), conv_l(prev_l)) + cur_l

so the output has the input's channels and the head is unchanged. For odd
``C`` the current half gets ``C - C // 2`` channels and the previous half
``C // 2`` (officially ``C`` is always even and both get ``C // 2``, so the
two convs coincide; here there are two convs only when ``C`` is odd).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG


def check_temporal_inputs(owner: str, feats: Sequence[Tensor],
                          in_channels: Sequence[int],
                          num_frames: int) -> None:
    """Raise ``ValueError`` unless ``feats`` are (B, T, C_l, H_l, W_l)."""
    if len(feats) != len(in_channels):
        raise ValueError(f'{owner} was built for {len(in_channels)} levels '
                         f'but received {len(feats)}')
    for level, (f, c) in enumerate(zip(feats, in_channels)):
        if f.dim() != 5 or f.shape[1] != num_frames or f.shape[2] != c:
            raise ValueError(
                f'{owner} expects level {level} as (B, T={num_frames}, '
                f'C={c}, H, W) (frames oldest -> current), but got shape '
                f'{tuple(f.shape)}; check `model.num_past_frames` and '
                '`model.temporal_fusion.in_channels`')


@MODELS.register_module()
class DualFlowPerception(BaseModule):
    """Fuse the current and previous frame's neck features (StreamYOLO DFP).

    Args:
        in_channels (Sequence[int]): Channels of each level (the shared neck's
            ``out_channels``; filled in by :class:`StreamYOLODetector`).
        norm_cfg (dict): Norm of the 1x1 convs.
        act_cfg (dict): Activation of the 1x1 convs.
    """

    num_past_frames = 1

    def __init__(self,
                 *,
                 in_channels: Sequence[int],
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = [int(c) for c in in_channels]
        if any(c < 2 for c in self.in_channels):
            raise ValueError('DualFlowPerception needs >= 2 channels per '
                             f'level, got in_channels={self.in_channels}')
        conv = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.cur_convs = nn.ModuleList(
            ConvModule(c, c - c // 2, 1, **conv) for c in self.in_channels)
        # shared with the current frame's conv, as officially, when C is even
        self.prev_convs = nn.ModuleList(
            None if c % 2 == 0 else ConvModule(c, c // 2, 1, **conv)
            for c in self.in_channels)

    @property
    def out_channels(self) -> List[int]:
        return list(self.in_channels)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Fuse one window.

        Args:
            feats (Sequence[Tensor]): Per level (B, 2, C_l, H_l, W_l), frame
                axis (previous, current).

        Returns:
            tuple[Tensor]: Per level (B, C_l, H_l, W_l) fused features.
        """
        check_temporal_inputs('DualFlowPerception', feats, self.in_channels,
                              self.num_past_frames + 1)
        outs = []
        for f, cur_conv, prev_conv in zip(feats, self.cur_convs,
                                          self.prev_convs):
            prev, cur = f[:, 0], f[:, 1]
            prev_conv = cur_conv if prev_conv is None else prev_conv
            outs.append(torch.cat([cur_conv(cur), prev_conv(prev)], 1) + cur)
        return tuple(outs)
