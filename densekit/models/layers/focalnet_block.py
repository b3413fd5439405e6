"""FocalNet's block: focal modulation and its MLP, shared by the FocalNet
backbone (``FocalNet``) and Focal-UNet's decoder
stage (:mod:`densekit.models.layers.focal_decoder_stage`).

Paper: Yang et al., "Focal Modulation Networks", NeurIPS 2022
(arXiv:2203.11926); official code https://github.com/microsoft/FocalNet
(``classification/focalnet.py``). This is an independent implementation.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from densekit.models.layers.weight_init import layer_scale

__all__ = ['FocalModulation', 'FocalNetMLP', 'FocalNetBlock']

# the official code grows the kernel by 2 per focal level (focal_factor=2)
FOCAL_FACTOR = 2


def _trunc_normal_init(module: nn.Module) -> None:
    """The official initialisation: trunc-normal(0.02) Linear, unit LN."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class FocalModulation(nn.Module):
    """Focal modulation, Sec. 3.2: ``y = q(x) ⊙ h(Σ_l g^l · z^l)`` (Eq. 6).

    One linear layer ``f`` gives the query ``q``, the context ``Z^0`` and
    ``L + 1`` gates. Hierarchical contextualization (Eq. 4): level ``l``
    (0-based ``k``) is a depth-wise ``(focal_window + 2k)``-square
    convolution + GELU on the previous level; the global level is
    ``GELU(mean_{H,W} Z^L)``. Gated aggregation (Eq. 5) sums the levels
    weighted by their gate; ``h`` (1x1 conv) turns it into the modulator,
    which multiplies ``q`` element-wise, followed by the output projection.

    Args:
        dims (int): Channels C.
        focal_level (int): Number of convolutional levels L.
        focal_window (int): Kernel size of the first level.
        drop_rate (float): Dropout after the output projection.
        use_postln_in_modulation (bool): LayerNorm on ``q ⊙ m`` before the
            projection (official option of the huge models).
        normalize_modulator (bool): Divide the aggregated context by
            ``L + 1``.
    """

    def __init__(self,
                 dims: int,
                 focal_level: int,
                 focal_window: int,
                 drop_rate: float = 0.0,
                 use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False) -> None:
        super().__init__()
        self.dims = dims
        self.focal_level = focal_level
        self.normalize_modulator = normalize_modulator
        self.f = nn.Linear(dims, 2 * dims + focal_level + 1)
        self.kernel_sizes = [focal_window + FOCAL_FACTOR * k
                             for k in range(focal_level)]
        self.focal_convs = nn.ModuleList(
            nn.Conv2d(dims, dims, k, padding=k // 2, groups=dims, bias=False)
            for k in self.kernel_sizes)
        self.h = nn.Conv2d(dims, dims, 1)
        self.norm = nn.LayerNorm(dims) if use_postln_in_modulation else None
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): channels-last tokens, (N, H, W, C).

        Returns:
            Tensor: (N, H, W, C).
        """
        channels = x.shape[-1]
        q, ctx, gates = torch.split(
            self.f(x).permute(0, 3, 1, 2),
            (channels, channels, self.focal_level + 1), dim=1)
        ctx_all = 0
        for level, conv in enumerate(self.focal_convs):   # Eq. 4 and 5
            ctx = F.gelu(conv(ctx))
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = F.gelu(ctx.mean(dim=(2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        out = (q * self.h(ctx_all)).permute(0, 2, 3, 1)   # Eq. 6
        if self.norm is not None:
            out = self.norm(out)
        return self.proj_drop(self.proj(out))


class FocalNetMLP(nn.Module):
    """Feed-forward network: Linear, GELU, Linear (with dropout)."""

    def __init__(self, dims: int, hidden_dims: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): (..., C). Returns: Tensor: (..., C)."""
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class FocalNetBlock(nn.Module):
    """FocalNet block (Sec. 3.3, Fig. 3): a Transformer block with focal
    modulation in place of self-attention.

    Pre-LN (default)::

        x = x + drop_path(γ1 · FM(LN1(x)))
        x = x + drop_path(γ2 · MLP(LN2(x)))

    Post-LN (``use_postln``, official option of the large models)::

        x = x + drop_path(γ1 · LN1(FM(x)))
        x = x + drop_path(γ2 · LN2(MLP(x)))

    ``γ`` are per-channel layer scales (CaiT) when ``use_layerscale``,
    otherwise 1.

    Args:
        dims (int): Channels C.
        focal_level (int): See :class:`FocalModulation`.
        focal_window (int): See :class:`FocalModulation`.
        mlp_ratio (float): MLP hidden ratio.
        drop_rate (float): Dropout in the modulation and the MLP.
        drop_path (float): Stochastic depth rate of this block.
        use_layerscale (bool): Learn ``γ1``, ``γ2``.
        layer_scale_init_value (float): Initial ``γ``.
        use_postln (bool): Post-LN block.
        use_postln_in_modulation (bool): See :class:`FocalModulation`.
        normalize_modulator (bool): See :class:`FocalModulation`.
    """

    def __init__(self,
                 dims: int,
                 focal_level: int,
                 focal_window: int,
                 mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0,
                 drop_path: float = 0.0,
                 use_layerscale: bool = False,
                 layer_scale_init_value: float = 1e-4,
                 use_postln: bool = False,
                 use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False) -> None:
        super().__init__()
        self.use_postln = use_postln
        self.norm1 = nn.LayerNorm(dims)
        self.modulation = FocalModulation(
            dims, focal_level, focal_window, drop_rate=drop_rate,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator)
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(dims)
        self.mlp = FocalNetMLP(dims, int(dims * mlp_ratio), drop_rate)
        self.gamma1 = layer_scale(dims, layer_scale_init_value, use_layerscale)
        self.gamma2 = layer_scale(dims, layer_scale_init_value, use_layerscale)

    @staticmethod
    def _scale(x: Tensor, gamma: Optional[Tensor]) -> Tensor:
        return x if gamma is None else x * gamma

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): channels-last tokens, (N, H, W, C).

        Returns:
            Tensor: (N, H, W, C).
        """
        if self.use_postln:
            x = x + self.drop_path(
                self._scale(self.norm1(self.modulation(x)), self.gamma1))
            x = x + self.drop_path(
                self._scale(self.norm2(self.mlp(x)), self.gamma2))
        else:
            x = x + self.drop_path(
                self._scale(self.modulation(self.norm1(x)), self.gamma1))
            x = x + self.drop_path(
                self._scale(self.mlp(self.norm2(x)), self.gamma2))
        return x
