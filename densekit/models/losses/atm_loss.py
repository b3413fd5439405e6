"""The attention-to-mask loss of SegViT (Zhang et al., 2022, §3.3), the loss
DToP trains every exit head with."""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.registry import MODELS


@MODELS.register_module()
class ATMLoss(nn.Module):
    """Per-class presence + mask loss for class-query heads.

    Query ``k`` of an :class:`~densekit.models.decode_heads.ATMHead` stands
    for class ``k`` (no Hungarian matching: the official DToP/SegViT
    criterion matches query ``k`` to class ``k`` as well). For each image:

    * presence: 2-way cross-entropy, "present" for classes in the label
      map, "no object" for the rest, the latter weighted ``eos_coef``;
    * masks, for present classes only: sigmoid focal loss (alpha 0.25,
      gamma 2) and Dice loss between the upsampled mask logits and the
      class's binary mask, each normalised by the number of masks.

    Pixels equal to ``ignore_index`` never make a class present. In the
    mask losses they count as background of every class by default, as the
    official criterion does (zbwxp/Dynamic-Token-Pruning
    ``loss/atm_loss.py`` builds each target mask as ``label == cls`` and
    ``loss/criterion.py`` averages focal and Dice terms over all pixels);
    ``ignore_mode='exclude'`` leaves them out of both terms instead.

    Args:
        cls_weight, mask_weight, dice_weight (float): Term weights;
            defaults 1, 20, 1 as the official configs.
        eos_coef (float): Weight of the "no object" class. Defaults to 0.1.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
        ignore_mode (str): ``'background'`` (official) or ``'exclude'``.
            Defaults to ``'background'``.
    """

    def __init__(self,
                 cls_weight: float = 1.0,
                 mask_weight: float = 20.0,
                 dice_weight: float = 1.0,
                 eos_coef: float = 0.1,
                 loss_weight: float = 1.0,
                 ignore_mode: str = 'background') -> None:
        super().__init__()
        if ignore_mode not in ('background', 'exclude'):
            raise ValueError(f"ATMLoss: ignore_mode={ignore_mode!r}, expected "
                             "'background' (official) or 'exclude'")
        self.ignore_mode = ignore_mode
        self.cls_weight = cls_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.loss_weight = loss_weight
        self.register_buffer(
            'presence_weight', torch.tensor([1.0, eos_coef]),
            persistent=False)

    def forward(self, class_logits: Tensor, mask_logits: Tensor,
                seg_label: Tensor, ignore_index: int = 255
                ) -> Dict[str, Tensor]:
        """Args:
            class_logits (Tensor): (B, K, 2) present / no-object logits.
            mask_logits (Tensor): (B, K, h, w) mask logits (any resolution).
            seg_label (Tensor): (B, H, W) int labels.

        Returns:
            dict: ``loss_cls``, ``loss_mask`` (focal) and ``loss_dice``.
        """
        num_classes = class_logits.shape[1]
        valid = seg_label != ignore_index
        bad = valid & ((seg_label < 0) | (seg_label >= num_classes))
        if bool(bad.any()):
            raise ValueError(
                f'labels must lie in [0, {num_classes}) or be the ignore '
                f'index {ignore_index}, got '
                f'{seg_label[bad].unique().tolist()}')
        flat = torch.where(valid, seg_label, num_classes).flatten(1)
        # (B, K + 1): which classes each image's label map contains (the
        # extra column collects the ignored pixels)
        present = torch.zeros((flat.shape[0], num_classes + 1),
                              dtype=torch.bool, device=flat.device)
        present.scatter_(1, flat, True)
        present = present[:, :num_classes]
        presence_target = (~present).long()  # 0 present, 1 no object
        loss_cls = F.cross_entropy(
            class_logits.transpose(1, 2), presence_target,
            weight=self.presence_weight.to(class_logits.dtype))

        img_idx, cls_idx = present.nonzero(as_tuple=True)
        num_masks = max(int(img_idx.numel()), 1)
        masks = F.interpolate(
            mask_logits[img_idx, cls_idx][:, None], size=seg_label.shape[-2:],
            mode='bilinear', align_corners=False)[:, 0].flatten(1)
        target = (seg_label[img_idx] == cls_idx[:, None, None]).flatten(1)
        target = target.to(masks.dtype)
        if self.ignore_mode == 'exclude':
            pixel_valid = valid[img_idx].flatten(1).to(masks.dtype)
        else:  # official: ignored pixels are background of every class
            pixel_valid = torch.ones_like(masks)
        num_valid = pixel_valid.sum(1).clamp(min=1)

        prob = masks.sigmoid()
        ce = F.binary_cross_entropy_with_logits(masks, target,
                                                reduction='none')
        p_t = prob * target + (1 - prob) * (1 - target)
        alpha_t = 0.25 * target + 0.75 * (1 - target)
        focal = alpha_t * ce * (1 - p_t)**2
        loss_mask = ((focal * pixel_valid).sum(1) / num_valid).sum() / \
            num_masks

        prob = prob * pixel_valid
        numerator = 2 * (prob * target).sum(1)
        denominator = prob.sum(1) + (target * pixel_valid).sum(1)
        loss_dice = (1 - (numerator + 1) / (denominator + 1)).sum() / \
            num_masks
        return dict(
            loss_cls=loss_cls * self.cls_weight * self.loss_weight,
            loss_mask=loss_mask * self.mask_weight * self.loss_weight,
            loss_dice=loss_dice * self.dice_weight * self.loss_weight)
