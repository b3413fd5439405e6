"""Fold inference BatchNorms into the convolutions that feed them.

In eval mode a BatchNorm is a per-channel affine map, so ``BN(conv(x))``
equals one convolution with scaled weights and a shifted bias. mmcv's
``fuse_conv_bn`` folds every BatchNorm child that follows a ``Conv2d``
child in *registration* order, which is only right where the forward runs
them back to back. :func:`fuse_conv_bn` folds only where the order is
certain:

* ``mmcv.cnn.ConvModule`` whose ``order`` puts ``'conv'`` right before
  ``'norm'`` (YOLOv8's and the necks' convs);
* ``nn.Sequential`` with a ``Conv2d`` child directly followed by a
  BatchNorm child (Mamba YOLO's ``conv_bn_act``, ResNet-style stems);
* a module that lists ``(conv, norm)`` attribute names its forward runs
  back to back in a ``fuse_pairs`` class attribute (Mamba YOLO's
  ``LSBlock``).

A BatchNorm elsewhere (applied to a sum, or before its conv) is left
alone. The arithmetic is mmcv's (``_fuse_conv_bn``).

Examples:
    >>> model = fuse_conv_bn(model.eval())   # in place, returns ``model``
"""
from typing import Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule
from mmcv.cnn.utils.fuse_conv_bn import _fuse_conv_bn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['fuse_conv_bn', 'count_batchnorms']


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and isinstance(norm, _BatchNorm)
            and norm.track_running_stats and norm.running_mean is not None
            and norm.num_features == conv.out_channels)


def _fuse_into(conv: nn.Conv2d, norm: _BatchNorm) -> None:
    """Fold ``norm`` into ``conv`` (``conv`` modified in place)."""
    if not norm.affine:  # a BN without weight/bias: fold the identity affine
        norm.weight = nn.Parameter(norm.running_var.new_ones(
            norm.num_features))
        norm.bias = nn.Parameter(norm.running_var.new_zeros(
            norm.num_features))
    _fuse_conv_bn(conv, norm)


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm into the ``Conv2d`` run just before it.

    Args:
        model (nn.Module): A model in eval mode (training BatchNorms use
            batch statistics and cannot be folded).

    Returns:
        nn.Module: ``model``, modified in place: the folded BatchNorms are
        ``nn.Identity``.

    Raises:
        ValueError: ``model`` is in training mode.
    """
    if model.training:
        raise ValueError(
            f'fuse_conv_bn: {type(model).__name__} is in training mode; '
            'call model.eval() first (training BatchNorms use batch '
            'statistics and cannot be folded)')
    for module in list(model.modules()):
        if isinstance(module, ConvModule):
            if not module.with_norm or 'norm' not in module.order:
                continue
            i = module.order.index('conv')
            if module.order[i + 1:i + 2] != ('norm', ):
                continue
            norm = getattr(module, module.norm_name)
            if _foldable(module.conv, norm):
                _fuse_into(module.conv, norm)
                setattr(module, module.norm_name, nn.Identity())
        elif getattr(module, 'fuse_pairs', None):
            for conv_name, norm_name in module.fuse_pairs:
                conv = getattr(module, conv_name)
                norm = getattr(module, norm_name)
                if _foldable(conv, norm):
                    _fuse_into(conv, norm)
                    setattr(module, norm_name, nn.Identity())
        elif isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, norm = module._modules[a], module._modules[b]
                if _foldable(conv, norm):
                    _fuse_into(conv, norm)
                    module._modules[b] = nn.Identity()
    return model


def count_batchnorms(model: nn.Module) -> Tuple[int, int]:
    """``(BatchNorms, Conv2d)`` counts: a fused model's BatchNorms are the
    ones :func:`fuse_conv_bn` could not fold."""
    norms = sum(isinstance(m, _BatchNorm) for m in model.modules())
    convs = sum(type(m) is nn.Conv2d for m in model.modules())
    return norms, convs
