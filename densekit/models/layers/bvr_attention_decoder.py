"""BVR's attention decoder: update query features from sampled keypoints.

RelationNet++ / BVR (NeurIPS 2020, https://arxiv.org/abs/2010.15831;
official ``microsoft/RelationNet2``, ``code/models/utils/bvr_transformer/
transformer.py`` ``SimpleBVR_Transformer`` and ``multihead_attention.py``).

One decoder serves one branch of the main head (classification with center
keys, regression with top-left and bottom-right corner keys). For each key
type ``t`` it runs one multi-head attention with its own projections; the
attention logits are appearance plus geometry::

    logits_t = (W_q f_q) . (W_k^t f_k) / sqrt(d) + G_t(p_q, p_k)   # per head
    f_q'     = relu(f_q + sum_t W_o^t softmax_k(logits_t) W_v^t f_k)

``G`` is :class:`BVRLocationEmbedding` (one shared across the key types, as
the official ``shared_positional_encoding=True``; the owner may pass the
same module to several decoders). Queries from all FPN levels are handled
in one call (the keys are shared by all levels), with
``F.scaled_dot_product_attention`` taking ``G`` as its additive mask: no
Python loop over queries or keys.
"""
import math
from typing import List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class BVRAttentionDecoder(BaseModule):
    """Single-layer BVR decoder with one attention per key type.

    Args:
        embed_dims (int): Channels of the queries (and of the output).
        num_heads (int): Attention heads. Defaults to 8.
        key_dims (int, optional): Channels of the keys. Defaults to None:
            ``embed_dims``.
        attention_dims (int, optional): Width of the projected queries,
            keys and values (``W_q``, ``W_k``, ``W_v``; ``W_o`` maps it back
            to ``embed_dims``). Defaults to None: ``embed_dims``, the
            official one-stage setting; a narrower width keeps the decoder
            small on wide queries (BVRRoIHead's 1024-d RoI features).
        num_key_types (int): Number of key sets (1 for the classification
            branch's centers, 2 for the regression branch's corners).
            Defaults to 1.
        location_embedding (dict | nn.Module, optional): A
            :class:`BVRLocationEmbedding` (or its config, built with
            ``num_heads``); None for appearance-only attention. Defaults to
            ``dict(type='densekit.BVRLocationEmbedding')``.
        with_appearance (bool): Use the ``q . k`` term (official
            ``with_appearance_relation``). Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 *,
                 num_heads: int = 8,
                 key_dims: Optional[int] = None,
                 attention_dims: Optional[int] = None,
                 num_key_types: int = 1,
                 location_embedding: Union[dict, nn.Module, None] = dict(
                     type='densekit.BVRLocationEmbedding'),
                 with_appearance: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        key_dims = embed_dims if key_dims is None else key_dims
        attention_dims = embed_dims if attention_dims is None else \
            attention_dims
        if attention_dims % num_heads:
            raise ValueError(f'attention_dims ({attention_dims}; embed_dims '
                             f'when not given) must be divisible by '
                             f'num_heads ({num_heads})')
        if location_embedding is None and not with_appearance:
            raise ValueError('with_appearance=False needs a '
                             'location_embedding: nothing to attend with')
        self.embed_dims = embed_dims
        self.key_dims = key_dims
        self.attention_dims = attention_dims
        self.num_heads = num_heads
        self.num_key_types = num_key_types
        self.with_appearance = with_appearance
        if isinstance(location_embedding, dict):
            location_embedding = MODELS.build(
                dict(location_embedding, num_heads=num_heads))
        self.location_embedding = location_embedding
        # one query, one (key, value) and one output projection per key type
        self.query_projs = nn.ModuleList(
            nn.Linear(embed_dims, attention_dims)
            for _ in range(num_key_types))
        self.key_value_projs = nn.ModuleList(
            nn.Linear(key_dims, 2 * attention_dims)
            for _ in range(num_key_types))
        self.out_projs = nn.ModuleList(
            nn.Linear(attention_dims, embed_dims)
            for _ in range(num_key_types))
        for proj in (*self.query_projs, *self.key_value_projs):
            # torch MultiheadAttention's init (xavier over the fused q, k, v)
            bound = math.sqrt(6 / (proj.in_features + 3 * attention_dims))
            nn.init.uniform_(proj.weight, -bound, bound)
            nn.init.zeros_(proj.bias)
        for proj in self.out_projs:
            nn.init.zeros_(proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """``(N, L, C)`` -> ``(N, heads, L, C // heads)``."""
        n, length, _ = x.shape
        return x.view(n, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, query: Tensor, query_pos: Tensor,
                keys: Sequence[Tensor], key_pos: Sequence[Tensor]) -> Tensor:
        """Update the queries.

        Args:
            query (Tensor): ``(N, Q, C)`` query features (all levels
                concatenated).
            query_pos (Tensor): ``(N, Q, 2)`` query locations ``(x, y)``, px.
            keys (Sequence[Tensor]): ``num_key_types`` tensors ``(N, K,
                key_dims)``.
            key_pos (Sequence[Tensor]): ``num_key_types`` tensors
                ``(N, K, 2)``, key locations in px.

        Returns:
            Tensor: ``(N, Q, C)`` updated query features.
        """
        if len(keys) != self.num_key_types or len(key_pos) != len(keys):
            raise ValueError(f'expected {self.num_key_types} key sets, got '
                             f'{len(keys)} features and {len(key_pos)} '
                             f'positions')
        c = self.attention_dims
        updates: List[Tensor] = []
        for t, (key, pos) in enumerate(zip(keys, key_pos)):
            q = self._heads(self.query_projs[t](query))
            k, v = self.key_value_projs[t](key).split(c, dim=-1)
            k, v = self._heads(k), self._heads(v)
            bias = None
            if self.location_embedding is not None:
                bias = self.location_embedding(query_pos, pos)  # N h Q K
            if self.with_appearance:
                out = F.scaled_dot_product_attention(q, k, v,
                                                     attn_mask=bias)
            else:
                out = bias.softmax(-1) @ v
            n, _, length, _ = out.shape
            out = out.transpose(1, 2).reshape(n, length, c)
            updates.append(self.out_projs[t](out))
        return F.relu(query + sum(updates))
