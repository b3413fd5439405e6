"""Wide ResNet (Zagoruyko and Komodakis, "Wide Residual Networks", BMVC
2016) in torchvision's ``wide_resnet50_2`` / ``wide_resnet101_2`` layout.

A Wide ResNet-x-2 is a ResNet whose bottleneck 3x3 convolutions (and the
1x1 convolutions around them) have twice the channels; the block outputs,
and so the stage channels 256/512/1024/2048, stay those of the ResNet.
torchvision builds it as ``ResNet(Bottleneck, layers, width_per_group=128)``
with the bottleneck width ``planes * width_per_group / 64 * groups``.

mmdet's ``ResNeXt(groups=1, base_width=128)`` is **not** that network: its
``Bottleneck`` uses ``width = planes`` whenever ``groups == 1`` and ignores
``base_width``, which builds a plain ResNet (42.5M parameters for depth 101
against 124.8M). :class:`WideResNet` reuses mmdet's ``ResNet`` (stem,
stages, ``out_indices``/``frozen_stages``/``norm_eval``) with a bottleneck
that applies torchvision's width rule, so the parameter names are
torchvision's (``conv1.weight``, ``bn1.*``, ``layer1.0.conv2.weight``,
``layer1.0.downsample.0.weight`` ...) and ``wide_resnet101_2-32ee1156.pth``
(torchvision, BSD-3-Clause; ImageNet-1k weights) loads by name, ``fc.*``
being the only unexpected keys.

Parameter counts without ``fc`` (four stages): WRN-50-2 66,834,240,
WRN-101-2 124,837,696 (torchvision: 68,883,240 / 126,886,696 with the
2,049,000-parameter ``fc``).
"""
from typing import List

from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmdet.models.layers import ResLayer

from densekit.registry import MODELS


class WideBottleneck(Bottleneck):
    """mmdet's ``Bottleneck`` whose 1x1-3x3 part has
    ``planes * base_width // 64`` channels (torchvision's rule with
    ``groups=1``); the output keeps ``planes * 4`` channels.

    Args:
        inplanes (int): Input channels.
        planes (int): Base channels of the block (64, 128, 256, 512 for the
            four stages); the output has ``4 * planes``.
        base_width (int): torchvision's ``width_per_group``; 128 doubles
            the width (WRN-x-2). Defaults to 128.
        **kwargs: ``stride``, ``dilation``, ``downsample``, ``style``,
            ``with_cp``, ``conv_cfg``, ``norm_cfg``, ``init_cfg`` of mmdet's
            ``Bottleneck``. ``dcn`` and ``plugins`` are not supported.
    """
    expansion = 4

    def __init__(self, inplanes: int, planes: int, base_width: int = 128,
                 **kwargs) -> None:
        super().__init__(inplanes, planes, **kwargs)
        if self.with_dcn or self.with_plugins:
            raise ValueError('WideBottleneck does not support dcn or plugins, '
                             f'but got dcn={self.dcn}, '
                             f'plugins={self.plugins}')
        width = planes * base_width // 64
        # rebuild the 1x1-3x3-1x1 convolutions around the wider middle
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, width,
                                                  postfix=1)
        self.norm2_name, norm2 = build_norm_layer(self.norm_cfg, width,
                                                  postfix=2)
        self.conv1 = build_conv_layer(
            self.conv_cfg, inplanes, width, kernel_size=1,
            stride=self.conv1_stride, bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(
            self.conv_cfg, width, width, kernel_size=3,
            stride=self.conv2_stride, padding=self.dilation,
            dilation=self.dilation, bias=False)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(
            self.conv_cfg, width, planes * self.expansion, kernel_size=1,
            bias=False)


@MODELS.register_module()
class WideResNet(ResNet):
    """Wide ResNet-50-2 / -101-2 with mmdet's ResNet interface and
    torchvision's parameter names.

    Every argument is mmdet ``ResNet``'s (``depth`` in {50, 101},
    ``num_stages``, ``strides``, ``dilations``, ``out_indices``,
    ``frozen_stages``, ``norm_cfg``, ``norm_eval``, ``with_cp``,
    ``init_cfg`` ...); ``dcn`` and ``plugins`` raise ``ValueError``. The
    width factor is the class attribute :attr:`base_width` (torchvision's
    ``width_per_group``; both released networks use 128), so that no
    attribute has to be set before ``ResNet.__init__`` builds the stages.

    Note:
        mmdet's ``zero_init_residual`` only recognises its own
        ``Bottleneck`` class, so a randomly initialised WideResNet keeps
        Kaiming/constant init on ``norm3``; pretrained weights overwrite it.

    Examples:
        >>> import torch
        >>> wrn = WideResNet(depth=50, num_stages=3, strides=(1, 2, 2),
        ...                  dilations=(1, 1, 1), out_indices=(1, 2))
        >>> [tuple(f.shape) for f in wrn(torch.rand(1, 3, 64, 64))]
        [(1, 512, 8, 8), (1, 1024, 4, 4)]
        >>> wrn.feature_info
        [{'channels': 512, 'stride': 8}, {'channels': 1024, 'stride': 16}]
    """

    arch_settings = {
        50: (WideBottleneck, (3, 4, 6, 3)),
        101: (WideBottleneck, (3, 4, 23, 3)),
    }
    #: torchvision's ``width_per_group``: middle width = planes * 128 / 64
    base_width = 128

    def make_res_layer(self, **kwargs) -> ResLayer:
        """Pack the blocks of one stage into a ``ResLayer``."""
        return ResLayer(base_width=self.base_width, **kwargs)

    @property
    def feature_info(self) -> List[dict]:
        """Contract of the returned features: ``[dict(channels, stride)]``
        per ``out_indices`` entry (stride relative to the input image)."""
        info = []
        stride = 4  # stem: 7x7 stride-2 conv and stride-2 max pool
        for i in range(self.num_stages):
            stride *= self.strides[i]
            if i in self.out_indices:
                info.append(
                    dict(channels=self.base_channels * 2**i *
                         self.block.expansion, stride=stride))
        return info
