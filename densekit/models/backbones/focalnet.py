"""FocalNet backbone and the converter for official ImageNet checkpoints.

Paper: Yang et al., "Focal Modulation Networks", NeurIPS 2022
(arXiv:2203.11926). Official code: https://github.com/microsoft/FocalNet
(MIT licence); the architecture follows its ``classification/focalnet.py``
and ``detection/mmdet/models/backbones/focalnet.py``. This is an independent
implementation.

Focal modulation (Sec. 3.2) replaces self-attention with, for every token
``i``::

    y_i = q(x_i) ⊙ h( Σ_{l=1..L+1} g_i^l · z_i^l )          (Eq. 6)

where ``z^l`` (``l = 1..L``) come from a stack of depth-wise convolutions,
``Z^l = GELU(DWConv_l(Z^{l-1}))`` with ``Z^0 = f_z(X)`` (hierarchical
contextualization, Eq. 4), ``z^{L+1} = GELU(AvgPool(Z^L))`` is the global
context, ``g^l`` are per-token gates from a linear layer (gated aggregation,
Eq. 5) and ``h`` is a 1x1 convolution. (Equation numbers refer to the arXiv
v3 / NeurIPS version.)

Stage layout used here (``stage_strides`` 4, 8, 16, 32)::

    stage 0: stem PatchEmbed (4x4/4 conv + LN)   + layers[0] blocks   C
    stage 1: PatchEmbed (2x2/2 conv + LN)        + layers[1] blocks   2C
    stage 2: PatchEmbed (2x2/2 conv + LN)        + layers[2] blocks   4C
    stage 3: PatchEmbed (2x2/2 conv + LN)        + layers[3] blocks   8C

i.e. the official ``layers[i].downsample`` (which runs at the *end* of
official layer ``i``) is the *first* module of our stage ``i + 1``. The maps
returned are the same the official detection backbone returns: the block
outputs of each stage, after a per-output LayerNorm ``norm{i}``.

Sizes (``arch``), ImageNet-1K params with the 1000-class head as listed in
the official README: T-SRF 28.4M, T-LRF 28.6M, S-SRF 49.9M, S-LRF 50.3M,
B-SRF 88.1M, B-LRF 88.7M. SRF = focal_level 2 (kernels 3, 5), LRF =
focal_level 3 (kernels 3, 5, 7), focal_window 3 in all stages.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.models.layers.focalnet_block import (FOCAL_FACTOR, FocalNetBlock,
                                                   _trunc_normal_init)
from densekit.models.layers.weight_init import drop_path_rates
from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              unwrap_state_dict)
from densekit.registry import MODELS
from .base_backbone import BaseBackbone

__all__ = ['FocalNet', 'FocalNetClassifier', 'focalnet_classifier',
           'convert_focalnet']

class FocalNetPatchEmbed(nn.Module):
    """Patch embedding: the stem and the between-stage downsampling (Sec. 3.3).

    A ``patch_size x patch_size`` convolution with stride ``patch_size``
    (4 for the stem, 2 between stages) followed by LayerNorm. With
    ``use_conv_embed`` the convolution overlaps: 7x7 / stride 4 / padding 2
    for the stem and 3x3 / stride 2 / padding 1 between stages (the official
    option of the large models).

    Inputs whose height or width is not a multiple of ``patch_size`` are
    zero-padded at the bottom/right first, as the official detection
    backbone does, so the output is ``ceil(H / patch_size)`` high.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        patch_size (int): Stride (and kernel size without conv embed).
        use_conv_embed (bool): Use the overlapping convolution.
        is_stem (bool): Selects the stem's overlapping kernel.
        patch_norm (bool): Apply LayerNorm after the convolution.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 patch_size: int,
                 use_conv_embed: bool = False,
                 is_stem: bool = False,
                 patch_norm: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        if use_conv_embed:
            # the classification code, in which the released conv-embed
            # checkpoints were trained, uses padding 2 for the 7x7 stem
            kernel, padding = (7, 2) if is_stem else (3, 1)
            self.proj = nn.Conv2d(in_channels, embed_dims, kernel,
                                  stride=patch_size, padding=padding)
        else:
            self.proj = nn.Conv2d(in_channels, embed_dims, patch_size,
                                  stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: channels-last tokens, (N, ceil(H / p), ceil(W / p), C).
        """
        pad_h = -x.shape[-2] % self.patch_size
        pad_w = -x.shape[-1] % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        return x


class FocalNetStage(nn.Module):
    """One stage: a patch embedding (stem or 2x downsampling) then blocks.

    Args:
        downsample (FocalNetPatchEmbed): The stage's patch embedding.
        blocks (list[FocalNetBlock]): The stage's blocks.
    """

    def __init__(self, downsample: FocalNetPatchEmbed,
                 blocks: Sequence[FocalNetBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (N, C_in, H, W).

        Returns:
            Tensor: (N, C, ceil(H / p), ceil(W / p)) (a channels-last
            strided view; call ``.contiguous()`` if needed).
        """
        x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)


@MODELS.register_module()
class FocalNet(BaseBackbone):
    """FocalNet backbone (Yang et al., NeurIPS 2022), multi-stage variant.

    Stage ``i`` (``0..3``) is a patch embedding followed by ``depths[i]``
    :class:`FocalNetBlock` s; strides 4, 8, 16, 32 and channels ``C, 2C,
    4C, 8C``. Each returned map goes through its own LayerNorm ``norm{i}``
    (built only for ``out_indices``), as in the official detection backbone.

    Args:
        arch (str | dict): One of :attr:`arch_settings` ('T-SRF', 'T-LRF',
            'S-SRF', 'S-LRF', 'B-SRF', 'B-LRF'), or a dict with
            ``embed_dims`` (int), ``depths`` (4 ints), ``focal_levels`` and
            ``focal_windows`` (int or 4 ints). Defaults to 'T-SRF'.
        focal_windows (int | Sequence[int], optional): Override the first
            focal kernel per stage. The official detection/segmentation
            fine-tunes use 9 (kernels 9, 11[, 13]) on top of the window-3
            ImageNet weights, whose kernels are then zero-padded (see
            :func:`convert_focalnet`).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to
            (0, 1, 2, 3).
        frozen_stages (int): Stages ``0..frozen_stages`` (and their output
            norms) are frozen; -1 freezes nothing. Note that stage 0
            includes the stem, so ``frozen_stages=0`` freezes the stem and
            the first blocks (the official code's numbering differs: its
            ``frozen_stages=0`` and ``1`` freeze only the stem).
        norm_eval (bool): See :class:`BaseBackbone`; FocalNet has no
            BatchNorm, so it has no effect.
        mlp_ratio (float): MLP hidden ratio. Defaults to 4.
        drop_rate (float): Dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block, linear
            from 0 over all blocks. Defaults to 0.1.
        use_conv_embed (bool): Overlapping conv patch embeddings.
        use_layerscale (bool): Layer scale in every block.
        layer_scale_init_value (float): Its initial value. Defaults to 1e-4.
        use_postln (bool): Post-LN blocks.
        use_postln_in_modulation (bool): LayerNorm inside the modulation.
        normalize_modulator (bool): Divide the context by ``L + 1``.
        patch_norm (bool): LayerNorm after every patch embedding.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` accepts an official checkpoint (converted on
            the fly by :func:`convert_focalnet`, focal kernels resized to
            this model) or a densekit one (optionally with ``prefix``).

    Note:
        Sizes that are not a multiple of the stride are zero-padded at the
        bottom/right inside every patch embedding (as officially), so a
        stride-``s`` output is ``ceil(H / s) x ceil(W / s)``.

    Examples:
        >>> import torch
        >>> model = FocalNet(arch='T-SRF').eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 96, 16, 16), (1, 192, 8, 8), (1, 384, 4, 4), (1, 768, 2, 2)]
        >>> model.out_strides
        [4, 8, 16, 32]
    """
    arch_settings = {
        'T-SRF': dict(embed_dims=96, depths=(2, 2, 6, 2), focal_levels=2,
                      focal_windows=3),
        'T-LRF': dict(embed_dims=96, depths=(2, 2, 6, 2), focal_levels=3,
                      focal_windows=3),
        'S-SRF': dict(embed_dims=96, depths=(2, 2, 18, 2), focal_levels=2,
                      focal_windows=3),
        'S-LRF': dict(embed_dims=96, depths=(2, 2, 18, 2), focal_levels=3,
                      focal_windows=3),
        'B-SRF': dict(embed_dims=128, depths=(2, 2, 18, 2), focal_levels=2,
                      focal_windows=3),
        'B-LRF': dict(embed_dims=128, depths=(2, 2, 18, 2), focal_levels=3,
                      focal_windows=3),
    }
    arch_required = ('embed_dims', 'depths', 'focal_levels', 'focal_windows')

    def __init__(self,
                 *,
                 arch: Union[str, dict] = 'T-SRF',
                 focal_windows: Optional[Union[int, Sequence[int]]] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1,
                 use_conv_embed: bool = False,
                 use_layerscale: bool = False,
                 layer_scale_init_value: float = 1e-4,
                 use_postln: bool = False,
                 use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False,
                 patch_norm: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            init_cfg=init_cfg)
        setting = self.resolve_arch(arch)
        if focal_windows is not None:
            setting['focal_windows'] = focal_windows
        self.arch = arch
        depths = list(setting['depths'])
        num_stages = len(depths)

        def per_stage(value, name):
            values = [value] * num_stages if isinstance(value, int) \
                else list(value)
            if len(values) != num_stages:
                raise ValueError(f'FocalNet: {name} needs {num_stages} '
                                 f'values, but got {values}')
            return values

        self.depths = depths
        self.focal_levels = per_stage(setting['focal_levels'],
                                      'focal_levels')
        self.focal_windows = per_stage(setting['focal_windows'],
                                       'focal_windows')
        dims = [setting['embed_dims'] * 2**i for i in range(num_stages)]
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))

        channels = in_channels
        for i, depth in enumerate(depths):
            downsample = FocalNetPatchEmbed(
                channels, dims[i], patch_size=4 if i == 0 else 2,
                use_conv_embed=use_conv_embed, is_stem=i == 0,
                patch_norm=patch_norm)
            blocks = [
                FocalNetBlock(
                    dims[i], self.focal_levels[i], self.focal_windows[i],
                    mlp_ratio=mlp_ratio, drop_rate=drop_rate,
                    drop_path=drop_paths.pop(0),
                    use_layerscale=use_layerscale,
                    layer_scale_init_value=layer_scale_init_value,
                    use_postln=use_postln,
                    use_postln_in_modulation=use_postln_in_modulation,
                    normalize_modulator=normalize_modulator)
                for _ in range(depth)
            ]
            self.stages.append(FocalNetStage(downsample, blocks))
            self.stage_channels.append(dims[i])
            self.stage_strides.append(4 * 2**i)
            channels = dims[i]
        self._check_indices()
        self._add_output_norms(lambda i: nn.LayerNorm(dims[i]))
        self.apply(_trunc_normal_init)

    def convert_pretrained(self, state_dict):
        """Official ImageNet/detection layouts -> ours (``init_cfg``
        ``Pretrained`` goes through :meth:`BaseBackbone.init_weights`)."""
        return convert_focalnet(state_dict,
                                focal_windows=self.focal_windows)


class FocalNetClassifier(nn.Module):
    """The official ImageNet model: FocalNet, final LN, average pool, Linear.

    The official final ``norm`` (a LayerNorm on the last stage's tokens) is
    exactly the backbone's ``norm3`` on its only output, so the parameter
    count equals the official model's.

    Args:
        backbone (FocalNet): Built with ``out_indices=(last stage, )``.
        num_classes (int): Classes of the Linear head (0: no head).
    """

    def __init__(self, backbone: FocalNet, num_classes: int = 1000) -> None:
        super().__init__()
        if len(backbone.out_indices) != 1 or \
                backbone.out_indices[0] != len(backbone.stages) - 1:
            raise ValueError('FocalNetClassifier needs a backbone returning '
                             'only its last stage')
        self.backbone = backbone
        channels = backbone.out_channels[0]
        self.head = nn.Linear(channels, num_classes) if num_classes > 0 \
            else nn.Identity()
        self.head.apply(_trunc_normal_init)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): images, (N, 3, H, W).

        Returns:
            Tensor: logits, (N, num_classes).
        """
        feat = self.backbone(x)[-1]
        return self.head(feat.mean(dim=(2, 3)))


def focalnet_classifier(arch: Union[str, dict] = 'T-SRF',
                        num_classes: int = 1000,
                        **kwargs) -> FocalNetClassifier:
    """Build the official classification model (for parameter counts and
    full-checkpoint checks). ``kwargs`` go to :class:`FocalNet`."""
    num_stages = 4 if isinstance(arch, str) else len(arch['depths'])
    backbone = FocalNet(arch=arch, out_indices=(num_stages - 1, ), **kwargs)
    return FocalNetClassifier(backbone, num_classes)


# ---------------------------------------------------------------------------
# Official checkpoint -> densekit keys
# ---------------------------------------------------------------------------
# renames inside one block (official -> densekit)
_BLOCK_RENAMES = [
    (r'^modulation\.focal_layers\.(\d+)\.0\.', r'modulation.focal_convs.\1.'),
    (r'^modulation\.ln\.', 'modulation.norm.'),
    (r'^gamma_([12])$', r'gamma\1'),
]
_BLOCK_KEYS = re.compile(
    r'^(norm[12]\.(weight|bias)|mlp\.fc[12]\.(weight|bias)|gamma[12]|'
    r'modulation\.(f|h|proj|norm)\.(weight|bias)|'
    r'modulation\.focal_convs\.\d+\.weight)$')
_EMBED_KEYS = re.compile(r'^(proj|norm)\.(weight|bias)$')
_FOCAL_CONV = re.compile(
    r'^stages\.(\d+)\.blocks\.\d+\.modulation\.focal_convs\.(\d+)\.weight$')


def _convert_key(key: str, with_head: bool) -> Optional[str]:
    """New key, '' for a key dropped on purpose, None if unknown."""
    if key.startswith(('stages.', 'norm0.', 'norm1.', 'norm2.', 'norm3.')):
        return key      # densekit layout, or official detection norm{i}
    if key in ('norm.weight', 'norm.bias'):
        return f'backbone.norm3.{key[5:]}' if with_head else ''
    if key in ('head.weight', 'head.bias'):
        return key if with_head else ''
    match = re.match(r'^patch_embed\.(.+)$', key)
    if match:
        rest = match.group(1)
        return f'stages.0.downsample.{rest}' if _EMBED_KEYS.match(rest) \
            else None
    match = re.match(r'^layers\.(\d+)\.downsample\.(.+)$', key)
    if match:
        rest = match.group(2)
        return (f'stages.{int(match.group(1)) + 1}.downsample.{rest}'
                if _EMBED_KEYS.match(rest) else None)
    match = re.match(r'^layers\.(\d+)\.blocks\.(\d+)\.(.+)$', key)
    if match:
        rest = match.group(3)
        for pattern, repl in _BLOCK_RENAMES:
            rest = re.sub(pattern, repl, rest)
        if not _BLOCK_KEYS.match(rest):
            return None
        return f'stages.{match.group(1)}.blocks.{match.group(2)}.{rest}'
    return None


def _resize_kernel(weight: Tensor, size: int) -> Tensor:
    """Centre zero-pad or centre-crop a (C, 1, k, k) kernel to ``size``, as
    the official detection code does for larger ``focal_window``."""
    current = weight.shape[-1]
    if current == size:
        return weight
    if (size - current) % 2:
        raise ValueError(f'cannot centre a {current}x{current} focal kernel '
                         f'in {size}x{size}')
    if size > current:
        pad = (size - current) // 2
        return F.pad(weight, (pad, pad, pad, pad))
    cut = (current - size) // 2
    return weight[..., cut:cut + size, cut:cut + size].contiguous()


def convert_focalnet(
        checkpoint,
        *,
        with_head: bool = False,
        focal_windows: Optional[Union[int, Sequence[int]]] = None
) -> Dict[str, Tensor]:
    """Map an official FocalNet checkpoint onto :class:`FocalNet`'s keys.

    Official ImageNet layout -> densekit:

    * ``patch_embed.{proj,norm}.*`` -> ``stages.0.downsample.*``
    * ``layers.{i}.downsample.{proj,norm}.*`` -> ``stages.{i+1}.downsample.*``
    * ``layers.{i}.blocks.{j}.*`` -> ``stages.{i}.blocks.{j}.*`` with
      ``modulation.focal_layers.{k}.0`` -> ``modulation.focal_convs.{k}``,
      ``modulation.ln`` -> ``modulation.norm``, ``gamma_{1,2}`` ->
      ``gamma{1,2}`` (the rest keeps its name: ``norm1``, ``norm2``,
      ``modulation.{f,h,proj}``, ``mlp.fc{1,2}``)
    * ``norm.*`` (final LN) and ``head.*``: dropped, or with ``with_head``
      kept for :class:`FocalNetClassifier` (``backbone.norm3.*``,
      ``head.*``; backbone keys then get the ``backbone.`` prefix).

    The per-output ``norm{i}`` of the detection backbone have no ImageNet
    counterpart (they stay randomly initialised, as officially); keys of an
    official *detection* checkpoint (``backbone.`` prefixed, with
    ``backbone.norm{i}``) are accepted too, other detector parts dropped.
    A dict already in densekit's layout passes through (so it is safe to run
    twice).

    Args:
        checkpoint (dict | nn.Module): A state dict, ``{'model': ...}``
            (official), ``{'state_dict': ...}`` (mmengine) or a module.
        with_head (bool): Keep the classifier's norm and head.
        focal_windows (int | Sequence[int], optional): The target model's
            first focal kernel per stage; focal kernels are centre
            zero-padded (or cropped) to ``focal_windows[i] + 2k``. None
            keeps them as they are.

    Returns:
        dict[str, Tensor]: The converted state dict.

    Raises:
        UnconvertedKeysError: For keys this layout does not know (listed).
    """
    state_dict = unwrap_state_dict(checkpoint, 'convert_focalnet')
    if any(k.startswith('backbone.') for k in state_dict):
        # official (or densekit) detector checkpoint: keep the backbone
        state_dict = OrderedDict(
            (k[len('backbone.'):], v) if k.startswith('backbone.') else (k, v)
            for k, v in state_dict.items()
            if k.startswith('backbone.') or (with_head
                                             and k.startswith('head.')))
    converted: Dict[str, Tensor] = OrderedDict()
    unknown: List[str] = []
    for key, value in state_dict.items():
        new_key = _convert_key(key, with_head)
        if new_key is None:
            unknown.append(key)
        elif new_key:
            converted[new_key] = value
    if unknown:
        raise UnconvertedKeysError('convert_focalnet', 'official FocalNet',
                                   unknown, len(state_dict))
    if focal_windows is not None:
        for key in list(converted):
            match = _FOCAL_CONV.match(key.replace('backbone.', '', 1))
            if match is None:
                continue
            stage, level = int(match.group(1)), int(match.group(2))
            window = focal_windows if isinstance(focal_windows, int) \
                else focal_windows[stage]
            converted[key] = _resize_kernel(
                converted[key], window + FOCAL_FACTOR * level)
    if with_head:
        converted = OrderedDict(
            (k if k.startswith(('head.', 'backbone.')) else f'backbone.{k}',
             v) for k, v in converted.items())
    return converted
