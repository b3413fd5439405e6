"""BVR (RelationNet++) around a one-stage dense head.

Chi, Wei and Hu, "RelationNet++: Bridging Visual Representations for Object
Detection via Transformer Decoder", NeurIPS 2020
(https://arxiv.org/abs/2010.15831). Official code: ``microsoft/RelationNet2``
(MIT licence), an overlay on mmdet 2.x; ``code/models/dense_heads/
bvr_head.py`` ``BVRHead``. This is a rewrite for mmdet 3.x.

The wrapped head (mmdet's ``RetinaHead``, ``FCOSHead`` or ``ATSSHead``)
keeps its towers, final convs, assigner, losses and post-processing. BVR
sits between the towers and the final convs::

    forward(x):  towers(x) -> cls_feats, reg_feats            (per level)
                 keypoint_head(x) -> heatmaps, offsets       (FPN inputs)
                 cls_feats <- decoder_cls(cls_feats, center keys)
                 reg_feats <- decoder_reg(reg_feats, corner keys)
                 final convs(cls_feats, reg_feats) -> bbox_outs
    loss():      wrapped.loss_by_feat(*bbox_outs, ...)
                 + keypoint_head.loss(heatmaps, offsets, ...)
    predict():   forward() -> wrapped.predict_by_feat(*bbox_outs, ...)

``bbox_outs`` is what the wrapped head's own ``forward`` returns: RetinaHead
``(cls_scores, bbox_preds)``; FCOSHead and ATSSHead ``(cls_scores,
bbox_preds, centernesses)``, each a list over levels.

Keys are sampled per branch with :meth:`BVRKeypointHead.sample_keypoints`
(top ``topk_per_level`` per level, best ``num_keys`` over levels) and read
from that branch's tower features; queries are every location of every
level, at the level's cell centers. Positions are divided by
``position_scale`` (official ``scale_position=False``: the first keypoint
stride for every level).

Supporting another head type means adding its ``(towers, predictions)``
pair to ``HEAD_ADAPTERS``: ``towers`` is the head's ``forward_single`` up to
its last tower conv, ``predictions`` the rest of it, so that with the
decoders switched off (output projections zero) the wrapped head's outputs
come back unchanged.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from torch import Tensor

from densekit.models.layers.bvr_attention_decoder import BVRAttentionDecoder
from densekit.registry import MODELS

Feats = List[Tensor]


def _stacked_towers(head: nn.Module, x: Sequence[Tensor]
                    ) -> Tuple[Feats, Feats]:
    """The ``cls_convs`` / ``reg_convs`` towers of RetinaHead, FCOSHead and
    ATSSHead (their ``forward_single`` without the last convs).

    Returns:
        tuple[list[Tensor], list[Tensor]]: ``cls_feats`` and ``reg_feats``,
        one ``(N, feat_channels, H_l, W_l)`` tensor per level.
    """
    cls_feats, reg_feats = [], []
    for feat in x:
        c, r = feat, feat
        for conv in head.cls_convs:
            c = conv(c)
        for conv in head.reg_convs:
            r = conv(r)
        cls_feats.append(c)
        reg_feats.append(r)
    return cls_feats, reg_feats


def _retina_predictions(head: nn.Module, cls_feats: Feats,
                        reg_feats: Feats) -> Tuple[Feats, Feats]:
    """RetinaHead's final convs -> ``(cls_scores, bbox_preds)``."""
    return ([head.retina_cls(f) for f in cls_feats],
            [head.retina_reg(f) for f in reg_feats])


def _fcos_predictions(head: nn.Module, cls_feats: Feats, reg_feats: Feats
                      ) -> Tuple[Feats, Feats, Feats]:
    """FCOSHead's final convs -> ``(cls_scores, bbox_preds, centernesses)``,
    as ``FCOSHead.forward_single``: learnable per-level scale, then
    ``clamp(min=0)`` (times the stride at test time) with
    ``norm_on_bbox``, else ``exp``; centerness from the regression tower
    unless ``centerness_on_reg=False``.

    ``bbox_preds`` are ``(N, 4, H_l, W_l)`` (left, top, right, bottom)
    distances, ``centernesses`` ``(N, 1, H_l, W_l)`` logits.
    """
    cls_scores, bbox_preds, centernesses = [], [], []
    for cls_feat, reg_feat, scale, stride in zip(cls_feats, reg_feats,
                                                  head.scales, head.strides):
        cls_scores.append(head.conv_cls(cls_feat))
        centernesses.append(head.conv_centerness(
            reg_feat if head.centerness_on_reg else cls_feat))
        bbox_pred = scale(head.conv_reg(reg_feat)).float()
        if head.norm_on_bbox:
            bbox_pred = bbox_pred.clamp(min=0)
            if not head.training:
                bbox_pred = bbox_pred * stride
        else:
            bbox_pred = bbox_pred.exp()
        bbox_preds.append(bbox_pred)
    return cls_scores, bbox_preds, centernesses


def _atss_predictions(head: nn.Module, cls_feats: Feats, reg_feats: Feats
                      ) -> Tuple[Feats, Feats, Feats]:
    """ATSSHead's final convs -> ``(cls_scores, bbox_preds, centernesses)``,
    as ``ATSSHead.forward_single``: per-level scale on the box deltas
    (no ``exp``), centerness from the regression tower."""
    return ([head.atss_cls(f) for f in cls_feats],
            [scale(head.atss_reg(f)).float()
             for f, scale in zip(reg_feats, head.scales)],
            [head.atss_centerness(f) for f in reg_feats])


# head class name -> (towers, predictions from the tower features)
HEAD_ADAPTERS: Dict[str, Tuple[Callable, Callable]] = {
    'RetinaHead': (_stacked_towers, _retina_predictions),
    'FCOSHead': (_stacked_towers, _fcos_predictions),
    'ATSSHead': (_stacked_towers, _atss_predictions),
}


@MODELS.register_module()
class BVRHead(BaseDenseHead):
    """BVR wrapper around a dense head.

    Args:
        bbox_head (dict | nn.Module): The wrapped head (a type in
            ``HEAD_ADAPTERS``). A dict gets this head's ``train_cfg`` and
            ``test_cfg``.
        keypoint_head (dict | nn.Module): A :class:`BVRKeypointHead`; its
            ``strides`` must match the input levels.
        cls_keypoint_types (Sequence[str]): Key types for the
            classification branch. Defaults to ``('center',)``.
        reg_keypoint_types (Sequence[str]): Key types for the regression
            branch. Defaults to the two corners.
        num_heads (int): Attention heads. Defaults to 8.
        topk_per_level (int): Keypoint candidates per level and type.
            Defaults to 20 (official ``max_keypoint_num``).
        num_keys (int): Keys per type over all levels. Defaults to 50
            (official ``cross_level_topk``).
        position_scale (float, optional): Pixels per location-embedding
            unit. Defaults to None: the first keypoint stride.
        location_embedding (dict): Config of
            :class:`BVRLocationEmbedding` (``num_heads`` and
            ``position_scale`` are filled in). Defaults to base size 400,
            log scale (official ``pos_cfg``).
        share_location_embedding (bool): One location embedding for both
            branches (official ``shared_positional_encoding_outer``);
            within a branch the key types always share one. Defaults to
            False (official).
        train_cfg (dict, optional): Passed to the wrapped head.
        test_cfg (dict, optional): Passed to the wrapped head.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 *,
                 bbox_head: Union[dict, nn.Module],
                 keypoint_head: Union[dict, nn.Module],
                 cls_keypoint_types: Sequence[str] = ('center', ),
                 reg_keypoint_types: Sequence[str] = ('top_left_corner',
                                                      'bottom_right_corner'),
                 num_heads: int = 8,
                 topk_per_level: int = 20,
                 num_keys: int = 50,
                 position_scale: Optional[float] = None,
                 location_embedding: dict = dict(
                     type='densekit.BVRLocationEmbedding', base_size=400,
                     log_scale=True),
                 share_location_embedding: bool = False,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(bbox_head, dict):
            bbox_head = MODELS.build(
                ConfigDict(bbox_head, train_cfg=train_cfg,
                           test_cfg=test_cfg))
        name = type(bbox_head).__name__
        if name not in HEAD_ADAPTERS:
            raise TypeError(f'BVRHead supports {sorted(HEAD_ADAPTERS)} '
                            f'(see HEAD_ADAPTERS in {__name__}), got {name}')
        self.bbox_head = bbox_head
        self._towers, self._predictions = HEAD_ADAPTERS[name]
        if isinstance(keypoint_head, dict):
            keypoint_head = MODELS.build(keypoint_head)
        self.keypoint_head = keypoint_head
        missing = [t for t in (*cls_keypoint_types, *reg_keypoint_types)
                   if t not in keypoint_head.keypoint_types]
        if missing:
            raise ValueError(f'keypoint types {missing} are not predicted by '
                             f'the keypoint head '
                             f'({keypoint_head.keypoint_types})')
        self.cls_keypoint_types = tuple(cls_keypoint_types)
        self.reg_keypoint_types = tuple(reg_keypoint_types)
        self.topk_per_level = topk_per_level
        self.num_keys = num_keys
        if position_scale is None:
            position_scale = keypoint_head.strides[0]
        embed_cfg = dict(location_embedding, num_heads=num_heads,
                         position_scale=position_scale)
        channels = bbox_head.feat_channels
        cls_embed = MODELS.build(embed_cfg)
        reg_embed = cls_embed if share_location_embedding else \
            MODELS.build(embed_cfg)
        self.cls_decoder = BVRAttentionDecoder(
            channels, num_heads=num_heads,
            num_key_types=len(self.cls_keypoint_types),
            location_embedding=cls_embed)
        self.reg_decoder = BVRAttentionDecoder(
            channels, num_heads=num_heads,
            num_key_types=len(self.reg_keypoint_types),
            location_embedding=reg_embed)

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def _relate(self, feats: Feats, heatmaps: Dict[str, Feats],
                offsets: Dict[str, Feats], types: Tuple[str, ...],
                decoder: BVRAttentionDecoder) -> Feats:
        """Update one branch's per-level features ``(N, C, H_l, W_l)`` from
        its keys; all levels go through the decoder as one query set."""
        keys, key_pos = [], []
        for t in types:
            k, p, _ = self.keypoint_head.sample_keypoints(
                heatmaps[t], offsets[t], feats,
                topk_per_level=self.topk_per_level, num_keys=self.num_keys)
            keys.append(k)
            key_pos.append(p)
        sizes = [f.shape[-2:] for f in feats]
        points = self.keypoint_head.get_points(sizes, feats[0].device)
        n = feats[0].shape[0]
        query = torch.cat([f.flatten(2) for f in feats], 2).transpose(1, 2)
        query_pos = torch.cat(points).to(query.dtype)[None].expand(n, -1, -1)
        out = decoder(query, query_pos, keys, key_pos)  # N, sum HW, C
        splits = out.transpose(1, 2).split([h * w for h, w in sizes], 2)
        return [s.reshape(n, -1, h, w) for s, (h, w) in zip(splits, sizes)]

    def forward_with_keypoints(self, x: Sequence[Tensor]
                               ) -> Tuple[Tuple[Feats, ...], dict, dict]:
        """Returns ``(bbox_outs, heatmaps, offsets)``: the wrapped head's
        outputs (RetinaHead: ``cls_scores``, ``bbox_preds``; FCOSHead and
        ATSSHead add ``centernesses``; each a list over levels) and the
        keypoint head's (see :meth:`BVRKeypointHead.forward`)."""
        cls_feats, reg_feats = self._towers(self.bbox_head, x)
        heatmaps, offsets = self.keypoint_head(x)
        cls_feats = self._relate(cls_feats, heatmaps, offsets,
                                 self.cls_keypoint_types, self.cls_decoder)
        reg_feats = self._relate(reg_feats, heatmaps, offsets,
                                 self.reg_keypoint_types, self.reg_decoder)
        return self._predictions(self.bbox_head, cls_feats,
                                 reg_feats), heatmaps, offsets

    def forward(self, x: Sequence[Tensor]) -> Tuple[Feats, ...]:
        """The wrapped head's outputs on BVR-enhanced features."""
        return self.forward_with_keypoints(x)[0]

    def loss(self, x: Sequence[Tensor],
             batch_data_samples: SampleList) -> dict:
        """Wrapped head's losses plus ``loss_kpt_heatmap`` and
        ``loss_kpt_offset``."""
        bbox_outs, heatmaps, offsets = self.forward_with_keypoints(x)
        gts, gts_ignore, img_metas = unpack_gt_instances(batch_data_samples)
        return self.loss_by_feat(bbox_outs, heatmaps, offsets, gts,
                                 img_metas, gts_ignore)

    def loss_by_feat(self, bbox_outs: Sequence[Feats], heatmaps: dict,
                     offsets: dict, batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None
                     ) -> dict:
        """Wrapped head's and keypoint head's losses.

        Args:
            bbox_outs (Sequence[list[Tensor]]): The wrapped head's outputs
                (see :meth:`forward_with_keypoints`), passed to its
                ``loss_by_feat`` in order.
            heatmaps (dict[str, list[Tensor]]): Keypoint heatmap logits per
                type, ``(N, num_classes, H_l, W_l)`` per level.
            offsets (dict[str, list[Tensor]]): Keypoint offsets per type,
                ``(N, 2, H_l, W_l)`` per level.
            batch_gt_instances (list[:obj:`InstanceData`]): Ground truth
                ``bboxes`` (x1, y1, x2, y2) and ``labels`` per image.
            batch_img_metas (list[dict]): Meta information per image.
            batch_gt_instances_ignore (list[:obj:`InstanceData`], optional):
                Boxes to ignore, for the wrapped head. Defaults to None.

        Returns:
            dict[str, Tensor]: The wrapped head's losses plus
            ``loss_kpt_heatmap`` and ``loss_kpt_offset``.
        """
        losses = self.bbox_head.loss_by_feat(*bbox_outs, batch_gt_instances,
                                             batch_img_metas,
                                             batch_gt_instances_ignore)
        losses.update(self.keypoint_head.loss(heatmaps, offsets,
                                              batch_gt_instances))
        return losses

    def predict_by_feat(self, *args, **kwargs):
        """The wrapped head's ``predict_by_feat``."""
        return self.bbox_head.predict_by_feat(*args, **kwargs)
