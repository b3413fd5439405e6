"""BVR (RelationNet++) in the RoI head of a two-stage detector.

Chi, Wei and Hu, "RelationNet++: Bridging Visual Representations for Object
Detection via Transformer Decoder", NeurIPS 2020
(https://arxiv.org/abs/2010.15831), Sec. 3 and Table 6 (Faster R-CNN
+BVR). The official release (``microsoft/RelationNet2``) only ships the
one-stage heads; this two-stage form follows the paper: the main
representation is the box proposal, so the *queries* are the proposals'
RoI features, located at the proposal centres, and the keys are the same
centre / corner keypoints as in :class:`densekit.BVRHead`.

Where BVR sits in a ``ConvFCBBoxHead`` (mmdet's ``Shared2FCBBoxHead``)::

    RoIAlign -> shared fcs -> f (R, D)                 (D = fc_out_channels)
    f_cls = cls_decoder(f, centre keys)                (per image)
    f_reg = reg_decoder(f, corner keys)
    f_cls -> cls fcs -> fc_cls;  f_reg -> reg fcs -> fc_reg

Key features are read from the FPN maps the keypoint head sees (``C``
channels); each decoder projects queries (``D``) and keys (``C``) to its
attention width (``attention_dims``, default 256: the one-stage BVR's
width, the FPN's, rather than ``D = 1024``, which made the decoders 12.6M
parameters) and maps the update back to ``D``. Each RoI
attends only to the keys of its own image: RoIs are scattered into a padded
``(N, R_max, D)`` query tensor (queries are independent in attention, so
padding changes nothing). The keypoint head runs once per forward on the
FPN levels ``keypoint_in_levels``; its losses are added to the RoI head's.

With both decoders' output projections zeroed the head returns exactly the
plain ``StandardRoIHead``'s scores and deltas (``f`` is post-ReLU, and the
decoder computes ``relu(f + 0)``), which the tests check.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from torch import Tensor

from densekit.models.layers.bvr_attention_decoder import BVRAttentionDecoder
from densekit.registry import MODELS

Keys = Tuple[List[Tensor], List[Tensor]]  # features (N, K, D), pos (N, K, 2)


@MODELS.register_module()
class BVRRoIHead(StandardRoIHead):
    """``StandardRoIHead`` whose box head features are bridged with
    keypoint keys (BVR).

    Args:
        keypoint_head (dict): A :class:`densekit.BVRKeypointHead` config;
            its ``strides`` must be those of ``keypoint_in_levels``.
        keypoint_in_levels (Sequence[int], optional): Indices of the FPN
            outputs given to the keypoint head (and keys are read from).
            Defaults to None: all of them.
        cls_keypoint_types (Sequence[str]): Key types of the classification
            branch. Defaults to ``('center',)``.
        reg_keypoint_types (Sequence[str]): Key types of the regression
            branch. Defaults to the two corners.
        num_heads (int): Attention heads. Defaults to 8.
        attention_dims (int, optional): Width of the decoders' projected
            queries, keys and values. Defaults to 256; None uses the fc
            width ``D``.
        topk_per_level (int): Keypoint candidates per level and type.
            Defaults to 20.
        num_keys (int): Keys per type over all levels. Defaults to 50.
        position_scale (float, optional): Pixels per location-embedding
            unit. Defaults to None: the keypoint head's first stride.
        location_embedding (dict): :class:`BVRLocationEmbedding` config
            (``num_heads`` and ``position_scale`` are filled in).
        share_location_embedding (bool): One embedding for both branches.
            Defaults to False.
        **kwargs: ``StandardRoIHead`` arguments (``bbox_roi_extractor``,
            ``bbox_head`` (a ``ConvFCBBoxHead`` with shared fcs),
            ``train_cfg``, ``test_cfg``, ...).
    """

    def __init__(self,
                 *,
                 keypoint_head: dict,
                 keypoint_in_levels: Optional[Sequence[int]] = None,
                 cls_keypoint_types: Sequence[str] = ('center', ),
                 reg_keypoint_types: Sequence[str] = ('top_left_corner',
                                                      'bottom_right_corner'),
                 num_heads: int = 8,
                 attention_dims: Optional[int] = 256,
                 topk_per_level: int = 20,
                 num_keys: int = 50,
                 position_scale: Optional[float] = None,
                 location_embedding: dict = dict(
                     type='densekit.BVRLocationEmbedding', base_size=400,
                     log_scale=True),
                 share_location_embedding: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        head = self.bbox_head
        if not isinstance(head, ConvFCBBoxHead) or head.num_shared_fcs < 1:
            raise TypeError(
                f'BVRRoIHead bridges the shared fc features of a '
                f'ConvFCBBoxHead (e.g. Shared2FCBBoxHead); roi_head.'
                f'bbox_head is {type(head).__name__} with '
                f'{getattr(head, "num_shared_fcs", 0)} shared fcs')
        if head.cls_convs or head.reg_convs:
            raise ValueError('roi_head.bbox_head: branch convs cannot follow '
                             'the shared fcs BVR updates; use branch fcs')
        self.keypoint_head = MODELS.build(keypoint_head)
        missing = [t for t in (*cls_keypoint_types, *reg_keypoint_types)
                   if t not in self.keypoint_head.keypoint_types]
        if missing:
            raise ValueError(f'keypoint types {missing} are not predicted by '
                             f'the keypoint head '
                             f'({self.keypoint_head.keypoint_types})')
        self.keypoint_in_levels = (None if keypoint_in_levels is None else
                                   tuple(keypoint_in_levels))
        if (self.keypoint_in_levels is not None and
                len(self.keypoint_in_levels) !=
                len(self.keypoint_head.strides)):
            raise ValueError(
                f'keypoint_in_levels {self.keypoint_in_levels} and the '
                f'keypoint head strides {self.keypoint_head.strides} differ '
                f'in length')
        self.cls_keypoint_types = tuple(cls_keypoint_types)
        self.reg_keypoint_types = tuple(reg_keypoint_types)
        self.topk_per_level = topk_per_level
        self.num_keys = num_keys
        if position_scale is None:
            position_scale = self.keypoint_head.strides[0]
        embed_cfg = dict(location_embedding, num_heads=num_heads,
                         position_scale=position_scale)
        dims = head.shared_out_channels
        cls_embed = MODELS.build(embed_cfg)
        reg_embed = cls_embed if share_location_embedding else \
            MODELS.build(embed_cfg)
        key_channels = self.keypoint_head.in_channels
        self.cls_decoder = BVRAttentionDecoder(
            dims, num_heads=num_heads, key_dims=key_channels,
            attention_dims=attention_dims,
            num_key_types=len(self.cls_keypoint_types),
            location_embedding=cls_embed)
        self.reg_decoder = BVRAttentionDecoder(
            dims, num_heads=num_heads, key_dims=key_channels,
            attention_dims=attention_dims,
            num_key_types=len(self.reg_keypoint_types),
            location_embedding=reg_embed)
        self._keys: Optional[Dict[str, Keys]] = None

    # ------------------------------------------------------------ keypoints
    def _keypoint_inputs(self, x: Sequence[Tensor]) -> List[Tensor]:
        if self.keypoint_in_levels is None:
            return list(x)
        return [x[i] for i in self.keypoint_in_levels]

    def _sample_keys(self, feats: List[Tensor], heatmaps: dict,
                     offsets: dict, types: Tuple[str, ...]) -> Keys:
        keys, positions = [], []
        for t in types:
            k, p, _ = self.keypoint_head.sample_keypoints(
                heatmaps[t], offsets[t], feats,
                topk_per_level=self.topk_per_level, num_keys=self.num_keys)
            keys.append(k)
            positions.append(p)
        return keys, positions

    @contextmanager
    def _bridged(self, x: Sequence[Tensor]) -> Iterator[Tuple[dict, dict]]:
        """Run the keypoint head on ``x`` and sample both branches' keys for
        the ``_bbox_forward`` calls inside the block; yields the keypoint
        head's ``(heatmaps, offsets)``."""
        feats = self._keypoint_inputs(x)
        heatmaps, offsets = self.keypoint_head(feats)
        self._keys = dict(
            cls=self._sample_keys(feats, heatmaps, offsets,
                                  self.cls_keypoint_types),
            reg=self._sample_keys(feats, heatmaps, offsets,
                                  self.reg_keypoint_types))
        try:
            yield heatmaps, offsets
        finally:
            self._keys = None

    # ------------------------------------------------------------ box head
    @staticmethod
    def _relate(feats: Tensor, rois: Tensor, keys: Keys,
                decoder: BVRAttentionDecoder, num_imgs: int) -> Tensor:
        """Update ``(R, D)`` RoI features with their own image's keys."""
        img_ids = rois[:, 0].long()
        centres = (rois[:, 1:3] + rois[:, 3:5]) / 2
        counts = torch.bincount(img_ids, minlength=num_imgs)
        starts = torch.cumsum(counts, 0) - counts
        order = torch.argsort(img_ids, stable=True)
        slot = torch.empty_like(img_ids)
        slot[order] = torch.arange(len(img_ids), device=rois.device) - \
            starts[img_ids[order]]
        r_max = int(counts.max()) if len(img_ids) else 0
        query = feats.new_zeros(num_imgs, r_max, feats.shape[1])
        query_pos = feats.new_zeros(num_imgs, r_max, 2)
        query[img_ids, slot] = feats
        query_pos[img_ids, slot] = centres.to(feats.dtype)
        out = decoder(query, query_pos, *keys)
        return out[img_ids, slot]

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        """``StandardRoIHead._bbox_forward`` with BVR between the shared and
        the branch layers of the box head (module docstring)."""
        if self._keys is None:
            raise RuntimeError('BVRRoIHead._bbox_forward needs the keys '
                               'sampled by loss(), predict() or forward()')
        bbox_feats = self.bbox_roi_extractor(
            x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        head = self.bbox_head
        f = bbox_feats
        for conv in head.shared_convs:
            f = conv(f)
        if head.with_avg_pool:
            f = head.avg_pool(f)
        f = f.flatten(1)
        for fc in head.shared_fcs:
            f = head.relu(fc(f))
        num_imgs = x[0].shape[0]
        x_cls = self._relate(f, rois, self._keys['cls'], self.cls_decoder,
                             num_imgs)
        x_reg = self._relate(f, rois, self._keys['reg'], self.reg_decoder,
                             num_imgs)
        for fc in head.cls_fcs:
            x_cls = head.relu(fc(x_cls))
        for fc in head.reg_fcs:
            x_reg = head.relu(fc(x_reg))
        cls_score = head.fc_cls(x_cls) if head.with_cls else None
        bbox_pred = head.fc_reg(x_reg) if head.with_reg else None
        return dict(cls_score=cls_score, bbox_pred=bbox_pred,
                    bbox_feats=bbox_feats)

    # ------------------------------------------------------ entry points
    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """``StandardRoIHead`` losses plus ``loss_kpt_heatmap`` and
        ``loss_kpt_offset`` of the keypoint head."""
        gts, _, _ = unpack_gt_instances(batch_data_samples)
        with self._bridged(x) as (heatmaps, offsets):
            losses = super().loss(x, rpn_results_list, batch_data_samples)
        losses.update(self.keypoint_head.loss(heatmaps, offsets, gts))
        return losses

    def predict(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
                batch_data_samples: SampleList,
                rescale: bool = False) -> InstanceList:
        with self._bridged(x):
            return super().predict(x, rpn_results_list, batch_data_samples,
                                   rescale=rescale)

    def forward(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
                batch_data_samples: SampleList = None) -> tuple:
        with self._bridged(x):
            return super().forward(x, rpn_results_list, batch_data_samples)
