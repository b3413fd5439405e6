"""TransNeXt backbone, its ImageNet classifier and the checkpoint converter.

Paper: Shi, "TransNeXt: Robust Foveal Visual Perception for Vision
Transformers", CVPR 2024 (arXiv:2311.17132). Official code:
https://github.com/DaiShiResearch/TransNeXt (``classification/
transnext_native.py`` for ImageNet, ``detection/transnext_native.py`` for
the multi-scale dense-prediction backbone); the numerics here follow the
pure-PyTorch ("native") variant of that code, re-implemented.

Aggregated Attention (Sec. 3.2-3.3), for a query at pixel ``p``::

    q   = (l2(W_q x_p) + QE) * softplus(tau) * log(n_local(p) + n_pool)
    keys: the window x window neighbours of p (l2-normalised, zero padded,
          padded slots masked) and the pooled map
          LN(GELU(conv1x1(x))) -> adaptive avg pool to (H/sr, W/sr)
    a   = softmax([q . k_local + B_local,  q . k_pool + B_pool(CPB)])
    out = W_o ((l2(W_q x_p) T + b + a_local) v_local + a_pool v_pool)

``QE`` is ``query_embedding``, ``T``/``b`` the ``learnable_tokens`` /
``learnable_bias`` (Sec. 3.3, "learnable tokens"), ``B_local`` the
``relative_pos_bias_local`` and ``B_pool`` the continuous relative position
bias: a 2-512-heads MLP (``cpb_fc1``/``cpb_fc2``) on log-spaced relative
coordinates between query pixels and pooled-key centres. The last stage
(``sr_ratio`` 1) uses plain multi-head attention with the same
length-scaled cosine similarity, query embedding and CPB bias. Every block
is pre-LN with a Convolutional GLU (Sec. 3.4):
``fc2(GELU(DWConv3x3(x1)) * x2)``, ``[x1, x2] = fc1(x)``, hidden
``int(2 * mlp_ratio * C / 3)``.

Input sizes: the CPB tables are built once for ``img_size`` (stage ``i``
queries on an ``img_size / 4 / 2**i`` grid, pooled keys on an
``img_size / 32`` grid); for other inputs the pool size is ``H // sr``
(the official detection code) and the generated bias is resized
bilinearly to the actual query/key grids, while the padding mask and the
length scale are recomputed per input.

Sizes (``arch``; ImageNet-1K parameters with the 1000-class head, official
README):

=====  =================  ============  ============  ==========  ======
arch   embed_dims         depths        num_heads     mlp_ratios  params
=====  =================  ============  ============  ==========  ======
micro  48, 96, 192, 384   2, 2, 15, 2   2, 4, 8, 16   8, 8, 4, 4  12.8M
tiny   72, 144, 288, 576  2, 2, 15, 2   3, 6, 12, 24  8, 8, 4, 4  28.2M
small  72, 144, 288, 576  5, 5, 22, 5   3, 6, 12, 24  8, 8, 4, 4  49.7M
base   96, 192, 384, 768  5, 5, 23, 5   4, 8, 16, 32  8, 8, 4, 4  89.7M
=====  =================  ============  ============  ==========  ======

Built from these definitions: 12.81M, 28.26M, 49.74M, 89.72M.

All sizes: ``sr_ratios`` 8, 4, 2, 1; window 3 (stages 1-3); qkv bias on;
block LayerNorm eps 1e-6 (patch embeddings and the pooled-feature norm use
the default 1e-5).
"""
import math
import re
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from densekit.models.layers.weight_init import (drop_path_rates,
                                                fan_out_normal_init_weights)
from densekit.models.utils.checkpoint import convert_state_dict_keys
from densekit.registry import MODELS
from .base_backbone import BaseBackbone

__all__ = ['TransNeXt', 'TransNeXtClassifier', 'transnext_classifier',
           'convert_transnext', 'AggregatedAttention', 'TransNeXtAttention',
           'ConvolutionalGLU', 'TransNeXtBlock', 'sliding_window_keys']

BLOCK_NORM_EPS = 1e-6
# softplus(temperature) starts at 1 / 0.24 (official init)
_TEMPERATURE_INIT = math.log(math.exp(1 / 0.24) - 1)


@torch.no_grad()
def relative_position_cpb(query_size: Tuple[int, int],
                          key_size: Tuple[int, int],
                          pretrain_size: Optional[Tuple[int, int]] = None
                          ) -> Tuple[Tensor, Tensor]:
    """Log-spaced relative coordinates for the CPB MLP (Sec. 3.3).

    Key positions are the adaptive-average-pooled query coordinates;
    offsets are scaled by ``8 / (pretrain - 1)`` and mapped through
    ``sign(d) * log2(|d| + 1) / 3``; duplicates are merged.

    Returns:
        tuple[Tensor, Tensor]: ``index`` (Nq * Nk,) into ``table``
        (T, 2).
    """
    pretrain_size = pretrain_size or query_size
    # The offsets are separable: the set of (dh, dw) pairs is the product
    # of the per-axis sets, so deduplicating each axis and combining them
    # gives torch.unique(rel, dim=0) (same lexicographic order) without
    # sorting Nq * Nk pairs (25M at 800x800, stage 1).
    values, inverse = [], []
    for dim in range(2):
        q = torch.arange(query_size[dim], dtype=torch.float32)
        k = F.adaptive_avg_pool1d(q[None], key_size[dim])[0]
        rel = (q[:, None] - k[None, :]) / (pretrain_size[dim] - 1) * 8
        unique, inv = torch.unique(rel, return_inverse=True)
        values.append(unique)
        inverse.append(inv)  # (Q_dim, K_dim)
    num_w = values[1].numel()
    table = torch.stack(torch.meshgrid(values[0], values[1], indexing='ij'),
                        dim=-1).view(-1, 2)
    # index[(a, b), (c, d)] = inv_h[a, c] * num_w + inv_w[b, d]
    index = (inverse[0][:, None, :, None] * num_w +
             inverse[1][None, :, None, :]).reshape(-1)
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
    return index, table


@torch.no_grad()
def local_length_and_mask(hw: Tuple[int, int], window_size: int,
                          device=None) -> Tuple[Tensor, Tensor]:
    """Valid (non-padding) keys of every pixel's window.

    Returns:
        tuple[Tensor, Tensor]: counts (N, 1) and the padding mask
        (N, window**2), True where the key lies outside the map.
    """
    ones = torch.ones(1, 1, *hw, device=device)
    valid = F.unfold(ones, window_size, padding=window_size // 2)[0]
    return valid.sum(0).unsqueeze(-1), valid.t() == 0


def sliding_window_keys(x: Tensor, hw: Tuple[int, int],
                        window_size: int) -> Tensor:
    """Every pixel's ``window x window`` neighbourhood, vectorised with
    ``F.unfold`` (zero padding outside the map).

    Args:
        x (Tensor): (B, heads, N, d) with N = H * W, row-major.
        hw (tuple[int, int]): (H, W).
        window_size (int): Odd window side.

    Returns:
        Tensor: (B, heads, N, d, window**2); slot ``l = dy * w + dx`` is
        the pixel at offset ``(dy - w // 2, dx - w // 2)``.
    """
    B, heads, N, d = x.shape
    maps = x.permute(0, 1, 3, 2).reshape(B, heads * d, *hw)
    cols = F.unfold(maps, window_size, padding=window_size // 2)
    return cols.reshape(B, heads, d, window_size**2, N).permute(0, 1, 4, 2, 3)


def _cpb_bias(fc1: nn.Linear, fc2: nn.Linear, table: Tensor,
              index: Tensor) -> Tensor:
    """Continuous relative position bias: (heads, Nq * Nk) -> flat."""
    return fc2(F.relu(fc1(table))).transpose(0, 1)[:, index.view(-1)]


def _resize_bias(bias: Tensor, trained_q: Tuple[int, int],
                 trained_k: Tuple[int, int], q_hw: Tuple[int, int],
                 k_hw: Tuple[int, int]) -> Tensor:
    """Bilinearly resize a (heads, Nq_t * Nk_t) bias built for the trained
    grids to (heads, Nq, Nk) of the actual grids (official detection
    code: keys first, then queries)."""
    heads = bias.shape[0]
    nq_t = trained_q[0] * trained_q[1]
    bias = bias.reshape(heads, nq_t, *trained_k)
    if tuple(k_hw) != tuple(trained_k):
        bias = F.interpolate(bias, k_hw, mode='bilinear')
    nk = k_hw[0] * k_hw[1]
    bias = bias.reshape(heads, nq_t, nk).transpose(1, 2).reshape(
        heads, nk, *trained_q)
    if tuple(q_hw) != tuple(trained_q):
        bias = F.interpolate(bias, q_hw, mode='bilinear')
    return bias.reshape(heads, nk, -1).transpose(1, 2)


class AggregatedAttention(nn.Module):
    """Pixel-focused aggregated attention (Sec. 3.2-3.3, native version).

    Args:
        dims (int): Channels C.
        num_heads (int): Heads.
        input_resolution (tuple[int, int]): Query grid the CPB table is
            built for (``img_size / stride``).
        window_size (int): Odd sliding-window side. Defaults to 3.
        sr_ratio (int): Pooling ratio; pooled keys on ``H // sr`` x
            ``W // sr``. Defaults to 8.
        qkv_bias (bool): Bias of ``q``/``kv``. Defaults to True.
        attn_drop (float): Attention dropout. Defaults to 0.
        proj_drop (float): Output dropout. Defaults to 0.

    Shape: (B, N, C) with N = H * W -> (B, N, C).
    """

    def __init__(self, dims: int, num_heads: int,
                 input_resolution: Tuple[int, int], window_size: int = 3,
                 sr_ratio: int = 8, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(f'dims {dims} must be divisible by num_heads '
                             f'{num_heads}')
        if window_size % 2 != 1:
            raise ValueError(f'window_size must be odd, got {window_size}')
        self.num_heads = num_heads
        self.head_dims = dims // num_heads
        self.sr_ratio = sr_ratio
        self.window_size = window_size
        self.local_len = window_size**2
        self.trained_hw = tuple(input_resolution)
        self.trained_pool_hw = tuple(max(s // sr_ratio, 1)
                                     for s in input_resolution)

        self.temperature = nn.Parameter(
            torch.full((num_heads, 1, 1), _TEMPERATURE_INIT))
        self.q = nn.Linear(dims, dims, bias=qkv_bias)
        self.query_embedding = nn.Parameter(nn.init.trunc_normal_(
            torch.empty(num_heads, 1, self.head_dims), std=0.02))
        self.kv = nn.Linear(dims, dims * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)
        # pooled features: LN(GELU(conv1x1(x))) -> adaptive average pool
        self.sr = nn.Conv2d(dims, dims, kernel_size=1)
        self.norm = nn.LayerNorm(dims)
        self.act = nn.GELU()
        # CPB MLP (2 -> 512 -> heads)
        self.cpb_fc1 = nn.Linear(2, 512)
        self.cpb_fc2 = nn.Linear(512, num_heads)
        self.relative_pos_bias_local = nn.Parameter(nn.init.trunc_normal_(
            torch.empty(num_heads, self.local_len), std=0.0004))
        self.learnable_tokens = nn.Parameter(nn.init.trunc_normal_(
            torch.empty(num_heads, self.head_dims, self.local_len),
            std=0.02))
        self.learnable_bias = nn.Parameter(
            torch.zeros(num_heads, 1, self.local_len))

    def pool_hw(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        """Pooled grid for a (H, W) map: ``H // sr`` (at least 1)."""
        return tuple(max(s // self.sr_ratio, 1) for s in hw)

    def forward(self, x: Tensor, hw: Tuple[int, int], rel_index: Tensor,
                rel_table: Tensor, seq_length_scale: Tensor,
                padding_mask: Tensor) -> Tensor:
        """Args:
            x (Tensor): (B, N, C) tokens of an (H, W) map.
            hw (tuple[int, int]): (H, W).
            rel_index, rel_table (Tensor): CPB index/table of the trained
                grids (:func:`relative_position_cpb`).
            seq_length_scale (Tensor): (N, 1), ``log(n_local + n_pool)``.
            padding_mask (Tensor): (N, window**2), True on padded keys.

        Returns:
            Tensor: (B, N, C).
        """
        B, N, C = x.shape
        heads, d = self.num_heads, self.head_dims
        pool_hw = self.pool_hw(hw)
        pool_len = pool_hw[0] * pool_hw[1]

        q_norm = F.normalize(
            self.q(x).reshape(B, N, heads, d).transpose(1, 2), dim=-1)
        q_scaled = (q_norm + self.query_embedding) * \
            F.softplus(self.temperature) * seq_length_scale

        # local keys/values: l2-normalised keys, unfolded windows
        k, v = self.kv(x).reshape(B, N, 2, heads, d).permute(
            2, 0, 3, 1, 4).unbind(0)
        k_local = sliding_window_keys(F.normalize(k, dim=-1), hw,
                                      self.window_size)
        v_local = sliding_window_keys(v, hw, self.window_size)
        attn_local = (q_scaled.unsqueeze(-2) @ k_local).squeeze(-2) + \
            self.relative_pos_bias_local.unsqueeze(1)
        attn_local = attn_local.masked_fill(padding_mask, float('-inf'))

        # pooled keys/values
        x_ = x.transpose(1, 2).reshape(B, C, *hw)
        x_ = F.adaptive_avg_pool2d(self.act(self.sr(x_)), pool_hw)
        x_ = self.norm(x_.reshape(B, C, pool_len).transpose(1, 2))
        k_pool, v_pool = self.kv(x_).reshape(B, pool_len, 2, heads, d
                                             ).permute(2, 0, 3, 1, 4).unbind(0)
        pool_bias = _resize_bias(
            _cpb_bias(self.cpb_fc1, self.cpb_fc2, rel_table, rel_index),
            self.trained_hw, self.trained_pool_hw, hw, pool_hw)
        attn_pool = q_scaled @ F.normalize(k_pool, dim=-1).transpose(-2, -1) \
            + pool_bias

        # one softmax over local + pooled keys
        attn = torch.cat([attn_local, attn_pool], dim=-1).softmax(dim=-1)
        attn = self.attn_drop(attn)
        attn_local, attn_pool = attn.split([self.local_len, pool_len], -1)
        weights_local = q_norm @ self.learnable_tokens + \
            self.learnable_bias + attn_local
        x_local = (weights_local.unsqueeze(-2)
                   @ v_local.transpose(-2, -1)).squeeze(-2)
        out = (x_local + attn_pool @ v_pool).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))


class TransNeXtAttention(nn.Module):
    """Global multi-head attention of the last stage: length-scaled cosine
    similarity with query embedding and CPB bias (Sec. 3.3).

    Args:
        dims (int): Channels C.
        num_heads (int): Heads.
        input_resolution (tuple[int, int]): Grid the CPB table is built for.
        qkv_bias (bool): Bias of ``qkv``. Defaults to True.
        attn_drop (float): Attention dropout. Defaults to 0.
        proj_drop (float): Output dropout. Defaults to 0.

    Shape: (B, N, C) -> (B, N, C).
    """

    def __init__(self, dims: int, num_heads: int,
                 input_resolution: Tuple[int, int], qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(f'dims {dims} must be divisible by num_heads '
                             f'{num_heads}')
        self.num_heads = num_heads
        self.head_dims = dims // num_heads
        self.trained_hw = tuple(input_resolution)
        self.temperature = nn.Parameter(
            torch.full((num_heads, 1, 1), _TEMPERATURE_INIT))
        self.qkv = nn.Linear(dims, dims * 3, bias=qkv_bias)
        self.query_embedding = nn.Parameter(nn.init.trunc_normal_(
            torch.empty(num_heads, 1, self.head_dims), std=0.02))
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.cpb_fc1 = nn.Linear(2, 512)
        self.cpb_fc2 = nn.Linear(512, num_heads)

    def forward(self, x: Tensor, hw: Tuple[int, int], rel_index: Tensor,
                rel_table: Tensor, seq_length_scale: Tensor,
                padding_mask: Optional[Tensor] = None) -> Tensor:
        """Args: as :meth:`AggregatedAttention.forward`
        (``seq_length_scale`` = ``log(H * W)``, no mask).

        Returns:
            Tensor: (B, N, C).
        """
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads,
                                      self.head_dims).permute(2, 0, 3, 1, 4
                                                              ).unbind(0)
        bias = _resize_bias(
            _cpb_bias(self.cpb_fc1, self.cpb_fc2, rel_table, rel_index),
            self.trained_hw, self.trained_hw, hw, hw)
        q = (F.normalize(q, dim=-1) + self.query_embedding) * \
            F.softplus(self.temperature) * seq_length_scale
        attn = (q @ F.normalize(k, dim=-1).transpose(-2, -1) + bias
                ).softmax(dim=-1)
        out = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(out))


class ConvolutionalGLU(nn.Module):
    """Convolutional GLU (Sec. 3.4): ``fc2(GELU(DWConv(x1)) * x2)`` with
    ``[x1, x2] = fc1(x)``; hidden ``int(2 * hidden_dims / 3)``.

    Shape: (B, N, C) with N = H * W -> (B, N, C).
    """

    def __init__(self, dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        hidden = int(2 * hidden_dims / 3)
        self.fc1 = nn.Linear(dims, hidden * 2)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        x, gate = self.fc1(x).chunk(2, dim=-1)
        B, N, C = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(B, C, *hw))
        x = self.drop(self.act(x.flatten(2).transpose(1, 2)) * gate)
        return self.drop(self.fc2(x))


class TransNeXtBlock(nn.Module):
    """Pre-LN block: ``x + attn(LN(x))``, ``x + ConvGLU(LN(x))``; the token
    mixer is :class:`AggregatedAttention` (``sr_ratio`` > 1) or
    :class:`TransNeXtAttention` (``sr_ratio`` 1).

    Shape: (B, N, C) -> (B, N, C).
    """

    def __init__(self, dims: int, num_heads: int,
                 input_resolution: Tuple[int, int], window_size: int = 3,
                 mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0., sr_ratio: int = 1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)
        if sr_ratio == 1:
            self.attn = TransNeXtAttention(
                dims, num_heads, input_resolution, qkv_bias=qkv_bias,
                attn_drop=attn_drop, proj_drop=drop)
        else:
            self.attn = AggregatedAttention(
                dims, num_heads, input_resolution, window_size=window_size,
                sr_ratio=sr_ratio, qkv_bias=qkv_bias, attn_drop=attn_drop,
                proj_drop=drop)
        self.norm2 = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)
        self.mlp = ConvolutionalGLU(dims, int(dims * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def forward(self, x: Tensor, hw: Tuple[int, int], *attn_args) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw, *attn_args))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch embedding: conv ``k x k`` / s, padding ``k // 2``
    (7x7/4 stem, 3x3/2 between stages) + LayerNorm.

    Shape: (B, C_in, H, W) -> (B, N, C) and (H', W') = ceil((H, W) / s).
    """

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int,
                 stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size, stride,
                              padding=kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.proj(x)
        hw = tuple(x.shape[2:])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class TransNeXtStage(nn.Module):
    """One stage (official ``patch_embed{i}``, ``block{i}``, ``norm{i}``)
    with the stage's CPB index/table as non-persistent buffers.

    Shape: (B, C_in, H, W) -> (B, C, ceil(H / s), ceil(W / s)).
    """

    def __init__(self, embed: OverlapPatchEmbed,
                 blocks: Sequence[TransNeXtBlock], dims: int,
                 rel_index: Tensor, rel_table: Tensor,
                 window_size: Optional[int], sr_ratio: int) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)
        self.window_size = window_size
        self.sr_ratio = sr_ratio
        self.register_buffer('relative_pos_index', rel_index,
                             persistent=False)
        self.register_buffer('relative_coords_table', rel_table,
                             persistent=False)

    def attention_inputs(self, hw: Tuple[int, int], device
                         ) -> Tuple[Tensor, Optional[Tensor]]:
        """Length scale and padding mask for an (H, W) map (official
        detection ``forward_features``).

        Returns:
            tuple[Tensor, Tensor | None]: ``seq_length_scale``, a 0-dim
            float64 ``log(H * W)`` for the global-attention stage (the
            official ``classification/transnext.py`` ``Attention`` stores
            ``torch.as_tensor(np.log(H * W))``, a float64 buffer; the
            detection/segmentation copies take ``torch.log`` of an integer
            tensor, i.e. the default dtype; a 0-dim tensor does not promote
            float32 or half activations, so only float64 runs see the
            difference) or an (N, 1) float32 ``log(n_local + n_pool)`` (as
            the official ``np.log`` of float32 window counts), and the
            (N, window**2) padding mask (None for global attention).
        """
        if self.sr_ratio == 1:
            return torch.tensor(math.log(hw[0] * hw[1]), dtype=torch.float64,
                                device=device), None
        pool_len = max(hw[0] // self.sr_ratio, 1) * \
            max(hw[1] // self.sr_ratio, 1)
        length, mask = local_length_and_mask(hw, self.window_size, device)
        return torch.log(length + pool_len), mask

    def forward(self, x: Tensor) -> Tensor:
        x, hw = self.embed(x)
        scale, mask = self.attention_inputs(hw, x.device)
        for block in self.blocks:
            x = block(x, hw, self.relative_pos_index,
                      self.relative_coords_table, scale, mask)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw).contiguous()


@MODELS.register_module()
class TransNeXt(BaseBackbone):
    """TransNeXt backbone (Shi, CVPR 2024), native PyTorch attention.

    Stage ``i`` (0..3) is the official ``patch_embed{i+1}`` + ``block{i+1}``
    + ``norm{i+1}``; strides 4, 8, 16, 32. The stage LayerNorm is on the
    main path and is also what the official detection backbone returns, so
    the outputs are the stage outputs (no extra per-output norms).

    Args:
        arch (str | dict): 'micro', 'tiny', 'small' or 'base', or a dict
            with ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``
            (optional ``sr_ratios``, ``window_sizes``). Defaults to 'tiny'.
        img_size (int): Input size the CPB tables are built for (official
            ``img_size``; 224 for ImageNet, e.g. 640/800 detection). Other
            sizes work through bilinear resizing of the bias.
            Defaults to 224.
        pretrain_size (int, optional): Pre-training size scaling the
            relative coordinates (official ``pretrain_size``; 224 when
            fine-tuning the ImageNet weights). Defaults to ``img_size``.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to
            (0, 1, 2, 3).
        frozen_stages (int): Stages ``0..frozen_stages`` frozen; -1 none.
        norm_eval (bool): BatchNorms in eval mode (TransNeXt has none).
        drop_rate (float): Dropout. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block (official
            detection: 0.3 tiny, 0.5 small, 0.6 base). Defaults to 0.1.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` takes an official checkpoint (converted by
            :func:`convert_transnext`) or a densekit one.

    Note:
        Any input of at least 32x32 follows the official detection code;
        the stride-``s`` map of an (H, W) image is (ceil(H / s),
        ceil(W / s)). Smaller maps clamp the pool size to 1 (the official
        code would fail).

    Examples:
        >>> model = TransNeXt(arch='micro', img_size=64).eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 48, 16, 16), (1, 96, 8, 8), (1, 192, 4, 4), (1, 384, 2, 2)]
    """
    _common = dict(sr_ratios=(8, 4, 2, 1), window_sizes=(3, 3, 3, None))
    arch_settings = {
        'micro': dict(embed_dims=(48, 96, 192, 384), depths=(2, 2, 15, 2),
                      num_heads=(2, 4, 8, 16), mlp_ratios=(8, 8, 4, 4),
                      **_common),
        'tiny': dict(embed_dims=(72, 144, 288, 576), depths=(2, 2, 15, 2),
                     num_heads=(3, 6, 12, 24), mlp_ratios=(8, 8, 4, 4),
                     **_common),
        'small': dict(embed_dims=(72, 144, 288, 576), depths=(5, 5, 22, 5),
                      num_heads=(3, 6, 12, 24), mlp_ratios=(8, 8, 4, 4),
                      **_common),
        'base': dict(embed_dims=(96, 192, 384, 768), depths=(5, 5, 23, 5),
                     num_heads=(4, 8, 16, 32), mlp_ratios=(8, 8, 4, 4),
                     **_common),
    }
    arch_aliases = {'m': 'micro', 't': 'tiny', 's': 'small', 'b': 'base'}
    arch_defaults = _common
    arch_required = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios')
    arch_per_stage = ('embed_dims', 'num_heads', 'mlp_ratios', 'sr_ratios',
                      'window_sizes')
    # ImageNet-1K parameters with the 1000-class head (official README)
    official_params = {'micro': 12.8e6, 'tiny': 28.2e6, 'small': 49.7e6,
                       'base': 89.7e6}

    def __init__(self,
                 *,
                 arch: Union[str, dict] = 'tiny',
                 img_size: int = 224,
                 pretrain_size: Optional[int] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(out_indices=out_indices,
                         frozen_stages=frozen_stages,
                         norm_eval=norm_eval,
                         init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        self.arch = arch
        self.img_size = img_size
        pretrain_size = pretrain_size or img_size
        depths = list(settings['depths'])
        num_stages = len(depths)
        if img_size // 2**(num_stages + 1) < 1:
            raise ValueError(f'TransNeXt: img_size must be at least '
                             f'{2**(num_stages + 1)}, got {img_size}')
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))
        channels = in_channels
        for i, depth in enumerate(depths):
            dims = settings['embed_dims'][i]
            grid = (img_size // 2**(i + 2), ) * 2
            key_grid = (img_size // 2**(num_stages + 1), ) * 2
            pre_grid = (pretrain_size // 2**(i + 2), ) * 2
            index, table = relative_position_cpb(grid, key_grid, pre_grid)
            sr_ratio = settings['sr_ratios'][i]
            window = settings['window_sizes'][i]
            embed = OverlapPatchEmbed(channels, dims, 7 if i == 0 else 3,
                                      4 if i == 0 else 2)
            blocks = [
                TransNeXtBlock(dims, settings['num_heads'][i], grid,
                               window_size=window,
                               mlp_ratio=settings['mlp_ratios'][i],
                               qkv_bias=settings.get('qkv_bias', True),
                               drop=drop_rate, attn_drop=attn_drop_rate,
                               drop_path=drop_paths.pop(0),
                               sr_ratio=sr_ratio) for _ in range(depth)
            ]
            self.stages.append(TransNeXtStage(embed, blocks, dims, index,
                                              table, window, sr_ratio))
            self.stage_channels.append(dims)
            self.stage_strides.append(4 * 2**i)
            channels = dims
        self._check_indices()
        self.apply(fan_out_normal_init_weights)

    def convert_pretrained(self, state_dict):
        """Official ImageNet/detection layouts -> ours."""
        return convert_transnext(state_dict)


class TransNeXtClassifier(nn.Module):
    """The official ImageNet model: :class:`TransNeXt` up to the last
    stage (LayerNorm = official ``norm4``), token average, Linear head.

    Shape: (B, 3, H, W) -> (B, num_classes).
    """

    def __init__(self, arch: Union[str, dict] = 'tiny',
                 num_classes: int = 1000, **kwargs) -> None:
        super().__init__()
        self.backbone = TransNeXt(arch=arch, out_indices=(3, ), **kwargs)
        channels = self.backbone.stage_channels[3]
        self.head = nn.Linear(channels, num_classes) if num_classes > 0 \
            else nn.Identity()
        self.head.apply(fan_out_normal_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))


def transnext_classifier(arch: Union[str, dict] = 'tiny',
                         num_classes: int = 1000,
                         **kwargs) -> TransNeXtClassifier:
    """Build the official classification model of ``arch``; e.g.
    ``transnext_classifier('micro')`` has TransNeXt-Micro's 12.8M
    parameters."""
    return TransNeXtClassifier(arch, num_classes=num_classes, **kwargs)


# ---------------------------------------------------------------------------
# Official checkpoint -> densekit keys
# ---------------------------------------------------------------------------
_BLOCK_KEYS = re.compile(
    r'^(norm[12]\.(weight|bias)|'
    r'attn\.(q|kv|qkv|proj|sr|norm|cpb_fc1|cpb_fc2)\.(weight|bias)|'
    r'attn\.(temperature|query_embedding|relative_pos_bias_local|'
    r'learnable_tokens|learnable_bias)|'
    r'mlp\.(fc1|fc2|dwconv)\.(weight|bias))$')
# non-persistent buffers of the official modules (never needed)
_BUFFERS = re.compile(r'^(relative_pos_index\d+|relative_coords_table\d+|'
                      r'block\d+\.\d+\.attn\.(seq_length_scale|padding_mask)'
                      r')$')


def _convert_key(key: str, with_head: bool) -> Optional[str]:
    """New key, '' for a key dropped on purpose, None if unknown."""
    if key.startswith('stages.'):
        return key
    if key in ('head.weight', 'head.bias'):
        return key if with_head else ''
    if _BUFFERS.match(key):
        return ''
    match = re.match(r'^patch_embed(\d+)\.(proj|norm)\.(weight|bias)$', key)
    if match and int(match.group(1)) >= 1:
        return (f'stages.{int(match.group(1)) - 1}.embed.'
                f'{match.group(2)}.{match.group(3)}')
    match = re.match(r'^norm(\d+)\.(weight|bias)$', key)
    if match and int(match.group(1)) >= 1:
        return f'stages.{int(match.group(1)) - 1}.norm.{match.group(2)}'
    match = re.match(r'^block(\d+)\.(\d+)\.(.+)$', key)
    if match and int(match.group(1)) >= 1:
        rest = re.sub(r'^mlp\.dwconv\.dwconv\.', 'mlp.dwconv.',
                      match.group(3))
        if not _BLOCK_KEYS.match(rest):
            return None
        return (f'stages.{int(match.group(1)) - 1}.blocks.{match.group(2)}.'
                f'{rest}')
    return None


def convert_transnext(checkpoint, *, with_head: bool = False
                      ) -> Dict[str, Tensor]:
    """Map an official TransNeXt checkpoint onto :class:`TransNeXt`'s keys.

    Official layout (``transnext_native.py``/``transnext_cuda.py``, same
    parameter names) -> densekit:

    * ``patch_embed{i}.{proj,norm}.*`` -> ``stages.{i-1}.embed.*``
    * ``block{i}.{j}.*`` -> ``stages.{i-1}.blocks.{j}.*`` with
      ``mlp.dwconv.dwconv`` -> ``mlp.dwconv``; the rest keeps its name
    * ``norm{i}.*`` -> ``stages.{i-1}.norm.*``
    * ``head.*``: dropped, or kept with ``with_head`` (the other keys then
      get the ``backbone.`` prefix of :class:`TransNeXtClassifier`);
      stray non-persistent buffers (CPB tables, masks) are dropped.

    Detection/segmentation checkpoints (``backbone.``-prefixed) are
    accepted, their other parts dropped; densekit keys pass through.

    Args:
        checkpoint (dict | nn.Module): A state dict, ``{'model': ...}``,
            ``{'state_dict': ...}`` or a module.
        with_head (bool): Keep the classifier head.

    Returns:
        dict[str, Tensor]: The converted state dict.

    Raises:
        UnconvertedKeysError: For keys this layout does not know (listed).
    """
    return convert_state_dict_keys(checkpoint, 'convert_transnext',
                                   'official TransNeXt', _convert_key,
                                   with_head)
