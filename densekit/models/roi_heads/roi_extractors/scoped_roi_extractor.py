"""mmdet's ``SingleRoIExtractor`` with registry-scoped RoI layers.

mmdet's ``BaseRoIExtractor.build_roi_layers`` takes ``roi_layer.type`` from
``mmcv.ops`` only. This extractor first resolves a scoped registry name
(``'densekit.RoIAlign'``: :class:`densekit.ops.roi_align.RoIAlign`, the
multi-threaded CPU kernel), and otherwise falls back to mmcv.ops exactly as
mmdet does, so every existing ``roi_layer`` config means what it meant.
The level mapping (FPN Eq. 1, ``finest_scale``) and the rest of the
extraction are mmdet's, unchanged.
"""
from typing import List

import torch.nn as nn
from mmcv import ops
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.utils import ConfigType

import densekit.ops.roi_align  # noqa: F401  registers densekit.RoIAlign
from densekit.registry import MODELS


@MODELS.register_module()
class ScopedRoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` whose ``roi_layer.type`` may be a registry name.

    Args:
        roi_layer (dict): RoI layer config; ``type`` is a name in
            ``mmcv.ops`` (``'RoIAlign'``), a registered scoped name
            (``'densekit.RoIAlign'``) or a class.
        out_channels (int): Output channels of the RoI layers.
        featmap_strides (list[int]): Strides of the input feature maps.
        finest_scale (int): Scale threshold of mapping to level 0.
            Defaults to 56.
        init_cfg (dict, optional): Initialisation config.
    """

    def build_roi_layers(self, layer_cfg: ConfigType,
                         featmap_strides: List[int]) -> nn.ModuleList:
        """One RoI layer per level, ``spatial_scale = 1 / stride``."""
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type')
        if isinstance(layer_type, str):
            layer_cls = getattr(ops, layer_type, None) or \
                MODELS.get(layer_type)
            if layer_cls is None:
                raise KeyError(
                    f'roi_layer type {layer_type!r} is neither in mmcv.ops '
                    f'nor registered (densekit registers '
                    f'\'densekit.RoIAlign\')')
        else:
            layer_cls = layer_type
        return nn.ModuleList(
            [layer_cls(spatial_scale=1 / s, **cfg) for s in featmap_strides])
