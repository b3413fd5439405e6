"""SegViT's attention-to-mask (ATM) head, single stage, as DToP's exit head
(SegViT, Zhang et al., 2022, §3.2; DToP, Tang et al., 2023, §3.3)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmengine.model.weight_init import constant_init, trunc_normal_init
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import accuracy
from mmseg.models.utils import resize
from torch import Tensor

from densekit.registry import MODELS


class MaskAttention(nn.Module):
    """Cross-attention from class queries to tokens that also returns its
    pre-softmax similarities, averaged over heads: the class masks (ATM)."""

    def __init__(self, dims: int, num_heads: int,
                 attn_drop: float = 0.1) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(f'dims={dims} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.scale = (dims // num_heads)**-0.5
        self.q = nn.Linear(dims, dims)
        self.k = nn.Linear(dims, dims)
        self.v = nn.Linear(dims, dims)
        self.proj = nn.Linear(dims, dims)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, queries: Tensor,
                tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, K, C) queries, (B, N, C) tokens -> (B, K, C), (B, K, N)."""
        B, K, C = queries.shape
        N = tokens.shape[1]
        heads = self.num_heads
        q = self.q(queries).view(B, K, heads, -1).transpose(1, 2)
        k = self.k(tokens).view(B, N, heads, -1).transpose(1, 2)
        v = self.v(tokens).view(B, N, heads, -1).transpose(1, 2)
        logits = (q @ k.transpose(-2, -1)) * self.scale  # (B, heads, K, N)
        attn = self.attn_drop(logits.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(B, K, C)
        return self.proj(out), logits.mean(dim=1)


class ATMDecoderLayer(nn.Module):
    """Post-norm decoder layer: query self-attention, mask cross-attention,
    FFN (``torch.nn.TransformerDecoderLayer`` with the cross-attention
    returning its similarity map)."""

    def __init__(self, dims: int, num_heads: int, ffn_ratio: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            dims, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = MaskAttention(dims, num_heads, attn_drop=dropout)
        self.ffn = nn.Sequential(
            nn.Linear(dims, dims * ffn_ratio), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(dims * ffn_ratio, dims))
        self.norm1 = nn.LayerNorm(dims)
        self.norm2 = nn.LayerNorm(dims)
        self.norm3 = nn.LayerNorm(dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor,
                tokens: Tensor) -> Tuple[Tensor, Tensor]:
        q = self.self_attn(queries, queries, queries, need_weights=False)[0]
        queries = self.norm1(queries + self.dropout(q))
        q, mask_logits = self.cross_attn(queries, tokens)
        queries = self.norm2(queries + self.dropout(q))
        queries = self.norm3(queries + self.dropout(self.ffn(queries)))
        return queries, mask_logits


@MODELS.register_module()
class ATMHead(BaseDecodeHead):
    """Class queries that read a token sequence and return per-class masks.

    One learned query per class attends to the tokens through
    ``num_layers`` decoder layers; the last layer's query-token similarity
    is the class's mask logit for every token, and a linear layer on the
    query gives its present / no-object logits. A token's score for class
    ``k`` is ``softmax(presence_k)[present] * sigmoid(mask_k)`` (in
    [0, 1]), which DToP thresholds to decide which tokens exit.

    Works on any set of tokens (:meth:`forward_tokens`), so a DToP
    segmentor can feed it only the tokens still in the sequence; the usual
    mmseg interface (:meth:`forward` on feature maps, :meth:`loss`,
    :meth:`predict`) serves training and unpruned inference.

    Args:
        in_channels (int): Token channels of the backbone.
        channels (int): Decoder width. Official ViT-B config: 384.
        num_layers (int): Decoder layers. Defaults to 3.
        num_heads (int): Attention heads. Defaults to 6.
        loss_decode (dict): Defaults to ``densekit.ATMLoss``.
        init_cfg (dict, optional): Defaults to None: :meth:`init_weights`
            applies the official truncated-normal init.
        **kwargs: :class:`mmseg.models.decode_heads.BaseDecodeHead`'s.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 num_layers: int = 3,
                 num_heads: int = 6,
                 loss_decode: dict = dict(type='densekit.ATMLoss'),
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(in_channels, channels, loss_decode=loss_decode,
                         init_cfg=init_cfg, **kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError('ATMHead reads one feature map: in_channels '
                             f'must be an int, got {self.in_channels}')
        del self.conv_seg  # masks come from attention, not a 1x1 conv
        self.input_proj = nn.Linear(self.in_channels, channels)
        self.proj_norm = nn.LayerNorm(channels)
        self.layers = nn.ModuleList(
            ATMDecoderLayer(channels, num_heads) for _ in range(num_layers))
        self.queries = nn.Embedding(self.num_classes, channels)
        self.presence = nn.Linear(channels, 2)

    def init_weights(self) -> None:
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)

    def forward_tokens(self, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, N, C) tokens -> presence logits (B, K, 2), mask logits
        (B, K, N)."""
        x = self.proj_norm(self.input_proj(tokens))
        # a copy, not an expand view: torch's module tracker (FlopCounterMode)
        # rejects views of a parameter made under no_grad
        queries = self.queries.weight.unsqueeze(0).repeat(x.shape[0], 1, 1)
        for layer in self.layers:
            queries, mask_logits = layer(queries, x)
        return self.presence(queries), mask_logits

    @staticmethod
    def token_scores(presence_logits: Tensor, mask_logits: Tensor) -> Tensor:
        """Per-class token scores in [0, 1]: (B, K, N)."""
        return presence_logits.softmax(dim=-1)[..., :1] * mask_logits.sigmoid()

    def token_outputs_to_feat(self, presence_logits: Tensor,
                              mask_logits: Tensor) -> Dict[str, Tensor]:
        """Presence logits (B, K, 2) and a mask-logit map (B, K, h, w) ->
        the dict :meth:`loss_by_feat` and :meth:`predict_by_feat` read:
        ``presence_logits``, ``mask_logits`` and ``scores`` (B, K, h, w)."""
        scores = self.token_scores(presence_logits, mask_logits.flatten(2))
        return dict(presence_logits=presence_logits, mask_logits=mask_logits,
                    scores=scores.view(mask_logits.shape))

    def forward(self, inputs: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Feature maps -> dict of ``presence_logits`` (B, K, 2),
        ``mask_logits`` and ``scores`` (both (B, K, h, w))."""
        x = self._transform_inputs(inputs)
        B, C, h, w = x.shape
        presence_logits, mask_logits = self.forward_tokens(
            x.flatten(2).transpose(1, 2))
        return self.token_outputs_to_feat(presence_logits,
                                          mask_logits.view(B, -1, h, w))

    def loss_by_feat(self, seg_logits: Dict[str, Tensor],
                     batch_data_samples: List) -> Dict[str, Tensor]:
        seg_label = self._stack_batch_gt(batch_data_samples).squeeze(1)
        losses = self.loss_decode(
            seg_logits['presence_logits'], seg_logits['mask_logits'],
            seg_label, ignore_index=self.ignore_index)
        scores = resize(seg_logits['scores'], size=seg_label.shape[-2:],
                        mode='bilinear', align_corners=self.align_corners)
        losses['acc_seg'] = accuracy(scores, seg_label,
                                     ignore_index=self.ignore_index)
        return losses

    def predict_by_feat(self, seg_logits: Dict[str, Tensor],
                        batch_img_metas: List[dict]) -> Tensor:
        return super().predict_by_feat(seg_logits['scores'], batch_img_metas)
