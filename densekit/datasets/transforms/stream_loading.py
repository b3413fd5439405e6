"""Loading for streaming (video) detection: stacked frames and annotations.

A training pipeline over :class:`densekit.ArgoverseHDDataset`::

    pipeline = [
        dict(type='densekit.LoadStreamFrames'),
        dict(type='densekit.LoadStreamAnnotations'),
        dict(type='Resize', scale=(640, 384), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='densekit.StreamPad', size_divisor=32,
             pad_val=dict(img=114)),
        dict(type='densekit.PackStreamInputs'),
    ]

The frames are stacked on the channel axis (H x W x 3T), so mmdet's geometric
transforms move every frame and the boxes identically: ``Resize``
(``cv2.resize`` handles any channel count), ``RandomFlip`` (``np.flip``),
``RandomCrop`` (slicing). Notes (checked in
``tests/test_datasets/test_stream_transforms.py``):

- mmdet's ``Pad`` does NOT work for 2 or more frames: ``cv2.copyMakeBorder``
  takes at most 4 border values, and mmcv expands ``pad_val=dict(img=114)``
  to 3T values. Use :class:`densekit.StreamPad` (same arguments; a number,
  3 values or 3T values).
- Colour transforms that call ``cv2.cvtColor`` (``YOLOXHSVRandomAug``,
  ``PhotoMetricDistortion``) expect 3 channels and do not work here.
- ``mmdet.FilterAnnotations`` drops boxes but not ``gt_trend_ious`` /
  ``gt_track_ids``; use :class:`densekit.StreamFilterAnnotations` instead
  (``densekit.PackStreamInputs`` raises if the lengths differ).
"""
from typing import List, Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations
from mmengine import fileio

from densekit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadStreamFrames(BaseTransform):
    """Load the past, current (and future) frames stacked on channels.

    Required Keys:

    - img_path (str): frame t.
    - past_img_paths (list[str]): frames before t, oldest first (may be
      empty).
    - future_img_path (str): frame t+k, only with ``load_future_frame``.

    Added Keys:

    - img (np.ndarray): (H, W, 3T) uint8 (float32 with ``to_float32``), BGR
      per frame; blocks of 3 channels ordered oldest -> current (-> future).
    - img_shape, ori_shape (tuple[int, int]): (H, W).
    - num_past_frames (int): ``len(past_img_paths)``.
    - has_future_frame (bool): whether the last block is frame t+k.

    Args:
        load_future_frame (bool): Append frame t+k (e.g. for visualising or
            for models trained with the future frame). Defaults to False.
        to_float32 (bool): Return a float32 image. Defaults to False.
        imdecode_backend (str): ``backend`` of :func:`mmcv.imfrombytes`.
            Defaults to 'cv2'.
        backend_args (dict, optional): File backend arguments for
            :func:`mmengine.fileio.get`. Defaults to None.

    Raises:
        FileNotFoundError: a frame file is missing (named).
        ValueError: a frame cannot be decoded, or its size differs from
            frame t's (the file and both sizes are named).
    """

    def __init__(self,
                 load_future_frame: bool = False,
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        for name, value in (('load_future_frame', load_future_frame),
                            ('to_float32', to_float32)):
            if not isinstance(value, bool):
                raise TypeError(f'LoadStreamFrames: {name} must be a bool, '
                                f'but got {value!r}')
        self.load_future_frame = load_future_frame
        self.to_float32 = to_float32
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(
            backend_args)

    def _read(self, path: str) -> np.ndarray:
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'LoadStreamFrames: frame {path} does not exist') from e
        img = mmcv.imfrombytes(
            data, flag='color', backend=self.imdecode_backend)
        if img is None:
            raise ValueError(
                f'LoadStreamFrames: frame {path} could not be decoded')
        return img

    def transform(self, results: dict) -> dict:
        """Read the frames of ``results`` and stack them into ``img``.

        Args:
            results (dict): A data_info of :class:`ArgoverseHDDataset`.

        Returns:
            dict: ``results`` with the added keys above.
        """
        for key in ('img_path', 'past_img_paths') + (
            ('future_img_path', ) if self.load_future_frame else ()):
            if key not in results:
                raise KeyError(
                    f'LoadStreamFrames: results has no "{key}" (got keys '
                    f'{sorted(results)}); use it with '
                    'densekit.ArgoverseHDDataset')
        paths: List[str] = [*results['past_img_paths'], results['img_path']]
        if self.load_future_frame:
            paths.append(results['future_img_path'])
        frames = [self._read(p) for p in paths]
        ref = frames[len(results['past_img_paths'])]
        for path, frame in zip(paths, frames):
            if frame.shape != ref.shape:
                raise ValueError(
                    f'LoadStreamFrames: frame {path} has size '
                    f'{frame.shape[:2]} but the current frame '
                    f'{results["img_path"]} has {ref.shape[:2]}; all frames '
                    'of a sample must have the same size')
        img = np.concatenate(frames, axis=2)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['num_past_frames'] = len(results['past_img_paths'])
        results['has_future_frame'] = self.load_future_frame
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(load_future_frame='
                f'{self.load_future_frame}, to_float32={self.to_float32}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadStreamAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` plus the streaming per-box targets.

    Added Keys (besides ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags`` of ``LoadAnnotations``), in the order of
    ``gt_bboxes``:

    - gt_trend_ious (np.ndarray): (N, ) float32, the instances'
      ``trend_iou`` (IoU of the box at t+k with its box at t).
    - gt_track_ids (np.ndarray): (N, ) int64 track ids, -1 for none.

    Args:
        with_bbox (bool): Defaults to True.
        **kwargs: The other arguments of
            :class:`mmdet.datasets.transforms.LoadAnnotations` (``with_label``,
            ``with_mask``, ``box_type``, ``backend_args``, ...).
    """

    def __init__(self, with_bbox: bool = True, **kwargs) -> None:
        super().__init__(with_bbox=with_bbox, **kwargs)

    def transform(self, results: dict) -> dict:
        """Load the boxes, labels, trend IoUs and track ids.

        Args:
            results (dict): A data_info with ``instances``.

        Returns:
            dict: ``results`` with the gt arrays added.
        """
        results = super().transform(results)
        instances = results.get('instances', [])
        for i, inst in enumerate(instances):
            if 'trend_iou' not in inst or 'track_id' not in inst:
                raise KeyError(
                    f'LoadStreamAnnotations: instance {i} of '
                    f'{results.get("img_path")} has no "trend_iou" or '
                    f'"track_id" (keys {sorted(inst)}); use it with '
                    'densekit.ArgoverseHDDataset')
        results['gt_trend_ious'] = np.array(
            [inst['trend_iou'] for inst in instances], np.float32)
        results['gt_track_ids'] = np.array(
            [inst['track_id'] for inst in instances], np.int64)
        return results


__all__ = ['LoadStreamFrames', 'LoadStreamAnnotations']
