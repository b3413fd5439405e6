"""Industrial anomaly-detection datasets: MVTec AD, MVTec LOCO AD and VisA.

Each dataset lists one ``category`` of one ``split`` from the dataset's own
layout; nothing is converted. Every ``data_info`` holds:

- ``img_path`` (str): the image file.
- ``mask_path`` (str | list[str] | None): the ground-truth mask file, a list
  of mask files whose union is the ground truth (MVTec LOCO), or None for a
  normal image. Non-zero mask pixels are anomalous;
  :class:`densekit.datasets.transforms.LoadAnomalyMask` reads it.
- ``gt_label`` (int): 0 for a normal image, 1 for an anomalous one, indices
  into ``metainfo['classes'] == ('good', 'anomalous')``.
- ``defect_type`` (str): the dataset's defect folder (``'good'`` for normal
  images; VisA has no defect types, so ``'good'`` or ``'anomaly'``).
- ``category`` (str): the category (VisA: the ``object`` column).
- ``anomaly_type`` (str, MVTec LOCO only): ``'good'``, ``'logical'`` or
  ``'structural'``.

Errors name the missing or bad file and the layout the dataset expects.

Note:
    The three classes share this file (instead of one file per class) because
    they are one family: the same ``data_info`` contract over three on-disk
    layouts. Shared logic lives in module functions, not a base class.
"""
import csv
import os
import os.path as osp
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np

from densekit.registry import DATASETS
from densekit.utils.arg_check import check_str_arg
from .split_dataset import SplitDataset

ANOMALY_CLASSES = ('good', 'anomalous')
ANOMALY_METAINFO = dict(classes=ANOMALY_CLASSES)

_MVTEC_LAYOUT = ('<data_root>/<category>/train/good/*.png, '
                 '<data_root>/<category>/test/<defect>/*.png (defect "good" '
                 'is normal) and <data_root>/<category>/ground_truth/<defect>/'
                 '<stem>_mask.png')
_LOCO_LAYOUT = ('<data_root>/<category>/{train,validation}/good/*.png, '
                '<data_root>/<category>/test/{good,logical_anomalies,'
                'structural_anomalies}/NNN.png and <data_root>/<category>/'
                'ground_truth/<logical|structural>_anomalies/NNN/000.png, '
                '001.png, ...')
LOCO_TEST_FOLDERS = dict(good='good', logical='logical_anomalies',
                         structural='structural_anomalies')
VISA_CSV_COLUMNS = ('object', 'split', 'label', 'image', 'mask')
_VISA_LABELS = dict(normal=0, anomaly=1)


def _subfolders(path: str) -> List[str]:
    if not osp.isdir(path):
        return []
    return sorted(d for d in os.listdir(path)
                  if not d.startswith('.') and osp.isdir(osp.join(path, d)))


def _list_images(folder: str, suffix: str) -> List[str]:
    """Sorted file names in ``folder`` ending in ``suffix`` (any case)."""
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith('.') and f.lower().endswith(
                      suffix.lower()) and osp.isfile(osp.join(folder, f)))


def _require_dir(cls_name: str, path: str, what: str, layout: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{cls_name}: {path} does not exist; it should hold {what}. The '
            f'layout expected is {layout}.')


def _category_dir(cls_name: str, data_root: str, category: str,
                  layout: str) -> str:
    path = osp.join(data_root, category)
    if osp.isdir(path):
        return path
    if not osp.isdir(data_root):
        where = f'data_root {data_root} does not exist either'
    else:
        where = (f'categories found in {data_root}: '
                 f'{_subfolders(data_root) or "none"}')
    raise FileNotFoundError(
        f'{cls_name}: category folder {path} does not exist ({where}). The '
        f'layout expected is {layout}.')


def _list_nonempty(cls_name: str, folder: str, suffix: str, what: str,
                   layout: str) -> List[str]:
    _require_dir(cls_name, folder, what, layout)
    names = _list_images(folder, suffix)
    if not names:
        raise FileNotFoundError(
            f'{cls_name}: {folder} holds no *{suffix} images; it should hold '
            f'{what}. The layout expected is {layout}.')
    return names


@DATASETS.register_module()
class MVTecADDataset(SplitDataset):
    """One category of MVTec AD (Bergmann et al., CVPR 2019).

    Lists ``<data_root>/<category>/train/good/*.png`` (``split='train'``)
    or every ``<data_root>/<category>/test/<defect>/*.png`` (``split='test'``,
    defects in sorted order, ``good`` normal), with the mask of an anomalous
    image at ``<category>/ground_truth/<defect>/<stem>_mask.png``. See the
    module docstring for the ``data_info`` keys.

    EfficientAD normalises its anomaly maps on 10 % of the training normals;
    ``train_val_split=0.1`` holds them out: the sorted ``train/good`` names
    are permuted with ``np.random.default_rng(split_seed)`` and the last
    ``round(0.1 * n)`` (at least 1, at most ``n - 1``) form ``subset='val'``,
    the rest ``subset='train'``, each listed in sorted order.

    Args:
        data_root (str | os.PathLike): The MVTec AD root (holds the
            category folders).
        category (str): Category folder, e.g. ``'bottle'``.
        split (str): ``'train'`` or ``'test'``. Defaults to 'train'.
        train_val_split (float, optional): Fraction of ``train/good`` in
            ``(0, 1)`` to hold out, or None to keep all; ``split='train'``
            only. Defaults to None.
        subset (str): With ``train_val_split``, ``'train'`` for the kept
            images or ``'val'`` for the held-out ones. Defaults to 'train'.
        split_seed (int): Seed of the hold-out permutation. Defaults to 0.
        img_suffix (str): Image file suffix. Defaults to '.png'.
        mask_suffix (str): Replaces ``img_suffix`` in mask names.
            Defaults to '_mask.png'.
        metainfo (Mapping, optional): Overrides :attr:`METAINFO`.
        pipeline (Sequence[dict | Callable]): Data transforms.
            Defaults to ().
        test_mode (bool, optional): mmengine's ``test_mode``; None means
            ``split != 'train'``. Defaults to None.
        lazy_init (bool): Defer listing files until first use.
            Defaults to False.
        serialize_data (bool): See :class:`mmengine.dataset.BaseDataset`.
            Defaults to True.
        indices (int | Sequence[int], optional): Keep only these samples.
            Defaults to None.
        max_refetch (int): See :class:`mmengine.dataset.BaseDataset`.
            Defaults to 1000.

    Examples:
        >>> ds = MVTecADDataset(data_root='data/mvtec_ad', category='bottle',
        ...                     split='test')
        >>> ds.get_data_info(0)['defect_type']
        'broken_large'
    """
    METAINFO = ANOMALY_METAINFO

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 category: str,
                 split: str = 'train',
                 *,
                 train_val_split: Optional[float] = None,
                 subset: str = 'train',
                 split_seed: int = 0,
                 img_suffix: str = '.png',
                 mask_suffix: str = '_mask.png',
                 metainfo: Optional[Mapping] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        name = type(self).__name__
        check_str_arg(name, 'category', category)
        check_str_arg(name, 'split', split, ('train', 'test'))
        check_str_arg(name, 'subset', subset, ('train', 'val'))
        if train_val_split is not None:
            if isinstance(train_val_split, bool) or not isinstance(
                    train_val_split, (float, int)) or not (
                        0 < train_val_split < 1):
                raise ValueError(
                    f'{name}: train_val_split must be None or a float in '
                    f'(0, 1), but got {train_val_split!r}')
            if split != 'train':
                raise ValueError(
                    f'{name}: train_val_split holds out part of train/good, '
                    f'so it needs split="train", but got split={split!r}')
        elif subset != 'train':
            raise ValueError(f'{name}: subset={subset!r} needs '
                             'train_val_split (e.g. 0.1), but got None')
        super().__init__(
            data_root, split, ('train', 'test'),
            attrs=dict(category=category, train_val_split=train_val_split,
                       subset=subset, split_seed=split_seed,
                       img_suffix=img_suffix, mask_suffix=mask_suffix),
            metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data,
            indices=indices, max_refetch=max_refetch)

    def load_data_list(self) -> List[dict]:
        """List the images of ``category`` and ``split`` (class docstring).

        Returns:
            list[dict]: One ``data_info`` per image (module docstring).
        """
        name = type(self).__name__
        cat_dir = _category_dir(name, self.data_root, self.category,
                                _MVTEC_LAYOUT)
        if self.split == 'train':
            folder = osp.join(cat_dir, 'train', 'good')
            names = _list_nonempty(name, folder, self.img_suffix,
                                   'the normal training images',
                                   _MVTEC_LAYOUT)
            names = self._hold_out(names)
            return [self._info(osp.join(folder, n), None, 'good')
                    for n in names]

        test_dir = osp.join(cat_dir, 'test')
        _require_dir(name, test_dir, 'one folder of test images per defect '
                     'type (and "good")', _MVTEC_LAYOUT)
        data_list = []
        for defect in _subfolders(test_dir):
            folder = osp.join(test_dir, defect)
            for img_name in _list_images(folder, self.img_suffix):
                img_path = osp.join(folder, img_name)
                mask_path = None
                if defect != 'good':
                    stem = img_name[:-len(self.img_suffix)]
                    mask_path = osp.join(cat_dir, 'ground_truth', defect,
                                         stem + self.mask_suffix)
                    if not osp.isfile(mask_path):
                        raise FileNotFoundError(
                            f'{name}: anomalous test image {img_path} has no '
                            f'ground-truth mask; expected {mask_path} (the '
                            f'layout expected is {_MVTEC_LAYOUT}).')
                data_list.append(self._info(img_path, mask_path, defect))
        if not data_list:
            raise FileNotFoundError(
                f'{name}: {test_dir} holds no *{self.img_suffix} images. The '
                f'layout expected is {_MVTEC_LAYOUT}.')
        return data_list

    def _hold_out(self, names: List[str]) -> List[str]:
        if self.train_val_split is None:
            return names
        num = len(names)
        num_val = min(max(1, int(round(self.train_val_split * num))),
                      num - 1)
        if num_val < 1:
            raise ValueError(
                f'{type(self).__name__}: train_val_split needs at least 2 '
                f'images in {self.category}/train/good, but found {num}')
        order = np.random.default_rng(self.split_seed).permutation(num)
        keep = order[num - num_val:] if self.subset == 'val' else \
            order[:num - num_val]
        return [names[i] for i in sorted(keep)]

    def _info(self, img_path: str, mask_path: Optional[str],
              defect: str) -> dict:
        return dict(img_path=img_path, mask_path=mask_path,
                    gt_label=int(defect != 'good'), defect_type=defect,
                    category=self.category)


@DATASETS.register_module()
class MVTecLOCODataset(SplitDataset):
    """One category of MVTec LOCO AD (Bergmann et al., IJCV 2022).

    Lists ``<category>/train/good`` (``split='train'``),
    ``<category>/validation/good`` (``split='validation'``, the normals
    EfficientAD normalises its maps on) or ``<category>/test/{good,
    logical_anomalies,structural_anomalies}/NNN.png`` (``split='test'``).
    The ground truth of anomalous test image ``NNN.png`` is the folder
    ``<category>/ground_truth/<logical|structural>_anomalies/NNN/`` of one or
    more masks (``000.png``, ``001.png``, ...), one per defect; their union
    is the ground truth, so ``data_info['mask_path']`` is the sorted list of
    those files. LOCO masks are 255 on defects; any non-zero value counts.

    Args:
        data_root (str | os.PathLike): The MVTec LOCO AD root (holds the
            category folders).
        category (str): Category folder, e.g. ``'breakfast_box'``.
        split (str): ``'train'``, ``'validation'`` or ``'test'``.
            Defaults to 'train'.
        anomaly_types (Sequence[str], optional): Keep only images whose
            ``anomaly_type`` is listed (from ``'good'``, ``'logical'``,
            ``'structural'``), e.g. ``('good', 'logical')`` to score logical
            anomalies against normals; None keeps all. Defaults to None.
        img_suffix (str): Image and mask file suffix. Defaults to '.png'.
        metainfo, pipeline, test_mode, lazy_init, serialize_data, indices,
            max_refetch: As for :class:`MVTecADDataset`.
    """
    METAINFO = ANOMALY_METAINFO

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 category: str,
                 split: str = 'train',
                 *,
                 anomaly_types: Optional[Sequence[str]] = None,
                 img_suffix: str = '.png',
                 metainfo: Optional[Mapping] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        name = type(self).__name__
        check_str_arg(name, 'category', category)
        if anomaly_types is not None:
            if isinstance(anomaly_types, str) or not anomaly_types or any(
                    t not in LOCO_TEST_FOLDERS for t in anomaly_types):
                raise ValueError(
                    f'{name}: anomaly_types must be None or a non-empty '
                    f'sequence of names from {tuple(LOCO_TEST_FOLDERS)}, but '
                    f'got {anomaly_types!r}')
            anomaly_types = tuple(anomaly_types)
        super().__init__(
            data_root, split, ('train', 'validation', 'test'),
            attrs=dict(category=category, anomaly_types=anomaly_types,
                       img_suffix=img_suffix),
            metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data,
            indices=indices, max_refetch=max_refetch)

    def load_data_list(self) -> List[dict]:
        """List the images of ``category`` and ``split`` (class docstring).

        Returns:
            list[dict]: One ``data_info`` per image (module docstring), with
            ``anomaly_type``.
        """
        name = type(self).__name__
        cat_dir = _category_dir(name, self.data_root, self.category,
                                _LOCO_LAYOUT)
        wanted = self.anomaly_types or tuple(LOCO_TEST_FOLDERS)
        if self.split != 'test':
            if 'good' not in wanted:
                raise ValueError(
                    f'{name}: split={self.split!r} holds only normal images, '
                    f'but anomaly_types={self.anomaly_types} excludes "good"')
            folder = osp.join(cat_dir, self.split, 'good')
            names = _list_nonempty(name, folder, self.img_suffix,
                                   f'the normal {self.split} images',
                                   _LOCO_LAYOUT)
            return [self._info(osp.join(folder, n), None, 'good', 'good')
                    for n in names]

        test_dir = osp.join(cat_dir, 'test')
        _require_dir(name, test_dir, 'the test folders good, '
                     'logical_anomalies and structural_anomalies',
                     _LOCO_LAYOUT)
        data_list = []
        for anomaly_type in wanted:
            defect = LOCO_TEST_FOLDERS[anomaly_type]
            folder = osp.join(test_dir, defect)
            _require_dir(name, folder, f'the {anomaly_type} test images',
                         _LOCO_LAYOUT)
            for img_name in _list_images(folder, self.img_suffix):
                img_path = osp.join(folder, img_name)
                masks = None
                if anomaly_type != 'good':
                    masks = self._mask_files(cat_dir, defect, img_path)
                data_list.append(
                    self._info(img_path, masks, defect, anomaly_type))
        if not data_list:
            raise FileNotFoundError(
                f'{name}: no *{self.img_suffix} test images of types '
                f'{wanted} in {test_dir}. The layout expected is '
                f'{_LOCO_LAYOUT}.')
        return data_list

    def _mask_files(self, cat_dir: str, defect: str,
                    img_path: str) -> List[str]:
        stem = osp.basename(img_path)[:-len(self.img_suffix)]
        mask_dir = osp.join(cat_dir, 'ground_truth', defect, stem)
        masks = _list_images(mask_dir, self.img_suffix) if osp.isdir(
            mask_dir) else []
        if not masks:
            raise FileNotFoundError(
                f'{type(self).__name__}: anomalous test image {img_path} has '
                f'no ground truth; expected a folder {mask_dir} holding '
                f'000{self.img_suffix}, ... (the layout expected is '
                f'{_LOCO_LAYOUT}).')
        return [osp.join(mask_dir, m) for m in masks]

    def _info(self, img_path: str, mask_path: Optional[List[str]],
              defect: str, anomaly_type: str) -> dict:
        return dict(img_path=img_path, mask_path=mask_path,
                    gt_label=int(anomaly_type != 'good'), defect_type=defect,
                    category=self.category, anomaly_type=anomaly_type)


@DATASETS.register_module()
class VisADataset(SplitDataset):
    """One object of VisA (Zou et al., ECCV 2022), from its split CSV.

    Reads VisA's official split file (``split_csv/1cls.csv`` in the VisA
    root), a CSV with the header ``object,split,label,image,mask``: ``label``
    is ``normal`` or ``anomaly``, ``image`` and ``mask`` are relative to
    ``data_root`` (e.g. ``candle/Data/Images/Normal/0000.JPG`` and
    ``candle/Data/Masks/Anomaly/000.png``), ``mask`` is empty for normal
    images. Rows of ``object == category`` and ``split == split`` are kept in
    file order; ``defect_type`` is ``'good'`` or ``'anomaly'``. VisA masks
    mark defects with non-zero values.

    Args:
        data_root (str | os.PathLike): The VisA root (holds ``split_csv``
            and the object folders).
        category (str): The ``object`` column's value, e.g. ``'candle'``.
        split (str): ``'train'`` or ``'test'``. Defaults to 'train'.
        ann_file (str): The split CSV, relative to ``data_root`` unless
            absolute. Defaults to 'split_csv/1cls.csv'.
        metainfo, pipeline, test_mode, lazy_init, serialize_data, indices,
            max_refetch: As for :class:`MVTecADDataset`.
    """
    METAINFO = ANOMALY_METAINFO

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 category: str,
                 split: str = 'train',
                 *,
                 ann_file: str = 'split_csv/1cls.csv',
                 metainfo: Optional[Mapping] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        name = type(self).__name__
        check_str_arg(name, 'category', category)
        check_str_arg(name, 'ann_file', ann_file)
        super().__init__(
            data_root, split, ('train', 'test'), ann_file=ann_file,
            attrs=dict(category=category),
            metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data,
            indices=indices, max_refetch=max_refetch)

    def load_data_list(self) -> List[dict]:
        """Parse ``ann_file`` and keep ``category``'s ``split`` rows.

        Returns:
            list[dict]: One ``data_info`` per kept row (module docstring).
        """
        name, csv_path = type(self).__name__, self.ann_file
        if not osp.isfile(csv_path):
            raise FileNotFoundError(
                f'{name}: split file {csv_path} does not exist. VisA ships it '
                'as split_csv/1cls.csv in the dataset root (made by '
                'prepare_data.py of amazon-science/spot-diff), with columns '
                f'{",".join(VISA_CSV_COLUMNS)}.')
        with open(csv_path, newline='', encoding='utf-8-sig') as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in VISA_CSV_COLUMNS if c not in header]
            if missing:
                raise ValueError(
                    f'{name}: {csv_path} has header {",".join(header)!r} '
                    f'but VisA split files need the columns '
                    f'{",".join(VISA_CSV_COLUMNS)} (missing: {missing}).')
            col = {c: header.index(c) for c in VISA_CSV_COLUMNS}
            rows = [(line, row) for line, row in enumerate(reader, start=2)
                    if any(cell.strip() for cell in row)]
        objects, data_list = set(), []
        for line, row in rows:
            where = f'{csv_path} line {line}'
            if len(row) < len(header):
                raise ValueError(f'{name}: {where} has {len(row)} fields but '
                                 f'the header has {len(header)}: {row}')
            obj, split, label, image, mask = (row[col[c]].strip()
                                              for c in VISA_CSV_COLUMNS)
            objects.add(obj)
            if split not in ('train', 'test'):
                raise ValueError(f'{name}: {where}: split must be "train" or '
                                 f'"test", but got {split!r}')
            if label not in _VISA_LABELS:
                raise ValueError(f'{name}: {where}: label must be one of '
                                 f'{tuple(_VISA_LABELS)}, but got {label!r}')
            if obj != self.category or split != self.split:
                continue
            data_list.append(self._info(where, image, mask,
                                        _VISA_LABELS[label]))
        if self.category not in objects:
            raise ValueError(
                f'{name}: {csv_path} has no rows with object '
                f'{self.category!r}; objects listed: {sorted(objects)}')
        if not data_list:
            raise ValueError(f'{name}: {csv_path} has no {self.split!r} rows '
                             f'for object {self.category!r}')
        return data_list

    def _info(self, where: str, image: str, mask: str, gt_label: int) -> dict:
        name = type(self).__name__
        img_path = osp.join(self.data_root, image)
        if not osp.isfile(img_path):
            raise FileNotFoundError(f'{name}: image {img_path} listed at '
                                    f'{where} does not exist')
        mask_path = None
        if gt_label:
            if not mask:
                raise ValueError(f'{name}: anomalous image {img_path} at '
                                 f'{where} has an empty mask column')
            mask_path = osp.join(self.data_root, mask)
            if not osp.isfile(mask_path):
                raise FileNotFoundError(
                    f'{name}: anomalous image {img_path} has no '
                    f'ground-truth mask; expected {mask_path} (from {where})')
        return dict(img_path=img_path, mask_path=mask_path,
                    gt_label=gt_label,
                    defect_type='anomaly' if gt_label else 'good',
                    category=self.category)


__all__ = [
    'ANOMALY_CLASSES', 'ANOMALY_METAINFO', 'LOCO_TEST_FOLDERS',
    'VISA_CSV_COLUMNS', 'MVTecADDataset', 'MVTecLOCODataset', 'VisADataset'
]
