"""TransUNet's cascaded upsampler (CUP, "DecoderCup" in the official code)
as an mmseg decode head.

Chen et al., "TransUNet: Transformers Make Strong Encoders for Medical Image
Segmentation", arXiv:2102.04306, Sec. 3.2 "Cascaded Upsampler" and Fig. 1;
official code ``Beckschen/TransUNet:networks/vit_seg_modeling.py``
(``Conv2dReLU``, ``DecoderBlock``, ``DecoderCup``, ``SegmentationHead``;
Apache-2.0), re-implemented with mmcv's ``ConvModule``.

For the R50-ViT-B/16 encoder (:class:`densekit.models.backbones.ResNetViT`,
``out_indices=(0, 1, 2, 4)``) and 224 x 224 input::

    (N, 768, 14, 14) --conv_more 3x3 + BN + ReLU--> (N, 512, 14, 14)
    block 0: x2 up, cat skip /8  (512) -> 2 x (3x3 conv-BN-ReLU) -> 256 @ 28
    block 1: x2 up, cat skip /4  (256) -> ...                    -> 128 @ 56
    block 2: x2 up, cat skip /2  (64)  -> ...                    ->  64 @ 112
    block 3: x2 up, no skip            -> ...                    ->  16 @ 224
    segmentation head: 3x3 conv 16 -> num_classes (``conv_seg``)

Upsampling is bilinear with ``align_corners=True`` (the official
``nn.UpsamplingBilinear2d``); the convs have no bias (BatchNorm follows).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from densekit.registry import MODELS


class UpsampleBlock(nn.Module):
    """x2 bilinear upsampling, concatenation of the skip (when given) and
    two 3x3 conv-norm-ReLU, optionally followed by an attention block
    (e.g. scSE) on the output.

    Args:
        in_channels (int): Channels of the upsampled map.
        skip_channels (int): Channels of the skip; 0 for none.
        out_channels (int): Output channels.
        conv_cfg, norm_cfg, act_cfg (dict): For both ``ConvModule``.
        attention (nn.Module, optional): Applied to the (N, out_channels,
            2h, 2w) output.

    Shape: x (N, in_channels, h, w), skip (N, skip_channels, ~2h, ~2w) ->
    (N, out_channels, H_skip, W_skip) (2h x 2w without a skip).
    """

    def __init__(self, in_channels: int, skip_channels: int,
                 out_channels: int, conv_cfg: Optional[dict],
                 norm_cfg: Optional[dict], act_cfg: Optional[dict],
                 attention: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.skip_channels = skip_channels
        self.conv1 = ConvModule(in_channels + skip_channels, out_channels, 3,
                                padding=1, conv_cfg=conv_cfg,
                                norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(out_channels, out_channels, 3, padding=1,
                                conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                                act_cfg=act_cfg)
        self.attention = attention if attention is not None \
            else nn.Identity()

    def forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        h, w = x.shape[2:]
        if skip is None:
            size = (2 * h, 2 * w)
        else:
            size = tuple(skip.shape[2:])
            if abs(size[0] - 2 * h) > 1 or abs(size[1] - 2 * w) > 1:
                raise ValueError(
                    f'UpsampleBlock: the skip {tuple(skip.shape)} must be '
                    f'about twice the size of the input {tuple(x.shape)}; '
                    'check in_index (high to low resolution, the deepest '
                    'map last)')
        x = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.attention(self.conv2(self.conv1(x)))


@MODELS.register_module()
class CascadedUpsamplerHead(BaseDecodeHead):
    """TransUNet's decoder: ``conv_more`` on the deepest map, then one
    :class:`UpsampleBlock` per ``decoder_channels`` entry, the first
    ``n_skip`` of them fed the encoder skips from deep to shallow, and a
    ``seg_kernel_size`` conv classifier at the input resolution.

    ``in_channels`` / ``in_index`` select the maps high to low resolution,
    the deepest (transformer) map last, e.g. ResNetViT's
    ``[64, 256, 512, 768]`` at strides 2, 4, 8, 16; ``SegEncoderDecoder``
    fills ``in_channels`` from the backbone's contract. Block ``i`` (deepest
    first) takes skip ``in_channels[-2 - i]`` when ``i < n_skip``.

    Call graph::

        forward(): _forward_feature() -> cls_seg()
        _forward_feature(): _transform_inputs() -> conv_more -> blocks[i](
            x, skips[i] if i < n_skip else None)

    Args:
        in_channels (Sequence[int]): Channels of the selected maps.
        in_index (Sequence[int]): Their indices in the backbone outputs.
            Defaults to (0, 1, 2, 3).
        decoder_channels (Sequence[int]): Output channels of the upsampling
            blocks; the last is ``channels`` (classifier input). Defaults to
            (256, 128, 64, 16) (TransUNet).
        head_channels (int): Output of ``conv_more``. Defaults to 512.
        n_skip (int): Blocks that receive a skip (TransUNet: 3; 0 gives
            the "no skip" CUP of the paper's ablation). Defaults to 3.
        seg_kernel_size (int): Classifier kernel (official: 3). Defaults
            to 3.
        decoder_attention (dict, optional): Module config built once per
            block with ``in_channels=<block channels>`` and applied to its
            output, e.g. ``dict(type='densekit.SCSE')``. Defaults to None.
        norm_cfg (dict): Norm of every conv (TransUNet: BN). Defaults to
            ``dict(type='BN')``.
        dropout_ratio (float): Dropout before the classifier (official:
            none). Defaults to 0.
        **kwargs: Other :class:`mmseg.models.decode_heads.BaseDecodeHead`
            arguments: ``num_classes`` (required), ``out_channels``,
            ``threshold``, ``conv_cfg``, ``act_cfg``, ``loss_decode``,
            ``ignore_index``, ``sampler``, ``align_corners``, ``init_cfg``.
            ``channels`` and ``input_transform`` are set here.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 *,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 decoder_channels: Sequence[int] = (256, 128, 64, 16),
                 head_channels: int = 512,
                 n_skip: int = 3,
                 seg_kernel_size: int = 3,
                 decoder_attention: Optional[Union[dict, nn.Module]] = None,
                 norm_cfg: Optional[dict] = dict(type='BN',
                                                 requires_grad=True),
                 dropout_ratio: float = 0.,
                 **kwargs) -> None:
        for key in ('channels', 'input_transform'):
            if key in kwargs:
                raise TypeError(f'CascadedUpsamplerHead sets {key} itself '
                                f'(got {key}={kwargs[key]!r}); use '
                                'decoder_channels')
        if not isinstance(in_channels, (list, tuple)) or not in_channels:
            raise ValueError('CascadedUpsamplerHead: in_channels must list '
                             'the selected maps, high to low resolution, the '
                             f'deepest last, but got {in_channels!r}')
        if not decoder_channels:
            raise ValueError('CascadedUpsamplerHead: decoder_channels must '
                             'not be empty')
        max_skip = min(len(in_channels) - 1, len(decoder_channels))
        if not 0 <= n_skip <= max_skip:
            raise ValueError(
                f'CascadedUpsamplerHead: n_skip must be in 0..{max_skip} '
                f'({len(in_channels) - 1} skip maps in in_channels='
                f'{list(in_channels)}, {len(decoder_channels)} blocks), but '
                f'got {n_skip}')
        super().__init__(list(in_channels), decoder_channels[-1],
                         in_index=list(in_index),
                         input_transform='multiple_select',
                         norm_cfg=norm_cfg, dropout_ratio=dropout_ratio,
                         **kwargs)
        self.n_skip = n_skip
        self.decoder_channels = tuple(decoder_channels)
        self.conv_more = ConvModule(self.in_channels[-1], head_channels, 3,
                                    padding=1, conv_cfg=self.conv_cfg,
                                    norm_cfg=self.norm_cfg,
                                    act_cfg=self.act_cfg)
        skip_channels = list(self.in_channels[:-1])[::-1][:n_skip]
        skip_channels += [0] * (len(decoder_channels) - n_skip)
        self.blocks = nn.ModuleList()
        prev = head_channels
        for out_ch, skip_ch in zip(decoder_channels, skip_channels):
            self.blocks.append(UpsampleBlock(
                prev, skip_ch, out_ch, self.conv_cfg, self.norm_cfg,
                self.act_cfg, self._build_attention(decoder_attention,
                                                    out_ch)))
            prev = out_ch
        # the official segmentation head is a 3x3 conv (mmseg's is 1x1)
        self.conv_seg = nn.Conv2d(self.channels, self.out_channels,
                                  seg_kernel_size,
                                  padding=seg_kernel_size // 2)

    @staticmethod
    def _build_attention(cfg: Optional[Union[dict, nn.Module]],
                         channels: int) -> Optional[nn.Module]:
        if cfg is None:
            return None
        if isinstance(cfg, nn.Module):
            raise TypeError('CascadedUpsamplerHead: decoder_attention is '
                            'built once per block, so it must be a config '
                            f'dict, not a built {type(cfg).__name__}')
        return MODELS.build(dict(cfg, in_channels=channels))

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """Args: inputs (Sequence[Tensor]): backbone outputs; those at
        ``in_index`` are (N, in_channels[k], H / s_k, W / s_k), high to low
        resolution.

        Returns:
            Tensor: (N, decoder_channels[-1], H', W'), H' = 2**len(blocks)
            times the deepest map's height (the input size for ResNetViT).
        """
        feats: List[Tensor] = self._transform_inputs(inputs)
        skips = feats[:-1][::-1]
        x = self.conv_more(feats[-1])
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < self.n_skip else None)
        return x

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Returns: Tensor: logits (N, num_classes, H', W')."""
        return self.cls_seg(self._forward_feature(inputs))
