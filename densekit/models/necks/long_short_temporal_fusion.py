"""DAMO-StreamNet's Long-Short temporal Fusion Module (LSFM).

He et al., "DAMO-StreamNet: Optimizing Streaming Perception in Autonomous
Driving", IJCAI 2023, Sec. 3.2; official ``zhiqic/DAMO-StreamNet``:
``exps/model/dfp_pafpn_short_v3_cp.py`` (short path),
``exps/model/dfp_pafpn_long_v3_cp.py`` (long path) and the ``long_fusion``
merge of ``exps/model/yolox_longshort_v3_oddil.py``. With ``cfgs/streamnet_*``
settings (short ``frame_num=1``, long ``frame_num=N=3``, long
``with_short_cut=False``, ``merge_form='pure_concat'``, detector
``with_short_cut=True``), per pyramid level with ``C`` channels::

    short = conv_s(cur)                                   # C/2 channels
    long  = cat(conv_l(past_1), ..., conv_l(past_N))      # N * C//(2N)
    out   = cat(short, conv_f(long)) + cur                # C channels

``conv_*`` are 1x1 Conv-BN-SiLU; ``conv_l`` is shared by the N past frames
(one conv group in ``long_cfg['out_channels']``), so each past frame is
reduced to ``C // (2N)`` channels (21/42/85 for the S model's 128/256/512 and
N=3, exactly the official numbers) and ``conv_f`` maps their concatenation
to ``C/2``. Past frames are concatenated newest first (t-1, ..., t-N).

Deformable neck (``dcn_cfg``): officially DAMO-StreamNet replaces the second
3x3 conv of each block of its GiraffeNeckV2 by a deformable conv
(``BasicBlock_3x3_Reverse_DCN``, mmcv ``DCN``). densekit shares the YOLOv8
PAFPN across tasks, so the deformable conv sits here instead: a residual
3x3 deformable Conv-BN-SiLU on each fused level (``out + dcn(out)``), which
keeps the per-frame features cacheable for streaming (a deviation from the
official placement; DCN's offsets start at zero, i.e. as a plain conv).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import (ConvModule, build_activation_layer, build_conv_layer,
                      build_norm_layer)
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG
from .dual_flow_perception import check_temporal_inputs

# mmcv's conv-layer names: 'DCN' = DeformConv2dPack, 'DCNv2' =
# ModulatedDeformConv2dPack
DCN_TYPES = ('DCN', 'DCNv2')


class _DeformConvBlock(nn.Module):
    """3x3 deformable conv -> norm -> activation, safe on tiny maps.

    mmcv's deformable kernels reject maps smaller than the kernel (e.g. the
    stride-32 level of a 64 px input); those are zero-padded at the bottom /
    right before the conv and cropped after it, which leaves the output at
    the original positions unchanged (samples outside the map read zero
    either way).
    """

    def __init__(self, channels: int, dcn_cfg: dict, norm_cfg: dict,
                 act_cfg: dict) -> None:
        super().__init__()
        self.conv = build_conv_layer(
            dict(dcn_cfg), channels, channels, 3, padding=1, bias=False)
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = max(0, 3 - h), max(0, 3 - w)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        y = self.conv(x)[..., :h, :w]
        return self.act(self.norm(y))


@MODELS.register_module()
class LongShortTemporalFusion(BaseModule):
    """Short path on the current frame, long path over N past frames.

    Args:
        in_channels (Sequence[int]): Channels of each level (the shared neck's
            ``out_channels``; filled in by :class:`StreamYOLODetector`).
        num_past_frames (int): N, the buffered past frames of the long path.
            Defaults to 3 (official).
        long_channels (Sequence[int], optional): Channels each past frame is
            reduced to per level; ``C_l // (2 N)`` when None (official).
        with_shortcut (bool): Add the current frame's features to the output
            (official ``yolox_cfg.with_short_cut``). Defaults to True.
        dcn_cfg (dict, optional): ``dict(type='DCN' | 'DCNv2',
            deform_groups=...)`` adds the residual deformable block described
            in the module docstring; None (default) leaves it out.
        norm_cfg (dict): Norm of the convs.
        act_cfg (dict): Activation of the convs.
    """

    def __init__(self,
                 *,
                 in_channels: Sequence[int],
                 num_past_frames: int = 3,
                 long_channels: Optional[Sequence[int]] = None,
                 with_shortcut: bool = True,
                 dcn_cfg: Optional[dict] = None,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(num_past_frames) < 1:
            raise ValueError('LongShortTemporalFusion needs num_past_frames '
                             f'>= 1, got {num_past_frames}; use no '
                             '`temporal_fusion` for a still detector')
        self.in_channels = [int(c) for c in in_channels]
        self.num_past_frames = int(num_past_frames)
        n = self.num_past_frames
        if long_channels is None:
            long_channels = [c // (2 * n) for c in self.in_channels]
        self.long_channels = [int(c) for c in long_channels]
        if len(self.long_channels) != len(self.in_channels) or \
                min(self.long_channels) < 1 or min(self.in_channels) < 2:
            raise ValueError(
                'LongShortTemporalFusion: need >= 2 in_channels and >= 1 '
                'long_channels per level, got in_channels='
                f'{self.in_channels}, long_channels={self.long_channels} '
                f'(default C // (2 * num_past_frames={n}))')
        if dcn_cfg is not None and dcn_cfg.get('type') not in DCN_TYPES:
            raise ValueError(f'dcn_cfg.type must be one of {DCN_TYPES}, got '
                             f'{dcn_cfg}')
        self.with_shortcut = with_shortcut
        conv = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.short_convs = nn.ModuleList(
            ConvModule(c, c - c // 2, 1, **conv) for c in self.in_channels)
        self.long_convs = nn.ModuleList(
            ConvModule(c, lc, 1, **conv)
            for c, lc in zip(self.in_channels, self.long_channels))
        self.long_fuse_convs = nn.ModuleList(
            ConvModule(n * lc, c // 2, 1, **conv)
            for c, lc in zip(self.in_channels, self.long_channels))
        self.dcn_blocks = None
        if dcn_cfg is not None:
            self.dcn_blocks = nn.ModuleList(
                _DeformConvBlock(c, dcn_cfg, norm_cfg, act_cfg)
                for c in self.in_channels)

    @property
    def out_channels(self) -> List[int]:
        return list(self.in_channels)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Fuse one window.

        Args:
            feats (Sequence[Tensor]): Per level (B, N + 1, C_l, H_l, W_l),
                frame axis oldest -> current.

        Returns:
            tuple[Tensor]: Per level (B, C_l, H_l, W_l) fused features.
        """
        check_temporal_inputs('LongShortTemporalFusion', feats,
                              self.in_channels, self.num_past_frames + 1)
        outs = []
        for level, f in enumerate(feats):
            batch, _, _, h, w = f.shape
            cur = f[:, -1]
            past = f[:, :-1].flip(1)  # newest first: t-1, ..., t-N
            # one batched call for the N past frames (shared conv)
            long = self.long_convs[level](past.flatten(0, 1))
            long = long.reshape(batch, -1, h, w)  # frame-major channels
            out = torch.cat([self.short_convs[level](cur),
                             self.long_fuse_convs[level](long)], 1)
            if self.with_shortcut:
                out = out + cur
            if self.dcn_blocks is not None:
                out = out + self.dcn_blocks[level](out)
            outs.append(out)
        return tuple(outs)
