"""A stage of shifted-window Transformer blocks for U-Net decoders.

Swin-Unet (Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical
Image Segmentation", ECCVW 2022, arXiv:2105.05537; official code
``HuCaoFighting/Swin-Unet``, ``networks/swin_transformer_unet_skip_expand_
decoder_sys.py``: ``BasicLayer_up``) decodes with the same Swin blocks its
encoder uses. This adapter wraps mmseg's own
:class:`mmseg.models.backbones.swin.SwinBlockSequence` (no second copy of the
block) behind the channels-last interface of
:class:`densekit.models.decode_heads.PatchExpandingUNetHead`.
"""
from typing import Optional, Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmseg.models.backbones.swin import SwinBlockSequence
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class SwinDecoderStage(BaseModule):
    """``depth`` Swin blocks (W-MSA / SW-MSA alternating) on a (N, H, W, C)
    map, the decoder stage of Swin-Unet.

    Args:
        embed_dims (int): Channels C.
        depth (int): Number of blocks.
        num_heads (int): Attention heads (C must be divisible by it).
        drop_path_rates (Sequence[float]): Stochastic depth of each block
            (``depth`` values).
        window_size (int): Attention window. Defaults to 7 (Swin-T).
        mlp_ratio (float): FFN hidden ratio. Defaults to 4.
        qkv_bias (bool): Bias of the qkv projection. Defaults to True.
        qk_scale (float, optional): Overrides ``head_dims ** -0.5``.
        drop_rate (float): Dropout after attention / FFN. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        act_cfg (dict): FFN activation. Defaults to GELU.
        norm_cfg (dict): Block norms. Defaults to LN.
        init_cfg (dict, optional): mmengine init config. Defaults to None:
            the official initialisation (trunc-normal(0.02) Linear, unit LN)
            is applied at construction.

    Note:
        mmseg's blocks pad a map to a multiple of ``window_size`` and keep
        the shift on maps no larger than one window; the official blocks
        shrink the window to the map instead and drop the shift there. The
        two differ only on maps smaller than or equal to one window
        (Swin-Unet's 7 x 7 bottleneck, which mmseg's encoder computes); the
        parameters are the same.

    Shapes: (N, H, W, C) -> (N, H, W, C).
    """

    def __init__(self,
                 *,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 drop_path_rates: Sequence[float],
                 window_size: int = 7,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'SwinDecoderStage: embed_dims={embed_dims} is '
                             f'not divisible by num_heads={num_heads}')
        if len(drop_path_rates) != depth:
            raise ValueError(f'SwinDecoderStage: {depth} blocks need '
                             f'{depth} drop_path_rates, got '
                             f'{list(drop_path_rates)}')
        self.embed_dims = embed_dims
        self.stage = SwinBlockSequence(
            embed_dims=embed_dims,
            num_heads=num_heads,
            feedforward_channels=int(mlp_ratio * embed_dims),
            depth=depth,
            window_size=window_size,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=list(drop_path_rates),
            downsample=None,
            act_cfg=act_cfg,
            norm_cfg=norm_cfg)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=0.02, bias=0.0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): channels-last map, (N, H, W, C).

        Returns:
            Tensor: (N, H, W, C).
        """
        n, h, w, c = x.shape
        out = self.stage(x.reshape(n, h * w, c), (h, w))[0]
        return out.view(n, h, w, c)
