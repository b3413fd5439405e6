"""Att-SwinU-Net's cross-contextual attention for U-Net skip connections.

Aghdam, Azad, Zarvani and Merhof, "Attention Swin U-Net: Cross-Contextual
Attention Mechanism for Skin Lesion Segmentation", ISBI 2023
(arXiv:2210.16898). Official code ``NITR098/AttSwinUNet``: the skip path of
``networks/decoder.py`` / ``model/decoder.py`` (``mode='crossvittoken'``,
later renamed ``'cross_contextual_attention'``, applied to every skip with
``skip_num='3'``) runs a CrossViT cross-attention transformer
(``skipconnection/crossvit.py``: ``CrossTransformer(sm_dim=C, lg_dim=C,
depth=2, heads=8, dim_head=64)``) between the up-sampled decoder tokens and
the encoder's skip tokens, then concatenates its two outputs as Swin-Unet
concatenates decoder and skip.

What the official module computes, for decoder tokens ``x: r(B L C)`` and
skip tokens ``s: r(B L C)`` (this is an independent implementation)::

    gx = mean_L(x),  gs = mean_L(s)              # one summary token each
    repeat depth times:
        gx = gx + Attn_x(q=LN(gx), kv=[LN(gx); s[1:]])
        gs = gs + Attn_s(q=LN(gs), kv=[LN(gs); x[1:]])
    x' = [gx; x[1:]],  s' = [gs; s[1:]]

``Attn`` is multi-head attention with ``heads * head_dims`` inner channels
(bias-free q/kv projections, biased output projection). CrossViT's
"CLS token" is the mean token here, and, as in the official code, it
*replaces the first token* of each sequence (the patch tokens are
``t[:, 1:]``); every other token passes through unchanged, so the module
only exchanges one global token per branch. The other ablation switches of
the official repository (XCiT cross-covariance attention on the skip,
adding encoder attention maps to the decoder's, which its Swin block
computes but never uses) are not part of this module.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch import Tensor

from densekit.registry import MODELS


class _TokenCrossAttention(nn.Module):
    """Pre-norm multi-head attention of one query token over a context.

    ``q = Wq LN(g)``, ``k, v = Wkv [LN(g); context]``, softmax attention,
    output projection + dropout.

    Args:
        embed_dims (int): Channels C of query and context.
        num_heads (int): Heads.
        head_dims (int): Channels per head.
        drop_rate (float): Dropout of the attention map and the output.
    """

    def __init__(self, embed_dims: int, num_heads: int, head_dims: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        inner = num_heads * head_dims
        self.num_heads = num_heads
        self.scale = head_dims**-0.5
        self.norm = nn.LayerNorm(embed_dims)
        self.q = nn.Linear(embed_dims, inner, bias=False)
        self.kv = nn.Linear(embed_dims, 2 * inner, bias=False)
        self.proj = nn.Linear(inner, embed_dims)
        self.attn_drop = nn.Dropout(drop_rate)
        self.proj_drop = nn.Dropout(drop_rate)

    def forward(self, token: Tensor, context: Tensor) -> Tensor:
        """Args:
            token (Tensor): query token, (B, 1, C).
            context (Tensor): tokens attended to, (B, L, C).

        Returns:
            Tensor: the attention output for ``token``, (B, 1, C).
        """
        b = token.shape[0]
        query = self.norm(token)
        context = torch.cat([query, context], dim=1)  # the token sees itself
        heads = self.num_heads
        q = self.q(query).view(b, 1, heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, heads,
                                     -1).permute(2, 0, 3, 1, 4)
        attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1))
                              .softmax(dim=-1))              # (B, h, 1, L+1)
        out = (attn @ v).transpose(1, 2).reshape(b, 1, -1)
        return self.proj_drop(self.proj(out))


@MODELS.register_module()
class CrossContextualAttention(BaseModule):
    """Att-SwinU-Net's skip attention (module docstring): the decoder's and
    the skip's global tokens attend to each other's tokens.

    Plugged into :class:`densekit.models.decode_heads.PatchExpandingUNetHead`
    as ``skip_attention=dict(type='densekit.CrossContextualAttention')``; the
    head builds one per skip with ``embed_dims`` set to the skip's channels.

    Args:
        embed_dims (int): Channels C of both inputs.
        depth (int): Cross-attention layers. Defaults to 2 (official).
        num_heads (int): Heads. Defaults to 8 (official).
        head_dims (int): Channels per head. Defaults to 64 (official), so
            the inner width 512 does not depend on C.
        drop_rate (float): Dropout. Defaults to 0 (the official decoder
            passes its ``drop_rate``, 0).
        init_cfg (dict, optional): Defaults to None: trunc-normal(0.02)
            Linear and unit LN, as the official ``SwinAttentionUnet``
            initialises every module.

    Examples:
        >>> attn = CrossContextualAttention(embed_dims=16, num_heads=2,
        ...                                 head_dims=8)
        >>> x, s = torch.rand(2, 4, 4, 16), torch.rand(2, 4, 4, 16)
        >>> [tuple(t.shape) for t in attn(x, s)]
        [(2, 4, 4, 16), (2, 4, 4, 16)]
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int = 2,
                 num_heads: int = 8,
                 head_dims: int = 64,
                 drop_rate: float = 0.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('embed_dims', embed_dims), ('depth', depth),
                            ('num_heads', num_heads),
                            ('head_dims', head_dims)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'CrossContextualAttention: {name} must be '
                                 f'an int >= 1, but got {value!r}')
        self.embed_dims = embed_dims
        # layer i: (decoder token attends to skip, skip token to decoder)
        self.layers = nn.ModuleList(
            nn.ModuleList([
                _TokenCrossAttention(embed_dims, num_heads, head_dims,
                                     drop_rate),
                _TokenCrossAttention(embed_dims, num_heads, head_dims,
                                     drop_rate)
            ]) for _ in range(depth))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=0.02, bias=0.0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0.0)

    def forward(self, x: Tensor, skip: Tensor) -> Tuple[Tensor, Tensor]:
        """Args:
            x (Tensor): up-sampled decoder map, channels-last (B, H, W, C).
            skip (Tensor): encoder skip map, (B, H, W, C).

        Returns:
            tuple[Tensor, Tensor]: ``(x', skip')``, both (B, H, W, C): the
            inputs with their first token (top-left position) replaced by
            the updated global token.
        """
        if x.shape != skip.shape or x.shape[-1] != self.embed_dims:
            raise ValueError(
                'CrossContextualAttention: expected decoder and skip maps of '
                f'one shape (B, H, W, {self.embed_dims}), but got '
                f'{tuple(x.shape)} and {tuple(skip.shape)}')
        b, h, w, c = x.shape
        x_tokens = x.reshape(b, h * w, c)
        s_tokens = skip.reshape(b, h * w, c)
        x_global = x_tokens.mean(dim=1, keepdim=True)
        s_global = s_tokens.mean(dim=1, keepdim=True)
        x_rest, s_rest = x_tokens[:, 1:], s_tokens[:, 1:]
        for x_attends_skip, skip_attends_x in self.layers:
            x_global = x_global + x_attends_skip(x_global, s_rest)
            s_global = s_global + skip_attends_x(s_global, x_rest)
        x_out = torch.cat([x_global, x_rest], dim=1).view(b, h, w, c)
        s_out = torch.cat([s_global, s_rest], dim=1).view(b, h, w, c)
        return x_out, s_out
