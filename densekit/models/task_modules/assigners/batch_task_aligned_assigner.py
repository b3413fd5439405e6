"""Task-aligned assignment (TOOD, Feng et al. ICCV 2021, Sec. 3.2), batched.

This is the assigner YOLOv8 trains with: a prior (anchor point) can match a
ground-truth box only if its centre lies inside the box; among those, each
box takes the ``topk`` priors with the highest alignment metric
``t = s^alpha * u^beta`` (s: predicted score of the box's class, u: CIoU of the
predicted box with the ground truth, TOOD eq. 1); a prior matched by several
boxes keeps the one it overlaps most. Soft targets are ``t`` normalised per
box so that its best prior gets the box's best IoU (TOOD eq. 9-10).

All images of a batch are assigned at once on padded ground truth, with no
Python loop over images, boxes or priors.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from densekit.registry import TASK_UTILS
from ...utils.box_ops import bbox_ciou


@TASK_UTILS.register_module()
class BatchTaskAlignedAssigner:
    """Assign ground truth to priors by the task-alignment metric.

    Args:
        num_classes (int): Number of foreground classes.
        topk (int): Candidates per ground-truth box. Defaults to 10 (YOLOv8).
        alpha (float): Exponent of the classification score. Defaults to 0.5.
        beta (float): Exponent of the IoU. Defaults to 6.0.
        eps (float): Numerical epsilon. Defaults to 1e-9.
    """

    def __init__(self,
                 *,
                 num_classes: int,
                 topk: int = 10,
                 alpha: float = 0.5,
                 beta: float = 6.0,
                 eps: float = 1e-9) -> None:
        if topk < 1:
            raise ValueError(f'topk must be >= 1, but got {topk}')
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def __call__(self, pred_scores: Tensor, pred_bboxes: Tensor,
                 priors: Tensor, gt_labels: Tensor, gt_bboxes: Tensor,
                 pad_bbox_flag: Tensor) -> Dict[str, Tensor]:
        """Assign a batch.

        Args:
            pred_scores (Tensor): (B, A, C) sigmoid class scores.
            pred_bboxes (Tensor): (B, A, 4) decoded boxes, (x1, y1, x2, y2),
                in pixels.
            priors (Tensor): (A, 2) prior centres (x, y) in pixels.
            gt_labels (Tensor): (B, G) ground-truth labels (long).
            gt_bboxes (Tensor): (B, G, 4) ground-truth boxes, (x1, y1, x2, y2).
            pad_bbox_flag (Tensor): (B, G) 1 for real boxes, 0 for padding.

        Returns:
            dict[str, Tensor]:
                - ``assigned_labels`` (B, A) long, ``num_classes`` for
                  background;
                - ``assigned_bboxes`` (B, A, 4) target boxes;
                - ``assigned_scores`` (B, A, C) soft classification targets;
                - ``fg_mask`` (B, A) bool.
        """
        batch_size, num_priors, num_classes = pred_scores.shape
        num_gts = gt_bboxes.shape[1]
        if num_gts == 0:
            return dict(
                assigned_labels=gt_labels.new_full(
                    (batch_size, num_priors), self.num_classes),
                assigned_bboxes=pred_bboxes.new_zeros(
                    (batch_size, num_priors, 4)),
                assigned_scores=pred_scores.new_zeros(
                    (batch_size, num_priors, num_classes)),
                fg_mask=pred_scores.new_zeros(
                    (batch_size, num_priors), dtype=torch.bool))

        valid = pad_bbox_flag.bool()[..., None]  # (B, G, 1)
        in_gts = self._priors_inside_gts(priors, gt_bboxes) & valid  # (B,G,A)

        # alignment metric t = s^alpha * u^beta, only for priors inside boxes
        overlaps = bbox_ciou(gt_bboxes[:, :, None, :],
                             pred_bboxes[:, None, :, :]).clamp(min=0)
        overlaps = overlaps * in_gts
        labels = gt_labels.long().clamp(0, num_classes - 1)
        bbox_scores = pred_scores.transpose(1, 2).gather(
            1, labels[..., None].expand(-1, -1, num_priors))  # (B, G, A)
        align_metric = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        align_metric = align_metric * in_gts

        # top-k priors per box, restricted to priors inside it
        topk = min(self.topk, num_priors)
        topk_idx = align_metric.topk(topk, dim=-1).indices  # (B, G, k)
        is_topk = torch.zeros_like(in_gts).scatter_(-1, topk_idx, True)
        mask_pos = is_topk & in_gts  # (B, G, A)

        # a prior claimed by several boxes keeps the one it overlaps most
        multi = mask_pos.sum(1, keepdim=True) > 1  # (B, 1, A)
        best_gt = F.one_hot(overlaps.argmax(1), num_gts).transpose(1, 2).bool()
        mask_pos = torch.where(multi, best_gt & in_gts, mask_pos)
        fg_mask = mask_pos.any(1)  # (B, A)
        gt_idx = mask_pos.float().argmax(1)  # (B, A)

        assigned_labels = labels.gather(1, gt_idx)
        assigned_bboxes = gt_bboxes.gather(
            1, gt_idx[..., None].expand(-1, -1, 4))
        assigned_labels = torch.where(
            fg_mask, assigned_labels,
            assigned_labels.new_full((), self.num_classes))

        # soft targets: t normalised per box to the box's best IoU
        align_metric = align_metric * mask_pos
        max_metric = align_metric.amax(-1, keepdim=True)  # (B, G, 1)
        max_overlap = (overlaps * mask_pos).amax(-1, keepdim=True)
        norm_metric = (align_metric * max_overlap /
                       (max_metric + self.eps)).amax(1)  # (B, A)
        assigned_scores = F.one_hot(
            assigned_labels, num_classes + 1)[..., :num_classes].to(
                pred_scores.dtype) * norm_metric[..., None]
        return dict(
            assigned_labels=assigned_labels,
            assigned_bboxes=assigned_bboxes,
            assigned_scores=assigned_scores,
            fg_mask=fg_mask)

    def _priors_inside_gts(self, priors: Tensor, gt_bboxes: Tensor) -> Tensor:
        """(B, G, A) bool: prior centre strictly inside the box."""
        xy = priors[None, None]  # (1, 1, A, 2)
        lt = xy - gt_bboxes[:, :, None, :2]
        rb = gt_bboxes[:, :, None, 2:] - xy
        return torch.cat([lt, rb], dim=-1).amin(-1) > self.eps
