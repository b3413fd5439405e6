"""``FilterAnnotations`` that keeps every per-box array aligned."""
from typing import Optional

import numpy as np
from mmdet.datasets.transforms import FilterAnnotations

from densekit.registry import TRANSFORMS

# Every per-box key this transform filters (those present in results).
STREAM_PER_BOX_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_masks',
                       'gt_ignore_flags', 'gt_trend_ious', 'gt_track_ids')


@TRANSFORMS.register_module()
class StreamFilterAnnotations(FilterAnnotations):
    """mmdet's ``FilterAnnotations`` that also filters ``gt_trend_ious`` and
    ``gt_track_ids``.

    The boxes to keep are decided by mmdet's own ``FilterAnnotations``
    (same arguments, same tests, ``keep_empty`` semantics included: when no
    box passes and ``keep_empty`` is True the sample is dropped, returning
    None); then every key of :data:`STREAM_PER_BOX_KEYS` present is indexed
    with them.

    Args:
        min_gt_bbox_wh (tuple[int, int]): Defaults to (1, 1).
        min_gt_mask_area (int): Defaults to 1.
        by_box (bool): Defaults to True.
        by_mask (bool): Defaults to False.
        keep_empty (bool): Defaults to True.
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Filter the boxes and every array aligned with them.

        Args:
            results (dict): Result dict with ``gt_bboxes``.

        Returns:
            dict or None: The filtered ``results``, or None (see above).
        """
        if 'gt_bboxes' not in results:
            raise KeyError('StreamFilterAnnotations: results has no '
                           f'"gt_bboxes" ({results.get("img_path")}); put '
                           'it after densekit.LoadStreamAnnotations')
        num_boxes = len(results['gt_bboxes'])
        # Let the parent decide: it filters the labels, which here are the
        # box indices, so the survivors tell which boxes to keep.
        probe = dict(
            gt_bboxes=results['gt_bboxes'],
            gt_bboxes_labels=np.arange(num_boxes, dtype=np.int64))
        if 'gt_masks' in results:
            probe['gt_masks'] = results['gt_masks']
        probe = super().transform(probe)
        if probe is None:
            return None
        keep = np.asarray(probe['gt_bboxes_labels'], np.int64)
        if keep.size == num_boxes:
            return results
        for key in STREAM_PER_BOX_KEYS:
            if key in results:
                results[key] = results[key][keep]
        return results


__all__ = ['StreamFilterAnnotations', 'STREAM_PER_BOX_KEYS']
