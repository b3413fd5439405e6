"""Assistant supervision of CBNetV2 (Liang et al., TIP 2022): the detection
losses on every backbone's neck features, the assisting backbones' scaled by
their weight.

Official: ``VDIGPKU/CBNetV2`` ``mmdet/models/detectors/two_stage.py``
(``TwoStageDetector.forward_train``: one RPN loss per backbone, then one
RoI-head loss per backbone, all RoI heads fed the proposals of the last RPN
run, i.e. the lead's; ``loss_weights = [0.5] + [1] * (n - 1)``, first
backbone first). The official ``single_stage.py`` has no assistant
supervision: its ``forward_train`` hands ``extract_feat``'s output to the
dense head as it is, and no official single-stage CBNetV2 config exists;
densekit's single-stage and YOLO detectors apply the same per-backbone rule
to their dense heads.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmdet.structures import SampleList
from torch import Tensor

from densekit.models.utils.composite_features import per_backbone_features

#: weight of every assisting backbone's losses (the paper's lambda)
ASSIST_WEIGHT = 0.5

#: ``loss_weights`` by name, for ``n`` backbones, lead last
LOSS_WEIGHT_RULES: Dict[str, Callable[[int], List[float]]] = {
    # VDIGPKU/CBNetV2 two_stage.py: 0.5 for the first backbone, 1 for the
    # others (the lead and, for n > 2, the later assisting ones)
    'official': lambda n: [ASSIST_WEIGHT] + [1.0] * (n - 1),
    # 0.5 for every assisting backbone, 1 for the lead
    'paper': lambda n: [ASSIST_WEIGHT] * (n - 1) + [1.0],
}


class CBAssistantSupervisionMixin:
    """Turns an mmdet detector into one with assistant supervision, keeping
    its own ``loss`` (mmdet's RPN + RoI, or dense-head, code) per backbone.

    Put it first in the bases (``class CBX(CBAssistantSupervisionMixin,
    mmdet.X)``) and call :meth:`_init_assistant_supervision` at the end of
    ``__init__``. Call graph::

        loss(): extract_feats() -> loss_per_backbone(): for each
                    backbone k (lead last): mmdet loss() -> extract_feat()
                    (returns backbone k's neck features) -> heads
                -> weighted, assisting keys suffixed ``_aux{k}``
        predict()/_forward() (mmdet's): extract_feat() -> the lead's neck
                    features (CBFPN skips the others at test)

    Subclasses with a different per-backbone rule (the two-stage
    detector's shared proposals) override :meth:`loss_per_backbone`.

    Attributes:
        loss_weights (tuple[float]): Weight of each backbone's losses, lead
            last.
    """

    _given_feats: Optional[Tuple[Tensor, ...]] = None

    def _init_assistant_supervision(
            self, loss_weights: Union[None, str, Sequence[float]],
            default: str = 'paper') -> None:
        """Check the neck and the weights once the modules are built.

        Args:
            loss_weights (str | Sequence[float], optional): One weight per
                backbone (lead last), or a name of
                :data:`LOSS_WEIGHT_RULES`; None means ``default``.
            default (str): The rule used when ``loss_weights`` is None.
        """
        from densekit.models.necks.cbnet_fpn import CBFPN
        num = int(getattr(self.backbone, 'num_backbones', 1))
        if num > 1 and self.with_neck and not isinstance(self.neck, CBFPN):
            raise ValueError(
                f'{type(self).__name__}: the backbone returns features of '
                f'{num} backbones but the neck is a '
                f'{type(self.neck).__name__}; wrap it: '
                "neck=dict(type='densekit.CBFPN', neck=<the neck config>)")
        if loss_weights is None:
            loss_weights = default
        if isinstance(loss_weights, str):
            if loss_weights not in LOSS_WEIGHT_RULES:
                raise ValueError(
                    f'{type(self).__name__}: loss_weights must be one of '
                    f'{sorted(LOSS_WEIGHT_RULES)} or one weight per '
                    f'backbone, but got {loss_weights!r}')
            loss_weights = LOSS_WEIGHT_RULES[loss_weights](num)
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
        parts = self.loss_per_backbone(per_backbone, batch_inputs,
                                       batch_data_samples)
        losses = dict()
        last = len(per_backbone) - 1
        for k, (part, weight) in enumerate(zip(parts, weights)):
            suffix = '' if k == last else f'_aux{k}'
            for name, value in part.items():
                if 'loss' in name:
                    value = _scaled(value, weight)
                losses[name + suffix] = value
        return losses

    def loss_per_backbone(self, per_backbone: List[Tuple[Tensor, ...]],
                          batch_inputs: Tensor,
                          batch_data_samples: SampleList) -> List[dict]:
        """The unweighted, unrenamed losses of each backbone: the mmdet
        detector's own ``loss`` with :meth:`extract_feat` returning that
        backbone's features, backbone by backbone (lead last).

        Args:
            per_backbone (list[tuple[Tensor]]): :meth:`extract_feats`.
            batch_inputs (Tensor): images, (N, C, H, W).
            batch_data_samples (list[DetDataSample]): the ground truth.

        Returns:
            list[dict]: one mmdet loss dict per backbone.
        """
        parts = []
        for feats in per_backbone:
            self._given_feats = feats
            try:
                parts.append(super().loss(batch_inputs, batch_data_samples))
            finally:
                self._given_feats = None
        return parts


def _scaled(value: Union[Tensor, list, tuple], weight: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * weight for v in value)
    return value * weight
