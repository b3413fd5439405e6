"""Single-stage detector (RetinaNet, ATSS, FCOS, ...) with CBNetV2's
assistant supervision."""
from typing import Sequence, Union

from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig

from densekit.registry import MODELS
from .cb_assistant_supervision import CBAssistantSupervisionMixin


@MODELS.register_module()
class CBSingleStageDetector(CBAssistantSupervisionMixin, SingleStageDetector):
    """mmdet's ``SingleStageDetector`` whose dense-head losses are computed
    on every backbone's neck features of a :class:`densekit.CBNet` +
    :class:`densekit.CBFPN`, the assisting backbones' weighted and renamed
    ``*_aux{k}`` (:class:`CBAssistantSupervisionMixin`); prediction uses the
    lead only.

    Args:
        backbone, neck, bbox_head, train_cfg, test_cfg, data_preprocessor,
            init_cfg: as mmdet's ``SingleStageDetector``.
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
                 backbone: ConfigType,
                 neck: OptConfigType = None,
                 bbox_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 loss_weights: Union[None, str, Sequence[float]] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone=backbone, neck=neck, bbox_head=bbox_head,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self._init_assistant_supervision(loss_weights)
