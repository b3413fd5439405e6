"""SMT backbone, its ImageNet classifier and the checkpoint converter.

Paper: Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023
(arXiv:2307.08579). Official code: https://github.com/AFeng-x/SMT
(``models/smt.py`` for ImageNet, ``detection/mmdet/models/backbones/smt.py``
for detection); the numerics here follow that code, re-implemented.

Scale-Aware Modulation (SAM, Sec. 3.1) mixes tokens without attention::

    s  = W_s x,  v = W_v x                              (two Linear layers)
    MHMC: split s into n heads, head i -> depth-wise (3 + 2i)^2 conv
    SAA:  regroup so every group holds one channel of each head, grouped
          1x1 conv (intra-group, x expand_ratio) + BN + GELU, then a plain
          1x1 conv (inter-group) -> modulator m
    out = W_o (m ⊙ v)

The Evolutionary Hybrid Network (EHN, Sec. 3.2) uses SAM blocks in stages
1-2, alternates SAM (even blocks) and multi-head self-attention (odd blocks)
in stage 3 and uses only self-attention in stage 4. The attention is global
(no spatial reduction in the official code); a depth-wise 3x3 conv of ``V``
is added to its output (local enhancement). Every block is pre-LN with a
depth-wise-conv MLP (``GELU(fc1(x) + DWConv(fc1(x)))``).

Stage layout (``stage_strides`` 4, 8, 16, 32)::

    stage 0: stem (conv kxk/2 + BN + ReLU + conv 2x2/2 + LN) + blocks + LN
    stage i: OverlapPatchEmbed (conv 3x3/2 + LN)           + blocks + LN

The LayerNorm closing each stage (official ``norm{i}``) is on the main path
(the next stage embeds the normalised map) and is also the per-output norm
of the official detection backbone, so returned maps are the stage outputs.

Sizes (``arch``; ImageNet-1K parameters with the 1000-class head as
published in the paper, whose abstract gives 11.5M for T and 32M for B; the
official README rounds them to 12M / 21M / 32M / 81M):

====  ===================  =================  ============  ====  ======
arch  embed_dims           depths             mlp_ratios    stem  params
====  ===================  =================  ============  ====  ======
T     64, 128, 256, 512    2, 2, 8, 1         4, 4, 4, 2    3x3   11.5M
S     64, 128, 256, 512    3, 4, 18, 2        4, 4, 4, 2    3x3   20.5M
B     64, 128, 256, 512    4, 6, 28, 2        8, 6, 4, 2    7x7   32.0M
L     96, 192, 384, 768    4, 6, 28, 4        8, 6, 4, 2    7x7   80.5M
====  ===================  =================  ============  ====  ======

All sizes: SAM heads (``ca_num_heads``) 4, 4, 4, -; attention heads
(``sa_num_heads``) -, -, 8, 16; ``expand_ratio`` 2; qkv bias on.

The official definitions build 11.51M (T), 22.55M (S), 32.04M (B) and
80.59M (L) parameters, and so do densekit's. SMT-S thus has three figures:
20.5M in the paper (the README rounds it to 21M), 22.55M built by the
official ``smt_s`` (depths 3, 4, 18, 2 in ``models/smt.py`` and
``configs/smt/smt_small_224.yaml``) and 22.55M built by densekit
(:attr:`SMT.official_build_params`). Its 4.66 GMACs at 224x224 (attention
products excluded, as ptflops counts) match the README's 4.7G; the
published count, not the architecture, looks off.
"""
import re
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor

from densekit.models.layers.weight_init import (drop_path_rates,
                                                fan_out_normal_init_weights,
                                                layer_scale)
from densekit.models.utils.checkpoint import convert_state_dict_keys
from densekit.registry import MODELS
from .base_backbone import BaseBackbone

__all__ = ['SMT', 'SMTClassifier', 'smt_classifier', 'convert_smt',
           'ScaleAwareModulation', 'SMTAttention', 'SMTBlock']

# LayerNorm eps of the blocks and stage norms (official ``norm_layer``);
# the patch embeddings use nn.LayerNorm's default 1e-5
BLOCK_NORM_EPS = 1e-6


class SMTStem(nn.Module):
    """Convolutional stem (official ``Head``, Sec. 3.2): ``kxk`` stride-2
    conv (no bias) + BN + ReLU, 2x2 stride-2 conv, LayerNorm.

    The 2x2 conv would drop the last row/column of an odd-sized map; it is
    zero-padded at the bottom/right instead, so the output is
    ``ceil(H / 4) x ceil(W / 4)`` (identical to the official stem when H and
    W are multiples of 4).

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Output channels C.
        kernel_size (int): First conv kernel, 3 (T/S) or 7 (B/L).

    Shape: (B, C_in, H, W) -> (B, ceil(H/4), ceil(W/4), C) (channels-last).
    """

    def __init__(self, in_channels: int, embed_dims: int,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, embed_dims, kernel_size, stride=2,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(embed_dims)
        self.act = nn.ReLU(inplace=True)
        self.proj = nn.Conv2d(embed_dims, embed_dims, 2, stride=2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn(self.conv(x)))
        pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SMTPatchEmbed(nn.Module):
    """Overlapping patch embedding between stages (official
    ``OverlapPatchEmbed``): 3x3 stride-2 conv (padding 1) + LayerNorm.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels C.

    Shape: (B, C_in, H, W) -> (B, ceil(H/2), ceil(W/2), C) (channels-last).
    """

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, 3, stride=2,
                              padding=1)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class ScaleAwareModulation(nn.Module):
    """Scale-Aware Modulation (SAM, Sec. 3.1, Fig. 2).

    * Multi-Head Mixed Convolution (MHMC): ``s = W_s x`` is split into
      ``num_heads`` channel heads of ``C / n``; head ``i`` goes through a
      depth-wise ``(3 + 2i) x (3 + 2i)`` conv (3, 5, 7, 9 for 4 heads), so
      the heads see growing receptive fields.
    * Scale-Aware Aggregation (SAA): the head outputs are regrouped into
      ``C / n`` groups of ``n`` channels, group ``g`` holding channel ``g``
      of every head (one channel per scale); a grouped 1x1 conv
      (``groups = C / n``, ``C -> expand_ratio * C``) fuses the scales inside
      each group, then BN + GELU and a 1x1 conv (``-> C``) fuse the groups.
      The result is the modulator ``m``.
    * Modulation: ``out = W_o (m ⊙ v)`` with ``v = W_v x``.

    Args:
        dims (int): Channels C.
        num_heads (int): MHMC heads n (official ``ca_num_heads``).
        expand_ratio (int): SAA expansion. Defaults to 2.
        qkv_bias (bool): Bias of ``W_s`` and ``W_v``. Defaults to True.
        proj_drop (float): Dropout after ``W_o``.

    Shape: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dims: int, num_heads: int = 4, expand_ratio: int = 2,
                 qkv_bias: bool = True, proj_drop: float = 0.) -> None:
        super().__init__()
        if num_heads < 1 or dims % num_heads:
            raise ValueError(f'ScaleAwareModulation: dims {dims} is not '
                             f'divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        head_dims = dims // num_heads
        self.kernel_sizes = [3 + 2 * i for i in range(num_heads)]
        self.v = nn.Linear(dims, dims, bias=qkv_bias)
        self.s = nn.Linear(dims, dims, bias=qkv_bias)
        self.local_convs = nn.ModuleList(
            nn.Conv2d(head_dims, head_dims, k, padding=k // 2,
                      groups=head_dims) for k in self.kernel_sizes)
        self.proj0 = nn.Conv2d(dims, dims * expand_ratio, 1,
                               groups=head_dims)
        self.bn = nn.BatchNorm2d(dims * expand_ratio)
        self.act = nn.GELU()
        self.proj1 = nn.Conv2d(dims * expand_ratio, dims, 1)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def modulator(self, x: Tensor) -> Tensor:
        """MHMC + SAA. Args: x (Tensor): (B, H, W, C).

        Returns:
            Tensor: the modulator m, (B, C, H, W).
        """
        s = self.s(x).permute(0, 3, 1, 2)     # channel = head * C/n + c
        heads = [conv(chunk) for conv, chunk in zip(
            self.local_convs, s.chunk(self.num_heads, dim=1))]
        # (B, C/n, n, H, W) -> (B, C, H, W): channel = c * n + head
        s = torch.stack(heads, dim=2).flatten(1, 2)
        return self.proj1(self.act(self.bn(self.proj0(s))))

    def forward(self, x: Tensor) -> Tensor:
        out = self.modulator(x).permute(0, 2, 3, 1) * self.v(x)
        return self.proj_drop(self.proj(out))


class SMTAttention(nn.Module):
    """Global multi-head self-attention of the EHN (Sec. 3.2) with the
    official local enhancement: ``W_o (softmax(q k^T / sqrt(d)) v +
    DWConv3x3(v))``; no spatial reduction of the keys.

    Args:
        dims (int): Channels C.
        num_heads (int): Heads (official ``sa_num_heads``).
        qkv_bias (bool): Bias of the q and kv projections.
        attn_drop (float): Dropout on the attention weights.
        proj_drop (float): Dropout after ``W_o``.

    Shape: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dims: int, num_heads: int = 8, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        if num_heads < 1 or dims % num_heads:
            raise ValueError(f'SMTAttention: dims {dims} is not divisible '
                             f'by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dims // num_heads)**-0.5
        self.attn_drop = attn_drop
        self.q = nn.Linear(dims, dims, bias=qkv_bias)
        self.kv = nn.Linear(dims, dims * 2, bias=qkv_bias)
        self.local_conv = nn.Conv2d(dims, dims, 3, padding=1, groups=dims)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, dims = x.shape
        tokens = x.reshape(batch, height * width, dims)
        head_dims = dims // self.num_heads
        q = self.q(tokens).reshape(batch, -1, self.num_heads,
                                   head_dims).transpose(1, 2)
        k, v = self.kv(tokens).reshape(batch, -1, 2, self.num_heads,
                                       head_dims).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(     # (B, heads, N, d)
            q, k, v, dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, height, width, dims)
        v_map = v.transpose(1, 2).reshape(batch, height, width,
                                          dims).permute(0, 3, 1, 2)
        out = out + self.local_conv(v_map).permute(0, 2, 3, 1)
        return self.proj_drop(self.proj(out))


class SMTMlp(nn.Module):
    """Feed-forward network with a depth-wise conv (official ``Mlp``):
    ``fc2(GELU(h + DWConv3x3(h)))`` with ``h = fc1(x)``.

    Args:
        dims (int): Channels C.
        hidden_dims (int): Hidden channels.
        drop (float): Dropout after the activation and after ``fc2``.

    Shape: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.dwconv = nn.Conv2d(hidden_dims, hidden_dims, 3, padding=1,
                                groups=hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        x = x + self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))


class SMTBlock(nn.Module):
    """SMT block (Sec. 3.2, Fig. 1): pre-LN token mixer + DWConv MLP::

        x = x + drop_path(γ1 · mixer(LN1(x)))    mixer: SAM or MSA
        x = x + drop_path(γ2 · MLP(LN2(x)))

    ``γ`` are per-channel layer scales when ``use_layerscale`` (official
    option, off for the released models), otherwise 1.

    Args:
        dims (int): Channels C.
        mixer (str): 'sam' (:class:`ScaleAwareModulation`) or 'msa'
            (:class:`SMTAttention`).
        ca_num_heads (int): SAM heads.
        sa_num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden ratio.
        expand_ratio (int): SAA expansion.
        qkv_bias (bool): Bias of the v/s or q/kv projections.
        drop (float): Dropout of the mixer output and the MLP.
        attn_drop (float): Dropout on attention weights.
        drop_path (float): Stochastic depth of this block.
        use_layerscale (bool): Learn ``γ1``, ``γ2``.
        layer_scale_init_value (float): Initial ``γ``.

    Shape: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self,
                 dims: int,
                 mixer: str = 'sam',
                 ca_num_heads: int = 4,
                 sa_num_heads: int = 8,
                 mlp_ratio: float = 4.,
                 expand_ratio: int = 2,
                 qkv_bias: bool = True,
                 drop: float = 0.,
                 attn_drop: float = 0.,
                 drop_path: float = 0.,
                 use_layerscale: bool = False,
                 layer_scale_init_value: float = 1e-4) -> None:
        super().__init__()
        self.mixer = mixer
        self.norm1 = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)
        if mixer == 'sam':
            self.attn = ScaleAwareModulation(
                dims, ca_num_heads, expand_ratio=expand_ratio,
                qkv_bias=qkv_bias, proj_drop=drop)
        elif mixer == 'msa':
            self.attn = SMTAttention(dims, sa_num_heads, qkv_bias=qkv_bias,
                                     attn_drop=attn_drop, proj_drop=drop)
        else:
            raise ValueError(f"SMTBlock: mixer must be 'sam' or 'msa', but "
                             f'got {mixer!r}')
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()
        self.norm2 = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)
        self.mlp = SMTMlp(dims, int(dims * mlp_ratio), drop)
        self.gamma1 = layer_scale(dims, layer_scale_init_value, use_layerscale)
        self.gamma2 = layer_scale(dims, layer_scale_init_value, use_layerscale)

    @staticmethod
    def _scale(x: Tensor, gamma: Optional[Tensor]) -> Tensor:
        return x if gamma is None else x * gamma

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self._scale(self.attn(self.norm1(x)),
                                           self.gamma1))
        return x + self.drop_path(self._scale(self.mlp(self.norm2(x)),
                                              self.gamma2))


class SMTStage(nn.Module):
    """One stage: patch embedding (stem or 2x downsampling), blocks and the
    stage LayerNorm (official ``patch_embed{i}``, ``block{i}``, ``norm{i}``).

    Shape: (B, C_in, H, W) -> (B, C, ceil(H / s), ceil(W / s)), s = 4 for
    the stem, 2 otherwise.
    """

    def __init__(self, embed: nn.Module, blocks: Sequence[SMTBlock],
                 dims: int) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dims, eps=BLOCK_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class SMT(BaseBackbone):
    """Scale-Aware Modulation Transformer backbone (Lin et al., ICCV 2023).

    Stage ``i`` (0..3) is the official ``patch_embed{i+1}`` + ``block{i+1}``
    + ``norm{i+1}``; strides 4, 8, 16, 32. The returned maps are the stage
    outputs, i.e. after the stage LayerNorm, exactly what the official
    detection/segmentation backbone returns.

    Args:
        arch (str | dict): 'T', 'S', 'B' or 'L' (aliases 'tiny', 'small',
            'base', 'large'), or a dict with the keys of an
            :attr:`arch_settings` entry (``embed_dims``, ``depths``,
            ``mlp_ratios``, ``ca_num_heads``, ``sa_num_heads``,
            ``ca_attentions``, ``head_conv``, ``expand_ratio``; optional
            ``hybrid_stages``, ``qkv_bias``; missing head/ratio keys take
            the values shared by all official sizes). Defaults to 'T'.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages returned. Defaults to
            (0, 1, 2, 3).
        frozen_stages (int): Stages ``0..frozen_stages`` are frozen (eval
            mode, no gradients; stage 0 includes the stem); -1 freezes
            nothing. Defaults to -1.
        norm_eval (bool): Keep every BatchNorm (stem and SAA) in eval mode
            in training. Defaults to False.
        drop_rate (float): Dropout in mixers and MLPs. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth of the last block, linear
            from 0 over all blocks (official ImageNet: 0.1 / 0.2 / 0.3 for
            T / S / B; detection S: 0.2). Defaults to 0.1.
        use_layerscale (bool): Layer scale in every block (not used by the
            released models). Defaults to False.
        layer_scale_init_value (float): Its initial value. Defaults to 1e-4.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=...)`` accepts an official ImageNet or detection
            checkpoint (converted on the fly by :func:`convert_smt`) or a
            densekit one (optionally with ``prefix``).

    Note:
        Any input size works. Every embedding conv has padding ``k // 2``
        and stride 2 (``ceil`` of the size), and the stem's 2x2 conv pads an
        odd map at the bottom/right, so the stride-``s`` output of an
        (H, W) image is (ceil(H / s), ceil(W / s)). Only the stem padding
        differs from the official code (which drops the odd row), and only
        when H or W is not a multiple of 4.

    Examples:
        >>> import torch
        >>> model = SMT(arch='T').eval()
        >>> [tuple(f.shape) for f in model(torch.rand(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> model.out_strides
        [4, 8, 16, 32]
    """
    _common = dict(ca_num_heads=(4, 4, 4, -1), sa_num_heads=(-1, -1, 8, 16),
                   ca_attentions=(1, 1, 1, 0), expand_ratio=2,
                   hybrid_stages=(2, ))
    arch_settings = {
        'T': dict(embed_dims=(64, 128, 256, 512), depths=(2, 2, 8, 1),
                  mlp_ratios=(4, 4, 4, 2), head_conv=3, **_common),
        'S': dict(embed_dims=(64, 128, 256, 512), depths=(3, 4, 18, 2),
                  mlp_ratios=(4, 4, 4, 2), head_conv=3, **_common),
        'B': dict(embed_dims=(64, 128, 256, 512), depths=(4, 6, 28, 2),
                  mlp_ratios=(8, 6, 4, 2), head_conv=7, **_common),
        'L': dict(embed_dims=(96, 192, 384, 768), depths=(4, 6, 28, 4),
                  mlp_ratios=(8, 6, 4, 2), head_conv=7, **_common),
    }
    arch_aliases = {'tiny': 'T', 'small': 'S', 'base': 'B', 'large': 'L'}
    arch_defaults = _common
    arch_required = ('embed_dims', 'depths', 'mlp_ratios', 'head_conv')
    arch_per_stage = ('embed_dims', 'mlp_ratios', 'ca_num_heads',
                      'sa_num_heads', 'ca_attentions')
    # ImageNet-1K parameters with the 1000-class head as published (paper;
    # official README: 12M, 21M, 32M, 81M)
    official_params = {'T': 11.5e6, 'S': 20.5e6, 'B': 32.0e6, 'L': 80.5e6}
    # where the official definition builds another count than it publishes
    # (module docstring): smt_s, the 1000-class classifier; densekit's
    # builds the same
    official_build_params = {'S': 22.55e6}

    def __init__(self,
                 *,
                 arch: Union[str, dict] = 'T',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 use_layerscale: bool = False,
                 layer_scale_init_value: float = 1e-4,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(out_indices=out_indices,
                         frozen_stages=frozen_stages,
                         norm_eval=norm_eval,
                         init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        self.arch = arch
        dims, depths = list(settings['embed_dims']), list(settings['depths'])
        self.depths = depths
        self.block_types = self.mixer_layout(settings)
        drop_paths = drop_path_rates(drop_path_rate, sum(depths))
        channels = in_channels
        for i, depth in enumerate(depths):
            embed = SMTStem(channels, dims[i], settings['head_conv']) \
                if i == 0 else SMTPatchEmbed(channels, dims[i])
            blocks = [
                SMTBlock(dims[i], mixer=self.block_types[i][j],
                         ca_num_heads=settings['ca_num_heads'][i],
                         sa_num_heads=settings['sa_num_heads'][i],
                         mlp_ratio=settings['mlp_ratios'][i],
                         expand_ratio=settings['expand_ratio'],
                         qkv_bias=settings.get('qkv_bias', True),
                         drop=drop_rate, attn_drop=attn_drop_rate,
                         drop_path=drop_paths.pop(0),
                         use_layerscale=use_layerscale,
                         layer_scale_init_value=layer_scale_init_value)
                for j in range(depth)
            ]
            self.stages.append(SMTStage(embed, blocks, dims[i]))
            self.stage_channels.append(dims[i])
            self.stage_strides.append(4 * 2**i)
            channels = dims[i]
        self._check_indices()
        self.apply(fan_out_normal_init_weights)

    @staticmethod
    def mixer_layout(settings: dict) -> List[List[str]]:
        """Token mixer of every block (EHN, Sec. 3.2): stage ``i`` uses SAM
        if ``ca_attentions[i]`` else attention, except that in
        ``hybrid_stages`` (stage 3, index 2) the odd blocks are attention."""
        layout = []
        for i, depth in enumerate(settings['depths']):
            base = 'sam' if settings['ca_attentions'][i] else 'msa'
            layout.append([
                'msa' if i in settings['hybrid_stages'] and j % 2 else base
                for j in range(depth)
            ])
        return layout

    def convert_pretrained(self, state_dict):
        """Official ImageNet/detection layouts -> ours (``init_cfg``
        ``Pretrained`` goes through :meth:`BaseBackbone.init_weights`)."""
        return convert_smt(state_dict)


class SMTClassifier(nn.Module):
    """The official ImageNet model: :class:`SMT` up to the last stage (whose
    LayerNorm is the official ``norm4``), token average, Linear head.

    State dict keys: ``backbone.stages.*`` and ``head.*``, i.e.
    ``convert_smt(ckpt, with_head=True)``.

    Args:
        arch (str | dict): See :class:`SMT`.
        num_classes (int): Classes (0: no head). Defaults to 1000.
        **kwargs: Other :class:`SMT` arguments.

    Shape: (B, 3, H, W) -> (B, num_classes).
    """

    def __init__(self, arch: Union[str, dict] = 'T', num_classes: int = 1000,
                 **kwargs) -> None:
        super().__init__()
        self.backbone = SMT(arch=arch, out_indices=(3, ), **kwargs)
        channels = self.backbone.stage_channels[3]
        self.head = nn.Linear(channels, num_classes) if num_classes > 0 \
            else nn.Identity()
        self.head.apply(fan_out_normal_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))


def smt_classifier(arch: Union[str, dict] = 'T', num_classes: int = 1000,
                   **kwargs) -> SMTClassifier:
    """Build the official classification model of ``arch`` (see
    :class:`SMTClassifier`); e.g. ``smt_classifier('T')`` has the 11.5M
    parameters of SMT-T."""
    return SMTClassifier(arch, num_classes=num_classes, **kwargs)


# ---------------------------------------------------------------------------
# Official checkpoint -> densekit keys
# ---------------------------------------------------------------------------
# stem (official ``patch_embed1`` = Head): conv.0 conv, conv.1 BN, conv.3 2x2
_STEM_RENAMES = {'conv.0': 'conv', 'conv.1': 'bn', 'conv.3': 'proj',
                 'norm': 'norm'}
_BN_PARAMS = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
# renames inside one block (official -> densekit); the rest keeps its name
_BLOCK_RENAMES = [
    (r'^attn\.local_conv_(\d+)\.',
     lambda m: f'attn.local_convs.{int(m.group(1)) - 1}.'),
    (r'^mlp\.dwconv\.dwconv\.', 'mlp.dwconv.'),
    (r'^gamma_([12])$', r'gamma\1'),
]
_BLOCK_KEYS = re.compile(
    r'^(norm[12]\.(weight|bias)|gamma[12]|'
    r'attn\.(v|s|q|kv|proj|proj0|proj1|local_conv)\.(weight|bias)|'
    r'attn\.local_convs\.\d+\.(weight|bias)|attn\.bn\.' + _BN_PARAMS + '|'
    r'mlp\.(fc1|fc2|dwconv)\.(weight|bias))$')


def _convert_key(key: str, with_head: bool) -> Optional[str]:
    """New key, '' for a key dropped on purpose, None if unknown."""
    if key.startswith('stages.'):
        return key                                   # densekit layout
    if key in ('head.weight', 'head.bias'):
        return key if with_head else ''
    match = re.match(r'^patch_embed1\.(conv\.[013]|norm)\.(.+)$', key)
    if match:
        name = match.group(2)
        layer = _STEM_RENAMES[match.group(1)]
        valid = re.fullmatch(_BN_PARAMS, name) if layer == 'bn' else \
            name in ('weight', 'bias')
        return f'stages.0.embed.{layer}.{name}' if valid else None
    match = re.match(r'^patch_embed(\d+)\.(proj|norm)\.(weight|bias)$', key)
    if match and int(match.group(1)) > 1:
        return (f'stages.{int(match.group(1)) - 1}.embed.'
                f'{match.group(2)}.{match.group(3)}')
    match = re.match(r'^norm(\d+)\.(weight|bias)$', key)
    if match and int(match.group(1)) >= 1:
        return f'stages.{int(match.group(1)) - 1}.norm.{match.group(2)}'
    match = re.match(r'^block(\d+)\.(\d+)\.(.+)$', key)
    if match and int(match.group(1)) >= 1:
        rest = match.group(3)
        for pattern, repl in _BLOCK_RENAMES:
            rest = re.sub(pattern, repl, rest)
        if not _BLOCK_KEYS.match(rest):
            return None
        return (f'stages.{int(match.group(1)) - 1}.blocks.{match.group(2)}.'
                f'{rest}')
    return None


def convert_smt(checkpoint, *, with_head: bool = False) -> Dict[str, Tensor]:
    """Map an official SMT checkpoint onto :class:`SMT`'s keys.

    Official layout (``models/smt.py``) -> densekit:

    * ``patch_embed1.conv.{0,1,3}.*`` (stem conv, BN, 2x2 conv),
      ``patch_embed1.norm.*`` -> ``stages.0.embed.{conv,bn,proj,norm}.*``
    * ``patch_embed{i}.{proj,norm}.*`` -> ``stages.{i-1}.embed.*``
    * ``block{i}.{j}.*`` -> ``stages.{i-1}.blocks.{j}.*`` with
      ``attn.local_conv_{k}`` -> ``attn.local_convs.{k-1}`` (SAM heads),
      ``mlp.dwconv.dwconv`` -> ``mlp.dwconv``, ``gamma_{1,2}`` ->
      ``gamma{1,2}``; the rest keeps its name (``norm1``, ``norm2``,
      ``attn.{v,s,proj0,bn,proj1,q,kv,local_conv,proj}``, ``mlp.fc{1,2}``)
    * ``norm{i}.*`` (stage LayerNorms) -> ``stages.{i-1}.norm.*``
    * ``head.*``: dropped, or kept with ``with_head`` (the other keys then
      get the ``backbone.`` prefix: the keys of :class:`SMTClassifier`).

    Every backbone tensor has an ImageNet counterpart, so the result loads
    into :class:`SMT` with ``strict=True``. Official detection/segmentation
    checkpoints (``backbone.``-prefixed, same names) are accepted, their
    other parts dropped; a dict already in densekit's layout passes through.

    Args:
        checkpoint (dict | nn.Module): A state dict, ``{'model': ...}``
            (official), ``{'state_dict': ...}`` (mmengine) or a module; a
            ``module.`` prefix is stripped.
        with_head (bool): Keep the classifier head.

    Returns:
        dict[str, Tensor]: The converted state dict.

    Raises:
        UnconvertedKeysError: For keys this layout does not know (listed).
    """
    return convert_state_dict_keys(checkpoint, 'convert_smt', 'official SMT',
                                   _convert_key, with_head)
