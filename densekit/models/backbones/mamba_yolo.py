"""Mamba YOLO's backbone and the converter for official checkpoints.

Paper: Wang et al., "Mamba YOLO: SSMs-Based YOLO For Object Detection"
(arXiv:2406.05835; later "A Simple Baseline for Object Detection with State
Space Model"), "ODMamba backbone". Official code:
https://github.com/HZAI-ZJNU/Mamba-YOLO (built on Ultralytics 8.2.29, whose
files carry AGPL-3.0 headers); the architecture follows its yamls
``ultralytics/cfg/models/mamba-yolo/Mamba-YOLO-{T,B,L}.yaml``, backbone layers
0-8::

    SimpleStem(128)            stride 4     stage 0
    VSSBlock(128) x 3          stride 4     stage 1
    VisionClueMerge(256)       stride 8     stage 2  (merge + blocks)
    VSSBlock(256) x 3
    VisionClueMerge(512)       stride 16    stage 3
    VSSBlock(512) x 9
    VisionClueMerge(1024)      stride 32    stage 4  (merge + blocks + sppf)
    VSSBlock(1024) x 3
    SPPF(1024, 5)

Sizes are ultralytics "scales" ``[depth, width, max_channels]``: T
``[0.33, 0.25, 1024]``, B ``[0.33, 0.50, 1024]``, L ``[0.67, 0.75, 768]``
(channels ``ceil(min(c, max_channels) * width / 8) * 8``, repeats
``max(round(n * depth), 1)``). No official weights were released (as of the
repository's README); :func:`convert_mamba_yolo` maps a checkpoint trained
with the official code onto ``densekit.YOLODetector`` +
``densekit.MambaYOLO`` + ``densekit.MambaYOLOPAFPN`` + ``densekit.YOLOv8Head``.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              unwrap_state_dict)
from densekit.registry import MODELS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG
from ..layers.mamba_yolo_blocks import SimpleStem, VisionClueMerge, VSSBlock
from ..layers.sppf_bottleneck import SPPFBottleneck
from ..layers.weight_init import drop_path_rates
from ..layers.yolo_scaling import make_divisible, make_round
from .base_backbone import BaseBackbone


@MODELS.register_module()
class MambaYOLO(BaseBackbone):
    """Mamba YOLO backbone: SimpleStem, VSSBlock stages, VisionClueMerge
    downsampling and SPPF.

    Stage indices: 0 = stem (stride 4), 1 = VSS blocks at stride 4, 2..4 =
    ``VisionClueMerge + VSS blocks`` at strides 8, 16, 32 (stage 4 ends with
    SPPF). ``out_indices=(2, 3, 4)`` gives the P3/P4/P5 maps the official
    neck reads (yaml layers 3, 5 and 8).

    Args:
        arch (str): 'T', 'B' or 'L' (see :attr:`arch_variants`).
            Defaults to 'T'.
        deepen_factor (float, optional): Overrides the variant's depth.
        widen_factor (float, optional): Overrides the variant's width.
        max_channels (int, optional): Overrides the variant's channel cap
            (applied before widening, as ultralytics does).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to (2, 3, 4).
        frozen_stages (int): See :class:`BaseBackbone`. Defaults to -1.
        norm_eval (bool): See :class:`BaseBackbone`. Defaults to False.
        drop_path_rate (float): Stochastic depth of the last VSS block,
            increasing linearly from 0 over all VSS blocks. The official
            models use 0. Defaults to 0.
        mlp_ratio (float): RGBlock hidden ratio of the VSS blocks.
        ssm_d_state (int): SS2D state size.
        ssm_ratio (float): SS2D inner-channel ratio.
        norm_cfg (dict): BatchNorm of every conv-BN pair (ultralytics' eps
            1e-3, momentum 0.03).
        act_cfg (dict): Activation of SPPF.

    Note:
        Inputs whose height or width is not a multiple of 32 are zero-padded
        at the bottom and right to the next multiple inside :meth:`forward`
        (VisionClueMerge needs even sizes at every stride). A stride-``s``
        output is then ``ceil(H / 32) * 32 / s`` high. mmdet's data
        preprocessor (``pad_size_divisor=32``) already pads detector inputs.

    Examples:
        >>> import torch
        >>> model = MambaYOLO(arch='T')
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
        >>> model.feature_info[0]
        {'channels': 64, 'stride': 8}
    """
    # ultralytics scales: depth multiple, width multiple, max_channels
    arch_variants = dict(
        T=dict(deepen_factor=0.33, widen_factor=0.25, max_channels=1024),
        B=dict(deepen_factor=0.33, widen_factor=0.50, max_channels=1024),
        L=dict(deepen_factor=0.67, widen_factor=0.75, max_channels=768))
    # unscaled SimpleStem output channels
    stem_channels = 128
    # stages 1-4; columns: out_channels, num_blocks, use_merge, use_sppf
    arch_settings = [[128, 3, False, False], [256, 3, True, False],
                     [512, 9, True, False], [1024, 3, True, True]]
    size_divisor = 32

    def __init__(self,
                 *,
                 arch: str = 'T',
                 deepen_factor: Optional[float] = None,
                 widen_factor: Optional[float] = None,
                 max_channels: Optional[int] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.0,
                 mlp_ratio: float = 4.0,
                 ssm_d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 init_cfg=None) -> None:
        super().__init__(
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            init_cfg=init_cfg)
        if arch not in self.arch_variants:
            raise ValueError(
                f'MambaYOLO: arch must be one of '
                f'{sorted(self.arch_variants)}, but got {arch!r}')
        variant = dict(self.arch_variants[arch])
        for key, value in (('deepen_factor', deepen_factor),
                           ('widen_factor', widen_factor),
                           ('max_channels', max_channels)):
            if value is not None:
                variant[key] = value
        self.arch = arch
        self.deepen_factor = variant['deepen_factor']
        self.widen_factor = variant['widen_factor']
        self.max_channels = variant['max_channels']

        def width(channels: int) -> int:
            return make_divisible(min(channels, self.max_channels),
                                  self.widen_factor)

        depths = [make_round(n, self.deepen_factor)
                  for _, n, _, _ in self.arch_settings]
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))

        channels = width(self.stem_channels)
        self.stages.append(SimpleStem(in_channels, channels,
                                      norm_cfg=norm_cfg))
        self.stage_channels.append(channels)
        self.stage_strides.append(4)
        stride = 4
        for (c_out, _, use_merge, use_sppf), depth in zip(
                self.arch_settings, depths):
            c_out = width(c_out)
            layers = []
            if use_merge:
                layers.append(('merge', VisionClueMerge(
                    channels, c_out, norm_cfg=norm_cfg)))
                stride *= 2
            # as in the official yaml every repeat is VSSBlock(c_in, c_out)
            # with c_in == c_out, each with its own 1x1 projection
            layers.append(('blocks', nn.Sequential(*(
                VSSBlock(c_out, c_out, mlp_ratio=mlp_ratio,
                         drop_path=drop_paths.pop(0),
                         ssm_d_state=ssm_d_state, ssm_ratio=ssm_ratio,
                         norm_cfg=norm_cfg) for _ in range(depth)))))
            if use_sppf:
                layers.append(('sppf', SPPFBottleneck(
                    c_out, c_out, kernel_size=5, norm_cfg=norm_cfg,
                    act_cfg=act_cfg)))
            self.stages.append(nn.Sequential(OrderedDict(layers)))
            self.stage_channels.append(c_out)
            self.stage_strides.append(stride)
            channels = c_out
        self._check_indices()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args: x (Tensor): images, (N, C_in, H, W), any H and W.

        Returns:
            tuple[Tensor]: one (N, C_i, H' / s_i, W' / s_i) map per
            ``out_indices`` entry (C_i, s_i as in :attr:`feature_info`),
            where H', W' are H, W rounded up to a multiple of 32 (the
            zero padding of :meth:`forward_stage` before the stem).
        """
        return super().forward(x)

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Stage ``index``; the images are zero-padded (bottom, right) to a
        multiple of 32 before the stem (stage 0)."""
        if index == 0:
            height, width = x.shape[-2:]
            pad_h = -height % self.size_divisor
            pad_w = -width % self.size_divisor
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.stages[index](x)


# ---------------------------------------------------------------------------
# Official (ultralytics) checkpoint -> densekit detector keys
# ---------------------------------------------------------------------------
# yaml layer index -> densekit module prefix (layers 9, 10, 12, 13, 16, 19
# are Upsample/Concat without parameters)
_VSS_LAYERS = {1: 1, 3: 2, 5: 3, 7: 4}   # VSSBlock repeats -> stage
_MERGE_LAYERS = {2: 2, 4: 3, 6: 4}       # VisionClueMerge -> stage
_XSS_LAYERS = {11: 'neck.top_down_p4', 14: 'neck.top_down_p3',
               17: 'neck.bottom_up_p4', 20: 'neck.bottom_up_p5'}
_CONV_LAYERS = {15: 'neck.downsample_p3', 18: 'neck.downsample_p4'}
_SPPF_LAYER = 8
_DETECT_LAYER = 21

# renames inside one module: official nn.Sequential indices -> mmcv names,
# the official LayerNorm2d wrapper (``norm.norm``) -> densekit's LayerNorm2d
_BLOCK_RENAMES = [
    (r'^(proj_conv|in_proj|pw_linear)\.0\.', r'\1.conv.'),
    (r'^(proj_conv|in_proj|pw_linear)\.1\.', r'\1.bn.'),
    (r'^(norm2?)\.norm\.', r'\1.'),
    (r'^op\.', 'ss2d.'),
]
_STEM_RENAMES = [(r'^conv\.0\.', 'conv1.conv.'), (r'^conv\.1\.', 'conv1.bn.'),
                 (r'^conv\.3\.', 'conv2.conv.'),
                 (r'^conv\.4\.', 'conv2.bn.')]
_SPPF_RENAMES = [(r'^cv1\.', 'conv1.'), (r'^cv2\.', 'conv2.')]
_DETECT_RENAMES = [(r'^cv2\.', 'reg_towers.'), (r'^cv3\.', 'cls_towers.')]
_CONVERTED_PREFIXES = ('backbone.', 'neck.', 'bbox_head.')


def _rename(key: str, rules: List[Tuple[str, str]]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def convert_mamba_yolo(checkpoint, *,
                       with_head: bool = False) -> Dict[str, Tensor]:
    """Map an official Mamba YOLO checkpoint onto densekit's detector keys.

    Layer ``model.{i}`` of the official yaml goes to: 0 ->
    ``backbone.stages.0`` (SimpleStem); 1/3/5/7 ->
    ``backbone.stages.{1..4}.blocks`` (VSS repeats; a single repeat has no
    ``.{j}`` index in the official keys); 2/4/6 ->
    ``backbone.stages.{2..4}.merge``; 8 -> ``backbone.stages.4.sppf``;
    11/14/17/20 -> the neck's XSS blocks; 15/18 -> its downsampling convs;
    21 (Detect) ``cv2``/``cv3`` -> ``bbox_head.reg_towers``/``cls_towers``.
    ``model.21.dfl.conv.weight`` is dropped on purpose: it is the fixed
    ``arange(reg_max)`` that :class:`YOLOv8Head` keeps as its ``proj``
    buffer. Half-precision tensors (released ultralytics files are fp16)
    become float32.

    Safe to run twice: a dict already in densekit's layout (keys starting
    with ``backbone.``, ``neck.``, ``bbox_head.``) is returned unchanged.
    The result loads into a detector of another class count too: the
    head's class layers are then re-initialised
    (:meth:`YOLOv8Head._load_from_state_dict`).

    Args:
        checkpoint (dict | nn.Module): A flat ``model.{i}.*`` state dict, an
            ultralytics checkpoint (``{'model'/'ema': DetectionModel}``,
            ``'ema'`` preferred; unpickling it needs the official code on the
            Python path), an mmengine ``{'state_dict': ...}`` dict, or the
            official ``DetectionModel`` itself.
        with_head (bool): Must be False: the detection head is part of the
            detector and always converted (the argument is the common
            converter signature's, for ImageNet classifier heads).

    Returns:
        dict[str, Tensor]: The whole detector's state dict
        (``backbone.*``, ``neck.*``, ``bbox_head.*``).

    Raises:
        ValueError: ``with_head=True``.
        UnconvertedKeysError: official keys this mapping does not know
            (every one listed; the dropped DFL weight excepted), e.g. those
            of another ultralytics model.

    Examples:
        Export a plain state dict in the official environment, then convert
        here (``tools/model_converters/convert.py mamba_yolo`` does the
        second step)::

            ckpt = torch.load('best.pt', weights_only=False)
            model = ckpt.get('ema') or ckpt['model']
            torch.save(model.float().state_dict(), 'mamba_yolo_t_sd.pth')
    """
    if with_head:
        raise ValueError(_DETECTOR_WITH_HEAD.format('convert_mamba_yolo'))
    state_dict = unwrap_state_dict(checkpoint, 'convert_mamba_yolo',
                                   keys=('ema', 'model', 'state_dict'))
    if any(k.startswith(_CONVERTED_PREFIXES) for k in state_dict):
        return dict(state_dict)
    converted: Dict[str, Tensor] = OrderedDict()
    unconverted: List[str] = []
    for key, value in state_dict.items():
        new_key = _convert_key(key)
        if new_key is None:
            unconverted.append(key)
        elif new_key:
            converted[new_key] = value.float() if value.dtype in (
                torch.float16, torch.bfloat16) else value
    if unconverted:
        raise UnconvertedKeysError(
            'convert_mamba_yolo', 'official Mamba YOLO (ultralytics '
            'model.{i}.*)', unconverted, len(state_dict))
    return converted


_DETECTOR_WITH_HEAD = (
    '{}: with_head=True does not apply: the detection head is part of the '
    'detector and always converted (with_head keeps the classifier head of '
    'ImageNet backbone checkpoints)')


def _convert_key(key: str) -> Optional[str]:
    """New key, '' for a key dropped on purpose, None if unknown."""
    match = re.match(r'^model\.(\d+)\.(.+)$', key)
    if match is None:
        return None
    layer, rest = int(match.group(1)), match.group(2)
    if layer == 0:
        new = _rename(rest, _STEM_RENAMES)
        return None if new == rest else f'backbone.stages.0.{new}'
    if layer in _VSS_LAYERS:
        repeat = re.match(r'^(\d+)\.(.+)$', rest)
        index, rest = (repeat.group(1), repeat.group(2)) if repeat \
            else ('0', rest)
        return (f'backbone.stages.{_VSS_LAYERS[layer]}.blocks.{index}.'
                f'{_rename(rest, _BLOCK_RENAMES)}')
    if layer in _MERGE_LAYERS:
        return (f'backbone.stages.{_MERGE_LAYERS[layer]}.merge.'
                f'{_rename(rest, _BLOCK_RENAMES)}')
    if layer == _SPPF_LAYER:
        return f'backbone.stages.4.sppf.{_rename(rest, _SPPF_RENAMES)}'
    if layer in _XSS_LAYERS:
        return f'{_XSS_LAYERS[layer]}.{_rename(rest, _BLOCK_RENAMES)}'
    if layer in _CONV_LAYERS:
        return f'{_CONV_LAYERS[layer]}.{rest}'
    if layer == _DETECT_LAYER:
        if rest == 'dfl.conv.weight':
            return ''  # fixed arange(reg_max); YOLOv8Head.proj
        new = _rename(rest, _DETECT_RENAMES)
        return None if new == rest else f'bbox_head.{new}'
    return None


def mamba_yolo_arch_of(
        state_dict: Dict[str, Tensor],
        prefix: str = 'backbone.'
) -> Tuple[Optional[str], int, Tuple[int, ...]]:
    """The scale of a densekit-keyed Mamba YOLO state dict.

    Read from the stem width (output channels of the stem's second conv:
    T 32, B 64, L 96) and the number of VSS blocks of stages 1-4 (T and B
    ``(1, 1, 3, 1)``, L ``(2, 2, 6, 2)``), compared with what
    :class:`MambaYOLO` builds for each entry of
    :attr:`MambaYOLO.arch_variants`.

    Args:
        state_dict (dict[str, Tensor]): densekit keys, e.g. the output of
            :func:`convert_mamba_yolo` or a built detector's state dict.
        prefix (str): Prefix of the backbone's keys. Defaults to
            'backbone.'.

    Returns:
        tuple: ``(arch, stem_channels, depths)``; ``arch`` is 'T', 'B' or
        'L', or None when the width and depths match no official scale.

    Raises:
        ValueError: The state dict has no Mamba YOLO stem
            (``{prefix}stages.0.conv2.conv.weight``).
    """
    stem_key = f'{prefix}stages.0.conv2.conv.weight'
    if stem_key not in state_dict:
        raise ValueError(f'mamba_yolo_arch_of: no Mamba YOLO stem weight '
                         f'{stem_key!r} in the state dict (first keys: '
                         f'{list(state_dict)[:3]})')
    stem = int(state_dict[stem_key].shape[0])
    blocks = [set() for _ in MambaYOLO.arch_settings]
    pattern = re.compile(
        rf'^{re.escape(prefix)}stages\.(\d+)\.blocks\.(\d+)\.')
    for key in state_dict:
        match = pattern.match(key)
        if match and 1 <= int(match.group(1)) <= len(blocks):
            blocks[int(match.group(1)) - 1].add(match.group(2))
    depths = tuple(len(b) for b in blocks)
    for arch, variant in MambaYOLO.arch_variants.items():
        want_stem = make_divisible(
            min(MambaYOLO.stem_channels, variant['max_channels']),
            variant['widen_factor'])
        want_depths = tuple(
            make_round(n, variant['deepen_factor'])
            for _, n, _, _ in MambaYOLO.arch_settings)
        if (stem, depths) == (want_stem, want_depths):
            return arch, stem, depths
    return None, stem, depths
