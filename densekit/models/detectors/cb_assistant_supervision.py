"""Assistant supervision of CBNetV2 (Liang et al., TIP 2022): the detection
losses on every backbone's neck features, the assisting backbones' scaled by
their weight. Official: ``VDIGPKU/CBNetV2``
``mmdet/models/detectors/{two_stage,single_stage}.py`` (``loss_weights``).
"""
from typing import List, Optional, Sequence, Tuple, Union

from mmdet.structures import SampleList
from torch import Tensor

from densekit.models.backbones.cbnet import per_backbone_features

#: weight of every assisting backbone's losses (the paper's lambda)
ASSIST_WEIGHT = 0.5


class CBAssistantSupervisionMixin:
    """Turns an mmdet detector into one with assistant supervision, keeping
    its own ``loss`` (mmdet's RPN + RoI, or dense-head, code) per backbone.

    Put it first in the bases (``class CBX(CBAssistantSupervisionMixin,
    mmdet.X)``) and call :meth:`_init_assistant_supervision` at the end of
    ``__init__``. Call graph::

        loss(): extract_feats() -> for each backbone k (lead last):
                    mmdet loss() -> extract_feat() (returns backbone k's
                    neck features) -> heads
                -> weighted, assisting keys suffixed ``_aux{k}``
        predict()/_forward() (mmdet's): extract_feat() -> the lead's neck
                    features (CBFPN skips the others at test)

    Attributes:
        loss_weights (tuple[float]): Weight of each backbone's losses, lead
            last.
    """

    _given_feats: Optional[Tuple[Tensor, ...]] = None

    def _init_assistant_supervision(
            self, loss_weights: Optional[Sequence[float]]) -> None:
        """Check the neck and the weights once the modules are built."""
        from densekit.models.necks.cbnet_fpn import CBFPN
        num = int(getattr(self.backbone, 'num_backbones', 1))
        if num > 1 and self.with_neck and not isinstance(self.neck, CBFPN):
            raise ValueError(
                f'{type(self).__name__}: the backbone returns features of '
                f'{num} backbones but the neck is a '
                f'{type(self.neck).__name__}; wrap it: '
                "neck=dict(type='densekit.CBFPN', neck=<the neck config>)")
        if loss_weights is None:
            loss_weights = [ASSIST_WEIGHT] * (num - 1) + [1.0]
        loss_weights = tuple(float(w) for w in loss_weights)
        if len(loss_weights) != num:
            raise ValueError(
                f'{type(self).__name__}: loss_weights needs one weight per '
                f'backbone ({num}, lead last), but got {list(loss_weights)}')
        self.loss_weights = loss_weights

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """The lead backbone's neck features (N, C_l, H_l, W_l) per level,
        or, inside :meth:`loss`, those of the backbone being supervised."""
        if self._given_feats is not None:
            return self._given_feats
        return self.extract_feats(batch_inputs)[-1]

    def extract_feats(self, batch_inputs: Tensor) -> List[Tuple[Tensor, ...]]:
        """Neck (or backbone) features of every backbone, lead last, in
        training; the lead's alone in eval mode (CBFPN's rule).

        Args:
            batch_inputs (Tensor): images, (N, C, H, W).

        Returns:
            list[tuple[Tensor]]: per backbone, one (N, C_l, H_l, W_l) map per
            level.
        """
        return per_backbone_features(super().extract_feat(batch_inputs))

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """The detector's losses on every backbone's features.

        Returns:
            dict: the lead's losses under mmdet's names, the assisting
            backbone ``k``'s under ``{name}_aux{k}``; every ``loss*`` entry
            multiplied by its backbone's :attr:`loss_weights` (other entries,
            e.g. accuracies, as they are).
        """
        per_backbone = self.extract_feats(batch_inputs)
        # eval-mode CBFPN gives the lead only: weight 1
        weights = self.loss_weights[-len(per_backbone):] \
            if len(per_backbone) > 1 else (1.0, )
        losses = dict()
        last = len(per_backbone) - 1
        for k, (feats, weight) in enumerate(zip(per_backbone, weights)):
            self._given_feats = feats
            try:
                part = super().loss(batch_inputs, batch_data_samples)
            finally:
                self._given_feats = None
            suffix = '' if k == last else f'_aux{k}'
            for name, value in part.items():
                if 'loss' in name:
                    value = _scaled(value, weight)
                losses[name + suffix] = value
        return losses


def _scaled(value: Union[Tensor, list, tuple], weight: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * weight for v in value)
    return value * weight
