"""A plain ViT whose patchify stem is a few stride-2 convolutions (Xiao et
al., "Early Convolutions Help Transformers See Better", NeurIPS 2021, §3:
"ViT_C")."""
import math
from typing import Sequence, Tuple

import torch.nn as nn
from mmseg.models.backbones.vit import VisionTransformer
from torch import Tensor

from densekit.registry import MODELS


class ConvStem(nn.Module):
    """``log2(patch_size)`` 3x3 stride-2 conv-BN-ReLU layers and a 1x1
    projection: the same (B, N, C) token sequence and (h, w) grid as mmseg's
    ``PatchEmbed``, ``h = ceil(H / patch_size)``.

    Args:
        patch_size (int): A power of two (the total stride).
        embed_dims (int): Token channels.
        channels (Sequence[int]): Output channels of the stride-2 convs,
            one per halving.
    """

    def __init__(self, patch_size: int, embed_dims: int,
                 channels: Sequence[int], in_channels: int = 3) -> None:
        super().__init__()
        halvings = int(math.log2(patch_size))
        if 2**halvings != patch_size or len(channels) != halvings:
            raise ValueError(
                f'ConvStem: patch_size={patch_size} needs a power of two '
                f'and one stem channel per halving ({halvings}), got '
                f'stem_channels={list(channels)}')
        layers, prev = [], in_channels
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 3, 2, 1, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
            prev = ch
        self.convs = nn.Sequential(*layers)
        self.projection = nn.Conv2d(prev, embed_dims, 1)
        self.patch_size = patch_size

    def token_grid(self, size: Tuple[int, int]) -> Tuple[int, int]:
        """The (h, w) token grid of an (H, W) input."""
        return tuple(-(-s // self.patch_size) for s in size)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.projection(self.convs(x))
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


@MODELS.register_module()
class ConvStemViT(VisionTransformer):
    """mmseg's plain ``VisionTransformer`` (same blocks, position
    embedding, outputs and checkpoints for the blocks) with a convolutional
    stem instead of the patchify convolution: it trains faster and more
    stably from scratch, as §3 of the paper shows, and the sequence stays
    plain (one resolution), so DToP prunes it exactly like a ViT.

    Args:
        stem_channels (Sequence[int]): Channels of the stride-2 convs
            (``log2(patch_size)`` of them).
        **kwargs: mmseg ``VisionTransformer``'s (``patch_size``,
            ``embed_dims``, ``num_layers``, ``out_indices``, ...).
    """

    def __init__(self, stem_channels: Sequence[int] = (24, 48, 96),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.patch_embed = ConvStem(self.patch_size,
                                    self.pos_embed.shape[-1], stem_channels,
                                    in_channels=kwargs.get('in_channels', 3))
