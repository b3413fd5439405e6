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
from typing import Dict, Tuple

import torch
from mmdet.utils import InstanceList
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

    def _foreground_loss_weights(
            self, fg: Dict[str, Tensor], assigned: Dict[str, Tensor],
            batch_gt_instances: InstanceList,
            padded_gts: Tuple[Tensor, Tensor, Tensor]) -> Tuple[Tensor,
                                                                Tensor]:
        """YOLOv8's weights times the trend weights of eq. 4, per term.

        Each foreground prior takes the weight ``w`` of the object it is
        assigned to (:meth:`object_weights` of its trend IoU), renormalised
        so the term keeps its total: ``w_i * sum(l) / sum(w * l)`` with
        ``l`` the detached per-prior CIoU (or DFL) loss, as officially.
        Ground truth needs ``trend_ious`` (G,).
        """
        box_w, side_w = super()._foreground_loss_weights(
            fg, assigned, batch_gt_instances, padded_gts)
        gt_bboxes, gt_labels, gt_valid = padded_gts
        trend_ious = self._pad_trend_ious(batch_gt_instances,
                                          gt_bboxes.shape[1],
                                          gt_bboxes.device)
        gt_idx = self._assigned_gt_index(assigned, gt_bboxes, gt_labels,
                                         gt_valid)
        trend_w = self.object_weights(trend_ious).gather(
            1, gt_idx)[assigned['fg_mask']]  # (P,)
        with torch.no_grad():  # eq. 4, detached as officially
            per_box = (1.0 - bbox_ciou(fg['pred_bboxes'],
                                       fg['target_bboxes'])) * box_w
            box_scale = trend_w * per_box.sum() / \
                (trend_w * per_box).sum().clamp(min=EPS)
            per_side = self.loss_dfl(
                fg['bins'], fg['target_dist'], weight=side_w,
                reduction_override='none').reshape(-1, 4).sum(-1)
            dfl_scale = trend_w * per_side.sum() / \
                (trend_w * per_side).sum().clamp(min=EPS)
        return (box_w * box_scale,
                side_w * dfl_scale[:, None].expand(-1, 4).reshape(-1))
