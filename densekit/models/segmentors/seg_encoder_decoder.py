"""mmseg's EncoderDecoder whose heads read the backbone's channel contract."""
from typing import List, Optional, Union

import torch.nn as nn
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor

from densekit.registry import MODELS


def _head_in_channels(cfg: dict, channels: List[int], key: str) -> dict:
    """Fill ``cfg.in_channels`` from ``channels[cfg.in_index]``, or check
    it; a list ``in_index`` gives a list, an int an int (mmseg's rule)."""
    cfg = dict(cfg)
    in_index = cfg.get('in_index', -1)
    try:
        provided = ([channels[i] for i in in_index]
                    if isinstance(in_index, (list, tuple)) else
                    channels[in_index])
    except IndexError:
        raise ValueError(
            f'{key}.in_index={in_index} but the backbone (or neck) returns '
            f'{len(channels)} feature maps with channels {channels}'
        ) from None
    given = cfg.get('in_channels')
    if given is None:
        cfg['in_channels'] = provided
    elif (list(given) if isinstance(given, (list, tuple)) else given) != \
            (list(provided) if isinstance(provided, list) else provided):
        raise ValueError(
            f'{key}.in_channels={given} but in_index={in_index} selects '
            f'feature maps with channels {provided}; remove '
            f'`{key}.in_channels` to take them from the backbone '
            'automatically')
    return cfg


@MODELS.register_module()
class SegEncoderDecoder(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` with the heads' ``in_channels`` resolved.

    When the backbone (or neck) reports ``out_channels`` (every densekit
    backbone does, see :class:`densekit.models.backbones.BaseBackbone`),
    ``decode_head.in_channels`` and ``auxiliary_head.in_channels`` default
    to the channels of the maps their ``in_index`` selects, so a config
    swaps backbones without channel arithmetic; explicit values that
    disagree raise ``ValueError`` naming the key. mmseg and mmpretrain
    backbones without ``out_channels`` need explicit ``in_channels`` as in
    plain mmseg. Training, inference (``whole``/``slide``) and losses are
    mmseg's.

    Args: as :class:`mmseg.models.segmentors.EncoderDecoder`.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: Optional[dict] = None,
                 auxiliary_head: Union[dict, List[dict], None] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 init_cfg=None) -> None:
        # EncoderDecoder.__init__ builds the heads before any contract is
        # known; do what it does with the channels filled in
        BaseSegmentor.__init__(
            self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            if backbone.get('pretrained') is not None:
                raise ValueError('both model.pretrained and '
                                 'model.backbone.pretrained are set')
            backbone = dict(backbone, pretrained=pretrained)
        self.backbone = MODELS.build(backbone)
        channels = getattr(self.backbone, 'out_channels', None)
        if neck is not None:
            self.neck = MODELS.build(neck)
            channels = getattr(self.neck, 'out_channels', None)
        if channels is not None:
            channels = list(channels)
            decode_head = _head_in_channels(decode_head, channels,
                                            'model.decode_head')
            if isinstance(auxiliary_head, dict):
                auxiliary_head = _head_in_channels(
                    auxiliary_head, channels, 'model.auxiliary_head')
            elif isinstance(auxiliary_head, (list, tuple)):
                auxiliary_head = [
                    _head_in_channels(h, channels,
                                      f'model.auxiliary_head[{i}]')
                    for i, h in enumerate(auxiliary_head)
                ]
        self._init_decode_head(decode_head)
        self._init_auxiliary_head(auxiliary_head)
        # mmseg reads test_cfg.mode: accept plain dicts from Python callers
        self.train_cfg = ConfigDict(train_cfg) if isinstance(
            train_cfg, dict) else train_cfg
        self.test_cfg = ConfigDict(test_cfg) if isinstance(
            test_cfg, dict) else test_cfg
        assert isinstance(self.decode_head, nn.Module)
