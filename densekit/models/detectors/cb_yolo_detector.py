"""densekit's YOLO detector with CBNetV2's assistant supervision."""
from typing import Optional, Sequence, Union

import torch.nn as nn

from densekit.registry import MODELS
from .cb_assistant_supervision import CBAssistantSupervisionMixin
from .yolo_detector import YOLODetector


@MODELS.register_module()
class CBYOLODetector(CBAssistantSupervisionMixin, YOLODetector):
    """:class:`densekit.YOLODetector` (channels from the backbone contract)
    whose head losses are computed on every backbone's neck features of a
    :class:`densekit.CBNet` + :class:`densekit.CBFPN`, the assisting
    backbones' weighted and renamed ``*_aux{k}``
    (:class:`CBAssistantSupervisionMixin`); prediction uses the lead only.

    Args:
        backbone, neck, bbox_head, train_cfg, test_cfg, data_preprocessor,
            init_cfg: as :class:`densekit.YOLODetector`; the CBFPN's
            ``in_channels`` are filled from the CBNet's ``out_channels``.
        loss_weights (str | Sequence[float], optional): One weight per
            backbone, lead last, or a rule name of ``LOSS_WEIGHT_RULES``
            (``cb_assistant_supervision.py``).
            Defaults to None, i.e. ``'paper'``: 0.5 per assisting backbone,
            1 for the lead (the official CBNetV2 has no single-stage
            assistant supervision to follow; its two-stage rule is
            ``'official'``).
    """

    def __init__(self,
                 *,
                 backbone: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module, None] = None,
                 bbox_head: Union[dict, nn.Module],
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 loss_weights: Union[None, str, Sequence[float]] = None,
                 init_cfg=None) -> None:
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self._init_assistant_supervision(loss_weights)
