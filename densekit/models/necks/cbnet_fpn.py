"""CBFPN: one neck shared by the backbones of a :class:`densekit.CBNet`.

Official: ``VDIGPKU/CBNetV2`` ``mmdet/models/necks/cbnet_fpn.py`` (an FPN
subclass); densekit's wraps any neck config instead (mmdet's ``FPN``,
``densekit.YOLOv8PAFPN``, ...).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from densekit.models.utils.composite_features import per_backbone_features
from densekit.registry import MODELS


@MODELS.register_module()
class CBFPN(BaseModule):
    """Run one (shared) neck on every backbone's features in training, on
    the lead backbone's only at test.

    In eval mode the assisting backbones' neck work is not executed at all;
    their backbone work still is (the lead's composite inputs need it).

    Args:
        neck (dict | nn.Module): The shared neck, a config or a module.
        in_channels (Sequence[int], optional): Written into the neck config
            when it has none (so that ``densekit.YOLODetector`` can fill it
            from the backbone's contract); a neck config whose
            ``in_channels`` disagrees raises ``ValueError``.
    """

    def __init__(self,
                 *,
                 neck: Union[dict, nn.Module],
                 in_channels: Optional[Sequence[int]] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(neck, nn.Module):
            neck = dict(neck)
            given = neck.get('in_channels')
            if in_channels is not None:
                if given is None:
                    neck['in_channels'] = list(in_channels)
                elif list(given) != list(in_channels):
                    raise ValueError(
                        f'densekit.CBFPN: in_channels={list(in_channels)} '
                        f'but neck.in_channels={list(given)}; give only one')
            neck = MODELS.build(neck)
        self.neck = neck

    @property
    def in_channels(self):
        return getattr(self.neck, 'in_channels', None)

    @property
    def out_channels(self):
        return getattr(self.neck, 'out_channels', None)

    def forward(self, inputs) -> Union[Tuple[Tensor, ...],
                                       List[Tuple[Tensor, ...]]]:
        """Args:
            inputs: :class:`densekit.CBNet`'s output, one tuple of
                (N, C_i, H_i, W_i) maps per backbone, lead last (or a single
                backbone's tuple of maps).

        Returns:
            In training, a list with the neck's output tuple for every
            backbone, lead last; in eval mode, the lead's output tuple only.
        """
        per_backbone = per_backbone_features(inputs)
        if self.training:
            return [tuple(self.neck(feats)) for feats in per_backbone]
        return tuple(self.neck(per_backbone[-1]))
