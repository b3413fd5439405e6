"""BVR's keypoint head: corner and center heat maps with sub-pixel offsets.

RelationNet++ / BVR (NeurIPS 2020, https://arxiv.org/abs/2010.15831;
official ``microsoft/RelationNet2``: ``code/models/dense_heads/
keypoint_head.py`` ``KeypointHead`` and ``code/core/bbox/assigners/
point_kpt_assigner.py`` ``PointKptAssigner``). Written for mmdet 3.x.

For every keypoint type (``top_left_corner``, ``bottom_right_corner``,
``center``) and every FPN level (weights shared over levels), a small tower
predicts a class-aware heat map ``(N, num_classes, H, W)`` (logits) and an
offset map ``(N, 2, H, W)`` (sub-cell position in units of the stride).
Level ``l`` has cell centers ``(i s_l + s_l // 2, j s_l + s_l // 2)``.

Targets (the official point assigner), per image, type and level: each
ground-truth keypoint ``g`` (with box size ``h x w``) is owned by its nearest
cell center ``c``; the heat target is ``exp(-|p - c|^2 / 2 sigma^2)`` at every
cell center ``p`` of that level, ``sigma = (2 r + 1) / 6`` px with ``r`` the
CornerNet Gaussian radius for IoU ``gaussian_iou``, the maximum over
objects, in the channel of the object with that maximum; owned cells are the
positives, with offset target ``(g - c) / s_l``. Heat maps take mmdet's
``GaussianFocalLoss`` (on sigmoid probabilities), offsets Smooth-L1; both
are averaged over the positives of all types.

Key sampling (``sample_keypoints``): 3x3 local-maximum suppression of the
probability map, the ``topk_per_level`` best (class, cell) pairs of each level
(official ``max_keypoint_num=20``), then the ``num_keys`` best of all levels
(official ``cross_level_topk=50``); each key's feature is read from the given
feature map of its own level at its cell (official
``cross_level_selection=True, selection_method='index'``) and its position is
the cell center plus the predicted offset.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule, bias_init_with_prob, normal_init
from mmengine.structures import InstanceData
from torch import Tensor

from densekit.models.layers.corner_pool import CornerPool
from densekit.registry import MODELS

KEYPOINT_TYPES = ('top_left_corner', 'bottom_right_corner', 'center')


def box_keypoints(bboxes: Tensor, keypoint_type: str) -> Tensor:
    """``(M, 4)`` boxes ``(x1, y1, x2, y2)`` -> ``(M, 2)`` keypoints."""
    if keypoint_type == 'top_left_corner':
        return bboxes[:, :2]
    if keypoint_type == 'bottom_right_corner':
        return bboxes[:, 2:]
    if keypoint_type == 'center':
        return (bboxes[:, :2] + bboxes[:, 2:]) / 2
    raise ValueError(f'keypoint type must be one of {KEYPOINT_TYPES}, got '
                     f'{keypoint_type!r}')


def gaussian_radius(height: Tensor, width: Tensor,
                    min_overlap: float) -> Tensor:
    """CornerNet's Gaussian radius: the largest corner shift keeping IoU
    ``>= min_overlap`` (the minimum of its three cases). ``(M,)`` -> ``(M,)``.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - (b1**2 - 4 * c1).clamp(min=0).sqrt()) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - (b2**2 - 16 * c2).clamp(min=0).sqrt()) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + (b3**2 - 4 * a3 * c3).clamp(min=0).sqrt()) / (2 * a3)
    return torch.stack([r1, r2, r3]).amin(0).clamp(min=0)


@MODELS.register_module()
class BVRKeypointHead(BaseModule):
    """Keypoint (corner / center) head of BVR.

    Args:
        num_classes (int): Heat-map channels (object classes).
        in_channels (int): Channels of the input FPN maps.
        feat_channels (int): Tower width. Defaults to 256.
        stacked_convs (int): Convs of each keypoint type's tower. Defaults
            to 2 (official RetinaNet-BVR config).
        shared_stacked_convs (int): Convs shared by all types before the
            towers. Defaults to 0.
        logits_convs (int): Extra convs before each heat-map / offset conv.
            Defaults to 1.
        strides (Sequence[int]): Stride of each input level. Defaults to
            ``(8, 16, 32, 64, 128)``.
        keypoint_types (Sequence[str]): Types to predict, from
            ``KEYPOINT_TYPES``. Defaults to all three.
        corner_pooling (bool): Append a :class:`CornerPool` block to the
            corner towers. Defaults to False (official config).
        corner_channels (int): Width of the corner pool branches. Defaults
            to 64.
        gaussian_iou (float): IoU of the Gaussian radius. Defaults to 0.7.
        conv_cfg (dict, optional): Conv config.
        norm_cfg (dict, optional): Norm config of the towers. Defaults to
            GN with 32 groups (official config).
        loss_heatmap (dict): Heat-map loss, on probabilities. Defaults to
            GaussianFocalLoss with weight 0.25 (official config).
        loss_offset (dict): Offset loss. Defaults to SmoothL1Loss, beta 1.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 *,
                 feat_channels: int = 256,
                 stacked_convs: int = 2,
                 shared_stacked_convs: int = 0,
                 logits_convs: int = 1,
                 strides: Sequence[int] = (8, 16, 32, 64, 128),
                 keypoint_types: Sequence[str] = KEYPOINT_TYPES,
                 corner_pooling: bool = False,
                 corner_channels: int = 64,
                 gaussian_iou: float = 0.7,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = dict(
                     type='GN', num_groups=32, requires_grad=True),
                 loss_heatmap: dict = dict(type='mmdet.GaussianFocalLoss',
                                           loss_weight=0.25),
                 loss_offset: dict = dict(type='mmdet.SmoothL1Loss',
                                          beta=1.0, loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        bad = [t for t in keypoint_types if t not in KEYPOINT_TYPES]
        if bad or not keypoint_types:
            raise ValueError(f'keypoint_types must be a non-empty subset of '
                             f'{KEYPOINT_TYPES}, got {tuple(keypoint_types)}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.strides = tuple(strides)
        self.keypoint_types = tuple(keypoint_types)
        self.gaussian_iou = gaussian_iou
        conv_kw = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)

        def convs(in_ch: int, num: int) -> List[nn.Module]:
            return [ConvModule(in_ch if i == 0 else feat_channels,
                               feat_channels, 3, padding=1, **conv_kw)
                    for i in range(num)]

        self.shared_convs = nn.Sequential(
            *convs(in_channels, shared_stacked_convs))
        tower_in = feat_channels if shared_stacked_convs else in_channels
        self.towers = nn.ModuleDict()
        self.heatmap_heads = nn.ModuleDict()
        self.offset_heads = nn.ModuleDict()
        for t in self.keypoint_types:
            tower = convs(tower_in, stacked_convs)
            if corner_pooling and 'corner' in t:
                tower.append(CornerPool(
                    feat_channels if stacked_convs else tower_in,
                    corner=t[:-len('_corner')],
                    corner_channels=corner_channels, **conv_kw))
            self.towers[t] = nn.Sequential(*tower)
            head_in = feat_channels if stacked_convs else tower_in
            self.heatmap_heads[t] = nn.Sequential(
                *convs(head_in, logits_convs),
                nn.Conv2d(feat_channels if logits_convs else head_in,
                          num_classes, 3, padding=1))
            self.offset_heads[t] = nn.Sequential(
                *convs(head_in, logits_convs),
                nn.Conv2d(feat_channels if logits_convs else head_in, 2, 3,
                          padding=1))
        self.loss_heatmap = MODELS.build(loss_heatmap)
        self.loss_offset = MODELS.build(loss_offset)

    def init_weights(self) -> None:
        """Official init: N(0, 0.01) convs, heat-map bias for prior 0.01."""
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                normal_init(m, std=0.01)
        for head in self.heatmap_heads.values():
            nn.init.constant_(head[-1].bias, bias_init_with_prob(0.01))

    def forward(self, feats: Sequence[Tensor]
                ) -> Tuple[Dict[str, List[Tensor]], Dict[str, List[Tensor]]]:
        """Predict heat maps and offsets on every level.

        Args:
            feats (Sequence[Tensor]): One ``(N, in_channels, H_l, W_l)`` map
                per stride in ``strides``.

        Returns:
            tuple[dict, dict]: ``heatmaps[type][l]``: ``(N, num_classes,
            H_l, W_l)`` logits; ``offsets[type][l]``: ``(N, 2, H_l, W_l)``
            in units of the level's stride, ``(dx, dy)``.
        """
        if len(feats) != len(self.strides):
            raise ValueError(f'got {len(feats)} levels for strides '
                             f'{self.strides}')
        heatmaps = {t: [] for t in self.keypoint_types}
        offsets = {t: [] for t in self.keypoint_types}
        for x in feats:
            shared = self.shared_convs(x)
            for t in self.keypoint_types:
                feat = self.towers[t](shared)
                heatmaps[t].append(self.heatmap_heads[t](feat))
                offsets[t].append(self.offset_heads[t](feat))
        return heatmaps, offsets

    def get_points(self, featmap_sizes: Sequence[Tuple[int, int]],
                   device: torch.device) -> List[Tensor]:
        """Cell centers of each level: ``(H_l * W_l, 2)`` ``(x, y)`` px,
        row-major like a flattened map."""
        points = []
        for (h, w), s in zip(featmap_sizes, self.strides):
            ys = torch.arange(h, device=device, dtype=torch.float32)
            xs = torch.arange(w, device=device, dtype=torch.float32)
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            points.append(torch.stack([xx, yy], -1).reshape(-1, 2) * s +
                          s // 2)
        return points

    def _targets_single(self, gt_points: Tensor, gt_bboxes: Tensor,
                        gt_labels: Tensor, featmap_sizes, points: Tensor,
                        point_strides: Tensor) -> Tuple[Tensor, ...]:
        """Targets of one image and type (all levels concatenated).

        Returns:
            tuple: heat ``(P, num_classes)``, offset ``(P, 2)``, positive
            mask ``(P,)`` (float).
        """
        num_points = points.shape[0]
        heat = points.new_zeros(num_points, self.num_classes)
        offset = points.new_zeros(num_points, 2)
        pos = points.new_zeros(num_points)
        if gt_points.shape[0] == 0:
            return heat, offset, pos
        wh = gt_bboxes[:, 2:] - gt_bboxes[:, :2]
        sigma = (2 * gaussian_radius(wh[:, 1], wh[:, 0], self.gaussian_iou)
                 + 1) / 6
        scores, owner_inds, start = [], [], 0
        for (h, w), s in zip(featmap_sizes, self.strides):
            # nearest cell center of each object on this level
            ij = ((gt_points - s // 2) / s).round()
            ix = ij[:, 0].clamp(0, w - 1)
            iy = ij[:, 1].clamp(0, h - 1)
            owner = torch.stack([ix, iy], -1) * s + s // 2  # (M, 2)
            lvl_points = points[start:start + h * w]
            dist2 = (lvl_points[:, None] - owner[None]).pow(2).sum(-1)
            scores.append(torch.exp(-0.5 * dist2 / sigma.pow(2)))  # (P_l, M)
            owner_inds.append(start + (iy * w + ix).long())
            start += h * w
        score, obj = torch.cat(scores).max(1)  # (P,)
        heat[torch.arange(num_points, device=points.device),
             gt_labels[obj]] = score
        pos_inds = torch.cat(owner_inds)
        pos[pos_inds] = 1
        offset[pos_inds] = (gt_points[obj[pos_inds]] - points[pos_inds]) / \
            point_strides[pos_inds, None]
        return heat, offset, pos

    def loss(self, heatmaps: Dict[str, List[Tensor]],
             offsets: Dict[str, List[Tensor]],
             batch_gt_instances: Sequence[InstanceData]) -> Dict[str, Tensor]:
        """Heat-map and offset losses of all types.

        Args:
            heatmaps (dict): As :meth:`forward` returns.
            offsets (dict): As :meth:`forward` returns.
            batch_gt_instances (Sequence[InstanceData]): ``bboxes (M, 4)``
                ``(x1, y1, x2, y2)`` and ``labels (M,)`` per image.

        Returns:
            dict[str, Tensor]: ``loss_kpt_heatmap`` and ``loss_kpt_offset``.
        """
        first = heatmaps[self.keypoint_types[0]]
        featmap_sizes = [tuple(m.shape[-2:]) for m in first]
        device = first[0].device
        points = self.get_points(featmap_sizes, device)
        point_strides = torch.cat([
            p.new_full((p.shape[0],), s) for p, s in zip(points, self.strides)
        ])
        points = torch.cat(points)
        preds, targets = [], []
        for t in self.keypoint_types:
            heat_pred = _flatten_levels(heatmaps[t])  # N P C
            off_pred = _flatten_levels(offsets[t])  # N P 2
            per_img = [
                self._targets_single(
                    box_keypoints(gt.bboxes, t), gt.bboxes, gt.labels,
                    featmap_sizes, points, point_strides)
                for gt in batch_gt_instances
            ]
            preds.append((heat_pred, off_pred))
            targets.append([torch.stack(x) for x in zip(*per_img)])
        num_pos = sum(pos.sum() for _, _, pos in targets)
        avg_factor = reduce_mean(num_pos).clamp(min=1.).item()
        loss_heat, loss_off = 0., 0.
        for (heat_pred, off_pred), (heat, off, pos) in zip(preds, targets):
            loss_heat = loss_heat + self.loss_heatmap(
                heat_pred.float().sigmoid(), heat, avg_factor=avg_factor)
            loss_off = loss_off + self.loss_offset(
                off_pred.float(), off, weight=pos[..., None].expand_as(off),
                avg_factor=avg_factor)
        return dict(loss_kpt_heatmap=loss_heat, loss_kpt_offset=loss_off)

    def sample_keypoints(self, heatmaps: List[Tensor], offsets: List[Tensor],
                         feats: Sequence[Tensor], *, topk_per_level: int = 20,
                         num_keys: int = 50
                         ) -> Tuple[Tensor, Tensor, Tensor]:
        """Top-scoring keypoints of one type over all levels, with features.

        Args:
            heatmaps (list[Tensor]): ``(N, num_classes, H_l, W_l)`` logits.
            offsets (list[Tensor]): ``(N, 2, H_l, W_l)``.
            feats (Sequence[Tensor]): ``(N, C, H_l, W_l)`` maps to read key
                features from (the branch's tower features).
            topk_per_level (int): Candidates per level. Defaults to 20.
            num_keys (int): Keys kept over all levels. Defaults to 50.

        Returns:
            tuple[Tensor]: features ``(N, K, C)``, positions ``(N, K, 2)``
            ``(x, y)`` px, scores ``(N, K)``; ``K = min(num_keys, total
            candidates)``.
        """
        points = self.get_points([h.shape[-2:] for h in heatmaps],
                                 heatmaps[0].device)
        all_feats, all_pos, all_scores = [], [], []
        for heat, off, feat, pts, s in zip(heatmaps, offsets, feats, points,
                                           self.strides):
            n, c, h, w = heat.shape
            prob = heat.detach().sigmoid()
            peak = F.max_pool2d(prob, 3, stride=1, padding=1) == prob
            prob = (prob * peak).reshape(n, -1)
            score, ind = prob.topk(min(topk_per_level, prob.shape[1]), dim=1)
            cell = ind % (h * w)  # (N, k)
            off = off.reshape(n, 2, -1).gather(
                2, cell[:, None].expand(-1, 2, -1)).transpose(1, 2)
            all_pos.append(pts[cell] + off * s)
            f = feat.reshape(n, feat.shape[1], -1)
            all_feats.append(f.gather(
                2, cell[:, None].expand(-1, f.shape[1], -1)).transpose(1, 2))
            all_scores.append(score)
        scores = torch.cat(all_scores, 1)
        scores, keep = scores.topk(min(num_keys, scores.shape[1]), dim=1)
        feats_out = torch.cat(all_feats, 1)
        pos_out = torch.cat(all_pos, 1)
        feats_out = feats_out.gather(
            1, keep[..., None].expand(-1, -1, feats_out.shape[-1]))
        pos_out = pos_out.gather(1, keep[..., None].expand(-1, -1, 2))
        return feats_out, pos_out, scores


def _flatten_levels(maps: List[Tensor]) -> Tensor:
    """``[(N, C, H_l, W_l)]`` -> ``(N, sum_l H_l W_l, C)``."""
    return torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)
