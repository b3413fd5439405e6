"""Two-stage detector (Faster / Mask R-CNN, ...) with CBNetV2's assistant
supervision."""
from typing import Optional, Sequence

from mmdet.models.detectors.two_stage import TwoStageDetector
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig

from densekit.registry import MODELS
from .cb_assistant_supervision import CBAssistantSupervisionMixin


@MODELS.register_module()
class CBTwoStageDetector(CBAssistantSupervisionMixin, TwoStageDetector):
    """mmdet's ``TwoStageDetector`` whose RPN and RoI-head losses (box, and
    mask for a mask RoI head) are computed on every backbone's neck
    features of a :class:`densekit.CBNet` + :class:`densekit.CBFPN`; the
    assisting backbones' losses are weighted and renamed ``*_aux{k}`` (see
    :class:`CBAssistantSupervisionMixin`). Prediction uses the lead only.

    Args:
        backbone, neck, rpn_head, roi_head, train_cfg, test_cfg,
            data_preprocessor, init_cfg: as mmdet's ``TwoStageDetector``
            (``train_cfg``/``test_cfg`` as ``ConfigDict``).
        loss_weights (Sequence[float], optional): One weight per backbone,
            lead last. Defaults to 0.5 for each assisting backbone and 1 for
            the lead (the paper; the official code's ``[0.5] + [1] * (n-1)``
            is the same for two backbones).
    """

    def __init__(self,
                 *,
                 backbone: ConfigType,
                 neck: OptConfigType = None,
                 rpn_head: OptConfigType = None,
                 roi_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 loss_weights: Optional[Sequence[float]] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head,
                         roi_head=roi_head, train_cfg=train_cfg,
                         test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self._init_assistant_supervision(loss_weights)
