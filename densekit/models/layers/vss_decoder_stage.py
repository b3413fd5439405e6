"""A stage of visual state-space (VSS) blocks for U-Net decoders.

VM-UNet (Ruan and Xiang, arXiv:2402.02491), U-Mamba (Ma et al.,
arXiv:2401.04722) and LightM-UNet (Liao et al., arXiv:2403.05246) decode
with Mamba-style 2D selective-scan blocks. densekit's Mamba U-Net reuses the
Mamba YOLO block, :class:`densekit.models.layers.VSSBlock` (SS2D inside, the
block of the ``MambaYOLO`` backbone), behind the channels-last interface of
:class:`densekit.models.decode_heads.PatchExpandingUNetHead`.
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS
from .c2f_layer import YOLO_NORM_CFG
from .mamba_yolo_blocks import VSSBlock


@MODELS.register_module()
class VSSDecoderStage(BaseModule):
    """``depth`` :class:`VSSBlock` s (C -> C) on a (N, H, W, C) map.

    Args:
        embed_dims (int): Channels C.
        depth (int): Number of blocks.
        drop_path_rates (Sequence[float]): Stochastic depth of each block.
        mlp_ratio (float): RGBlock hidden ratio. Defaults to 4.
        ssm_d_state (int): SS2D state size. Defaults to 16.
        ssm_ratio (float): SS2D inner-channel ratio. Defaults to 2.
        ssm_dt_rank (int | str): SS2D ``dt_rank``. Defaults to 'auto'.
        ssm_conv (int): SS2D depth-wise kernel. Defaults to 3.
        norm_cfg (dict): BatchNorm of the conv-BN pairs (Mamba YOLO's).
        init_cfg (dict, optional): Defaults to None (the blocks' own init).

    Shapes: (N, H, W, C) -> (N, H, W, C); the blocks run channels-first.
    """

    def __init__(self,
                 *,
                 embed_dims: int,
                 depth: int,
                 drop_path_rates: Sequence[float],
                 mlp_ratio: float = 4.0,
                 ssm_d_state: int = 16,
                 ssm_ratio: float = 2.0,
                 ssm_dt_rank: Union[int, str] = 'auto',
                 ssm_conv: int = 3,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(drop_path_rates) != depth:
            raise ValueError(f'VSSDecoderStage: {depth} blocks need {depth} '
                             f'drop_path_rates, got {list(drop_path_rates)}')
        self.embed_dims = embed_dims
        self.blocks = nn.Sequential(*(
            VSSBlock(embed_dims, embed_dims, mlp_ratio=mlp_ratio,
                     drop_path=rate, ssm_d_state=ssm_d_state,
                     ssm_ratio=ssm_ratio, ssm_dt_rank=ssm_dt_rank,
                     ssm_conv=ssm_conv, norm_cfg=norm_cfg)
            for rate in drop_path_rates))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): channels-last map, (N, H, W, C).

        Returns:
            Tensor: (N, H, W, C).
        """
        out = self.blocks(x.permute(0, 3, 1, 2).contiguous())
        return out.permute(0, 2, 3, 1)
