"""Per-class soft Dice loss as TransUNet / Swin-UNet train with."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class ClassDiceLoss(nn.Module):
    """1 - soft Dice, computed per class over the whole batch and averaged
    over the classes (TransUNet ``utils.DiceLoss``: softmax scores, one-hot
    targets, squared denominators ``sum(p^2) + sum(t^2)``, smooth 1e-5).

    mmseg 1.2's ``DiceLoss`` instead pools every class of a sample into one
    Dice, which a dominant background makes almost insensitive to small
    organs; this is the loss the medical U-Net papers report with.

    Args:
        smooth (float): Defaults to 1e-5 (TransUNet).
        ignore_index (int): Pixels of this label are left out. Defaults to
            255.
        loss_weight (float): Defaults to 1.
        loss_name (str): Defaults to ``'loss_dice'``.
    """

    def __init__(self, smooth: float = 1e-5, ignore_index: int = 255,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_dice') -> None:
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, pred: Tensor, target: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = None, **kwargs) -> Tensor:
        """pred: (N, C, H, W) logits; target: (N, H, W) labels."""
        ignore = self.ignore_index if ignore_index is None else ignore_index
        num_classes = pred.shape[1]
        valid = (target != ignore).unsqueeze(1).to(pred.dtype)
        labels = torch.where(target == ignore, torch.zeros_like(target),
                             target)
        if labels.numel() and int(labels.max()) >= num_classes:
            raise ValueError(f'ClassDiceLoss: label {int(labels.max())} >= '
                             f'num_classes {num_classes}')
        score = pred.softmax(dim=1) * valid
        onehot = F.one_hot(labels.long(), num_classes).permute(
            0, 3, 1, 2).to(pred.dtype) * valid
        dims = (0, 2, 3)
        intersect = (score * onehot).sum(dims)
        denominator = score.pow(2).sum(dims) + onehot.pow(2).sum(dims)
        dice = (2 * intersect + self.smooth) / (denominator + self.smooth)
        return self.loss_weight * (1 - dice).mean()

    @property
    def loss_name(self) -> str:
        return self._loss_name
