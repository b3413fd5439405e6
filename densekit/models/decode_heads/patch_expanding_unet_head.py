"""Swin-Unet's patch-expanding U-Net decoder as an mmseg decode head.

Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image
Segmentation", ECCV Workshops 2022 (arXiv:2105.05537). Official code:
``HuCaoFighting/Swin-Unet``, ``networks/swin_transformer_unet_skip_expand_
decoder_sys.py`` (``SwinTransformerSys``: ``layers_up``, ``concat_back_dim``,
``PatchExpand``, ``FinalPatchExpand_X4``). This is an independent
implementation; the decoder blocks are pluggable so the same head is also
Att-SwinU-Net's (with :class:`densekit.models.layers.CrossContextualAttention`
skips), Focal-UNet's (focal-modulation blocks) and a Mamba U-Net's (VSS
blocks).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from densekit.models.layers.weight_init import drop_path_rates
from densekit.registry import MODELS

__all__ = ['PatchExpanding', 'PatchExpandingUNetHead']


class PatchExpanding(nn.Module):
    """Swin-Unet's patch expanding: a Linear widens every token, which is
    then rearranged into a ``scale x scale`` patch of tokens, and LayerNorm.

    ``Linear(C_in -> scale^2 * C_out)``, then
    ``b h w (p1 p2 c) -> b (h p1) (w p2) c``. Swin-Unet's ``PatchExpand`` is
    ``scale=2, C_out = C_in / 2`` (Linear C -> 2C, bias-free) and its
    ``FinalPatchExpand_X4`` is ``scale=4, C_out = C_in`` (Linear C -> 16C).
    ``bias=True`` adds one bias per output channel after the rearrangement,
    which makes the module exactly a ``scale x scale`` / stride-``scale``
    transposed convolution (Focal-UNet's ``PatchExpand`` /
    ``Final_PatchExpand``), up to the weights' layout.

    Args:
        in_channels (int): ``C_in``.
        out_channels (int): ``C_out``.
        scale (int): Up-sampling factor. Defaults to 2.
        bias (bool): Bias of the Linear. Defaults to False (Swin-Unet).
        with_norm (bool): LayerNorm on the output. Defaults to True.

    Shapes: (N, H, W, C_in) -> (N, scale * H, scale * W, C_out).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale: int = 2,
                 bias: bool = False,
                 with_norm: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.out_channels = out_channels
        self.expand = nn.Linear(in_channels, scale * scale * out_channels,
                                bias=False)
        # shared by the scale x scale positions, as a transposed conv's
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.norm = nn.LayerNorm(out_channels) if with_norm else None

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, _ = x.shape
        s, c = self.scale, self.out_channels
        x = self.expand(x).view(n, h, w, s, s, c)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, c)
        if self.bias is not None:
            x = x + self.bias
        return x if self.norm is None else self.norm(x)


def _match_size(x: Tensor, size) -> Tensor:
    """Crop (bottom/right) or zero-pad a (N, H, W, C) map to ``size``: an
    up-sampled map is larger than its skip when the encoder padded an odd
    size, smaller when the input was not padded at all."""
    dh, dw = size[0] - x.shape[1], size[1] - x.shape[2]
    if dh == 0 and dw == 0:
        return x
    x = x[:, :size[0], :size[1]]
    return F.pad(x, (0, 0, 0, max(dw, 0), 0, max(dh, 0)))


@MODELS.register_module()
class PatchExpandingUNetHead(BaseDecodeHead):
    """Swin-Unet's decoder over any backbone with four pyramid levels.

    The deepest input is the bottleneck; each higher level ``i`` (from deep
    to shallow) then does::

        x = PatchExpanding(C_{i+1} -> C_i, x2)(x)         # up-sampling
        x, skip_i = skip_attention_i(x, skip_i)            # optional
        x = Linear(2 C_i -> C_i)(cat[x, skip_i])           # skip fusion
        x = decoder stage i (depths[i] blocks of block_cfg)
        x = decoder_attention_i(x)                         # optional, scSE

    and the head ends with ``LN(C_0)``, ``PatchExpanding(C_0 -> C_0, x4)``
    (back to the input resolution when the shallowest level has stride 4)
    and the classifier ``conv_seg``. Tensors travel channels-last
    ``(N, H, W, C)`` between the parts; inputs and the output are
    channels-first.

    Faithfulness to the official ``SwinTransformerSys``:

    * Decoder depths. The official decoder ignores its ``depths_decoder``
      argument: ``layers_up[k]`` builds ``depths[num_layers - 1 - k]``
      blocks with ``num_heads[num_layers - 1 - k]`` heads, i.e. decoder
      stage ``i`` mirrors encoder stage ``i`` (``configs/swin_tiny_patch4_
      window7_224_lite.yaml``: encoder (2, 2, 2, 2), decoder stages (2, 2,
      2) with heads (3, 6, 12); the bottleneck level has no decoder
      blocks, only the first patch expanding). Give ``depths`` and
      ``num_heads`` per level, shallow first.
    * Drop path. Official decoder stage ``i`` reuses the stochastic-depth
      rates of encoder stage ``i``; pass ``encoder_depths`` to get that
      schedule, otherwise the rates grow linearly over the decoder blocks.
    * Skip points. The official skips are the tokens *entering* encoder
      stage ``i`` (after the patch embedding / patch merging, before the
      stage's blocks) and the bottleneck is the normalised output of the
      last stage. Backbones such as mmseg's ``SwinTransformer`` or
      densekit's ``FocalNet`` return each stage's *output* (after its
      blocks and a per-output LayerNorm), so with them the skips carry the
      stage's blocks and one LN more. The bottleneck is the same, the
      parameters differ only by those per-output LNs (2C per level).
    * ``norm_up``, the 1x1 bias-free ``output`` convolution and the
      bias-free expanding Linears are official; ``conv_seg`` replaces
      ``output`` (``cls_bias`` / ``cls_kernel_size`` choose Focal-UNet's
      7 x 7 bias-free classifier).

    Call graph (mmseg ``BaseDecodeHead``)::

        loss()/predict(): forward() -> loss_by_feat()/predict_by_feat()
        forward(): _forward_feature() -> cls_seg()
        _forward_feature(): _transform_inputs() -> expands, skip_attentions,
            fuses, stages, decoder_attentions -> norm_up -> final_expand

    Args:
        in_channels (Sequence[int]): Channels of the selected inputs,
            shallow to deep (e.g. Swin-T's (96, 192, 384, 768)); densekit
            backbones fill it through ``densekit.SegEncoderDecoder``.
        block_cfg (dict | Sequence[dict]): Decoder stage config, built per
            level with ``embed_dims``, ``depth``, ``drop_path_rates`` (and
            ``num_heads`` when given) added: ``densekit.SwinDecoderStage``,
            ``densekit.FocalNetDecoderStage`` or ``densekit.VSSDecoderStage``
            (any module mapping (N, H, W, C) to itself works). One dict per
            level (shallow first) is also accepted.
        depths (Sequence[int]): Blocks of decoder stage ``i`` (levels 0 ..
            L-2, shallow first). 0 skips the stage.
        num_heads (Sequence[int], optional): Heads per level, for blocks
            that take ``num_heads`` (Swin). Defaults to None.
        channels (int, optional): Width of the output features, C_0.
            Defaults to None: ``in_channels[0]``.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        encoder_depths (Sequence[int], optional): Encoder depths whose
            linear schedule ``linspace(0, drop_path_rate, sum)`` decoder
            stage ``i`` takes the rates of encoder stage ``i`` from (the
            official rule). Defaults to None.
        skip_attention (dict, optional): Module built per skip with
            ``embed_dims=C_i``, called ``x, skip = m(x, skip)`` on
            channels-last maps before the fusion, e.g.
            ``dict(type='densekit.CrossContextualAttention')``
            (Att-SwinU-Net). Defaults to None (plain concatenation).
        decoder_attention (dict, optional): Module built per decoder stage
            with ``in_channels=C_i`` and applied channels-first after it,
            e.g. ``dict(type='densekit.SCSE')``. Defaults to None.
        expand_bias (bool): Bias in the expanding Linears. Defaults to
            False (Swin-Unet); True is Focal-UNet's transposed convolutions.
        final_expand_norm (bool): LayerNorm after the x4 expanding.
            Defaults to True (Swin-Unet); Focal-UNet has none.
        final_scale (int): Up-sampling of the last expanding. Defaults to
            4 (the stride of the shallowest input).
        cls_kernel_size (int): Kernel of ``conv_seg``. Defaults to 1.
        cls_bias (bool): Bias of ``conv_seg``. Defaults to False (both
            official models).
        in_index (Sequence[int]): Backbone outputs read. Defaults to
            (0, 1, 2, 3).
        dropout_ratio (float): Dropout before ``conv_seg``. Defaults to 0
            (none officially).
        init_cfg (dict, optional): Defaults to None: :meth:`init_weights`
            applies the official trunc-normal(0.02) Linear / unit-LN init to
            the expanding, fusion and norm layers (the blocks initialise
            themselves).
        **kwargs: Other :class:`mmseg.models.decode_heads.BaseDecodeHead`
            arguments: ``num_classes`` (required), ``out_channels``,
            ``threshold``, ``ignore_index``, ``loss_decode``, ``sampler``,
            ``align_corners``.

    Examples:
        >>> head = PatchExpandingUNetHead(
        ...     in_channels=[8, 16, 32, 64], num_classes=3, depths=(1, 1, 1),
        ...     num_heads=(1, 2, 4),
        ...     block_cfg=dict(type='densekit.SwinDecoderStage',
        ...                    window_size=2))
        >>> feats = [torch.rand(1, 8 * 2**i, 16 // 2**i, 16 // 2**i)
        ...          for i in range(4)]
        >>> head(feats).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 *,
                 block_cfg: Union[dict, Sequence[dict]],
                 depths: Sequence[int],
                 num_heads: Optional[Sequence[int]] = None,
                 channels: Optional[int] = None,
                 drop_path_rate: float = 0.0,
                 encoder_depths: Optional[Sequence[int]] = None,
                 skip_attention: Optional[dict] = None,
                 decoder_attention: Optional[dict] = None,
                 expand_bias: bool = False,
                 final_expand_norm: bool = True,
                 final_scale: int = 4,
                 cls_kernel_size: int = 1,
                 cls_bias: bool = False,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 dropout_ratio: float = 0.0,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if isinstance(in_channels, int) or len(in_channels) < 2:
            raise ValueError(
                'PatchExpandingUNetHead: in_channels must list at least two '
                f'pyramid levels (shallow to deep), but got {in_channels!r}')
        in_channels = [int(c) for c in in_channels]
        if len(in_index) != len(in_channels):
            raise ValueError(
                f'PatchExpandingUNetHead: in_index={list(in_index)} selects '
                f'{len(in_index)} maps but in_channels lists '
                f'{len(in_channels)}: {in_channels}')
        super().__init__(
            in_channels,
            in_channels[0] if channels is None else channels,
            in_index=list(in_index),
            input_transform='multiple_select',
            dropout_ratio=dropout_ratio,
            init_cfg=init_cfg,
            **kwargs)
        levels = len(in_channels) - 1
        if len(depths) != levels:
            raise ValueError(
                f'PatchExpandingUNetHead: {len(in_channels)} inputs have '
                f'{levels} decoder levels, so depths needs {levels} values '
                f'(shallow first), but got {list(depths)}')
        if num_heads is not None and len(num_heads) != levels:
            raise ValueError(
                f'PatchExpandingUNetHead: num_heads needs {levels} values, '
                f'but got {list(num_heads)}')
        block_cfgs = [dict(block_cfg)] * levels if isinstance(
            block_cfg, dict) else [dict(c) for c in block_cfg]
        if len(block_cfgs) != levels:
            raise ValueError(
                f'PatchExpandingUNetHead: block_cfg must be one dict or '
                f'{levels} dicts, but got {len(block_cfgs)}')
        self.depths = list(depths)
        rates = self._drop_path_rates(drop_path_rate, encoder_depths)

        self.expands = nn.ModuleList()
        self.fuses = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.skip_attentions = nn.ModuleList() if skip_attention else None
        self.decoder_attentions = nn.ModuleList() \
            if decoder_attention else None
        for i in range(levels):
            dims = in_channels[i]
            self.expands.append(
                PatchExpanding(in_channels[i + 1], dims, scale=2,
                               bias=expand_bias))
            self.fuses.append(nn.Linear(2 * dims, dims))
            if self.depths[i] > 0:
                cfg = dict(block_cfgs[i], embed_dims=dims,
                           depth=self.depths[i], drop_path_rates=rates[i])
                if num_heads is not None:
                    cfg['num_heads'] = num_heads[i]
                self.stages.append(MODELS.build(cfg))
            else:
                self.stages.append(nn.Identity())
            if skip_attention:
                self.skip_attentions.append(
                    MODELS.build(dict(skip_attention, embed_dims=dims)))
            if decoder_attention:
                self.decoder_attentions.append(
                    MODELS.build(dict(decoder_attention, in_channels=dims)))
        self.norm_up = nn.LayerNorm(in_channels[0])
        self.final_expand = PatchExpanding(
            in_channels[0], self.channels, scale=final_scale,
            bias=expand_bias, with_norm=final_expand_norm)
        # the classifier: Swin-Unet's bias-free 1x1 `output` convolution
        self.conv_seg = nn.Conv2d(
            self.channels, self.out_channels, cls_kernel_size,
            padding=cls_kernel_size // 2, bias=cls_bias)

    def _drop_path_rates(self, rate: float,
                         encoder_depths: Optional[Sequence[int]]
                         ) -> List[List[float]]:
        """Per decoder level, the drop-path rate of each block."""
        if encoder_depths is None:
            flat = drop_path_rates(rate, max(sum(self.depths), 1))
            starts = [sum(self.depths[:i]) for i in range(len(self.depths))]
        else:
            if len(encoder_depths) < len(self.depths) or any(
                    d > e for d, e in zip(self.depths, encoder_depths)):
                raise ValueError(
                    'PatchExpandingUNetHead: encoder_depths must cover every '
                    f'decoder level, but got encoder_depths='
                    f'{list(encoder_depths)} for depths={self.depths}')
            flat = drop_path_rates(rate, sum(encoder_depths))
            starts = [sum(encoder_depths[:i]) for i in range(len(self.depths))]
        return [flat[s:s + d] for s, d in zip(starts, self.depths)]

    def init_weights(self) -> None:
        super().init_weights()
        modules = [*self.expands, *self.fuses, self.norm_up,
                   self.final_expand]
        for module in modules:
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_init(m, std=0.02, bias=0.0)
                elif isinstance(m, nn.LayerNorm):
                    constant_init(m, val=1.0, bias=0.0)

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """Decode the pyramid into features at the input resolution.

        Args:
            inputs (Sequence[Tensor]): backbone outputs; those at
                ``in_index`` are (N, C_i, H_i, W_i), H_i halving per level.

        Returns:
            Tensor: (N, channels, final_scale * H_0, final_scale * W_0).
        """
        feats = self._transform_inputs(inputs)
        for i, (feat, c) in enumerate(zip(feats, self.in_channels)):
            if feat.dim() != 4 or feat.shape[1] != c:
                raise ValueError(
                    f'PatchExpandingUNetHead: input {i} should be (N, {c}, '
                    f'H, W) (in_channels), but got {tuple(feat.shape)}')
        x = feats[-1].permute(0, 2, 3, 1)
        for i in reversed(range(len(self.stages))):
            skip = feats[i].permute(0, 2, 3, 1)
            x = _match_size(self.expands[i](x), skip.shape[1:3])
            if self.skip_attentions is not None:
                x, skip = self.skip_attentions[i](x, skip.contiguous())
            x = self.stages[i](self.fuses[i](torch.cat([x, skip], dim=-1)))
            if self.decoder_attentions is not None:
                x = self.decoder_attentions[i](
                    x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.final_expand(self.norm_up(x))
        return x.permute(0, 3, 1, 2).contiguous()

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Args: inputs (Sequence[Tensor]): backbone outputs.

        Returns:
            Tensor: ``seg_logits``, (N, num_classes, 4 H_0, 4 W_0).
        """
        return self.cls_seg(self._forward_feature(inputs))
