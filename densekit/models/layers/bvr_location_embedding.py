"""BVR's relative location embedding: query-key geometry as attention bias.

RelationNet++ / BVR (Chi, Wei and Hu, "RelationNet++: Bridging Visual
Representations for Object Detection via Transformer Decoder", NeurIPS 2020,
https://arxiv.org/abs/2010.15831; official code ``microsoft/RelationNet2``,
``code/models/utils/bvr_transformer/positional_encoding.py``,
``PositionalEncodingSineLearned`` in its approximate ``base_size`` mode).

For a query at ``p_q`` and a key at ``p_k`` (pixels), with
``(dx, dy) = (p_k - p_q) / position_scale``::

    e(dx, dy) = [sin(dx / T_i), cos(dx / T_i), sin(dy / T_i), cos(dy / T_i)]
                with T_i = temperature ** (4 i / embed_dims), i < embed_dims/4
    bias_h    = log(max(eps, w_h . e(dx, dy) + b_h))        # one per head

"Shared location embedding" (paper Sec. 3.3): the sine/cosine embedding is
computed once, on the integer grid ``[-R, R]^2`` (``R = base_size // 2``,
units of ``position_scale`` pixels), projected there by the learned linear
map and then looked up for every (query, key) pair by interpolation, instead
of embedding the ``Q x K`` pairs one by one (and interpolated once per
distinct query coordinate, see :meth:`BVRLocationEmbedding._axis_bias`).
Because ``e`` is the
concatenation of an x part and a y part and the projection is linear, the
projected 2-D grid is ``P_x(dx) + P_y(dy) + b``; we keep the two 1-D tables
(``2R + 1`` rows each, a non-persistent buffer built once) and interpolate
linearly along each axis, which equals the official bilinear ``grid_sample``
on the 2-D table (bilinear interpolation of a separable sum is the sum of the
1-D interpolations). Offsets past ``R`` are clamped
(``padding_mode='border'``).
Difference: the official maps ``[-R, R]`` through ``grid_sample`` with
``align_corners=False``, which stretches offsets by ``(2R + 1) / 2R``
(0.25% for R = 200); we index the grid exactly.

One module can serve several attention decoders (BVR's
``shared_positional_encoding``): the table is data, the projection its
only weights.

``forward`` is the table path; ``forward_exact`` embeds every pair directly
(same signature, for tests and tiny inputs): the two agree exactly at integer
offsets.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS

EPS = 1e-6  # the official clamp before the log


def sine_embedding(offsets: Tensor, embed_dims: int,
                   temperature: float = 1000.) -> Tensor:
    """Sine/cosine embedding of 2-D offsets, BVR's layout.

    Args:
        offsets (Tensor): ``(..., 2)`` offsets ``(dx, dy)``.
        embed_dims (int): Output width, a multiple of 4.
        temperature (float): Wavelength base. Defaults to 1000.

    Returns:
        Tensor: ``(..., embed_dims)``: ``[sin dx, cos dx, sin dy, cos dy]``,
        each ``embed_dims // 4`` wide.
    """
    if embed_dims % 4:
        raise ValueError(f'embed_dims must be a multiple of 4, got '
                         f'{embed_dims}')
    return torch.cat([_axis_embedding(offsets[..., 0], embed_dims,
                                      temperature),
                      _axis_embedding(offsets[..., 1], embed_dims,
                                      temperature)], dim=-1)


def _axis_embedding(t: Tensor, embed_dims: int, temperature: float) -> Tensor:
    """``(...,)`` -> ``(..., embed_dims // 2)``: ``[sin(t/T), cos(t/T)]``."""
    num_freq = embed_dims // 4
    freq = torch.arange(num_freq, dtype=t.dtype, device=t.device)
    wavelength = temperature ** (4.0 / embed_dims * freq)
    phase = t[..., None] / wavelength
    return torch.cat([phase.sin(), phase.cos()], dim=-1)


@MODELS.register_module()
class BVRLocationEmbedding(BaseModule):
    """Relative location embedding of BVR, one attention bias per head.

    Args:
        num_heads (int): Number of attention heads (output channels).
        embed_dims (int): Width of the sine embedding. Defaults to 256.
        base_size (int): Side of the precomputed offset grid; offsets in
            ``[-base_size // 2, base_size // 2]`` (units of
            ``position_scale``) are interpolated, larger ones clamped.
            Defaults to 400 (official ``pos_cfg.base_size``).
        temperature (float): Sine wavelength base. Defaults to 1000.
        position_scale (float): Pixels per offset unit (BVR divides
            positions by the first keypoint stride, 8). Defaults to 8.
        log_scale (bool): Return ``log(max(eps, .))`` of the projection
            (official ``log_scale=True``) instead of the projection.
            Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_heads: int,
                 *,
                 embed_dims: int = 256,
                 base_size: int = 400,
                 temperature: float = 1000.,
                 position_scale: float = 8.,
                 log_scale: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if base_size < 2:
            raise ValueError(f'base_size must be >= 2, got {base_size}')
        if position_scale <= 0:
            raise ValueError(f'position_scale must be > 0, got '
                             f'{position_scale}')
        self.num_heads = num_heads
        self.embed_dims = embed_dims
        self.radius = base_size // 2
        self.temperature = temperature
        self.position_scale = float(position_scale)
        self.log_scale = log_scale
        self.proj = nn.Linear(embed_dims, num_heads)
        nn.init.normal_(self.proj.weight, std=0.01)  # official normal_init
        nn.init.zeros_(self.proj.bias)
        grid = torch.arange(-self.radius, self.radius + 1,
                            dtype=torch.float32)
        # (2R + 1, embed_dims // 2), the same for x and y; data, not weights
        self.register_buffer(
            'axis_table', _axis_embedding(grid, embed_dims, temperature),
            persistent=False)

    def relative_offsets(self, query_pos: Tensor, key_pos: Tensor) -> Tensor:
        """``(N, Q, 2)``, ``(N, K, 2)`` pixels -> ``(N, Q, K, 2)`` offsets
        ``(key - query) / position_scale``."""
        return (key_pos[:, None] - query_pos[:, :, None]) / \
            self.position_scale

    def _finish(self, bias: Tensor) -> Tensor:
        """``(N, Q, K, heads)`` projection -> ``(N, heads, Q, K)`` bias."""
        if self.log_scale:
            bias = bias.clamp(min=EPS).log()
        return bias.permute(0, 3, 1, 2)

    def forward(self, query_pos: Tensor, key_pos: Tensor) -> Tensor:
        """Table path.

        Args:
            query_pos (Tensor): ``(N, Q, 2)`` query locations ``(x, y)``, px.
            key_pos (Tensor): ``(N, K, 2)`` key locations ``(x, y)``, px.

        Returns:
            Tensor: ``(N, num_heads, Q, K)`` attention-logit bias.
        """
        half = self.embed_dims // 2
        weights = (self.proj.weight[:, :half], self.proj.weight[:, half:])
        bias = self.proj.bias
        for axis, weight in enumerate(weights):
            table = self.axis_table @ weight.t()  # (2R + 1, heads)
            bias = bias + self._axis_bias(table, query_pos[..., axis],
                                          key_pos[..., axis])
        return self._finish(bias)

    def _axis_bias(self, table: Tensor, query: Tensor, key: Tensor) -> Tensor:
        """One axis' projected embedding of every (query, key) pair.

        Queries share few distinct coordinates (a feature grid has one per
        column or row), so the table is interpolated for each distinct
        query coordinate and key, ``(N, U, K, heads)``, then expanded to the
        queries by a slice gather: the gradient scatters whole
        ``(K, heads)`` slices instead of ``Q x K`` single rows.

        Args:
            table (Tensor): ``(2R + 1, heads)`` projected axis table.
            query (Tensor): ``(N, Q)`` query coordinates, px.
            key (Tensor): ``(N, K)`` key coordinates, px.

        Returns:
            Tensor: ``(N, Q, K, heads)``.
        """
        if query.requires_grad:  # unique() has no gradient: pair by pair
            rel = (key[:, None] - query[..., None]) / self.position_scale
            return _lerp_rows(table, rel + self.radius)
        coords, inverse = torch.unique(query, return_inverse=True)
        rel = (key[:, None] - coords[None, :, None]) / self.position_scale
        per_coord = _lerp_rows(table, rel + self.radius)  # N, U, K, heads
        batch = torch.arange(query.shape[0], device=query.device)[:, None]
        return per_coord[batch, inverse]

    def forward_exact(self, query_pos: Tensor, key_pos: Tensor) -> Tensor:
        """Reference path: embeds every (query, key) pair (``Q x K x
        embed_dims`` memory). Same signature and output as :meth:`forward`
        (offsets clamped to the same range)."""
        rel = self.relative_offsets(query_pos, key_pos).clamp(
            -self.radius, self.radius)
        emb = sine_embedding(rel, self.embed_dims, self.temperature)
        return self._finish(self.proj(emb))


def _lerp_rows(table: Tensor, index: Tensor) -> Tensor:
    """Linear interpolation of ``table: (L, C)`` rows at fractional
    ``index: (...)`` (clamped to ``[0, L - 1]``) -> ``(..., C)``."""
    last = table.shape[0] - 1
    index = index.clamp(0, last)
    low = index.detach().floor().clamp(max=last - 1)
    frac = (index - low)[..., None]
    low = low.long()
    return table[low] * (1 - frac) + table[low + 1] * frac


__all__ = ['BVRLocationEmbedding', 'sine_embedding']
