"""Two-stage detector (Faster / Mask R-CNN, ...) with CBNetV2's assistant
supervision."""
import copy
from typing import List, Sequence, Tuple, Union

import torch
from mmdet.models.detectors.two_stage import TwoStageDetector
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from torch import Tensor

from densekit.registry import MODELS
from .cb_assistant_supervision import CBAssistantSupervisionMixin

#: which RPN's proposals each RoI head is trained on
ASSISTANT_PROPOSALS = ('lead', 'own')


@MODELS.register_module()
class CBTwoStageDetector(CBAssistantSupervisionMixin, TwoStageDetector):
    """mmdet's ``TwoStageDetector`` whose RPN and RoI-head losses (box, and
    mask for a mask RoI head) are computed on every backbone's neck
    features of a :class:`densekit.CBNet` + :class:`densekit.CBFPN`; the
    assisting backbones' losses are weighted and renamed ``*_aux{k}`` (see
    :class:`CBAssistantSupervisionMixin`). Prediction uses the lead only.

    Training call graph with ``assistant_proposals='lead'`` (the official
    ``VDIGPKU/CBNetV2`` ``two_stage.py`` loop)::

        loss(): extract_feats() -> loss_per_backbone():
            for each backbone k (lead last): rpn_loss_and_predict(k)
            for each backbone k: roi_head.loss(k's features, the LEAD's
                proposals, ground truth)
        -> weighted, assisting keys suffixed ``_aux{k}``

    With ``'own'`` every backbone runs mmdet's whole ``loss`` (its RPN, then
    its RoI head on its own proposals), backbone by backbone.

    Args:
        backbone, neck, rpn_head, roi_head, train_cfg, test_cfg,
            data_preprocessor, init_cfg: as mmdet's ``TwoStageDetector``
            (``train_cfg``/``test_cfg`` as ``ConfigDict``).
        loss_weights (str | Sequence[float], optional): One weight per
            backbone, lead last, or a rule name: ``'official'``
            (``[0.5] + [1] * (n - 1)``, first backbone first, as the
            official ``two_stage.py``) or ``'paper'`` (0.5 for every
            assisting backbone, 1 for the lead; densekit's former default).
            The two agree for two backbones. Defaults to None, i.e.
            ``'official'``.
        assistant_proposals (str): ``'lead'``: every RoI head is trained on
            the lead's RPN proposals, as the official loop does (its RPN
            loop overwrites the proposal list, so the last backbone's
            survive). ``'own'``: each backbone's RoI head on its own RPN's
            proposals (densekit's former behaviour). Without an RPN (given
            proposals) both are the same. Defaults to 'lead'.
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
                 loss_weights: Union[None, str, Sequence[float]] = None,
                 assistant_proposals: str = 'lead',
                 init_cfg: OptMultiConfig = None) -> None:
        if assistant_proposals not in ASSISTANT_PROPOSALS:
            raise ValueError(
                'CBTwoStageDetector: assistant_proposals must be one of '
                f'{ASSISTANT_PROPOSALS}, but got {assistant_proposals!r}')
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head,
                         roi_head=roi_head, train_cfg=train_cfg,
                         test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.assistant_proposals = assistant_proposals
        self._init_assistant_supervision(loss_weights, default='official')

    def rpn_loss_and_predict(self, x: Tuple[Tensor, ...],
                             batch_data_samples: SampleList
                             ) -> Tuple[dict, InstanceList]:
        """The RPN part of mmdet's ``TwoStageDetector.loss`` on one
        backbone's features: class-agnostic targets, the ``rpn_proposal``
        config, losses renamed ``rpn_*``.

        Args:
            x (tuple[Tensor]): neck features, (N, C, H_l, W_l) per level.
            batch_data_samples (list[DetDataSample]): the ground truth (not
                modified).

        Returns:
            tuple[dict, list[InstanceData]]: the RPN losses and, per image,
            the proposals (``bboxes`` (num_proposals, 4) in [x1, y1, x2, y2],
            ``scores``, ``labels``).
        """
        proposal_cfg = self.train_cfg.get('rpn_proposal', self.test_cfg.rpn)
        rpn_data_samples = copy.deepcopy(batch_data_samples)
        for data_sample in rpn_data_samples:  # one class in the RPN
            data_sample.gt_instances.labels = torch.zeros_like(
                data_sample.gt_instances.labels)
        rpn_losses, rpn_results_list = self.rpn_head.loss_and_predict(
            x, rpn_data_samples, proposal_cfg=proposal_cfg)
        # avoid names shared with the RoI head's losses (mmdet's rule)
        for key in list(rpn_losses):
            if 'loss' in key and 'rpn' not in key:
                rpn_losses[f'rpn_{key}'] = rpn_losses.pop(key)
        return rpn_losses, rpn_results_list

    def loss_per_backbone(self, per_backbone: List[Tuple[Tensor, ...]],
                          batch_inputs: Tensor,
                          batch_data_samples: SampleList) -> List[dict]:
        """Per backbone (lead last), its RPN and RoI-head losses; the RoI
        heads get the proposals ``assistant_proposals`` names (class
        docstring). Returns: list[dict], unweighted, mmdet's names."""
        if self.assistant_proposals == 'own' or not self.with_rpn \
                or len(per_backbone) == 1:
            return super().loss_per_backbone(per_backbone, batch_inputs,
                                             batch_data_samples)
        rpn_parts = []
        for feats in per_backbone:  # the official order: every RPN first
            rpn_losses, proposals = self.rpn_loss_and_predict(
                feats, batch_data_samples)
            rpn_parts.append(rpn_losses)
        lead_proposals = proposals  # the last loop's, the lead's
        parts = []
        for feats, rpn_losses in zip(per_backbone, rpn_parts):
            # a RoI head renames the proposals' bboxes to priors in place:
            # each gets its own InstanceData (the tensors are shared)
            roi_losses = self.roi_head.loss(
                feats, [p.clone() for p in lead_proposals],
                batch_data_samples)
            parts.append(dict(rpn_losses, **roi_losses))
        return parts
