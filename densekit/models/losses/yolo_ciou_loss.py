"""CIoU box loss in the form YOLOv8 trains with (no IoU<0.5 gating)."""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from densekit.registry import MODELS
from ..utils.box_ops import bbox_ciou


@MODELS.register_module()
class YOLOCIoULoss(nn.Module):
    """``loss = sum(weight * (1 - CIoU)) / avg_factor`` (YOLOv8 ``BboxLoss``).

    Args:
        loss_weight (float): Multiplier of the loss (7.5 in YOLOv8).
        eps (float): Numerical epsilon of :func:`bbox_ciou`.
    """

    def __init__(self, *, loss_weight: float = 1.0, eps: float = 1e-7) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """Args:
            pred (Tensor): (N, 4) predicted boxes, (x1, y1, x2, y2).
            target (Tensor): (N, 4) target boxes, (x1, y1, x2, y2).
            weight (Tensor, optional): (N,) per-box weights.
            avg_factor (float, optional): Divisor of the summed loss; the mean
                over boxes when None.

        Returns:
            Tensor: scalar loss.
        """
        loss = 1.0 - bbox_ciou(pred, target, eps=self.eps)
        if weight is not None:
            loss = loss * weight
        denom = avg_factor if avg_factor is not None else max(len(loss), 1)
        return self.loss_weight * loss.sum() / denom
