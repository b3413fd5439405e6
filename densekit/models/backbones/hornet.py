"""HorNet backbone, its ImageNet classifier and the checkpoint converter.

Paper: Rao et al., "HorNet: Efficient High-Order Spatial Interactions with
Recursive Gated Convolutions", NeurIPS 2022 (arXiv:2207.14284). Official code:
https://github.com/raoyongming/HorNet (MIT licence): ``hornet.py``
(ImageNet models) and ``object_detection/models/hornet.py`` /
``semantic_segmentation/models/hornet.py`` (dense backbones with per-output
norms). The numerics here follow that code; this is an independent
implementation.

Recursive gated convolution g^nConv (Sec. 3.1, "High-order interactions
with recursive gating")::

    [p_0, q_0, ..., q_{n-1}] = phi_in(x)                 1x1 conv, C -> 2C
    p_{k+1} = f_k(q_k) * g_k(p_k) / alpha,  k = 0..n-1    recursive gating
    y = phi_out(p_n)                                     1x1 conv, C -> C

with ``C_k = C / 2^(n-k-1)`` channels in ``p_k``/``q_k``, ``g_0 = Id`` and
``g_k`` (k >= 1) a 1x1 conv ``C_{k-1} -> C_k``; all ``f_k`` are one
depth-wise conv over the concatenated ``q``'s: a 7x7 kernel ("7x7" models) or
the Global-Local Filter ("GF" models, Sec. 3.1 "Long-term interactions with
large kernel convolutions"). The official code multiplies the ``f`` output
by ``s = 1/alpha = 1/3`` in all released models.

Architecture (Sec. 3.2, "HorNet"; ConvNeXt macro design)::

    stage 0   stem: 4x4/4 conv + LN       + depths[0] blocks, order 2   C
    stage 1   LN + 2x2/2 conv             + depths[1] blocks, order 3   2C
    stage 2   LN + 2x2/2 conv             + depths[2] blocks, order 4   4C
    stage 3   LN + 2x2/2 conv             + depths[3] blocks, order 5   8C

Every released size has ``depths = (2, 3, 18, 2)`` and gnConv orders
``(2, 3, 4, 5)``; GF models use the Global-Local Filter in stages 2 and 3
only, with a learnable frequency-domain weight of fixed size (14x8 and 7x4,
i.e. the rfft of the 14x14 / 7x7 maps of a 224 image; 24x13 and 12x7 for the
384 models and the official ADE20K configs), bilinearly interpolated to the
rfft size of other inputs.

Sizes (official README model zoo; params include the classifier head: 1000
classes for the ImageNet-1K models; the ImageNet-22K L figures fit a
10450-class head, see :attr:`HorNet.official_params`):

==========  =========  ======  ===========================
arch        base dim   params  official name
==========  =========  ======  ===========================
T-7x7       64         22M     hornet_tiny_7x7
T-GF        64         23M     hornet_tiny_gf
S-7x7       96         50M     hornet_small_7x7
S-GF        96         50M     hornet_small_gf
B-7x7       128        87M     hornet_base_7x7
B-GF        128        88M     hornet_base_gf
L-7x7       192        209M    hornet_large_7x7  (22K)
L-GF        192        211M    hornet_large_gf   (22K)
L-GF-384    192        216M    hornet_large_gf_img384 (22K)
==========  =========  ======  ===========================

(``B-GF-384``, official ``hornet_base_gf_img384``, has no released
checkpoint in the README.)
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

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

__all__ = ['HorNet', 'HorNetClassifier', 'hornet_classifier',
           'convert_hornet', 'GnConv', 'GlobalLocalFilter', 'HorNetBlock',
           'LayerNorm2d']

GFSize = Optional[Tuple[int, int]]


class GlobalLocalFilter(nn.Module):
    """Global-Local Filter, the ``f`` of the GF models (Sec. 3.1, "Long-term
    interactions with large kernel convolutions"; GFNet's global filter).

    ``LN -> split the channels in halves -> [3x3 depth-wise conv (local) |
    global filter] -> interleave -> LN``. The global filter is
    ``irfft2(rfft2(x) * W)`` (orthonormal FFTs, computed in float32) with a
    learnable complex weight ``W`` of shape (C/2, h, w); for an input whose
    rfft2 is not (h, w) the real and imaginary parts of ``W`` are resized
    bilinearly (``align_corners=True``), as the official code does. The two
    halves are interleaved channel by channel (local ``k`` -> channel ``2k``,
    global ``k`` -> ``2k + 1``), as the official ``cat``/``reshape``.

    Args:
        dim (int): Channels C (even).
        h (int): Height of the complex weight (rfft2 height, = map height).
        w (int): Width of the complex weight (rfft2 width, = width // 2 + 1).

    Shape: (B, C, H, W) -> (B, C, H, W), any H, W.
    """

    def __init__(self, dim: int, h: int = 14, w: int = 8) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f'GlobalLocalFilter: dim must be even, got {dim}')
        half = dim // 2
        self.pre_norm = LayerNorm2d(dim, eps=1e-6)
        self.dw = nn.Conv2d(half, half, 3, padding=1, groups=half, bias=False)
        # (C/2, h, w, [real, imag]); the official init: trunc-normal(0.02)
        self.complex_weight = nn.Parameter(torch.empty(half, h, w, 2))
        nn.init.trunc_normal_(self.complex_weight, std=.02)
        self.post_norm = LayerNorm2d(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_norm(x)
        local, glob = x.chunk(2, dim=1)
        local = self.dw(local)
        height, width = glob.shape[-2:]
        spec = torch.fft.rfft2(glob.float(), dim=(2, 3), norm='ortho')
        weight = self.complex_weight.float()
        if tuple(weight.shape[1:3]) != tuple(spec.shape[2:4]):
            weight = F.interpolate(
                weight.permute(3, 0, 1, 2), size=spec.shape[2:4],
                mode='bilinear', align_corners=True).permute(1, 2, 3, 0)
        spec = spec * torch.view_as_complex(weight.contiguous())
        glob = torch.fft.irfft2(spec, s=(height, width), dim=(2, 3),
                                norm='ortho')
        x = torch.stack((local.to(glob.dtype), glob), dim=2).flatten(1, 2)
        return self.post_norm(x)


class GnConv(nn.Module):
    """Recursive gated convolution g^nConv (Sec. 3.1).

    ``phi_in`` (``proj_in``, 1x1 conv C -> 2C) gives ``p_0`` (C_0 channels)
    and ``q_0..q_{n-1}`` (C_0 + ... + C_{n-1} channels, ``C_k = C /
    2^(n-k-1)``); one spatial operator ``f`` (``dwconv``: 7x7 depth-wise conv
    with bias, or :class:`GlobalLocalFilter`) mixes all ``q``'s at once and
    is scaled by ``scale`` (``1/alpha``); then ``p_{k+1} = f(q)_k *
    g_k(p_k)`` with ``g_0 = Id`` and ``g_k = pws[k-1]`` (1x1 conv C_{k-1} ->
    C_k); ``phi_out`` (``proj_out``, 1x1 conv) maps ``p_n`` (C channels) to
    the output.

    Args:
        dim (int): Channels C (divisible by ``2^(order-1)``).
        order (int): Interaction order n.
        scale (float): ``s = 1/alpha``. Defaults to 1/3 (all released
            models).
        gf_size (tuple[int, int], optional): (h, w) of the Global-Local
            Filter's weight; None uses the 7x7 depth-wise conv.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, dim: int, order: int = 5, scale: float = 1. / 3,
                 gf_size: GFSize = None) -> None:
        super().__init__()
        if order < 1 or dim % 2**(order - 1):
            raise ValueError(f'GnConv: dim {dim} is not divisible by '
                             f'2^(order - 1) for order {order}')
        self.order = order
        self.scale = scale
        self.dims = [dim // 2**k for k in range(order - 1, -1, -1)]  # C_k
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        spatial_dims = sum(self.dims)
        if gf_size is None:
            self.dwconv = nn.Conv2d(spatial_dims, spatial_dims, 7, padding=3,
                                    groups=spatial_dims)
        else:
            self.dwconv = GlobalLocalFilter(spatial_dims, *gf_size)
        self.pws = nn.ModuleList(
            nn.Conv2d(self.dims[k], self.dims[k + 1], 1)
            for k in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        p, q = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)),
                           dim=1)
        gates = torch.split(self.dwconv(q) * self.scale, self.dims, dim=1)
        p = p * gates[0]
        for g, gate in zip(self.pws, gates[1:]):
            p = g(p) * gate
        return self.proj_out(p)


class HorNetBlock(nn.Module):
    """HorNet block (Sec. 3.2, Fig. 2): a Transformer-style block with
    g^nConv as the spatial mixer::

        x = x + drop_path(gamma1 * gnConv(LN(x)))
        x = x + drop_path(gamma2 * Linear(GELU(Linear_4C(LN(x)))))

    ``gamma`` are per-channel layer scales (absent if
    ``layer_scale_init_value <= 0``); the MLP runs channels-last.

    Args:
        dim (int): Channels C.
        order (int): gnConv order.
        scale (float): gnConv scale ``1/alpha``.
        gf_size (tuple[int, int], optional): See :class:`GnConv`.
        mlp_ratio (float): MLP hidden width ``mlp_ratio * C``. Defaults to 4.
        drop_path (float): Stochastic depth of both branches.
        layer_scale_init_value (float): Initial ``gamma``. Defaults to 1e-6.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 dim: int,
                 order: int,
                 scale: float = 1. / 3,
                 gf_size: GFSize = None,
                 mlp_ratio: float = 4.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.gnconv = GnConv(dim, order, scale=scale, gf_size=gf_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.gamma1 = layer_scale(dim, layer_scale_init_value,
                               layer_scale_init_value > 0)
        self.gamma2 = layer_scale(dim, layer_scale_init_value,
                               layer_scale_init_value > 0)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.gnconv(self.norm1(x))
        if self.gamma1 is not None:
            y = y * self.gamma1[:, None, None]
        x = x + self.drop_path(y)
        y = self.fc2(self.act(self.fc1(self.norm2(x.permute(0, 2, 3, 1)))))
        if self.gamma2 is not None:
            y = y * self.gamma2
        return x + self.drop_path(y.permute(0, 3, 1, 2))


_GF = ((14, 8), (7, 4))          # 224 inputs: stride-16 / -32 rfft2 sizes
_GF_384 = ((24, 13), (12, 7))    # 384 inputs


def _setting(base_dim: int, gf: Optional[Tuple[Tuple[int, int], ...]]):
    return dict(base_dim=base_dim, depths=(2, 3, 18, 2), orders=(2, 3, 4, 5),
                gf_sizes=(None, None) + tuple(gf) if gf else (None, ) * 4,
                scale=1. / 3, mlp_ratio=4.)


@MODELS.register_module()
class HorNet(BaseBackbone):
    """HorNet backbone (Rao et al., NeurIPS 2022) for dense prediction.

    Stage ``i`` (0..3) is the official ``downsample_layers[i]`` followed by
    ``stages[i]``, so ``out_indices=(0, 1, 2, 3)`` gives strides 4, 8, 16, 32
    with channels ``base_dim * (1, 2, 4, 8)``. Each returned map goes
    through its own channel LayerNorm ``norm{i}`` (eps 1e-6), as in the
    official detection and segmentation backbones (not in the ImageNet
    checkpoints).

    Args:
        arch (str | dict): A key of :attr:`arch_settings` ('T-7x7', 'T-GF',
            'S-7x7', 'S-GF', 'B-7x7', 'B-GF', 'B-GF-384', 'L-7x7', 'L-GF',
            'L-GF-384'; the official names such as 'hornet_tiny_7x7' are
            accepted too), or a dict with ``base_dim`` and optionally
            ``depths``, ``orders``, ``gf_sizes``, ``scale``, ``mlp_ratio``.
            Defaults to 'T-7x7'.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to
            (0, 1, 2, 3).
        frozen_stages (int): Stages ``0..frozen_stages`` (and their output
            norms) are frozen; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): See :class:`BaseBackbone` (HorNet has no
            BatchNorm, so it changes nothing). Defaults to False.
        drop_path_rate (float): Stochastic depth of the last block, rising
            linearly from 0 (official ImageNet: 0.2 T, 0.4 S, 0.5 B; COCO /
            ADE20K fine-tuning 0.4 or more). Defaults to 0.
        layer_scale_init_value (float): Initial layer scales (official
            1e-6); <= 0 disables them. Defaults to 1e-6.
        gf_sizes (Sequence, optional): Per stage, the (h, w) of the GF
            complex weight or None for the 7x7 conv; overrides the arch's
            (e.g. ``[None, None, (24, 13), (12, 7)]`` as the official ADE20K
            GF configs). Pretrained complex weights are resized to it.
        out_norm (bool): Add the per-output LayerNorms. Defaults to True.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)``: an official ImageNet / detection checkpoint
            (converted on the fly by :func:`convert_hornet`) or a converted
            one.

    Note:
        Inputs of any size work: the stem and every downsampling layer
        zero-pad their input at the bottom/right to a multiple of their
        stride, so the stride-``s`` map of an (H, W) image is
        (ceil(H / s), ceil(W / s)); the GF weights are interpolated to any
        map size.

    Examples:
        >>> import torch
        >>> model = HorNet(arch='T-7x7').eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    """
    arch_settings = {
        'T-7x7': _setting(64, None),
        'T-GF': _setting(64, _GF),
        'S-7x7': _setting(96, None),
        'S-GF': _setting(96, _GF),
        'B-7x7': _setting(128, None),
        'B-GF': _setting(128, _GF),
        'B-GF-384': _setting(128, _GF_384),
        'L-7x7': _setting(192, None),
        'L-GF': _setting(192, _GF),
        'L-GF-384': _setting(192, _GF_384),
    }
    arch_aliases = {
        'hornet_tiny_7x7': 'T-7x7', 'hornet_tiny_gf': 'T-GF',
        'hornet_small_7x7': 'S-7x7', 'hornet_small_gf': 'S-GF',
        'hornet_base_7x7': 'B-7x7', 'hornet_base_gf': 'B-GF',
        'hornet_base_gf_img384': 'B-GF-384',
        'hornet_large_7x7': 'L-7x7', 'hornet_large_gf': 'L-GF',
        'hornet_large_gf_img384': 'L-GF-384',
    }
    arch_defaults = dict(depths=(2, 3, 18, 2), orders=(2, 3, 4, 5),
                         scale=1. / 3, mlp_ratio=4.)
    # (params, classes of the head) of the official README model zoo. The
    # README does not say how many classes the ImageNet-22K heads have; all
    # three L figures fit a 10450-class head (ImageNet-21K-P winter21), and
    # neither 21841 (+8%) nor 11221 classes
    official_params = {
        'T-7x7': (22e6, 1000), 'T-GF': (23e6, 1000),
        'S-7x7': (50e6, 1000), 'S-GF': (50e6, 1000),
        'B-7x7': (87e6, 1000), 'B-GF': (88e6, 1000),
        'L-7x7': (209e6, 10450), 'L-GF': (211e6, 10450),
        'L-GF-384': (216e6, 10450),
    }

    def __init__(self,
                 *,
                 arch: Union[str, dict] = 'T-7x7',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 gf_sizes: Optional[Sequence[GFSize]] = None,
                 out_norm: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(out_indices=out_indices,
                         frozen_stages=frozen_stages,
                         norm_eval=norm_eval,
                         init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        if gf_sizes is not None:
            settings['gf_sizes'] = gf_sizes
        self.arch = arch
        depths = list(settings['depths'])
        num_stages = len(depths)
        for name in ('orders', 'gf_sizes'):
            if len(settings[name]) != num_stages:
                raise ValueError(f'HorNet: {name} needs {num_stages} values, '
                                 f'but got {settings[name]}')
        self.depths = depths
        self.orders = list(settings['orders'])
        self.gf_sizes = [None if s is None else tuple(s)
                         for s in settings['gf_sizes']]
        dims = settings.get('dims') or [
            settings['base_dim'] * 2**i for i in range(num_stages)]
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))
        for i, depth in enumerate(depths):
            downsample = (
                PaddedDownsample(in_channels, dims[0], 4, norm_first=False)
                if i == 0 else
                PaddedDownsample(dims[i - 1], dims[i], 2, norm_first=True))
            blocks = [
                HorNetBlock(dims[i], self.orders[i], scale=settings['scale'],
                            gf_size=self.gf_sizes[i],
                            mlp_ratio=settings['mlp_ratio'],
                            drop_path=drop_paths.pop(0),
                            layer_scale_init_value=layer_scale_init_value)
                for _ in range(depth)
            ]
            self.stages.append(nn.Sequential(OrderedDict(
                downsample=downsample, blocks=nn.Sequential(*blocks))))
            self.stage_channels.append(dims[i])
            self.stage_strides.append(4 * 2**i)
        self._check_indices()
        self.out_norm = out_norm
        if out_norm:
            self._add_output_norms(lambda i: LayerNorm2d(dims[i], eps=1e-6))
        self.apply(trunc_normal_init_weights)

    @classmethod
    def _complete_arch(cls, settings: dict) -> dict:
        if 'base_dim' not in settings and 'dims' not in settings:
            raise ValueError("HorNet: an arch dict needs 'base_dim' (or "
                             "'dims')")
        settings.setdefault('gf_sizes', (None, ) * len(settings['depths']))
        return settings

    def convert_pretrained(self, state_dict):
        """Official ImageNet/detection layouts -> ours (``init_cfg``
        ``Pretrained`` goes through :meth:`BaseBackbone.init_weights`)."""
        return convert_hornet(state_dict, gf_sizes=self.gf_sizes)


class HorNetClassifier(nn.Module):
    """The official ImageNet model: :class:`HorNet` (last stage, no output
    norm), global average pooling, LayerNorm (eps 1e-6), Linear -- in this
    order, as the official ``forward_features`` (pool, then norm).

    State dict keys: ``backbone.stages.*``, ``norm.*``, ``head.*``, i.e.
    ``convert_hornet(ckpt, with_head=True)``.

    Args:
        arch (str | dict): See :class:`HorNet`.
        num_classes (int): Classes. Defaults to 1000.
        head_init_scale (float): Scales the initial head (official
            argument). Defaults to 1.
        **kwargs: Other :class:`HorNet` arguments.

    Shape: (B, 3, H, W) -> (B, num_classes).
    """

    def __init__(self, arch: Union[str, dict] = 'T-7x7',
                 num_classes: int = 1000, head_init_scale: float = 1.,
                 **kwargs) -> None:
        super().__init__()
        self.backbone = HorNet(arch=arch, out_indices=(3, ), out_norm=False,
                               **kwargs)
        channels = self.backbone.stage_channels[3]
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.head = nn.Linear(channels, num_classes)
        trunc_normal_init_weights(self.norm)
        trunc_normal_init_weights(self.head)
        self.head.weight.data.mul_(head_init_scale)
        self.head.bias.data.mul_(head_init_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.backbone(x)[0].mean((-2, -1))
        return self.head(self.norm(x))


def hornet_classifier(arch: Union[str, dict] = 'T-7x7',
                      num_classes: int = 1000,
                      **kwargs) -> HorNetClassifier:
    """Build the official classification model of ``arch`` (see
    :class:`HorNetClassifier`); e.g. ``hornet_classifier('T-7x7')`` has the
    official 22M parameters."""
    return HorNetClassifier(arch, num_classes=num_classes, **kwargs)


# ---------------------------------------------------------------------------
# Official checkpoint -> densekit keys
# ---------------------------------------------------------------------------
# renames inside one block (official -> ours); the rest keeps its name
_BLOCK_RENAMES = [(r'^pwconv1\.', 'fc1.'), (r'^pwconv2\.', 'fc2.')]
_BLOCK_KEYS = re.compile(
    r'^(norm[12]\.(weight|bias)|fc[12]\.(weight|bias)|gamma[12]|'
    r'gnconv\.(proj_in|proj_out|pws\.\d+)\.(weight|bias)|'
    r'gnconv\.dwconv\.(weight|bias)|'
    r'gnconv\.dwconv\.(dw\.weight|complex_weight|'
    r'(pre|post)_norm\.(weight|bias)))$')
_OURS = re.compile(r'^(backbone\.)?stages\.\d+\.(downsample|blocks)\.')
_COMPLEX = re.compile(r'^(backbone\.)?stages\.(\d+)\..*complex_weight$')


def _resize_complex_weight(weight: Tensor, size: Tuple[int, int]) -> Tensor:
    """(C, h, w, 2) -> (C, *size, 2), bilinear with ``align_corners=True``
    (the official ``mmcv_custom/checkpoint.py``)."""
    if tuple(weight.shape[1:3]) == tuple(size):
        return weight
    return F.interpolate(weight.permute(3, 0, 1, 2).float(), size=size,
                         mode='bilinear', align_corners=True).permute(
                             1, 2, 3, 0).to(weight.dtype).contiguous()


def convert_hornet(checkpoint,
                   *,
                   with_head: bool = False,
                   use_ema: bool = False,
                   gf_sizes: Optional[Sequence[GFSize]] = None
                   ) -> Dict[str, Tensor]:
    """Map an official HorNet checkpoint onto densekit's keys.

    Official ImageNet layout -> densekit (:class:`HorNet`):

    * ``downsample_layers.0.{0,1}.*`` (stem conv, LN) ->
      ``stages.0.downsample.{conv,norm}.*``
    * ``downsample_layers.{i}.{0,1}.*`` (LN, conv), i = 1..3 ->
      ``stages.{i}.downsample.{norm,conv}.*``
    * ``stages.{i}.{j}.*`` -> ``stages.{i}.blocks.{j}.*`` with ``pwconv1/2``
      -> ``fc1/2`` (``norm1/2``, ``gamma1/2``, ``gnconv.proj_in``,
      ``gnconv.dwconv.*`` -- 7x7 conv or GF ``dw``/``complex_weight``/
      ``pre_norm``/``post_norm`` --, ``gnconv.pws.{k}``, ``gnconv.proj_out``
      keep their names)
    * ``norm.*`` / ``head.*`` (final LN, classifier): dropped, or with
      ``with_head`` kept for :class:`HorNetClassifier` (the other keys then
      get the ``backbone.`` prefix).

    The per-output ``norm{i}`` have no ImageNet counterpart (they stay
    randomly initialised, as officially). An official detection /
    segmentation checkpoint (``backbone.``-prefixed, with
    ``backbone.norm{i}``) is accepted too; its other parts are dropped. A
    dict already in densekit's layout passes through.

    Args:
        checkpoint (dict | nn.Module): A state dict, ``{'model': ...}``
            (official train checkpoint), ``{'state_dict': ...}`` (mmengine /
            mmcv) or a module; a ``module.`` prefix is stripped.
        with_head (bool): Keep the ImageNet norm and head (keys of
            :class:`HorNetClassifier`).
        use_ema (bool): Take ``checkpoint['model_ema']``.
        gf_sizes (Sequence, optional): Per stage, the target (h, w) of the
            GF complex weights (None entries: unchanged); weights of another
            size are resized bilinearly (``align_corners=True``).

    Returns:
        dict[str, Tensor]: The converted state dict.

    Raises:
        UnconvertedKeysError: For keys that are not in the official HorNet
            layout.
    """
    state_dict = unwrap_state_dict(
        checkpoint, 'convert_hornet',
        ema_key='model_ema' if use_ema else None)
    ours = any(_OURS.match(k) for k in state_dict)
    if any(k.startswith('backbone.') for k in state_dict) and not (
            ours and with_head):
        # a detector / segmentor checkpoint (official or densekit): keep
        # its backbone
        state_dict = OrderedDict(
            (k[len('backbone.'):], v) for k, v in state_dict.items()
            if k.startswith('backbone.'))
    converted = OrderedDict(state_dict) if ours else \
        _convert_official(state_dict, with_head)
    if gf_sizes is not None:
        for key in list(converted):
            match = _COMPLEX.match(key)
            if match and gf_sizes[int(match.group(2))] is not None:
                converted[key] = _resize_complex_weight(
                    converted[key], gf_sizes[int(match.group(2))])
    return converted


def _convert_official(state_dict: Dict[str, Tensor],
                      with_head: bool) -> Dict[str, Tensor]:
    prefix = 'backbone.' if with_head else ''
    converted: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    for key, value in state_dict.items():
        match = re.match(r'^downsample_layers\.(\d)\.([01])\.(weight|bias)$',
                         key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            layer = ('conv', 'norm')[index] if stage == 0 else \
                ('norm', 'conv')[index]
            converted[f'{prefix}stages.{stage}.downsample.{layer}.'
                      f'{match.group(3)}'] = value
            continue
        match = re.match(r'^stages\.(\d)\.(\d+)\.(.+)$', key)
        if match:
            rest = match.group(3)
            for pattern, repl in _BLOCK_RENAMES:
                rest = re.sub(pattern, repl, rest)
            if not _BLOCK_KEYS.match(rest):
                unknown.append(key)
                continue
            converted[f'{prefix}stages.{match.group(1)}.blocks.'
                      f'{match.group(2)}.{rest}'] = value
            continue
        if re.match(r'^norm[0-3]\.(weight|bias)$', key):
            if not with_head:   # detection / segmentation output norms
                converted[key] = value
            continue
        if re.match(r'^(norm|head)\.(weight|bias)$', key):
            if with_head:
                converted[key] = value
            continue
        unknown.append(key)
    if unknown:
        raise UnconvertedKeysError('convert_hornet', 'official HorNet',
                                   unknown, len(state_dict))
    return converted
