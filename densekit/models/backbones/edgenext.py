"""EdgeNeXt backbone, its ImageNet classifier and the checkpoint converter.

Paper: Maaz et al., "EdgeNeXt: Efficiently Amalgamated CNN-Transformer
Architecture for Mobile Vision Applications" (CADL @ ECCV 2022,
arXiv:2206.10589), Sec. 3 and Fig. 2. Official code:
https://github.com/mmaaz60/EdgeNeXt (``models/edgenext.py``,
``models/conv_encoder.py``, ``models/sdta_encoder.py``, ``models/layers.py``,
model definitions in ``models/model.py``); the numerics here follow that
code, re-implemented.

Architecture (all sizes)::

    stem        4x4 stride-4 conv + LayerNorm                stride 4
    stage 1     depths[0] conv encoders (k=3)                stride 4
    down 2      LayerNorm + 2x2 stride-2 conv                stride 8
    stage 2     conv encoders (k=5), 1 SDTA (+ Fourier PE)   stride 8
    down 3      LayerNorm + 2x2 stride-2 conv                stride 16
    stage 3     conv encoders (k=7), 1 SDTA                  stride 16
    down 4      LayerNorm + 2x2 stride-2 conv                stride 32
    stage 4     conv encoders (k=9), 1 SDTA                  stride 32

The SDTA encoder is always the *last* block of stages 2-4 (official
``global_block=[0, 1, 1, 1]``). Per stage: kernel sizes ``[3, 5, 7, 9]``,
Res2Net-style channel splits ``d2_scales=[2, 2, 3, 4]``, positional encoding
only in stage 2's SDTA (``use_pos_embd_xca=[False, True, False, False]``),
MLP expansion 4. Sizes (official ``models/model.py``; parameters with the
1000-class head, README model zoo):

====  =====================  =====================  =====  ======
arch  depths                 dims                   heads  params
====  =====================  =====================  =====  ======
xxs   2, 2, 6, 2             24, 48, 88, 168        4      1.33M
xs    3, 3, 9, 3             32, 64, 100, 192       4      2.34M
s     3, 3, 9, 3             48, 96, 160, 304       8      5.59M
b     3, 3, 9, 3             80, 160, 288, 584      8      18.51M
====  =====================  =====================  =====  ======

Only the LayerNorm/GELU models are built here; the ``*_bn_hs`` variants
(BatchNorm + Hardswish, ``models/edgenext_bn_hs.py``) are not.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from densekit.models.layers import LayerNorm2d
from densekit.models.layers.padded_downsample import PaddedDownsample
from densekit.models.layers.weight_init import (drop_path_rates, layer_scale,
                                                trunc_normal_init_weights)
from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              unwrap_state_dict)
from densekit.registry import MODELS
from .base_backbone import BaseBackbone

__all__ = ['EdgeNeXt', 'EdgeNeXtClassifier', 'edgenext_classifier',
           'convert_edgenext', 'ConvEncoder', 'SDTAEncoder', 'XCA',
           'PositionalEncodingFourier', 'LayerNorm2d']


class ConvEncoder(nn.Module):
    """Adaptive kxk convolution encoder (Sec. 3, "Convolution Encoder",
    Eq. 1): ``x + gamma * Linear_G(Linear(LN(DWConv_k(x))))``.

    Args:
        dim (int): Channels C.
        kernel_size (int): Depthwise kernel k (3/5/7/9 in stages 1-4).
        expan_ratio (int): Hidden width of the pointwise MLP, ``ratio * C``.
        drop_path (float): Stochastic depth of the residual branch.
        layer_scale_init_value (float): Initial layer scale ``gamma``; 0
            disables it.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 dim: int,
                 kernel_size: int = 7,
                 expan_ratio: int = 4,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size,
                                padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, expan_ratio * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(expan_ratio * dim, dim)
        self.gamma = layer_scale(dim, layer_scale_init_value,
                                 layer_scale_init_value > 0)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.fc2(self.act(self.fc1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class PositionalEncodingFourier(nn.Module):
    """Fourier positional encoding of XCiT, added before the transposed
    attention of stage 2's SDTA encoder (Sec. 3, "SDTA Encoder").

    Row and column coordinates are normalised to ``(0, 2*pi]``, expanded
    into ``hidden_dim`` interleaved sin/cos features each (frequencies
    ``temperature ** (2 * (i // 2) / hidden_dim)``), concatenated
    ``[rows, cols]`` and projected to ``dim`` by a 1x1 conv.

    Args:
        dim (int): Output channels.
        hidden_dim (int): Fourier features per axis. Defaults to 32.
        temperature (float): Frequency base. Defaults to 10000.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int = 32,
                 temperature: float = 10000.) -> None:
        super().__init__()
        self.proj = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def forward(self, height: int, width: int) -> Tensor:
        """Returns: Tensor: (1, dim, height, width) encoding."""
        device = self.proj.weight.device
        eps, scale = 1e-6, 2 * math.pi
        rows = torch.arange(1, height + 1, dtype=torch.float32,
                            device=device) / (height + eps) * scale
        cols = torch.arange(1, width + 1, dtype=torch.float32,
                            device=device) / (width + eps) * scale
        index = torch.arange(self.hidden_dim, dtype=torch.float32,
                             device=device)
        freqs = self.temperature**(2 * torch.div(
            index, 2, rounding_mode='floor') / self.hidden_dim)

        def fourier(coords: Tensor) -> Tensor:  # (L,) -> (L, hidden_dim)
            angles = coords[:, None] / freqs
            return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()),
                               dim=-1).flatten(1)

        pos_rows = fourier(rows)[:, None, :].expand(-1, width, -1)
        pos_cols = fourier(cols)[None, :, :].expand(height, -1, -1)
        pos = torch.cat((pos_rows, pos_cols), dim=-1)  # (H, W, 2 * hidden)
        pos = pos.permute(2, 0, 1)[None].to(self.proj.weight.dtype)
        return self.proj(pos)


class XCA(nn.Module):
    """Transposed (cross-covariance) multi-head attention (Sec. 3, "SDTA
    Encoder"; XCiT): per head, ``softmax(tau * q_hat @ k_hat^T) @ v`` with
    ``q_hat``, ``k_hat`` L2-normalised along the tokens, so the attention
    map is (C/h x C/h) and the cost is linear in the number of tokens.

    Args:
        dim (int): Channels C.
        num_heads (int): Heads h; C must be divisible by h.
        qkv_bias (bool): Bias of the qkv projection (True in EdgeNeXt).

    Shape: (B, N, C) -> (B, N, C).
    """

    def __init__(self, dim: int, num_heads: int = 8,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'XCA: dim {dim} is not divisible by '
                             f'num_heads {num_heads}')
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        # (B, N, 3C) -> 3 x (B, h, C/h, N)
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads,
                                  dim // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # (B, h, d, d)
        out = attn.softmax(dim=-1) @ v  # (B, h, d, N)
        out = out.permute(0, 3, 1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


class SDTAEncoder(nn.Module):
    """Split depth-wise transpose attention encoder (Sec. 3, "SDTA Encoder",
    Fig. 2).

    1. Multi-scale spatial mixing (Res2Net-like): the channels are split into
       ``s = scales`` groups of ``ceil(C / s)`` (the last one smaller); for
       ``i < s`` the group ``y_i = DWConv3x3_i(x_i + y_{i-1})`` (``y_0 = 0``),
       the last group passes unchanged; ``x_p = concat(y_1..y_{s-1}, x_s)``.
    2. ``x_a = x_p + PE + gamma_a * XCA(LN(x_p + PE))`` (PE only if
       ``use_pos_emb``).
    3. Output ``x + gamma * Linear_G(Linear(LN(x_a)))``. As in the official
       code the residual of the MLP is the block *input* ``x``, not ``x_a``.

    Args:
        dim (int): Channels C.
        num_heads (int): Heads of :class:`XCA`.
        scales (int): Channel groups s (``d2_scales``); 1 means a single
            depthwise conv over all channels.
        use_pos_emb (bool): Add :class:`PositionalEncodingFourier`.
        expan_ratio (int): MLP expansion.
        drop_path (float): Stochastic depth of both residual branches.
        layer_scale_init_value (float): Initial ``gamma`` and ``gamma_a``.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 dim: int,
                 num_heads: int = 8,
                 scales: int = 1,
                 use_pos_emb: bool = False,
                 expan_ratio: int = 4,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.width = math.ceil(dim / scales)
        num_convs = max(scales - 1, 1)
        if scales > 1 and self.width * num_convs >= dim:
            raise ValueError(f'SDTAEncoder: cannot split {dim} channels into '
                             f'{scales} groups of {self.width}')
        self.split_convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, padding=1, groups=self.width)
            for _ in range(num_convs))
        self.pos_embed = PositionalEncodingFourier(dim) if use_pos_emb \
            else None
        self.norm_attn = nn.LayerNorm(dim, eps=1e-6)
        self.attn = XCA(dim, num_heads=num_heads, qkv_bias=True)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, expan_ratio * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(expan_ratio * dim, dim)
        self.gamma_attn = layer_scale(dim, layer_scale_init_value,
                                      layer_scale_init_value > 0)
        self.gamma = layer_scale(dim, layer_scale_init_value,
                               layer_scale_init_value > 0)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def _split_mix(self, x: Tensor) -> Tensor:
        groups = x.split(self.width, dim=1)
        mixed, y = [], None
        for conv, group in zip(self.split_convs, groups):
            y = conv(group if y is None else group + y)
            mixed.append(y)
        mixed.extend(groups[len(self.split_convs):])  # untouched last group
        return torch.cat(mixed, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        batch, dim, height, width = x.shape
        tokens = self._split_mix(x).flatten(2).transpose(1, 2)  # (B, N, C)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed(height, width).flatten(
                2).transpose(1, 2)
        attn = self.attn(self.norm_attn(tokens))
        if self.gamma_attn is not None:
            attn = attn * self.gamma_attn
        tokens = tokens + self.drop_path(attn)
        y = tokens.reshape(batch, height, width, dim)
        y = self.fc2(self.act(self.fc1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


@MODELS.register_module()
class EdgeNeXt(BaseBackbone):
    """EdgeNeXt backbone (Maaz et al., 2022) for dense prediction.

    Stage ``i`` (0..3) is the official ``downsample_layers[i]`` followed by
    ``stages[i]``: stage 0 is the stem plus the first conv-encoder stage, so
    ``out_indices=(0, 1, 2, 3)`` gives strides 4, 8, 16, 32 with
    ``dims`` channels. Each returned map goes through its own channel
    LayerNorm (``norm{i}``, not in the ImageNet checkpoint), the usual
    addition for hierarchical backbones in mmdet/mmseg (ConvNeXt, Swin);
    the official repository has no detection/segmentation code to follow.

    Args:
        arch (str | dict): 'xxs', 'xs', 's' or 'b' (aliases
            'xx_small', 'x_small', 'small', 'base'), or a dict with the keys
            of :attr:`arch_settings` entries. Defaults to 's'.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to
            (0, 1, 2, 3).
        frozen_stages (int): Stages ``0..frozen_stages`` (and their output
            norms) are frozen; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): See :class:`BaseBackbone` (EdgeNeXt has no
            BatchNorm, so it changes nothing here). Defaults to False.
        drop_path_rate (float): Stochastic depth of the last block, rising
            linearly from 0 over all blocks (official: 0 for xxs/xs, 0.1 for
            s/b ImageNet training). Defaults to 0.
        layer_scale_init_value (float): Initial layer scale of every block
            (official 1e-6; the official SDTA blocks ignore the argument and
            always use 1e-6). Defaults to 1e-6.
        out_norm (bool): Add the per-output LayerNorms. Defaults to True.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` takes an official checkpoint (its ``model``
            weights, converted on the fly by :func:`convert_edgenext`; the
            per-output norms ``norm{i}`` stay initialised) or a densekit one
            (from ``tools/model_converters/edgenext_to_densekit.py``, or a
            detector's with ``prefix='backbone.'``).

    Note:
        Inputs of any size work: the stem and every downsampling layer
        zero-pad their input at the bottom/right to a multiple of their
        stride, so the stride-``s`` map of an (H, W) image is
        (ceil(H / s), ceil(W / s)) -- the same as padding the image to a
        multiple of 32 only when H and W already are multiples of 32.

    Examples:
        >>> import torch
        >>> model = EdgeNeXt(arch='xxs').eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 24, 16, 16), (1, 48, 8, 8), (1, 88, 4, 4), (1, 168, 2, 2)]
        >>> model.feature_info[3]
        {'channels': 168, 'stride': 32}
    """
    _common = dict(kernel_sizes=[3, 5, 7, 9], global_blocks=[0, 1, 1, 1],
                   d2_scales=[2, 2, 3, 4],
                   use_pos_embd_xca=[False, True, False, False],
                   expan_ratio=4)
    arch_settings = {
        'xxs': dict(depths=[2, 2, 6, 2], dims=[24, 48, 88, 168],
                    heads=[4, 4, 4, 4], **_common),
        'xs': dict(depths=[3, 3, 9, 3], dims=[32, 64, 100, 192],
                   heads=[4, 4, 4, 4], **_common),
        's': dict(depths=[3, 3, 9, 3], dims=[48, 96, 160, 304],
                  heads=[8, 8, 8, 8], **_common),
        'b': dict(depths=[3, 3, 9, 3], dims=[80, 160, 288, 584],
                  heads=[8, 8, 8, 8], **_common),
    }
    arch_aliases = {'xx_small': 'xxs', 'x_small': 'xs', 'small': 's',
                    'base': 'b'}
    arch_defaults = dict(_common, heads=[8, 8, 8, 8])
    arch_required = ('depths', 'dims')
    # parameters with the 1000-class head, official README model zoo
    official_params = {'xxs': 1.33e6, 'xs': 2.34e6, 's': 5.59e6,
                       'b': 18.51e6}

    def __init__(self,
                 *,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_norm: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(out_indices=out_indices,
                         frozen_stages=frozen_stages,
                         norm_eval=norm_eval,
                         init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        self.arch = arch
        depths, dims = settings['depths'], settings['dims']
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            num_sdta = settings['global_blocks'][i]
            blocks = []
            for j in range(depth):
                if j >= depth - num_sdta:  # SDTA blocks close the stage
                    blocks.append(SDTAEncoder(
                        dim, num_heads=settings['heads'][i],
                        scales=settings['d2_scales'][i],
                        use_pos_emb=settings['use_pos_embd_xca'][i],
                        expan_ratio=settings['expan_ratio'],
                        drop_path=drop_paths.pop(0),
                        layer_scale_init_value=layer_scale_init_value))
                else:
                    blocks.append(ConvEncoder(
                        dim, kernel_size=settings['kernel_sizes'][i],
                        expan_ratio=settings['expan_ratio'],
                        drop_path=drop_paths.pop(0),
                        layer_scale_init_value=layer_scale_init_value))
            downsample = (
                PaddedDownsample(in_channels, dim, 4, norm_first=False)
                if i == 0 else
                PaddedDownsample(dims[i - 1], dim, 2, norm_first=True))
            self.stages.append(nn.Sequential(OrderedDict(
                downsample=downsample, blocks=nn.Sequential(*blocks))))
            self.stage_channels.append(dim)
            self.stage_strides.append(4 * 2**i)
        self._check_indices()
        self.out_norm = out_norm
        if out_norm:
            self._add_output_norms(lambda i: LayerNorm2d(dims[i], eps=1e-6))
        self.apply(trunc_normal_init_weights)

    def convert_pretrained(self, state_dict):
        """Official ImageNet layout -> ours (``init_cfg`` ``Pretrained``
        goes through :meth:`BaseBackbone.init_weights`); densekit state
        dicts pass unchanged."""
        return convert_edgenext(state_dict)


class EdgeNeXtClassifier(nn.Module):
    """The official ImageNet model: :class:`EdgeNeXt` (last stage, no output
    norm), global average pooling, LayerNorm, dropout, Linear.

    State dict keys: ``backbone.stages.*``, ``norm.*``, ``head.*``, i.e.
    ``convert_edgenext(ckpt, with_head=True)``.

    Args:
        arch (str | dict): See :class:`EdgeNeXt`.
        num_classes (int): Classes. Defaults to 1000.
        classifier_dropout (float): Dropout before the head. Defaults to 0.
        head_init_scale (float): Scales the initial head weights (official
            argument). Defaults to 1.
        **kwargs: Other :class:`EdgeNeXt` arguments (``drop_path_rate``,
            ``layer_scale_init_value``, ``in_channels``).

    Shape: (B, 3, H, W) -> (B, num_classes).
    """

    def __init__(self, arch: Union[str, dict] = 's', num_classes: int = 1000,
                 classifier_dropout: float = 0., head_init_scale: float = 1.,
                 **kwargs) -> None:
        super().__init__()
        self.backbone = EdgeNeXt(arch=arch, out_indices=(3, ), out_norm=False,
                                 **kwargs)
        channels = self.backbone.stage_channels[3]
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.head_dropout = nn.Dropout(classifier_dropout)
        self.head = nn.Linear(channels, num_classes)
        self.apply(trunc_normal_init_weights)
        self.head.weight.data.mul_(head_init_scale)
        self.head.bias.data.mul_(head_init_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.backbone(x)[0].mean((-2, -1))
        return self.head(self.head_dropout(self.norm(x)))


def edgenext_classifier(arch: Union[str, dict] = 's',
                        num_classes: int = 1000,
                        **kwargs) -> EdgeNeXtClassifier:
    """Build the official classification model of ``arch`` (see
    :class:`EdgeNeXtClassifier`); e.g. ``edgenext_classifier('xxs')`` has
    1.33M parameters."""
    return EdgeNeXtClassifier(arch, num_classes=num_classes, **kwargs)


# ---------------------------------------------------------------------------
# Official checkpoint -> densekit keys
# ---------------------------------------------------------------------------
# renames inside one block (official name -> ours); the rest (dwconv, norm,
# gamma) keep their names
_BLOCK_RENAMES = [
    (r'^pwconv1\.', 'fc1.'),
    (r'^pwconv2\.', 'fc2.'),
    (r'^convs\.', 'split_convs.'),
    (r'^pos_embd\.token_projection\.', 'pos_embed.proj.'),
    (r'^norm_xca\.', 'norm_attn.'),
    (r'^gamma_xca$', 'gamma_attn'),
    (r'^xca\.', 'attn.'),
]
_OURS = re.compile(r'^(backbone\.)?stages\.\d+\.(downsample|blocks)\.')


def convert_edgenext(checkpoint,
                     *,
                     with_head: bool = False,
                     use_ema: bool = False) -> Dict[str, Tensor]:
    """Map an official EdgeNeXt ImageNet checkpoint onto densekit's keys.

    ``downsample_layers.0.{0,1}`` (stem conv, LN) ->
    ``stages.0.downsample.{conv,norm}``; ``downsample_layers.{i}.{0,1}``
    (LN, conv) -> ``stages.{i}.downsample.{norm,conv}``;
    ``stages.{i}.{j}.*`` -> ``stages.{i}.blocks.{j}.*`` with ``pwconv1/2`` ->
    ``fc1/2``, ``convs`` -> ``split_convs``, ``pos_embd.token_projection`` ->
    ``pos_embed.proj``, ``norm_xca``/``gamma_xca``/``xca`` ->
    ``norm_attn``/``gamma_attn``/``attn``.

    Args:
        checkpoint (dict): The official file's content (a train checkpoint
            ``{'model': ..., 'model_ema': ...}``, a flat state dict, or
            ``{'state_dict': ...}``); a ``module.`` prefix is stripped.
        with_head (bool): False: drop ``norm.*``/``head.*`` and return keys
            for :class:`EdgeNeXt` (its ``norm{i}`` output norms stay
            missing), e.g. for ``init_cfg=dict(type='Pretrained', ...)``.
            True: keep them and prefix the rest with ``backbone.``, the keys
            of :class:`EdgeNeXtClassifier`.
        use_ema (bool): Take ``checkpoint['model_ema']`` instead of
            ``checkpoint['model']``.

    Returns:
        dict[str, Tensor]: The converted state dict. A dict already in
        densekit's layout is returned unchanged (with ``module.`` stripped).

    Raises:
        UnconvertedKeysError: On keys that are not part of the official
            LN/GELU EdgeNeXt (e.g. the BatchNorm buffers of ``*_bn_hs``
            models); a ``ValueError`` and a ``KeyError``.
    """
    state_dict = unwrap_state_dict(
        checkpoint, 'convert_edgenext',
        ema_key='model_ema' if use_ema else None)
    state_dict = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state_dict.items())
    if any(_OURS.match(k) for k in state_dict):
        return dict(state_dict)
    prefix = 'backbone.' if with_head else ''
    converted: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    for key, value in state_dict.items():
        match = re.match(r'^downsample_layers\.(\d)\.([01])\.(weight|bias)$',
                         key)
        if match:
            stage, index, name = int(match.group(1)), match.group(2), \
                match.group(3)
            # stem: conv, LN; downsampling: LN, conv
            layer = ('conv', 'norm')[int(index)] if stage == 0 else \
                ('norm', 'conv')[int(index)]
            converted[f'{prefix}stages.{stage}.downsample.{layer}.{name}'] = \
                value
            continue
        match = re.match(r'^stages\.(\d)\.(\d+)\.(.+)$', key)
        if match:
            rest = match.group(3)
            for pattern, repl in _BLOCK_RENAMES:
                rest = re.sub(pattern, repl, rest)
            if re.search(r'running_|num_batches_tracked', rest):
                unknown.append(key)
                continue
            converted[f'{prefix}stages.{match.group(1)}.blocks.'
                      f'{match.group(2)}.{rest}'] = value
            continue
        if re.match(r'^(norm|head)\.(weight|bias)$', key):
            if with_head:
                converted[key] = value
            continue
        unknown.append(key)
    if unknown:
        raise UnconvertedKeysError(
            'convert_edgenext', 'official LayerNorm/GELU EdgeNeXt',
            unknown, len(state_dict),
            hint=' (BN-HS checkpoints are not supported)')
    return converted
