"""A stage of focal-modulation blocks for U-Net decoders.

Focal-UNet (Naderi et al., "Focal-UNet: UNet-like Focal Modulation for
Medical Image Segmentation", arXiv:2212.09263; official code
``givkashi/Focal-Unet``, ``networks/FocalNet/classification/focalUnet.py``)
decodes with the FocalNet blocks of its encoder. This adapter stacks
densekit's :class:`densekit.models.layers.focalnet_block.FocalNetBlock` (the
block the FocalNet backbone is built of, not a copy) behind the channels-last
interface of :class:`densekit.models.decode_heads.PatchExpandingUNetHead`.
"""
from typing import Optional, Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.models.layers.focalnet_block import (FocalNetBlock,
                                                   _trunc_normal_init)
from densekit.registry import MODELS


@MODELS.register_module()
class FocalNetDecoderStage(BaseModule):
    """``depth`` :class:`FocalNetBlock` s on a (N, H, W, C) map.

    Args:
        embed_dims (int): Channels C.
        depth (int): Number of blocks.
        drop_path_rates (Sequence[float]): Stochastic depth of each block.
        focal_level (int): Focal levels L. Defaults to 2 (FocalNet SRF;
            Focal-UNet uses the LRF level 3).
        focal_window (int): First focal kernel. Defaults to 3.
        mlp_ratio (float): MLP hidden ratio. Defaults to 4.
        drop_rate (float): Dropout. Defaults to 0.
        use_layerscale (bool): Layer scale. Defaults to False.
        layer_scale_init_value (float): Initial scale. Defaults to 1e-4.
        use_postln (bool): Post-LN blocks. Defaults to False.
        use_postln_in_modulation (bool): LN inside the modulation.
        normalize_modulator (bool): Divide the context by ``L + 1``.
        init_cfg (dict, optional): Defaults to None: the official
            initialisation (trunc-normal(0.02) Linear, unit LN).

    Shapes: (N, H, W, C) -> (N, H, W, C).
    """

    def __init__(self,
                 *,
                 embed_dims: int,
                 depth: int,
                 drop_path_rates: Sequence[float],
                 focal_level: int = 2,
                 focal_window: int = 3,
                 mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0,
                 use_layerscale: bool = False,
                 layer_scale_init_value: float = 1e-4,
                 use_postln: bool = False,
                 use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(drop_path_rates) != depth:
            raise ValueError(f'FocalNetDecoderStage: {depth} blocks need '
                             f'{depth} drop_path_rates, got '
                             f'{list(drop_path_rates)}')
        self.embed_dims = embed_dims
        self.blocks = nn.ModuleList(
            FocalNetBlock(
                embed_dims, focal_level, focal_window, mlp_ratio=mlp_ratio,
                drop_rate=drop_rate, drop_path=rate,
                use_layerscale=use_layerscale,
                layer_scale_init_value=layer_scale_init_value,
                use_postln=use_postln,
                use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator)
            for rate in drop_path_rates)
        self.apply(_trunc_normal_init)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): channels-last map, (N, H, W, C).

        Returns:
            Tensor: (N, H, W, C).
        """
        for block in self.blocks:
            x = block(x)
        return x
