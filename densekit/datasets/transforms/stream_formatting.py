"""Packing of stacked-frame samples for streaming detectors."""
from mmdet.datasets.transforms import PackDetInputs

from densekit.registry import TRANSFORMS

STREAM_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'flip', 'flip_direction',
                    'num_past_frames', 'has_future_frame', 'sid', 'fid',
                    'cur_img_id', 'seq_name')
# Per-box arrays that must stay aligned with gt_bboxes.
_PER_BOX_KEYS = ('gt_bboxes_labels', 'gt_ignore_flags', 'gt_trend_ious',
                 'gt_track_ids')


@TRANSFORMS.register_module()
class PackStreamInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` for :class:`densekit.LoadStreamFrames`.

    ``inputs`` is the (3T, H, W) uint8 tensor of the stacked frames (blocks
    of 3 channels oldest -> current (-> future)); ``data_samples`` is a
    ``DetDataSample`` whose ``gt_instances`` (and ``ignored_instances``) hold
    ``bboxes``, ``labels``, ``trend_ious`` (float32) and ``track_ids``
    (int64) of the target frame, split by ``gt_ignore_flags`` as
    ``PackDetInputs`` does.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when present.
            Defaults to :data:`STREAM_META_KEYS` (``PackDetInputs``'s plus
            ``num_past_frames``, ``has_future_frame``, ``sid``, ``fid``,
            ``cur_img_id``, ``seq_name``).

    Raises:
        ValueError: the channel count is not 3 * (num_past_frames + 1 +
            has_future_frame), or a per-box array's length differs from
            ``gt_bboxes``' (e.g. after ``mmdet.FilterAnnotations``; use
            ``densekit.StreamFilterAnnotations``). The image is named.
    """
    mapping_table = dict(
        PackDetInputs.mapping_table,
        gt_trend_ious='trend_ious',
        gt_track_ids='track_ids')

    def __init__(self, meta_keys=STREAM_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Check the stacked image and per-box arrays, then pack them.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``inputs`` (Tensor of shape (3T, H, W)) and
            ``data_samples`` (DetDataSample).
        """
        where = results.get('img_path')
        if 'img' in results and 'num_past_frames' in results:
            num_frames = (results['num_past_frames'] + 1 +
                          int(bool(results.get('has_future_frame', False))))
            channels = results['img'].shape[2] if results['img'].ndim == 3 \
                else 1
            if channels != 3 * num_frames:
                raise ValueError(
                    f'PackStreamInputs: the image of {where} has {channels} '
                    f'channels, but {num_frames} stacked frames need '
                    f'{3 * num_frames}; a transform changed the channels')
        if 'gt_bboxes' in results:
            num_boxes = len(results['gt_bboxes'])
            for key in _PER_BOX_KEYS:
                if key in results and len(results[key]) != num_boxes:
                    raise ValueError(
                        f'PackStreamInputs: {key} of {where} has '
                        f'{len(results[key])} entries but gt_bboxes has '
                        f'{num_boxes}; a transform filtered the boxes only '
                        '(use densekit.StreamFilterAnnotations instead of '
                        'FilterAnnotations)')
        return super().transform(results)


__all__ = ['PackStreamInputs', 'STREAM_META_KEYS']
