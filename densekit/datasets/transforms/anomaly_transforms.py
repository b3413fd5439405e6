"""Loading and packing for image-level anomaly detection.

A typical pipeline (mmcv's loader and resize, densekit's mask and packer)::

    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='densekit.LoadAnomalyMask'),
        dict(type='Resize', scale=(256, 256), keep_ratio=False),
        dict(type='densekit.PackAnomalyInputs'),
    ]

Anomaly maps are scored at the original image size, so the ground-truth mask
must stay at ``ori_shape`` while the image is resized for the network. The
mask is kept under the key ``gt_mask``, which no geometric transform of
mmcv, mmdet or mmseg reads: their ``Resize``, ``Pad``, ``RandomFlip`` and
crops act on ``img``, ``gt_bboxes``, ``gt_masks`` (plural, mmdet's instance
masks), ``gt_seg_map``, ``gt_keypoints`` and the keys in mmseg's
``seg_fields``, none of which is used here. So ``gt_mask`` is never resized
and needs no copy; :class:`PackAnomalyInputs` checks it still has
``ori_shape``. Geometric augmentation that moves pixels (flips, crops) is
therefore not mirrored in ``gt_mask``: use it only where masks are empty
(training on normal images).
"""
import warnings
from typing import Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.structures import BaseDataElement

from densekit.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadAnomalyMask(BaseTransform):
    """Load the binary ground-truth anomaly mask at the image's size.

    ``mask_path`` is a file, a list of files whose union is the mask (MVTec
    LOCO), or None for a normal image (an all-zero mask). Non-zero pixels of
    any channel are anomalous (MVTec AD and LOCO use 255, VisA other
    non-zero values); an alpha channel is ignored.

    A mask whose size differs from ``ori_shape`` is resized with nearest
    neighbour, with a ``UserWarning`` naming the file, when its aspect ratio
    matches the image's within ``aspect_ratio_tol``; otherwise it is a
    ``ValueError`` naming the file and both sizes.

    Required Keys:

    - mask_path (str | list[str] | None)
    - ori_shape (tuple[int, int]): set by ``LoadImageFromFile``, which must
      come first.
    - img_path (str, optional): named in messages.

    Added Keys:

    - gt_mask (np.ndarray): uint8 (H, W) at ``ori_shape``, 1 on anomalous
      pixels, 0 elsewhere. See the module docstring for why ``Resize``
      leaves it at ``ori_shape``.

    Args:
        aspect_ratio_tol (float): Largest relative difference of the mask's
            and the image's width / height ratio for which a differently
            sized mask is resized instead of rejected. Defaults to 0.01.
        imdecode_backend (str): ``backend`` of :func:`mmcv.imfrombytes`.
            Defaults to 'cv2'.
        backend_args (dict, optional): File backend arguments for
            :func:`mmengine.fileio.get`. Defaults to None.

    Examples:
        >>> load = LoadAnomalyMask()
        >>> load(dict(mask_path=None, ori_shape=(4, 6)))['gt_mask'].shape
        (4, 6)
    """

    def __init__(self,
                 aspect_ratio_tol: float = 0.01,
                 imdecode_backend: str = 'cv2',
                 *,
                 backend_args: Optional[dict] = None) -> None:
        if isinstance(aspect_ratio_tol, bool) or not isinstance(
                aspect_ratio_tol, (int, float)) or aspect_ratio_tol < 0:
            raise ValueError('LoadAnomalyMask: aspect_ratio_tol must be a '
                             f'number >= 0, but got {aspect_ratio_tol!r}')
        self.aspect_ratio_tol = float(aspect_ratio_tol)
        self.imdecode_backend = imdecode_backend
        self.backend_args = None if backend_args is None else dict(
            backend_args)

    def _read(self, mask_path: str, img_path: str) -> np.ndarray:
        try:
            mask_bytes = fileio.get(mask_path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'LoadAnomalyMask: mask {mask_path} of image {img_path} does '
                'not exist') from e
        mask = mmcv.imfrombytes(mask_bytes, flag='unchanged',
                                backend=self.imdecode_backend)
        if mask is None:
            raise ValueError(f'LoadAnomalyMask: mask {mask_path} of image '
                             f'{img_path} is not a decodable image')
        if mask.ndim == 3:
            mask = mask[..., :3].any(axis=2)
        return (mask > 0).astype(np.uint8)

    def _fit(self, mask: np.ndarray, mask_path: str, img_path: str,
             shape: Tuple[int, int]) -> np.ndarray:
        h, w = shape
        mh, mw = mask.shape
        if (mh, mw) == (h, w):
            return mask
        if abs((mw / mh) / (w / h) - 1) > self.aspect_ratio_tol:
            raise ValueError(
                f'LoadAnomalyMask: mask {mask_path} is {mw}x{mh} (WxH) but '
                f'its image {img_path} is {w}x{h}; the aspect ratios differ '
                f'by more than aspect_ratio_tol={self.aspect_ratio_tol}, so '
                'the mask does not belong to this image or was cropped.')
        warnings.warn(
            f'LoadAnomalyMask: mask {mask_path} is {mw}x{mh} (WxH) but its '
            f'image {img_path} is {w}x{h}; same aspect ratio, so the mask was '
            'resized with nearest neighbour. Resize the mask files to silence '
            'this, or filter warnings matching "LoadAnomalyMask: mask".',
            UserWarning, stacklevel=2)
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)

    def transform(self, results: dict) -> dict:
        """Add ``results['gt_mask']`` (class docstring).

        Args:
            results (dict): Needs ``mask_path`` and ``ori_shape``.

        Returns:
            dict: ``results`` with ``gt_mask`` (uint8 (H, W) at
            ``ori_shape``).
        """
        if 'mask_path' not in results:
            raise KeyError('LoadAnomalyMask: results has no "mask_path" (use '
                           'an anomaly dataset such as MVTecADDataset); got '
                           f'keys {sorted(results)}')
        if 'ori_shape' not in results:
            raise KeyError('LoadAnomalyMask: results has no "ori_shape"; put '
                           'LoadImageFromFile before LoadAnomalyMask so the '
                           'image size is known')
        shape = tuple(int(s) for s in results['ori_shape'][:2])
        img_path = results.get('img_path', '<unknown image>')
        mask_paths = results['mask_path']
        if mask_paths is None:
            mask_paths = []
        elif isinstance(mask_paths, str):
            mask_paths = [mask_paths]
        gt_mask = np.zeros(shape, np.uint8)
        for mask_path in mask_paths:
            mask = self._fit(self._read(mask_path, img_path), mask_path,
                             img_path, shape)
            gt_mask |= mask
        results['gt_mask'] = gt_mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'aspect_ratio_tol={self.aspect_ratio_tol}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class PackAnomalyInputs(BaseTransform):
    """Pack an image and its anomaly ground truth for the model.

    Produces ``dict(inputs=..., data_samples=...)``: ``inputs`` is the
    (C, H, W) tensor of ``results['img']`` (uint8 BGR when loaded by mmcv's
    ``LoadImageFromFile``; dtype kept), and ``data_samples`` a
    :class:`mmengine.structures.BaseDataElement` with

    - metainfo: those of ``meta_keys`` present in ``results``;
    - ``gt_label``: int64 tensor of shape () (0 good, 1 anomalous), if
      ``results`` has ``gt_label``;
    - ``gt_mask``: uint8 (H0, W0) tensor at ``ori_shape`` (H0, W0), if
      ``results`` has ``gt_mask``;
    - ``penalty_img``: uint8 (3, H, W) tensor of ``densekit.
      LoadPenaltyImage``, if present.

    The model adds ``pred_score`` (shape ()) and ``anomaly_map`` (H0, W0) to
    the same sample; the metric reads ``pred_score``, ``anomaly_map``,
    ``gt_label`` and ``gt_mask`` from ``data_sample.to_dict()``.

    Args:
        meta_keys (Sequence[str]): Keys copied into the sample's metainfo
            when present. Defaults to ('img_path', 'mask_path', 'ori_shape',
            'img_shape', 'scale_factor', 'defect_type', 'category',
            'anomaly_type').
    """

    def __init__(self,
                 meta_keys: Sequence[str] = (
                     'img_path', 'mask_path', 'ori_shape', 'img_shape',
                     'scale_factor', 'defect_type', 'category',
                     'anomaly_type')) -> None:
        if isinstance(meta_keys, str):
            raise TypeError('PackAnomalyInputs: meta_keys must be a sequence '
                            f'of str, but got the str {meta_keys!r}')
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results`` (class docstring).

        Args:
            results (dict): Needs ``img``; ``ori_shape`` with ``gt_mask``.

        Returns:
            dict: ``inputs`` (Tensor (C, H, W)) and ``data_samples``
            (:class:`BaseDataElement`).
        """
        if 'img' not in results:
            raise KeyError('PackAnomalyInputs: results has no "img"; put '
                           'LoadImageFromFile first')
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0,
                                                                     1)))
        sample = BaseDataElement(metainfo={
            k: results[k]
            for k in self.meta_keys if k in results
        })
        if 'gt_label' in results:
            sample.gt_label = torch.tensor(int(results['gt_label']),
                                           dtype=torch.long)
        if 'gt_mask' in results:
            gt_mask = results['gt_mask']
            ori_shape = tuple(results.get('ori_shape', gt_mask.shape))[:2]
            if tuple(gt_mask.shape) != ori_shape:
                raise ValueError(
                    f'PackAnomalyInputs: gt_mask of {results.get("img_path")}'
                    f' is {tuple(gt_mask.shape)} but ori_shape is '
                    f'{ori_shape}; a transform before PackAnomalyInputs '
                    'changed results["gt_mask"], which must stay at the '
                    'original image size')
            sample.gt_mask = torch.from_numpy(
                np.ascontiguousarray(gt_mask, dtype=np.uint8))
        if 'penalty_img' in results:  # densekit.LoadPenaltyImage (training)
            sample.penalty_img = torch.from_numpy(np.ascontiguousarray(
                results['penalty_img'].transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'


__all__ = ['LoadAnomalyMask', 'PackAnomalyInputs']
