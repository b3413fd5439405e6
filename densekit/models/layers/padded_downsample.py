"""Patchify / downsampling layer shared by the ConvNeXt-style backbones
(EdgeNeXt, HorNet): LayerNorm and a kernel = stride convolution."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .mamba_yolo_blocks import LayerNorm2d


class PaddedDownsample(nn.Module):
    """``conv(k=s, stride=s)`` with a channels-first LayerNorm before
    (``norm_first``: the official between-stage layers) or after (the
    stems).

    Before the conv the map is zero-padded at the bottom/right to a
    multiple of the stride, so an (H, W) input gives
    (ceil(H / s), ceil(W / s)); inputs that are multiples of the stride
    are computed exactly as the official layers.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Kernel size and stride.
        norm_first (bool): Normalise the input (else the output).
        eps (float): LayerNorm epsilon. Defaults to 1e-6 (official).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_first: bool, eps: float = 1e-6) -> None:
        super().__init__()
        self.stride = stride
        self.norm_first = norm_first
        self.conv = nn.Conv2d(in_channels, out_channels, stride, stride)
        self.norm = LayerNorm2d(in_channels if norm_first else out_channels,
                                eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s))."""
        if self.norm_first:
            x = self.norm(x)
        pad_h, pad_w = -x.shape[-2] % self.stride, -x.shape[-1] % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.conv(x)
        return x if self.norm_first else self.norm(x)
