"""Load one 2D slice of a medical volume for mmseg segmentors.

A training pipeline for the datasets of
:mod:`densekit.datasets.medical_datasets` (images are float32 in [0, 1] or
z-scored, so no ``LoadImageFromFile``)::

    train_pipeline = [
        dict(type='densekit.LoadMedicalSlice'),
        dict(type='Resize', scale=(224, 224), keep_ratio=False),
        dict(type='RandomFlip', prob=0.5),
        dict(type='mmseg.PackSegInputs', meta_keys=MEDICAL_META_KEYS),
    ]

At test time mmseg scores predictions at ``ori_shape``; to keep the ground
truth at the original size, load it after ``Resize`` (as mmseg's test
pipelines put ``LoadAnnotations`` after ``Resize``)::

    test_pipeline = [
        dict(type='densekit.LoadMedicalSlice', with_seg=False),
        dict(type='Resize', scale=(224, 224), keep_ratio=False),
        dict(type='densekit.LoadMedicalSlice', with_img=False),
        dict(type='mmseg.PackSegInputs', meta_keys=MEDICAL_META_KEYS),
    ]

:data:`MEDICAL_META_KEYS` is mmseg's default ``PackSegInputs.meta_keys``
plus the volume keys the volume metric
(``densekit/evaluation/metrics/volume_metric.py``) groups slices by:
``volume_id``, ``slice_index``, ``num_slices`` and ``spacing``. Configs
must pass it (or a superset): mmseg's default drops them.

Image layout for mmseg: ``PackSegInputs`` accepts any (H, W, C) array
(and expands (H, W) to (H, W, 1)) and keeps its dtype; mmseg's
``SegDataPreProcessor`` casts to float, swaps channels only when there are
3 (``bgr_to_rgb``; a no-op on replicated grey) and normalises with one
mean/std per channel. So float32 images pass through unchanged; with values
in [0, 1] use ``mean=None, std=None`` (or ImageNet's statistics on the
[0, 1] scale, ``mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]``),
never the 0-255 constants. ``num_channels=3`` (the default) replicates the
grey slice for ImageNet-pretrained RGB backbones, as TransUNet's ResNet
does with ``x.repeat(1, 3, 1, 1)``; ``num_channels=1`` gives (H, W, 1) for
single-channel U-Nets (mean/std then need one value each).
"""
import os
from collections import OrderedDict
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from densekit.registry import TRANSFORMS
from ..medical_io import (check_same_shape, check_spacing, file_format,
                          import_h5py, intensity_stats, labels_to_uint8,
                          read_nifti)

# mmseg 1.x PackSegInputs' default meta_keys + the volume keys.
MEDICAL_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'volume_id', 'slice_index',
                     'num_slices', 'spacing')


class _H5Volume:
    """An open TransUNet ``*.npy.h5`` volume (datasets image, label)."""

    def __init__(self, path: str) -> None:
        h5py = import_h5py()
        try:
            self.file = h5py.File(path, 'r')
        except OSError as e:
            raise ValueError(f'{path}: not a readable HDF5 file ({e})') from e
        try:
            missing = [k for k in ('image', 'label') if k not in self.file]
            if missing:
                raise ValueError(
                    f'{path}: HDF5 volume has no dataset(s) {missing}; '
                    'TransUNet volumes hold "image" and "label" (D, H, W), '
                    f'found {sorted(self.file.keys())}')
            self.shape = tuple(self.file['image'].shape)
            if len(self.shape) != 3:
                raise ValueError(f'{path}: "image" must be a (D, H, W) '
                                 f'volume, but has shape {self.shape}')
            check_same_shape(self.shape, self.file['label'].shape, path)
            self.spacing = check_spacing(self.file.attrs.get('spacing'),
                                         f'{path} attribute "spacing"')
        except Exception:
            self.file.close()
            raise
        self.path = path
        self._stats = {}

    def image(self, index: int) -> np.ndarray:
        return np.asarray(self.file['image'][index])

    def label(self, index: int) -> np.ndarray:
        return np.asarray(self.file['label'][index])

    def stats(self, mode: Optional[str]):
        if mode not in self._stats:  # reads the whole image once per mode
            self._stats[mode] = intensity_stats(self.file['image'][()], mode,
                                                self.path)
        return self._stats[mode]

    def close(self) -> None:
        self.file.close()


class _NiftiVolume:
    """A NIfTI volume read into memory as (D, H, W)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.array, self.spacing = read_nifti(path)
        self.shape = self.array.shape
        self._stats = {}

    def stats(self, mode: Optional[str]):
        if mode not in self._stats:
            self._stats[mode] = intensity_stats(self.array, mode, self.path)
        return self._stats[mode]

    def close(self) -> None:
        pass


@TRANSFORMS.register_module()
class LoadMedicalSlice(BaseTransform):
    """Read one 2D slice (image and label) of a medical volume.

    The format follows ``img_path``'s suffix:

    - ``*.npz``: one slice with keys ``image`` (H, W) and ``label`` (H, W)
      (TransUNet's ``train_npz``); ``slice_index`` is metadata only.
    - ``*.npy.h5`` / ``*.h5``: a volume with datasets ``image`` and
      ``label`` (D, H, W) (TransUNet's ``test_vol_h5``); slice
      ``slice_index`` is read (only that slice is read from disk).
    - ``*.nii`` / ``*.nii.gz``: the image volume; the label volume is
      ``seg_map_path``. Voxels are transposed to (D, H, W) (see
      :mod:`densekit.datasets.medical_io`).

    Volumes (open HDF5 files, decoded NIfTI arrays) are kept in a
    least-recently-used cache of ``cache_size`` files, so consecutive slices
    of one volume decode it once. The cache belongs to the process: each
    dataloader worker fills its own, a worker forked from a process that
    used the transform starts empty, and the cache is not pickled.

    ``intensity_norm`` (from the dataset) normalises with whole-volume
    statistics: ``'minmax'`` to [0, 1], ``'zscore'`` to zero mean and unit
    standard deviation; None keeps the stored values (TransUNet's slices
    are already windowed to [-125, 275] HU and scaled to [0, 1]).

    Required Keys:

    - img_path (str)
    - slice_index (int): required for volume files.
    - seg_map_path (str, optional): the label file; defaults to
      ``img_path`` (npz and h5 hold both); required for NIfTI images.
    - intensity_norm (str, optional)
    - num_classes (int, optional): labels must lie in ``0 .. num_classes -
      1``; the transform's ``num_classes`` wins when both are given.

    Added Keys:

    - img (np.ndarray): float32 (H, W, num_channels), the grey slice
      replicated over channels.
    - gt_seg_map (np.ndarray): uint8 (H, W) class indices.
    - ori_shape, img_shape (tuple[int, int]): (H, W).
    - seg_fields (list[str]): ``'gt_seg_map'`` appended (mmseg's
      convention, read by its crops).
    - volume_id (str), slice_index (int), num_slices (int), spacing
      (tuple[float, float, float] | None): kept when present, otherwise
      filled from the file (volume_id: the file name without suffix and
      ``_sliceNNN``; spacing: NIfTI zooms as (z, y, x), else None).

    Args:
        num_channels (int): 3 (replicated grey) or 1. Defaults to 3.
        num_classes (int, optional): Valid label range (see above).
            Defaults to None.
        cache_size (int): Volumes kept open per process (>= 1). A Synapse
            CT volume decoded from NIfTI is ~150 MB of float32; HDF5 volumes
            are read lazily. Defaults to 4.
        with_img (bool): Load the image (sets ``img``, ``ori_shape``,
            ``img_shape``). Defaults to True.
        with_seg (bool): Load the label (sets ``gt_seg_map``). Defaults to
            True.

    Examples:
        >>> load = LoadMedicalSlice(num_channels=1)
        >>> results = load(dict(img_path='train_npz/case0005_slice012.npz'))
        >>> results['img'].shape, results['volume_id']
        ((512, 512, 1), 'case0005')
    """

    def __init__(self,
                 num_channels: int = 3,
                 num_classes: Optional[int] = None,
                 cache_size: int = 4,
                 *,
                 with_img: bool = True,
                 with_seg: bool = True) -> None:
        if num_channels not in (1, 3):
            raise ValueError('LoadMedicalSlice: num_channels must be 1 or 3, '
                             f'but got {num_channels!r}')
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int)
                                        or not 1 <= num_classes <= 256):
            raise ValueError('LoadMedicalSlice: num_classes must be None or '
                             f'an int in 1..256, but got {num_classes!r}')
        if isinstance(cache_size, bool) or not isinstance(
                cache_size, int) or cache_size < 1:
            raise ValueError('LoadMedicalSlice: cache_size must be an int '
                             f'>= 1, but got {cache_size!r}')
        if not (with_img or with_seg):
            raise ValueError('LoadMedicalSlice: with_img and with_seg are '
                             'both False, so there is nothing to load')
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.cache_size = cache_size
        self.with_img = with_img
        self.with_seg = with_seg
        self._cache: OrderedDict = OrderedDict()
        self._pid = os.getpid()

    # -- volume cache --------------------------------------------------------
    def _volume(self, path: str, fmt: str):
        if self._pid != os.getpid():  # forked worker: handles not ours
            self._cache = OrderedDict()
            self._pid = os.getpid()
        vol = self._cache.get(path)
        if vol is not None:
            self._cache.move_to_end(path)
            return vol
        if not os.path.isfile(path):
            raise FileNotFoundError(f'LoadMedicalSlice: {path} does not exist')
        vol = _H5Volume(path) if fmt == 'h5' else _NiftiVolume(path)
        self._cache[path] = vol
        while len(self._cache) > self.cache_size:
            _, old = self._cache.popitem(last=False)
            old.close()
        return vol

    def cached_volumes(self) -> Tuple[str, ...]:
        """Paths of the volumes cached in this process, oldest first."""
        return tuple(self._cache)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_cache'] = OrderedDict()
        return state

    # -- reading -------------------------------------------------------------
    @staticmethod
    def _slice_index(results: dict, num_slices: int, path: str) -> int:
        index = results.get('slice_index')
        if index is None:
            raise KeyError(f'LoadMedicalSlice: {path} is a volume, so results '
                           'needs "slice_index" (use SynapseDataset or '
                           'ACDCDataset)')
        index = int(index)
        if not 0 <= index < num_slices:
            raise IndexError(f'LoadMedicalSlice: slice_index {index} is out '
                             f'of range for {path}, which has {num_slices} '
                             'slices')
        return index

    def _read_npz(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'LoadMedicalSlice: {path} does not exist')
        try:
            with np.load(path) as data:
                keys = sorted(data.files)
                missing = [k for k in ('image', 'label') if k not in keys]
                if missing:
                    raise ValueError(
                        f'{path}: npz slice has no key(s) {missing}; '
                        f'TransUNet slices hold "image" and "label" (H, W), '
                        f'found {keys}')
                image, label = data['image'], data['label']
        except (OSError, EOFError) as e:
            raise ValueError(f'{path}: not a readable npz file ({e})') from e
        if image.ndim != 2:
            raise ValueError(f'{path}: "image" must be a 2D (H, W) slice, '
                             f'but has shape {image.shape}')
        check_same_shape(image.shape, label.shape, path)
        return image, label, None

    def _read_volume_slice(self, results: dict, path: str, fmt: str):
        vol = self._volume(path, fmt)
        index = self._slice_index(results, vol.shape[0], path)
        results.setdefault('num_slices', int(vol.shape[0]))
        spacing = getattr(vol, 'spacing', None)
        image = label = stats = None
        if fmt == 'h5':
            if self.with_img:
                image = vol.image(index)
                stats = vol.stats(results.get('intensity_norm'))
            if self.with_seg:
                label = vol.label(index)
            return image, label, stats, spacing
        if self.with_img:
            image = vol.array[index]
            stats = vol.stats(results.get('intensity_norm'))
        if self.with_seg:
            seg_path = results.get('seg_map_path')
            if not seg_path or seg_path == path:
                raise KeyError(f'LoadMedicalSlice: NIfTI image {path} needs '
                               'its label volume in "seg_map_path"')
            seg = self._volume(seg_path, file_format(seg_path))
            check_same_shape(vol.shape, seg.shape, path, seg_path)
            label = seg.array[index]
        return image, label, stats, spacing

    def transform(self, results: dict) -> dict:
        """Load ``results['img']`` and/or ``results['gt_seg_map']`` (class
        docstring).

        Args:
            results (dict): Needs ``img_path`` (and ``slice_index`` for
                volumes).

        Returns:
            dict: ``results`` with the added keys of the class docstring.
        """
        if 'img_path' not in results:
            raise KeyError('LoadMedicalSlice: results has no "img_path"; got '
                           f'keys {sorted(results)}')
        path = str(results['img_path'])
        fmt = file_format(path)
        stats = spacing = None
        if fmt == 'npz':
            image, label, stats = self._read_npz(path)
        else:
            image, label, stats, spacing = self._read_volume_slice(
                results, path, fmt)
        if self.with_img:
            image = np.asarray(image, np.float32)
            if stats is not None:
                image = (image - np.float32(stats[0])) / np.float32(stats[1])
            if self.num_channels == 3:
                image = np.repeat(image[..., None], 3, axis=2)
            else:
                image = np.ascontiguousarray(image[..., None])
            results['img'] = image
            results['ori_shape'] = image.shape[:2]
            results['img_shape'] = image.shape[:2]
        if self.with_seg:
            num_classes = self.num_classes or results.get('num_classes')
            seg_path = results.get('seg_map_path') or path
            if fmt == 'h5':
                what = f'slice {results["slice_index"]} of "label"'
            elif fmt == 'nifti':
                what = f'slice {results["slice_index"]} of the label volume'
            else:
                what = 'label'
            results['gt_seg_map'] = labels_to_uint8(label, seg_path,
                                                    num_classes, what)
            fields = results.setdefault('seg_fields', [])
            if 'gt_seg_map' not in fields:
                fields.append('gt_seg_map')
        self._fill_volume_keys(results, path, spacing)
        return results

    @staticmethod
    def _fill_volume_keys(results: dict, path: str, spacing) -> None:
        if results.get('volume_id') is None:
            name = os.path.basename(path)
            for suffix in ('.npz', '.npy.h5', '.h5', '.hdf5', '.nii.gz',
                           '.nii'):
                if name.lower().endswith(suffix):
                    name = name[:-len(suffix)]
                    break
            head, sep, tail = name.rpartition('_slice')
            if sep and tail.isdigit():
                name = head
                results.setdefault('slice_index', int(tail))
            results['volume_id'] = name
        results.setdefault('slice_index', None)
        results.setdefault('num_slices', None)
        if 'spacing' not in results:
            results['spacing'] = spacing

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_channels={self.num_channels}, '
                f'num_classes={self.num_classes}, '
                f'cache_size={self.cache_size}, with_img={self.with_img}, '
                f'with_seg={self.with_seg})')


__all__ = ['LoadMedicalSlice', 'MEDICAL_META_KEYS']
