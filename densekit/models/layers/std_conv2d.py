"""Weight-standardised 2D convolution with the biased-variance formula of
BiT / the R50+ViT hybrid (TransUNet's ``StdConv2d``).

Official: ``Beckschen/TransUNet`` ``networks/vit_seg_modeling_resnet_skip.py``
``StdConv2d`` (Apache-2.0), the PyTorch port of the JAX ``StdConv`` of
google-research/big_transfer and vision_transformer; re-implemented.
"""
from typing import Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.registry import MODELS

__all__ = ['StdConv2d', 'standardize_weight']


def standardize_weight(weight: Tensor, eps: float = 1e-5) -> Tensor:
    """Each output filter minus its mean, over ``sqrt(var + eps)``.

    ``var`` is the *biased* variance (divided by ``C_in / groups * kh * kw``)
    and ``eps`` sits under the square root, as the official ``StdConv2d``
    computes it (``torch.var_mean(w, dim=[1, 2, 3], unbiased=False)``).
    mmcv's ``ConvWS`` differs in both: ``(w - mean) / (std + eps)`` with the
    unbiased std.

    Args:
        weight (Tensor): (C_out, C_in / groups, kh, kw).
        eps (float): Added to the variance. Defaults to 1e-5.

    Returns:
        Tensor: The standardised weight, same shape and dtype.
    """
    var, mean = torch.var_mean(weight, dim=[1, 2, 3], keepdim=True,
                               unbiased=False)
    return (weight - mean) / torch.sqrt(var + eps)


@MODELS.register_module()
class StdConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel is standardised per output filter on every
    forward (:func:`standardize_weight`); the stored ``weight`` is the raw,
    unstandardised kernel, so official checkpoints load unchanged.

    Config name ``dict(type='densekit.StdConv2d')`` (for
    ``mmcv.cnn.build_conv_layer`` and mmdet's ``conv_cfg``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
            groups, bias: as ``nn.Conv2d``.
        eps (float): Added to the filter variance. Defaults to 1e-5 (the
            official value).

    Shape: (N, C_in, H, W) -> (N, C_out, H', W') as ``nn.Conv2d``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 eps: float = 1e-5) -> None:
        super().__init__(in_channels, out_channels, kernel_size,
                         stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, standardize_weight(self.weight, self.eps),
                        self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', eps={self.eps}'
