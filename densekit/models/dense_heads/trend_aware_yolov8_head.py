"""YOLOv8 head trained with StreamYOLO's Trend-Aware Loss (TAL).

Yang et al., "Real-time Object Detection for Streaming Perception", CVPR 2022,
Sec. 3.3, eq. 3-4; official ``yancie-yjr/StreamYOLO:exps/model/tal_head.py``
(``get_losses``) with the ``cfgs/*_s50_onex_dfp_tal_flip.py`` settings
``gamma=1.0, ignore_thr=0.5, ignore_value=1.5``:

* each target object i (frame t+k) has its trend IoU ``nu_i`` = IoU with its
  own box at frame t (``gt_instances.trend_ious``, see the dataset);
  objects with ``nu_i < ignore_thr`` (new or fast objects) take the constant
  ``nu_i = ignore_value``;
* ``w_i = 1 / (nu_i ** gamma + 1e-8)`` (fast-moving objects weigh more);
* every foreground anchor a assigned to object i gets ``w_a = w_i``, then the
  weights are renormalised over all foreground anchors of the batch so that
  the total regression loss is unchanged (detached, eq. 4)::

      w_hat_a = w_a * sum_a L_a / sum_a (w_a * L_a)

  and the regression losses (here CIoU and DFL; officially IoU and L1) are
  multiplied by ``w_hat_a``. The classification loss is left as is, as
  officially.

With all trend IoUs equal the weights are 1 and the loss is YOLOv8Head's.
"""
from typing import Dict, List

import torch
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.dist import get_world_size
from torch import Tensor

from densekit.registry import MODELS
from ..utils.box_ops import bbox_ciou
from .yolov8_head import YOLOv8Head

EPS = 1e-8  # official: weight = 1 / (iou ** gamma + 1e-8)


@MODELS.register_module()
class TrendAwareYOLOv8Head(YOLOv8Head):
    """:class:`YOLOv8Head` whose box losses are trend-aware (StreamYOLO TAL).

    Args:
        trend_gamma (float): Exponent of ``nu`` in the weight. Defaults to
            1.0 (official configs).
        ignore_thr (float): Trend IoUs below this are replaced by
            ``ignore_value``. Defaults to 0.5.
        ignore_value (float): The constant ``nu`` of new / fast objects.
            Defaults to 1.5.
        **kwargs: :class:`YOLOv8Head`'s arguments (``num_classes``,
            ``in_channels``, ``featmap_strides``, ``reg_max``, ``norm_cfg``,
            ``act_cfg``, ``loss_cls``, ``loss_bbox``, ``loss_dfl``,
            ``scale_loss_by_batch``, ``train_cfg``, ``test_cfg``,
            ``init_cfg``).

    ``batch_gt_instances`` must carry ``trend_ious`` (G,) per image
    (``densekit.PackStreamInputs`` packs them).
    """

    def __init__(self,
                 *,
                 trend_gamma: float = 1.0,
                 ignore_thr: float = 0.5,
                 ignore_value: float = 1.5,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if ignore_value <= 0:
            raise ValueError('TrendAwareYOLOv8Head: ignore_value must be > 0 '
                             f'(it is divided by), got {ignore_value}')
        self.trend_gamma = trend_gamma
        self.ignore_thr = ignore_thr
        self.ignore_value = ignore_value

    def object_weights(self, trend_ious: Tensor) -> Tensor:
        """Official per-object weights ``1 / (nu ** gamma + eps)``.

        Args:
            trend_ious (Tensor): (...) trend IoUs in [0, 1].

        Returns:
            Tensor: (...) unnormalised weights.
        """
        nu = torch.where(trend_ious < self.ignore_thr,
                         trend_ious.new_tensor(self.ignore_value), trend_ious)
        return 1.0 / (nu.pow(self.trend_gamma) + EPS)

    def _pad_trend_ious(self, batch_gt_instances: InstanceList,
                        max_gts: int, device) -> Tensor:
        """(B, G) trend IoUs padded like :meth:`_pad_gts` (padding: 1)."""
        out = torch.ones((len(batch_gt_instances), max_gts), device=device)
        for i, gt in enumerate(batch_gt_instances):
            if 'trend_ious' not in gt:
                raise ValueError(
                    'TrendAwareYOLOv8Head needs gt_instances.trend_ious (the '
                    'IoU of each target box with its box at the current '
                    f'frame) but image {i} has only {list(gt.keys())}; load '
                    'with densekit.LoadStreamAnnotations and pack with '
                    'densekit.PackStreamInputs, or use densekit.YOLOv8Head')
            n = len(gt)
            if gt.trend_ious.shape != (n, ):
                raise ValueError(
                    f'gt_instances.trend_ious of image {i} has shape '
                    f'{tuple(gt.trend_ious.shape)}, expected ({n},)')
            out[i, :n] = gt.trend_ious.to(device=device, dtype=out.dtype)
        return out

    @staticmethod
    def _assigned_gt_index(assigned: Dict[str, Tensor], gt_bboxes: Tensor,
                           gt_labels: Tensor, gt_valid: Tensor) -> Tensor:
        """(B, A) index of the ground truth each prior was assigned to.

        The assigner returns the assigned box and label, not the index; the
        index is recovered by exact match (the assigner gathers the boxes, so
        they are bit-identical). Identical duplicate boxes of one class
        resolve to the first (their trend IoUs are then expected equal).
        """
        same = (assigned['assigned_bboxes'][:, :, None, :] ==
                gt_bboxes[:, None, :, :]).all(-1)  # (B, A, G)
        same &= assigned['assigned_labels'][:, :, None] == \
            gt_labels[:, None, :]
        same &= gt_valid[:, None, :]
        return same.float().argmax(-1)

    def loss_by_feat(
            self,
            cls_scores: List[Tensor],
            bbox_preds: List[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None
    ) -> Dict[str, Tensor]:
        """YOLOv8's losses with trend-aware CIoU and DFL terms.

        Args:
            cls_scores (list[Tensor]): (B, num_classes, H_i, W_i) per level.
            bbox_preds (list[Tensor]): (B, 4 * reg_max, H_i, W_i) per level.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (G, 4)
                (x1, y1, x2, y2) pixels, ``labels`` (G,), ``trend_ious`` (G,).
            batch_img_metas (list[dict]): Image metas (unused).
            batch_gt_instances_ignore: Not supported (ignored).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_dfl``.
        """
        batch_size = cls_scores[0].shape[0]
        featmap_sizes = [s.shape[-2:] for s in cls_scores]
        priors, strides = self._flat_priors(
            featmap_sizes, cls_scores[0].dtype, cls_scores[0].device)
        flat_cls = self._flatten(cls_scores, self.num_classes)
        flat_bins = self._flatten(bbox_preds, 4 * self.reg_max)
        pred_bboxes = self._decode(flat_bins, priors, strides)

        gt_bboxes, gt_labels, gt_valid = self._pad_gts(
            batch_gt_instances, flat_cls.device)
        trend_ious = self._pad_trend_ious(batch_gt_instances,
                                          gt_bboxes.shape[1], flat_cls.device)
        assigned = self.assigner(flat_cls.detach().sigmoid(),
                                 pred_bboxes.detach(), priors, gt_labels,
                                 gt_bboxes, gt_valid)
        target_scores = assigned['assigned_scores']
        fg_mask = assigned['fg_mask']
        target_scores_sum = target_scores.sum().clamp(min=1)

        loss_cls = self.loss_cls(flat_cls, target_scores).sum() / \
            target_scores_sum
        if fg_mask.any():
            gt_idx = self._assigned_gt_index(assigned, gt_bboxes, gt_labels,
                                             gt_valid)
            trend_w = self.object_weights(trend_ious).gather(
                1, gt_idx)[fg_mask]  # (P,)
            weight = target_scores.sum(-1)[fg_mask]  # (P,)
            target_bboxes = assigned['assigned_bboxes'][fg_mask]
            fg_pred = pred_bboxes[fg_mask]
            with torch.no_grad():  # eq. 4, detached as officially
                per_box = (1.0 - bbox_ciou(fg_pred, target_bboxes)) * weight
                box_w = trend_w * per_box.sum() / \
                    (trend_w * per_box).sum().clamp(min=EPS)
            loss_bbox = self.loss_bbox(
                fg_pred, target_bboxes, weight=weight * box_w,
                avg_factor=target_scores_sum)
            # DFL targets: side distances in stride units, inside the bins
            fg_priors = priors.expand(batch_size, -1, -1)[fg_mask]
            fg_strides = strides.expand(batch_size, -1, -1)[fg_mask]
            target_dist = torch.cat(
                [fg_priors - target_bboxes[:, :2],
                 target_bboxes[:, 2:] - fg_priors], dim=-1) / fg_strides
            target_dist = target_dist.clamp(0, self.reg_max - 1 - 0.01)
            fg_bins = flat_bins[fg_mask].reshape(-1, self.reg_max)
            side_w = weight[:, None].expand(-1, 4).reshape(-1)
            with torch.no_grad():
                per_side = self.loss_dfl(
                    fg_bins, target_dist.reshape(-1), weight=side_w,
                    reduction_override='none').reshape(-1, 4).sum(-1)
                dfl_w = trend_w * per_side.sum() / \
                    (trend_w * per_side).sum().clamp(min=EPS)
            loss_dfl = self.loss_dfl(
                fg_bins, target_dist.reshape(-1),
                weight=side_w * dfl_w[:, None].expand(-1, 4).reshape(-1),
                avg_factor=4 * target_scores_sum)
        else:
            # keep every parameter in the graph (DDP) with a zero loss
            loss_bbox = flat_bins.sum() * 0
            loss_dfl = flat_bins.sum() * 0

        scale = batch_size * get_world_size() if self.scale_loss_by_batch \
            else 1
        return dict(
            loss_cls=loss_cls * scale,
            loss_bbox=loss_bbox * scale,
            loss_dfl=loss_dfl * scale)
