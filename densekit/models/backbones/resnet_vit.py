"""TransUNet's R50-ViT-B/16 hybrid encoder (and its pure-ViT variant) as a
shared densekit backbone, and the converter of the ImageNet-21k weights.

Paper: Chen et al., "TransUNet: Transformers Make Strong Encoders for
Medical Image Segmentation", arXiv:2102.04306 (2021), Sec. 3.2 and Fig. 1.
Official code: https://github.com/Beckschen/TransUNet (Apache-2.0;
``networks/vit_seg_modeling.py``, ``networks/vit_seg_modeling_resnet_skip.py``,
``networks/vit_seg_configs.py`` ``get_r50_b16_config``). The hybrid is the
"R50+ViT-B/16" of Dosovitskiy et al. (ICLR 2021, App. D.4), whose
ImageNet-21k weights ``R50+ViT-B_16.npz`` (google-research/vision_transformer,
Apache-2.0) TransUNet fine-tunes; :func:`convert_resnet_vit` maps them.
Re-implemented from mmdet's ResNet pieces (``ResLayer``, ``Bottleneck``)
and mmseg's ``TransformerEncoderLayer``; nothing is copied.

Architecture (``img_size=224``, default widths)::

    stage 0  root: 7x7/2 weight-standardised conv, GN(32), ReLU  64 ch  /2
             max pool 3x3/2, padding 0 (224 -> 55, not 56)
    stage 1  3 bottlenecks                                     256 ch  /4
    stage 2  4 bottlenecks, stride 2 on the 3x3 conv           512 ch  /8
    stage 3  9 bottlenecks, stride 2 on the 3x3 conv          1024 ch  /16
    stage 4  1x1 conv 1024 -> 768 (patch size 1 on the 1/16 map), learned
             position embedding (no class token), dropout 0.1,
             12 pre-norm layers (12 heads, MLP 3072), final LayerNorm,
             tokens reshaped to (N, 768, H/16, W/16)            768 ch  /16

"R50" is ResNet-50 with stage 4 removed and its blocks moved to stage 3,
hence (3, 4, 9) blocks. The bottlenecks are post-activation (conv -> GN ->
ReLU, mmdet's ``Bottleneck`` with ``style='pytorch'``); the official class is
called ``PreActBottleneck`` but computes exactly that. GN eps is 1e-6 in the
root and the blocks; the projection shortcut's norm is ``GroupNorm(C, C)``
(one group per channel, eps 1e-5) in the official PyTorch port.

The padding-0 max pool makes stage 1 one pixel short (55 for 224); as the
official code does, the *returned* stride-4 (and, should it happen,
stride-8) map is zero-padded at the bottom/right to ``ceil(H / s)`` while
the next stage runs on the unpadded map.

Parameters of the full TransUNet (this encoder + ``CascadedUpsamplerHead``,
9 classes, 224 x 224): 105,277,081 (105.28M), the encoder 97,888,576.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck
from mmdet.models.layers import ResLayer
from mmengine.model.weight_init import trunc_normal_
from mmseg.models.backbones.vit import TransformerEncoderLayer
from torch import Tensor

from densekit.models.layers.std_conv2d import StdConv2d  # noqa: F401
from densekit.models.layers.weight_init import drop_path_rates
from densekit.models.utils.checkpoint import (UnconvertedKeysError,
                                              unwrap_state_dict)
from densekit.registry import MODELS
from .base_backbone import BaseBackbone

__all__ = ['ResNetViT', 'TokenEncoder', 'convert_resnet_vit',
           'resize_pos_embed']


def resize_pos_embed(pos_embed: Tensor, src_shape: Tuple[int, int],
                     dst_shape: Tuple[int, int],
                     mode: str = 'bicubic') -> Tensor:
    """Resize a class-token-free position embedding on its grid.

    Args:
        pos_embed (Tensor): (1, h * w, C), row-major over the (h, w) grid.
        src_shape (tuple[int, int]): (h, w) of ``pos_embed``.
        dst_shape (tuple[int, int]): Target grid (h', w').
        mode (str): ``F.interpolate`` mode, bicubic as mmseg's ViT (with
            ``align_corners=False``). Defaults to 'bicubic'.

    Returns:
        Tensor: (1, h' * w', C).
    """
    if tuple(src_shape) == tuple(dst_shape):
        return pos_embed
    h, w = src_shape
    grid = pos_embed.reshape(1, h, w, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_shape), mode=mode,
                         align_corners=False)
    return grid.flatten(2).transpose(1, 2)


class TokenEncoder(nn.Module):
    """Patch projection + learned position embedding + mmseg's pre-norm
    ``TransformerEncoderLayer`` stack + final LayerNorm, on a feature map.

    Args:
        in_channels (int): Channels of the input map.
        patch_size (int): Kernel and stride of the projection (1 on the
            hybrid's 1/16 map, 16 on images for the pure ViT).
        grid_size (tuple[int, int]): Token grid of the training size; the
            position embedding has ``h * w`` entries and is resized
            (``interpolate_mode``) for other grids.
        embed_dims, num_layers, num_heads, mlp_ratio: ViT-B: 768, 12, 12, 4.
        drop_rate (float): Dropout after the position embedding and inside
            the MLPs (TransUNet: 0.1).
        attn_drop_rate (float): Dropout of the attention weights and after
            the attention's output projection (TransUNet uses its
            ``attention_dropout_rate``, 0, for both).
        drop_path_rate (float): Stochastic depth, linear over the layers
            (TransUNet: none).
        norm_cfg (dict): LayerNorm config (TransUNet: eps 1e-6).
        interpolate_mode (str): Position-embedding resize mode.

    Shape: (N, in_channels, H, W) -> (N, embed_dims, H / p, W / p).
    """

    def __init__(self, *, in_channels: int, patch_size: int,
                 grid_size: Tuple[int, int], embed_dims: int,
                 num_layers: int, num_heads: int, mlp_ratio: float,
                 drop_rate: float, attn_drop_rate: float,
                 drop_path_rate: float, norm_cfg: dict,
                 interpolate_mode: str) -> None:
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.interpolate_mode = interpolate_mode
        self.patch_embed = nn.Conv2d(in_channels, embed_dims, patch_size,
                                     stride=patch_size)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, grid_size[0] * grid_size[1], embed_dims))
        self.drop_after_pos = nn.Dropout(drop_rate)
        dpr = drop_path_rates(drop_path_rate, num_layers)
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            layer = TransformerEncoderLayer(
                embed_dims=embed_dims, num_heads=num_heads,
                feedforward_channels=int(mlp_ratio * embed_dims),
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                drop_path_rate=dpr[i], norm_cfg=norm_cfg, batch_first=True)
            # mmseg drops the attention output with drop_rate; TransUNet
            # with its attention dropout rate
            layer.attn.proj_drop = nn.Dropout(attn_drop_rate)
            self.layers.append(layer)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def position_embedding(self, hw_shape: Tuple[int, int]) -> Tensor:
        """The (1, h * w, C) embedding for an (h, w) token grid."""
        return resize_pos_embed(self.pos_embed, self.grid_size, hw_shape,
                                self.interpolate_mode)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, h * w, C)
        tokens = self.drop_after_pos(
            tokens + self.position_embedding((h, w)))
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(n, c, h, w)


@MODELS.register_module()
class ResNetViT(BaseBackbone):
    """TransUNet's hybrid encoder: a weight-standardised GroupNorm ResNet
    whose stride-16 map is encoded by a ViT (module docstring).

    Stages and feature contract (``b = base_channels``)::

        index   0 root   1 (/4)   2 (/8)   3 (/16, CNN)   4 (/16, ViT)
        chans   stem     4b       8b       16b            embed_dims
        stride  2        4        8        16             16

    TransUNet's decoder reads ``out_indices=(0, 1, 2, 4)``: the three skips
    (64, 256, 512 channels) and the transformer map (768). With
    ``hybrid=False`` (TransUNet's "ViT-B/16, no CNN" variant) there is one
    stage: a 16x16 patch projection of the image and the ViT, stride 16,
    ``out_indices=(0,)``.

    Args:
        img_size (int | tuple[int, int]): Training input size; the position
            embedding covers its ``img_size // 16`` token grid and is
            resized (bicubic) for other inputs. Defaults to 224.
        in_channels (int): Image channels. Defaults to 3.
        grey_to_rgb (bool): Repeat a 1-channel input to ``in_channels``
            channels, as TransUNet's forward does (``x.repeat(1, 3, 1, 1)``),
            so single-channel medical pipelines feed the RGB-pretrained
            stem. Defaults to False.
        hybrid (bool): Build the ResNet part (R50-ViT); False gives the
            pure ViT. Defaults to True.
        stem_channels (int): Root conv channels. Defaults to 64.
        base_channels (int): Bottleneck width of stage 1 (outputs ``4b``,
            ``8b``, ``16b``). Defaults to 64.
        stage_blocks (Sequence[int]): Bottlenecks per CNN stage (R50 with
            stage 4 folded into stage 3). Defaults to (3, 4, 9).
        conv_cfg (dict): Convolutions of the ResNet, each filter
            standardised on every forward (see Note). Defaults to
            ``dict(type='densekit.StdConv2d')``, the official formula;
            ``dict(type='ConvWS')`` is mmcv's variant (densekit's former
            default).
        norm_cfg (dict): Norm of the root and the bottlenecks. Defaults to
            ``dict(type='GN', num_groups=32, eps=1e-6)``.
        per_channel_proj_norm (bool): The projection shortcuts' norm is
            ``GroupNorm(C, C)`` (eps 1e-5) as in TransUNet's PyTorch port;
            False keeps ``norm_cfg`` there (the JAX R50+ViT uses GN(32)).
            Defaults to True.
        embed_dims (int): Token channels. Defaults to 768.
        num_layers (int): Transformer layers. Defaults to 12.
        num_heads (int): Attention heads. Defaults to 12.
        mlp_ratio (float): MLP width / ``embed_dims``. Defaults to 4.
        drop_rate (float): Embedding and MLP dropout. Defaults to 0.1.
        attn_drop_rate (float): Attention (and its projection) dropout.
            Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        vit_norm_cfg (dict): LayerNorm of the transformer. Defaults to
            ``dict(type='LN', eps=1e-6)``.
        interpolate_mode (str): Position-embedding resize mode. Defaults to
            'bicubic'.
        out_indices (Sequence[int]): Returned stages. Defaults to
            (0, 1, 2, 4) (``(0,)`` when ``hybrid=False``).
        frozen_stages (int): Stages ``0..frozen_stages`` frozen; -1 none.
        norm_eval (bool): BatchNorm in eval mode (this backbone has none).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            loads through :meth:`convert_pretrained`.

    Note:
        The default :class:`densekit.models.layers.StdConv2d` standardises
        as the official ``StdConv2d`` does, ``(w - mean) / sqrt(var +
        1e-5)`` with the biased variance, so the converted
        ``R50+ViT-B_16.npz`` gives the official outputs. mmcv's ``ConvWS``
        (``conv_cfg=dict(type='ConvWS')``) divides by ``std + 1e-5`` with
        the unbiased std instead: the unbiased/biased factor is constant
        per conv and the GroupNorms after the convs remove it, but the eps
        placement rescales each filter by about ``5e-6 / var``; on the same
        weights the logits then differ by ~7e-4 relative and some class
        maps change.

    Examples:
        >>> model = ResNetViT(img_size=64, stem_channels=32, base_channels=8,
        ...                   stage_blocks=(1, 1, 1), embed_dims=32,
        ...                   num_layers=1, num_heads=2,
        ...                   norm_cfg=dict(type='GN', num_groups=8))
        >>> [tuple(o.shape) for o in model(torch.rand(1, 3, 64, 64))]
        [(1, 32, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8), (1, 32, 4, 4)]
        >>> model.out_strides
        [2, 4, 8, 16]
    """

    def __init__(self,
                 *,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 grey_to_rgb: bool = False,
                 hybrid: bool = True,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 stage_blocks: Sequence[int] = (3, 4, 9),
                 conv_cfg: Optional[dict] = dict(type='densekit.StdConv2d'),
                 norm_cfg: dict = dict(type='GN', num_groups=32, eps=1e-6),
                 per_channel_proj_norm: bool = True,
                 embed_dims: int = 768,
                 num_layers: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: float = 4,
                 drop_rate: float = 0.1,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 vit_norm_cfg: dict = dict(type='LN', eps=1e-6),
                 interpolate_mode: str = 'bicubic',
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        if out_indices is None:
            out_indices = (0, 1, 2, 4) if hybrid else (0, )
        super().__init__(out_indices=out_indices,
                         frozen_stages=frozen_stages, norm_eval=norm_eval,
                         init_cfg=init_cfg)
        img_size = (img_size, img_size) if isinstance(img_size, int) \
            else tuple(img_size)
        if len(img_size) != 2 or min(img_size) < 16:
            raise ValueError('ResNetViT: img_size must be an int or (H, W) '
                             f'of at least 16, but got {img_size}')
        if hybrid and len(stage_blocks) != 3:
            raise ValueError('ResNetViT: stage_blocks needs one count per '
                             'CNN stage (3; R50-ViT uses (3, 4, 9)), but got '
                             f'{tuple(stage_blocks)}')
        self.in_channels = in_channels
        self.grey_to_rgb = grey_to_rgb
        self.hybrid = hybrid
        grid = (img_size[0] // 16, img_size[1] // 16)
        vit_cfg = dict(grid_size=grid, embed_dims=embed_dims,
                       num_layers=num_layers, num_heads=num_heads,
                       mlp_ratio=mlp_ratio, drop_rate=drop_rate,
                       attn_drop_rate=attn_drop_rate,
                       drop_path_rate=drop_path_rate, norm_cfg=vit_norm_cfg,
                       interpolate_mode=interpolate_mode)
        if not hybrid:
            self._add_stage(TokenEncoder(in_channels=in_channels,
                                         patch_size=16, **vit_cfg),
                            embed_dims, 16)
        else:
            self._build_resnet(in_channels, stem_channels, base_channels,
                               stage_blocks, conv_cfg, norm_cfg,
                               per_channel_proj_norm)
            self._add_stage(TokenEncoder(in_channels=self.stage_channels[-1],
                                         patch_size=1, **vit_cfg),
                            embed_dims, 16)
        self._check_indices()

    def _add_stage(self, module: nn.Module, channels: int,
                   stride: int) -> None:
        self.stages.append(module)
        self.stage_channels.append(channels)
        self.stage_strides.append(stride)

    def _build_resnet(self, in_channels: int, stem_channels: int,
                      base_channels: int, stage_blocks: Sequence[int],
                      conv_cfg: Optional[dict], norm_cfg: dict,
                      per_channel_proj_norm: bool) -> None:
        """Root and three mmdet ``ResLayer`` stages of bottlenecks."""
        norm_name, norm = build_norm_layer(norm_cfg, stem_channels)
        root = nn.Sequential(OrderedDict([
            ('conv', build_conv_layer(conv_cfg, in_channels, stem_channels,
                                      kernel_size=7, stride=2, padding=3,
                                      bias=False)),
            (norm_name, norm),
            ('relu', nn.ReLU(inplace=True)),
        ]))
        self._add_stage(root, stem_channels, 2)
        # TransUNet: kernel 3, stride 2, *no* padding (224 -> 112 -> 55)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0)
        inplanes = stem_channels
        for i, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            layer = ResLayer(Bottleneck, inplanes=inplanes, planes=planes,
                             num_blocks=num_blocks, stride=1 if i == 0 else 2,
                             style='pytorch', conv_cfg=conv_cfg,
                             norm_cfg=norm_cfg)
            inplanes = planes * Bottleneck.expansion
            if per_channel_proj_norm:
                layer[0].downsample[1] = nn.GroupNorm(inplanes, inplanes)
            # x2 per stage: the max pool before stage 1, then the 3x3 convs
            self._add_stage(layer, inplanes, self.stage_strides[-1] * 2)

    def init_weights(self) -> None:
        """Truncated-normal (std 0.02) position embedding and linears unless
        a checkpoint is loaded; convolutions keep PyTorch's default init as
        in the official code."""
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            for m in self.modules():
                if isinstance(m, TokenEncoder):
                    trunc_normal_(m.pos_embed, std=.02)
                elif isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        super().init_weights()

    def convert_pretrained(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """The official npz layout mapped by :func:`convert_resnet_vit`,
        the position embedding resized to this model's grid."""
        encoder = self.stages[-1]
        return convert_resnet_vit(state_dict,
                                  grid_size=encoder.grid_size,
                                  vit_stage=len(self.stages) - 1)

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Stage ``index``: the images are checked (and grey ones repeated to
        RGB with ``grey_to_rgb``) before stage 0, and the hybrid encoder's
        max pool runs before stage 1."""
        if index == 0:
            if self.grey_to_rgb and x.dim() == 4 and x.shape[1] == 1 \
                    and self.in_channels != 1:
                x = x.repeat(1, self.in_channels, 1, 1)
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(
                    f'ResNetViT: expected images (N, {self.in_channels}, H, '
                    f'W){" or (N, 1, H, W)" if self.grey_to_rgb else ""}, '
                    f'but got {tuple(x.shape)}')
        elif index == 1 and self.hybrid:
            x = self.maxpool(x)
        return self.stages[index](x)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args: x (Tensor): images, (N, in_channels, H, W), or (N, 1, H, W)
        with ``grey_to_rgb``; H, W multiples of 16 give exact strides.

        Returns:
            tuple[Tensor]: one (N, C_i, ceil(H / s_i), ceil(W / s_i)) map per
            ``out_indices`` entry (:attr:`feature_info`).
        """
        size = x.shape[2:]
        outs = []
        for i in range(len(self.stages)):
            x = self.forward_stage(i, x)
            if i in self.out_indices:
                stride = self.stage_strides[i]
                pad_h = math.ceil(size[0] / stride) - x.shape[2]
                pad_w = math.ceil(size[1] / stride) - x.shape[3]
                # the official zero-pads the short stride-4 skip
                outs.append(F.pad(x, (0, max(pad_w, 0), 0, max(pad_h, 0)))
                            if pad_h > 0 or pad_w > 0 else x)
        return tuple(outs)


# ---------------------------------------------------------------------------
# weights: google-research/vision_transformer R50+ViT-B_16.npz (ImageNet-21k,
# Apache-2.0), the file TransUNet's ``load_from`` reads
# ---------------------------------------------------------------------------
_BLOCK_NORM = {'gn1': 'gn1', 'gn2': 'gn2', 'gn3': 'gn3',
               'gn_proj': 'downsample.1'}
_BLOCK_CONV = {'conv1': 'conv1', 'conv2': 'conv2', 'conv3': 'conv3',
               'conv_proj': 'downsample.0'}
_ENC = r'Transformer/encoderblock_(\d+)/'
#: ViT classifier parts TransUNet does not use
_DISCARDED = (r'cls$', r'head/', r'pre_logits/')


def _tensor(value) -> Tensor:
    return torch.as_tensor(np.asarray(value)).float() \
        if not isinstance(value, Tensor) else value.float()


def convert_resnet_vit(state_dict,
                       *,
                       with_head: bool = False,
                       grid_size: Optional[Tuple[int, int]] = None,
                       vit_stage: int = 4) -> Dict[str, Tensor]:
    """Map the official ``R50+ViT-B_16.npz`` (or ``ViT-B_16.npz`` for
    ``hybrid=False, vit_stage=0``) onto :class:`ResNetViT` keys.

    Renames, as TransUNet's ``load_from`` reads them: ``conv_root`` /
    ``gn_root`` -> ``stages.0.conv`` / ``stages.0.gn``;
    ``block{b}/unit{u}/{conv,gn}{k}`` -> ``stages.{b}.{u-1}.{conv,gn}{k}``
    (``conv_proj`` / ``gn_proj`` -> ``downsample.0`` / ``downsample.1``);
    ``embedding`` -> ``patch_embed``; ``Transformer/encoderblock_{i}``
    ``LayerNorm_0`` / ``LayerNorm_2`` -> ``layers.{i}.ln1`` / ``ln2``,
    ``MlpBlock_3/Dense_{0,1}`` -> ``ffn.layers.0.0`` / ``ffn.layers.1``;
    ``encoder_norm`` -> ``norm``. Value transforms: conv kernels HWIO ->
    OIHW, dense kernels transposed, the per-head ``query``/``key``/``value``
    kernels (C, heads, C / heads) flattened and stacked into
    ``nn.MultiheadAttention``'s ``in_proj_weight`` (3C, C), ``out``
    (heads, C / heads, C) into ``out_proj.weight``; the position
    embedding loses its class-token row and, when ``grid_size`` differs
    from the checkpoint's square grid, is resized bicubically (the
    official code zooms bilinearly with scipy). The classifier (``cls``,
    ``pre_logits``, ``head``) is dropped on purpose; any other key is
    refused. Already-converted state dicts are returned unchanged.

    Args:
        state_dict: name -> array (``dict(np.load(path))``), or a checkpoint
            wrapping one.
        with_head (bool): Must be False: densekit has no ViT classifier, the
            ImageNet-21k head is always dropped (the common converter
            signature has the argument).
        grid_size (tuple[int, int], optional): Token grid of the model
            (``img_size // 16``). None keeps the checkpoint's.
        vit_stage (int): Index of the transformer stage (4 hybrid, 0 pure).

    Returns:
        dict: ResNetViT state dict (float32 tensors).

    Raises:
        ValueError: ``with_head=True``.
        UnconvertedKeysError: keys of no known part of the official npz.
    """
    if with_head:
        raise ValueError('convert_resnet_vit: with_head=True is not '
                         'supported: densekit has no ViT classifier and the '
                         'ImageNet-21k head (head/, pre_logits/) is always '
                         'dropped')
    state_dict = unwrap_state_dict(state_dict, 'convert_resnet_vit')
    if any(k.startswith('stages.') for k in state_dict):
        return state_dict  # already densekit's layout
    vit = f'stages.{vit_stage}.'
    out: Dict[str, Tensor] = OrderedDict()
    left = dict(state_dict)

    def take(key: str) -> Tensor:
        return _tensor(left.pop(key))

    def conv(key: str) -> Tensor:  # HWIO -> OIHW
        return take(key).permute(3, 2, 0, 1).contiguous()

    for key in list(state_dict):
        if key not in left:  # popped with its encoder layer
            continue
        if key == 'conv_root/kernel':
            out['stages.0.conv.weight'] = conv(key)
        elif key.startswith('gn_root/'):
            name = 'weight' if key.endswith('scale') else 'bias'
            out[f'stages.0.gn.{name}'] = take(key).flatten()
        elif re.match(r'block\d+/unit\d+/', key):
            block, unit, layer, param = key.split('/')
            prefix = f'stages.{int(block[5:])}.{int(unit[4:]) - 1}.'
            if layer in _BLOCK_CONV and param == 'kernel':
                out[prefix + _BLOCK_CONV[layer] + '.weight'] = conv(key)
            elif layer in _BLOCK_NORM and param in ('scale', 'bias'):
                name = 'weight' if param == 'scale' else 'bias'
                out[prefix + _BLOCK_NORM[layer] + '.' + name] = \
                    take(key).flatten()
        elif key == 'embedding/kernel':
            out[vit + 'patch_embed.weight'] = conv(key)
        elif key == 'embedding/bias':
            out[vit + 'patch_embed.bias'] = take(key)
        elif key.startswith('Transformer/encoder_norm/'):
            name = 'weight' if key.endswith('scale') else 'bias'
            out[vit + 'norm.' + name] = take(key)
        elif key == 'Transformer/posembed_input/pos_embedding':
            pos = take(key)
            side = int(math.isqrt(pos.shape[1]))
            if side * side != pos.shape[1]:  # class-token row first
                pos = pos[:, 1:]
                side = int(math.isqrt(pos.shape[1]))
            out[vit + 'pos_embed'] = resize_pos_embed(
                pos, (side, side), grid_size or (side, side))
        elif re.match(_ENC, key):
            _convert_encoder_layer(re.match(_ENC, key).group(1), left, out,
                                   vit, take)
    unconverted = [k for k in left
                   if not any(re.match(p, k) for p in _DISCARDED)]
    if unconverted:
        raise UnconvertedKeysError(
            'convert_resnet_vit', 'R50+ViT-B_16 / ViT-B_16 npz', unconverted,
            len(state_dict))
    return out


def _convert_encoder_layer(index: str, left: dict, out: dict, vit: str,
                           take) -> None:
    """Pop all keys of ``Transformer/encoderblock_{index}`` into ``out``."""
    src = f'Transformer/encoderblock_{index}/'
    dst = f'{vit}layers.{index}.'
    attn = src + 'MultiHeadDotProductAttention_1/'
    if attn + 'query/kernel' in left:
        qkv = [take(f'{attn}{n}/kernel') for n in ('query', 'key', 'value')]
        dims = qkv[0].shape[0]
        out[dst + 'attn.attn.in_proj_weight'] = torch.cat(
            [w.reshape(dims, dims).t() for w in qkv])
        out[dst + 'attn.attn.in_proj_bias'] = torch.cat(
            [take(f'{attn}{n}/bias').flatten()
             for n in ('query', 'key', 'value')])
        out_w = take(attn + 'out/kernel')
        out[dst + 'attn.attn.out_proj.weight'] = out_w.reshape(
            -1, out_w.shape[-1]).t().contiguous()
        out[dst + 'attn.attn.out_proj.bias'] = take(attn + 'out/bias')
    for src_norm, dst_norm in (('LayerNorm_0', 'ln1'), ('LayerNorm_2', 'ln2')):
        for param, name in (('scale', 'weight'), ('bias', 'bias')):
            key = f'{src}{src_norm}/{param}'
            if key in left:
                out[f'{dst}{dst_norm}.{name}'] = take(key)
    for dense, name in (('Dense_0', 'ffn.layers.0.0'),
                        ('Dense_1', 'ffn.layers.1')):
        key = f'{src}MlpBlock_3/{dense}/'
        if key + 'kernel' in left:
            out[f'{dst}{name}.weight'] = take(key + 'kernel').t().contiguous()
            out[f'{dst}{name}.bias'] = take(key + 'bias')
