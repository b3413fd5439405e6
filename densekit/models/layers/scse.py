"""scSE: concurrent spatial and channel squeeze & excitation.

Roy, Navab and Wachinger, "Concurrent Spatial and Channel 'Squeeze &
Excitation' in Fully Convolutional Networks", MICCAI 2018
(https://arxiv.org/abs/1803.02579), and the journal version "Recalibrating
Fully Convolutional Networks with Spatial and Channel 'Squeeze & Excitation'
Blocks", IEEE TMI 2019 (https://arxiv.org/abs/1808.08127). The authors'
PyTorch code is ``ai-med/squeeze_and_excitation``
(``squeeze_and_excitation/squeeze_and_excitation.py``, MIT licence:
``ChannelSELayer``, ``SpatialSELayer``, ``ChannelSpatialSELayer``).

For a feature map ``x: r(N C H W)``::

    cSE(x) = x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)  # W1: C -> C // r
    sSE(x) = x * sigmoid(w . x + b)                 # a 1x1 conv C -> 1
    scSE(x) = max(cSE(x), sSE(x))   (mode='max')
            = cSE(x) + sSE(x)       (mode='add')

Both branches recalibrate ``x`` (they never change its shape), so the block
can follow any convolution block; the paper puts one after every encoder
and decoder block of a U-Net-like FCN.

The combination: the MICCAI paper adds the two recalibrated maps; the TMI
paper compares max-out, addition, multiplication and concatenation, and
the authors' ``ChannelSpatialSELayer`` takes the element-wise maximum
(``torch.max(self.cSE(x), self.sSE(x))``). densekit defaults to that
(``mode='max'``) and offers ``mode='add'`` for the MICCAI form (also what
``segmentation_models_pytorch``'s ``SCSEModule`` computes). The reduction
ratio defaults to the authors' 2; SE-Net's (Hu et al.) is 16.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.registry import MODELS

SCSE_MODES = ('max', 'add')


def _check_positive_int(name: str, value, where: str = 'SCSE') -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{where}: {name} must be an int >= 1, but got '
                         f'{value!r}')


@MODELS.register_module()
class SCSE(BaseModule):
    """Concurrent spatial and channel squeeze & excitation (module
    docstring), an mmcv plugin.

    It follows mmcv's plugin convention (``_abbr_`` and an ``in_channels``
    argument), so hosts that build plugins with
    :func:`mmcv.cnn.build_plugin_layer` take it as
    ``dict(type='densekit.SCSE', reduction=2)``, e.g. the ``plugins`` of
    mmseg's and mmdet's ResNet bottlenecks::

        plugins=[dict(cfg=dict(type='densekit.SCSE'),
                      stages=(False, True, True, True),
                      position='after_conv3')]

    mmseg's ``UNet`` has no plugin hook (its ``plugins`` argument asserts
    None); densekit's ``SCSEUNet`` backbone places scSE blocks in
    it. 2D only (the authors' repository also has a 3D variant, not
    ported).

    Args:
        in_channels (int): Channels ``C`` of the input.
        reduction (int): Bottleneck ratio ``r`` of the channel branch,
            hidden width ``max(1, C // r)``. Defaults to 2.
        mode (str): How the two recalibrated maps combine: ``'max'``
            (element-wise maximum) or ``'add'``. Defaults to 'max'.
        init_cfg (dict, optional): mmengine initialisation config; None
            keeps PyTorch's default initialisation. Defaults to None.

    Examples:
        >>> block = SCSE(in_channels=8, reduction=2)
        >>> block(torch.rand(2, 8, 5, 7)).shape
        torch.Size([2, 8, 5, 7])
    """
    _abbr_ = 'scse'

    def __init__(self,
                 in_channels: int,
                 reduction: int = 2,
                 mode: str = 'max',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_positive_int('in_channels', in_channels)
        _check_positive_int('reduction', reduction)
        if mode not in SCSE_MODES:
            raise ValueError(f'SCSE: mode must be one of {SCSE_MODES}, but '
                             f'got {mode!r}')
        self.in_channels = in_channels
        self.reduction = reduction
        self.mode = mode
        hidden = max(1, in_channels // reduction)
        # cSE: "spatial squeeze and channel excitation"
        self.channel_fc1 = nn.Linear(in_channels, hidden)
        self.channel_fc2 = nn.Linear(hidden, in_channels)
        # sSE: "channel squeeze and spatial excitation"
        self.spatial_conv = nn.Conv2d(in_channels, 1, kernel_size=1)

    def channel_gate(self, x: Tensor) -> Tensor:
        """The cSE weights ``sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

        Args:
            x (Tensor): Features of shape (N, C, H, W).

        Returns:
            Tensor: Shape (N, C, 1, 1), values in (0, 1).
        """
        squeezed = x.mean(dim=(2, 3))  # (N, C)
        gate = self.channel_fc2(torch.relu(self.channel_fc1(squeezed)))
        return torch.sigmoid(gate)[:, :, None, None]

    def spatial_gate(self, x: Tensor) -> Tensor:
        """The sSE weights ``sigmoid(conv1x1(x))``.

        Args:
            x (Tensor): Features of shape (N, C, H, W).

        Returns:
            Tensor: Shape (N, 1, H, W), values in (0, 1).
        """
        return torch.sigmoid(self.spatial_conv(x))

    def forward(self, x: Tensor) -> Tensor:
        """Recalibrate ``x`` along channels and space.

        Args:
            x (Tensor): Features of shape (N, C, H, W), C = ``in_channels``.

        Returns:
            Tensor: Shape (N, C, H, W).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'SCSE: expected features of shape (N, {self.in_channels}, '
                f'H, W), but got {tuple(x.shape)}')
        channel = x * self.channel_gate(x)
        spatial = x * self.spatial_gate(x)
        if self.mode == 'max':
            return torch.maximum(channel, spatial)
        return channel + spatial

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'reduction={self.reduction}, mode={self.mode!r}')
