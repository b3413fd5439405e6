"""A per-token classifier head (SETR-Naive style) that can grade tokens for
DToP (SETR, Zheng et al., CVPR 2021, §3.3 "Naive upsampling"; DToP, Tang et
al., ICCV 2023, applies its pruning to SETR as well as SegViT)."""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class TokenClassifierHead(BaseDecodeHead):
    """LayerNorm -> Linear -> GELU -> Linear(classes) on every token.

    Trained with mmseg's decode losses (cross-entropy on the upsampled
    logits, ``loss_decode`` as for any mmseg head); predictions are class
    probabilities (softmax), the score DToP thresholds, so pruned and
    unpruned inference produce comparable maps.

    Args:
        in_channels (int): Token channels of the backbone.
        channels (int): Hidden width.
        init_cfg (dict, optional): Defaults to None (truncated-normal
            linears, as :class:`ATMHead`).
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead`'s.
    """

    def __init__(self, in_channels: int, channels: int,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(in_channels, channels, init_cfg=init_cfg, **kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError('TokenClassifierHead reads one feature map: '
                             f'in_channels must be an int, got '
                             f'{self.in_channels}')
        del self.conv_seg  # the classifier is the last linear layer
        self.mlp = nn.Sequential(
            nn.LayerNorm(self.in_channels),
            nn.Linear(self.in_channels, channels), nn.GELU(),
            nn.Linear(channels, self.num_classes))

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)

    def forward_tokens(self, tokens: Tensor) -> Tuple[Tensor]:
        """(B, N, C) tokens -> class logits (B, K, N), as a 1-tuple."""
        return (self.mlp(tokens).transpose(1, 2), )

    @staticmethod
    def token_scores(logits: Tensor) -> Tensor:
        """Class probabilities (B, K, N)."""
        return logits.softmax(dim=1)

    @staticmethod
    def token_outputs_to_feat(logits: Tensor) -> Tensor:
        """A class-logit map (B, K, h, w) is already what
        :meth:`loss_by_feat` and :meth:`predict_by_feat` read."""
        return logits

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Feature maps -> class logits (B, K, h, w)."""
        x = self._transform_inputs(inputs)
        B, _, h, w = x.shape
        logits, = self.forward_tokens(x.flatten(2).transpose(1, 2))
        return logits.view(B, -1, h, w)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Probabilities, resized to the input (DToP scatters the same)."""
        return super().predict_by_feat(seg_logits.softmax(dim=1),
                                       batch_img_metas)
