"""YOLOv8's decoupled, anchor-free detection head with DFL box regression.

Per level (strides 8/16/32) two separate 2x(3x3 conv) towers predict class
logits and, for each box side, a discrete distribution over ``reg_max`` bins
of the side's distance to the anchor point (Distribution Focal Loss, GFL:
Li et al. NeurIPS 2020, Sec. 3.3). Training uses the task-aligned assigner,
BCE on soft (alignment-metric) class targets, CIoU on decoded boxes and DFL
on the bin distributions, with YOLOv8's gains 0.5 / 7.5 / 1.5.
"""
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import filter_scores_and_topk
from mmdet.structures.bbox import distance2bbox
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from densekit.registry import MODELS, TASK_UTILS
from ..layers.c2f_layer import YOLO_ACT_CFG, YOLO_NORM_CFG

# YOLOv8's validation settings: multi-label, low threshold, IoU 0.7 NMS
# (``multi_label=False`` in a test_cfg keeps each box's best class only, as
# ultralytics' predict does)
DEFAULT_TEST_CFG = dict(
    score_thr=0.001,
    nms_pre=30000,
    nms=dict(type='nms', iou_threshold=0.7),
    max_per_img=300)


@MODELS.register_module()
class YOLOv8Head(BaseDenseHead):
    """Decoupled anchor-free YOLOv8 head.

    Call graph::

        loss(): forward() -> loss_by_feat() -> assigner
        predict(): forward() -> predict_by_feat() -> _bbox_post_process()

    Args:
        num_classes (int): Number of foreground classes.
        in_channels (Sequence[int]): Channels of each input level (the neck's
            ``out_channels``).
        featmap_strides (Sequence[int]): Stride of each input level.
        reg_max (int): Bins of the distance distribution. Defaults to 16.
        loss_cls (dict): BCE on soft targets; ``reduction='none'`` is
            required (the head sums and normalises).
        loss_bbox (dict): Box loss taking ``(pred, target, weight,
            avg_factor)``.
        loss_dfl (dict): Distribution Focal Loss.
        scale_loss_by_batch (bool): Multiply the losses by the global batch
            size, as ultralytics does (its SGD recipe, lr 0.01 with weight
            decay scaled by batch/64, assumes it). Defaults to True.
        train_cfg (dict): ``assigner`` config.
        test_cfg (dict): ``score_thr``, ``nms_pre``, ``nms``, ``max_per_img``,
            ``min_bbox_size``; missing keys take :data:`DEFAULT_TEST_CFG`.
    """

    #: ``test_cfg.multi_label`` chooses every class of a box above the
    #: threshold (True, the default) or its best class (False)
    reads_multi_label = True

    def __init__(self,
                 *,
                 num_classes: int,
                 in_channels: Sequence[int],
                 featmap_strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 16,
                 norm_cfg: dict = YOLO_NORM_CFG,
                 act_cfg: dict = YOLO_ACT_CFG,
                 loss_cls: dict = dict(
                     type='mmdet.CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='none',
                     loss_weight=0.5),
                 loss_bbox: dict = dict(
                     type='densekit.YOLOCIoULoss', loss_weight=7.5),
                 loss_dfl: dict = dict(
                     type='mmdet.DistributionFocalLoss', loss_weight=1.5),
                 scale_loss_by_batch: bool = True,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(featmap_strides):
            raise ValueError(
                f'YOLOv8Head: {len(in_channels)} in_channels but '
                f'{len(featmap_strides)} featmap_strides')
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.featmap_strides = list(featmap_strides)
        self.reg_max = reg_max
        self.scale_loss_by_batch = scale_loss_by_batch
        self.train_cfg = ConfigDict(train_cfg or {})
        self.test_cfg = ConfigDict(dict(DEFAULT_TEST_CFG, **(test_cfg or {})))

        reg_channels = max(16, self.in_channels[0] // 4, 4 * reg_max)
        cls_channels = max(self.in_channels[0], min(num_classes, 100))
        conv = dict(padding=1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.reg_towers = nn.ModuleList(
            nn.Sequential(
                ConvModule(c, reg_channels, 3, **conv),
                ConvModule(reg_channels, reg_channels, 3, **conv),
                nn.Conv2d(reg_channels, 4 * reg_max, 1))
            for c in self.in_channels)
        self.cls_towers = nn.ModuleList(
            nn.Sequential(
                ConvModule(c, cls_channels, 3, **conv),
                ConvModule(cls_channels, cls_channels, 3, **conv),
                nn.Conv2d(cls_channels, num_classes, 1))
            for c in self.in_channels)
        # expectation over the bins: sum_i p_i * i (DFL "integral", GFL eq. 4)
        self.register_buffer(
            'proj', torch.arange(reg_max, dtype=torch.float), persistent=False)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_dfl = MODELS.build(loss_dfl)
        self.prior_generator = TASK_UTILS.build(
            dict(type='mmdet.MlvlPointGenerator',
                 strides=self.featmap_strides, offset=0.5))
        assigner = self.train_cfg.get(
            'assigner', dict(type='densekit.BatchTaskAlignedAssigner'))
        assigner = dict(assigner)
        assigner.setdefault('num_classes', num_classes)
        self.assigner = TASK_UTILS.build(assigner)

    def init_weights(self) -> None:
        """YOLOv8 bias priors: box logits 1.0, class prior ~5 objects/img."""
        super().init_weights()
        for reg, cls, stride in zip(self.reg_towers, self.cls_towers,
                                    self.featmap_strides):
            nn.init.constant_(reg[-1].bias, 1.0)
            nn.init.constant_(
                cls[-1].bias,
                math.log(5 / self.num_classes / (640 / stride)**2))

    def _load_from_state_dict(self, state_dict, prefix, *args,
                              **kwargs) -> None:
        """Load as ``nn.Module`` does, except that a checkpoint of another
        class count (``load_from`` a converted or densekit checkpoint to
        fine-tune) leaves the class-dependent layers re-initialised.

        Those are the class towers' layers whose shape follows
        ``num_classes``: the last 1x1 conv of every level and, when the
        tower width ``max(P3 channels, min(num_classes, 100))`` changes too
        (n scale, 80 -> 4 classes), the tower's conv layers. Their keys are
        taken out of ``state_dict`` (so the loader lists them as missing
        instead of as shape mismatches), the layers get their
        :meth:`init_weights` values again, and one warning names them; the
        rest of the checkpoint loads as usual. Runs for every loader
        (mmengine's ``load_from`` / ``load_checkpoint``, ``EMAHook``'s copy,
        ``nn.Module.load_state_dict``).
        """
        layers = self._drop_other_class_count(state_dict, prefix)
        if layers:
            self._reinit_cls_layers(layers)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _drop_other_class_count(self, state_dict: dict,
                                prefix: str) -> List[str]:
        """Pop the ``cls_towers`` tensors of another shape when the
        checkpoint has another class count; return their layers
        (``'{level}.{index}'``)."""
        probe = state_dict.get(f'{prefix}cls_towers.0.2.weight')
        if probe is None or probe.shape[0] == self.num_classes:
            return []
        layers = []
        for name, own in self.cls_towers.state_dict().items():
            level, index = name.split('.')[:2]
            key = f'{prefix}cls_towers.{name}'
            if key in state_dict and \
                    tuple(state_dict[key].shape) != tuple(own.shape) and \
                    f'{level}.{index}' not in layers:
                layers.append(f'{level}.{index}')
        for layer in layers:
            for key in [k for k in state_dict
                        if k.startswith(f'{prefix}cls_towers.{layer}.')]:
                state_dict.pop(key)
        print_log(
            f'{type(self).__name__} ({prefix.rstrip(".") or "head"}): the '
            f'checkpoint predicts {probe.shape[0]} classes, this head '
            f'{self.num_classes}: re-initialised the class-dependent layers '
            + ', '.join(f'{prefix}cls_towers.{layer}' for layer in layers)
            + '; every other weight loads from the checkpoint',
            logger='current', level=logging.WARNING)
        return layers

    def _reinit_cls_layers(self, layers: Sequence[str]) -> None:
        """:meth:`init_weights` for ``cls_towers`` layers
        ``'{level}.{index}'`` only: kaiming conv + unit BN (running
        statistics reset) for the ConvModules, PyTorch's default plus the
        class-prior bias for the last conv."""
        for layer in layers:
            level, index = (int(v) for v in layer.split('.'))
            module = self.cls_towers[level][index]
            if isinstance(module, ConvModule):
                module.init_weights()
                if module.with_norm:
                    module.norm.reset_running_stats()
            else:
                module.reset_parameters()
                nn.init.constant_(
                    module.bias, math.log(
                        5 / self.num_classes /
                        (640 / self.featmap_strides[level])**2))

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], ...]:
        """Args: x (tuple[Tensor]): per-level features (B, C_i, H_i, W_i).

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``cls_scores`` (B, num_classes,
            H_i, W_i) logits and ``bbox_preds`` (B, 4 * reg_max, H_i, W_i)
            distance-bin logits ordered (left, top, right, bottom).
        """
        got = [f.shape[1] for f in x]
        if got != self.in_channels:
            raise ValueError(
                f'YOLOv8Head expects input channels {self.in_channels} but '
                f'got {got}; set `model.bbox_head.in_channels`')
        cls_scores = [tower(f) for tower, f in zip(self.cls_towers, x)]
        bbox_preds = [tower(f) for tower, f in zip(self.reg_towers, x)]
        return cls_scores, bbox_preds

    # ------------------------------------------------------------ helpers
    def _flat_priors(self, featmap_sizes, dtype,
                     device) -> Tuple[Tensor, Tensor]:
        """(A, 2) prior centres in pixels and (A, 1) their strides."""
        priors = torch.cat(self.prior_generator.grid_priors(
            featmap_sizes, dtype=dtype, device=device, with_stride=True))
        return priors[:, :2], priors[:, 2:3]

    def _flatten(self, maps: List[Tensor], channels: int) -> Tensor:
        """List of (B, channels, H_i, W_i) -> (B, A, channels)."""
        return torch.cat([
            m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, channels)
            for m in maps
        ], dim=1)

    def _decode(self, bin_logits: Tensor, priors: Tensor,
                strides: Tensor) -> Tensor:
        """(B, A, 4*reg_max) bin logits -> (B, A, 4) boxes in pixels."""
        dist = bin_logits.unflatten(-1, (4, self.reg_max)).softmax(-1)
        dist = dist @ self.proj.to(dist.dtype)
        return distance2bbox(priors, dist * strides)

    @staticmethod
    def _pad_gts(batch_gt_instances: InstanceList, device) -> Tuple[Tensor,
                                                                    ...]:
        """Stack ground truth into (B, G, ...) tensors padded to the max G."""
        batch_size = len(batch_gt_instances)
        max_gts = max((len(g) for g in batch_gt_instances), default=0)
        bboxes = torch.zeros((batch_size, max_gts, 4), device=device)
        labels = torch.zeros((batch_size, max_gts),
                             dtype=torch.long, device=device)
        valid = torch.zeros((batch_size, max_gts),
                            dtype=torch.bool, device=device)
        for i, gt in enumerate(batch_gt_instances):
            n = len(gt)
            if n:
                bboxes[i, :n] = gt.bboxes
                labels[i, :n] = gt.labels
                valid[i, :n] = True
        return bboxes, labels, valid

    # --------------------------------------------------------------- loss
    def loss_by_feat(
            self,
            cls_scores: List[Tensor],
            bbox_preds: List[Tensor],
            batch_gt_instances: InstanceList,
            batch_img_metas: List[dict],
            batch_gt_instances_ignore: OptInstanceList = None
    ) -> Dict[str, Tensor]:
        """Compute the classification, CIoU and DFL losses.

        Args:
            cls_scores (list[Tensor]): (B, num_classes, H_i, W_i) per level.
            bbox_preds (list[Tensor]): (B, 4 * reg_max, H_i, W_i) per level.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (G, 4) in
                (x1, y1, x2, y2) pixels and ``labels`` (G,) per image.
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
        assigned = self.assigner(flat_cls.detach().sigmoid(),
                                 pred_bboxes.detach(), priors, gt_labels,
                                 gt_bboxes, gt_valid)
        target_scores = assigned['assigned_scores']
        fg_mask = assigned['fg_mask']
        target_scores_sum = target_scores.sum().clamp(min=1)

        loss_cls = self.loss_cls(flat_cls, target_scores).sum() / \
            target_scores_sum
        if fg_mask.any():
            target_bboxes = assigned['assigned_bboxes'][fg_mask]
            # DFL targets: side distances in stride units, inside the bins
            fg_priors = priors.expand(batch_size, -1, -1)[fg_mask]
            fg_strides = strides.expand(batch_size, -1, -1)[fg_mask]
            target_dist = torch.cat(
                [fg_priors - target_bboxes[:, :2],
                 target_bboxes[:, 2:] - fg_priors], dim=-1) / fg_strides
            target_dist = target_dist.clamp(0, self.reg_max - 1 - 0.01)
            fg = dict(
                pred_bboxes=pred_bboxes[fg_mask],
                target_bboxes=target_bboxes,
                bins=flat_bins[fg_mask].reshape(-1, self.reg_max),
                target_dist=target_dist.reshape(-1),
                score_weights=target_scores.sum(-1)[fg_mask])  # (P,)
            box_weights, side_weights = self._foreground_loss_weights(
                fg, assigned, batch_gt_instances,
                (gt_bboxes, gt_labels, gt_valid))
            loss_bbox = self.loss_bbox(
                fg['pred_bboxes'], target_bboxes, weight=box_weights,
                avg_factor=target_scores_sum)
            loss_dfl = self.loss_dfl(
                fg['bins'], fg['target_dist'], weight=side_weights,
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

    def _foreground_loss_weights(
            self, fg: Dict[str, Tensor], assigned: Dict[str, Tensor],
            batch_gt_instances: InstanceList,
            padded_gts: Tuple[Tensor, Tensor, Tensor]) -> Tuple[Tensor,
                                                                Tensor]:
        """Weights of the foreground box (CIoU) and DFL terms.

        YOLOv8 weights each foreground prior by its summed target score;
        subclasses re-weight by object (e.g. the trend-aware loss).

        Args:
            fg (dict[str, Tensor]): The P foreground priors' ``pred_bboxes``
                and ``target_bboxes`` (P, 4), ``bins`` (4P, reg_max),
                ``target_dist`` (4P,) and ``score_weights`` (P,).
            assigned (dict[str, Tensor]): The assigner's output.
            batch_gt_instances (list[InstanceData]): Ground truth.
            padded_gts (tuple[Tensor]): ``gt_bboxes`` (B, G, 4),
                ``gt_labels`` (B, G), ``gt_valid`` (B, G) as assigned.

        Returns:
            tuple[Tensor, Tensor]: box weights (P,) and DFL weights (4P,),
            one per side.
        """
        weight = fg['score_weights']
        return weight, weight[:, None].expand(-1, 4).reshape(-1)

    # ------------------------------------------------------------ predict
    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None,
                        rescale: bool = True,
                        with_nms: bool = True) -> InstanceList:
        """Decode, filter, (optionally) rescale and NMS each image.

        Returns:
            list[InstanceData]: per image ``bboxes`` (N, 4) (x1, y1, x2, y2),
            ``scores`` (N,), ``labels`` (N,). A box may appear with several
            labels (multi-label, as YOLOv8 evaluates), or with its best
            class only when ``cfg.multi_label`` is False (as ultralytics
            predicts).
        """
        cfg = ConfigDict(self.test_cfg if cfg is None else cfg)
        featmap_sizes = [s.shape[-2:] for s in cls_scores]
        priors, strides = self._flat_priors(
            featmap_sizes, cls_scores[0].dtype, cls_scores[0].device)
        flat_scores = self._flatten(cls_scores, self.num_classes).sigmoid()
        flat_bboxes = self._decode(
            self._flatten(bbox_preds, 4 * self.reg_max), priors, strides)

        results_list = []
        multi_label = cfg.get('multi_label', True)
        for scores, bboxes, img_meta in zip(flat_scores, flat_bboxes,
                                            batch_img_metas):
            if multi_label:  # every (box, class) above the threshold
                scores, labels, keep, _ = filter_scores_and_topk(
                    scores, cfg.get('score_thr', 0.001),
                    cfg.get('nms_pre', 30000))
            else:  # each box's best class (ultralytics' predict)
                best, best_labels = scores.max(dim=1)
                scores, _, keep, kept = filter_scores_and_topk(
                    best[:, None], cfg.get('score_thr', 0.001),
                    cfg.get('nms_pre', 30000),
                    results=dict(labels=best_labels))
                labels = kept['labels']
            results = InstanceData(
                bboxes=bboxes[keep], scores=scores, labels=labels)
            if rescale and 'pad_param' in img_meta:
                # letterbox padding (top, bottom, left, right) to undo first
                top, _, left, _ = img_meta['pad_param']
                results.bboxes -= results.bboxes.new_tensor(
                    [left, top, left, top])
            results = self._bbox_post_process(
                results, cfg, rescale=rescale, with_nms=with_nms,
                img_meta=img_meta)
            if rescale and 'ori_shape' in img_meta:
                h, w = img_meta['ori_shape'][:2]
                results.bboxes[:, 0::2].clamp_(0, w)
                results.bboxes[:, 1::2].clamp_(0, h)
            results_list.append(results)
        return results_list
