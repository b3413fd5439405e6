"""Medical volume segmentation datasets as per-slice samples: Synapse
(TransUNet's preprocessed layout) and ACDC (the released NIfTI volumes).

Each dataset lists one sample per 2D slice; the pixels are read by
:class:`densekit.datasets.transforms.LoadMedicalSlice`, so a pipeline starts
with ``dict(type='densekit.LoadMedicalSlice')`` and ends with
``dict(type='mmseg.PackSegInputs', meta_keys=MEDICAL_META_KEYS)`` (see
:data:`densekit.datasets.transforms.MEDICAL_META_KEYS`). Every ``data_info``
holds:

- ``img_path`` (str): the file holding the slice: an ``*.npz`` slice, an
  ``*.npy.h5`` volume or a NIfTI image volume.
- ``seg_map_path`` (str): the label file (``img_path`` for npz and h5).
- ``volume_id`` (str): the volume, e.g. ``'case0008'`` or
  ``'patient001_frame01'``.
- ``slice_index`` (int): the slice's index along the volume's first axis.
- ``num_slices`` (int): slices of the volume (train npz: slices of that
  volume listed).
- ``spacing`` (tuple[float, float, float] | None): voxel size (z, y, x) in
  mm, or None where the format does not record it.
- ``intensity_norm`` (str | None): per-volume normalisation
  ``LoadMedicalSlice`` applies (``'minmax'``, ``'zscore'`` or None).
- ``num_classes`` (int): ``len(metainfo['classes'])``; ``LoadMedicalSlice``
  rejects labels outside ``0 .. num_classes - 1``.

Errors name the missing or bad file and the layout expected.

Note:
    Both classes share this file (as the anomaly datasets do) because they
    are one family: the same ``data_info`` contract over two on-disk
    layouts. ``densekit.SynapseDataset`` is not mmseg's ``SynapseDataset``
    (which reads JPEG/PNG slices); configs name it with the ``densekit.``
    scope.
"""
import json
import os
import os.path as osp
import re
from collections import Counter
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from mmengine.logging import print_log

from densekit.registry import DATASETS
from densekit.utils.arg_check import check_str_arg
from .medical_io import (INTENSITY_NORMS, check_same_shape, check_spacing,
                         h5_volume_info, nifti_volume_info)
from .split_dataset import SplitDataset

# TransUNet's 8 organs, label values 1..8 in this order (Chen et al. 2021,
# https://arxiv.org/abs/2102.04306; the class order of TransUNet/Swin-Unet
# result tables and of mmseg's SynapseDataset, whose names and palette are
# reused so mmseg's visualiser colours match).
SYNAPSE_CLASSES = ('background', 'aorta', 'gallbladder', 'left_kidney',
                   'right_kidney', 'liver', 'pancreas', 'spleen', 'stomach')
SYNAPSE_PALETTE = [[0, 0, 0], [0, 0, 255], [0, 255, 0], [255, 0, 0],
                   [0, 255, 255], [255, 0, 255], [255, 255, 0],
                   [60, 255, 255], [240, 240, 240]]
SYNAPSE_METAINFO = dict(classes=SYNAPSE_CLASSES, palette=SYNAPSE_PALETTE)
# ACDC ground truth: 0 background, 1 right-ventricle cavity, 2 myocardium,
# 3 left-ventricle cavity (Bernard et al., IEEE TMI 2018).
ACDC_CLASSES = ('background', 'RV', 'MYO', 'LV')
ACDC_PALETTE = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
ACDC_METAINFO = dict(classes=ACDC_CLASSES, palette=ACDC_PALETTE)

SYNAPSE_LAYOUT = (
    '<data_root>/train_npz/<case>_slice<NNN>.npz (keys image, label: (H, W)'
    '), <data_root>/test_vol_h5/<case>.npy.h5 (datasets image, label: '
    '(D, H, W)) and optionally <data_root>/lists/lists_Synapse/{train.txt,'
    'test_vol.txt} (one slice name / case name per line), as TransUNet\'s '
    'datasets/README.md')
ACDC_LAYOUT = ('<data_root>/<split>/patient<NNN>/patient<NNN>_frame<NN>.nii'
               '.gz with its label patient<NNN>_frame<NN>_gt.nii.gz, as the '
               'ACDC release (split "training" or "testing")')
DEFAULT_SYNAPSE_LIST_DIR = 'lists/lists_Synapse'
_SLICE_NAME = re.compile(r'^(?P<volume>.+)_slice(?P<index>\d+)$')
_ACDC_FRAME = re.compile(r'^(?P<volume>.+_frame\d+)(?P<suffix>\.nii(\.gz)?)$')
_SYNAPSE_SPLITS = {'train': 'train', 'test_vol': 'test_vol',
                   'test': 'test_vol'}

SpacingArg = Union[None, str, Sequence[float], Mapping[str, Sequence[float]]]


def _check_norm(cls_name: str, value) -> None:
    if value is not None and value not in INTENSITY_NORMS:
        raise ValueError(f'{cls_name}: intensity_norm must be None or one of '
                         f'{INTENSITY_NORMS}, but got {value!r}')


def _require_dir(cls_name: str, path: str, what: str, layout: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{cls_name}: {path} does not exist; it should hold {what}. The '
            f'layout expected is {layout}.')


def _read_list(path: str) -> List[Tuple[int, str]]:
    """(line number, entry) of the non-empty lines of a list file."""
    with open(path, encoding='utf-8') as f:
        return [(n, line.strip()) for n, line in enumerate(f, start=1)
                if line.strip()]


@DATASETS.register_module()
class SynapseDataset(SplitDataset):
    """Synapse multi-organ CT in TransUNet's preprocessed layout.

    Reads what TransUNet's ``datasets/README.md`` describes (and
    :func:`densekit.datasets.converters.convert_nifti_to_slices` or
    :func:`densekit.datasets.synthetic.generate_phantom_synapse` write):

    - ``split='train'``: ``<data_root>/train_npz/*.npz``, one axial slice
      per file with keys ``image`` (H, W float, CT clipped to [-125, 275]
      HU and scaled to [0, 1]) and ``label`` (H, W, 0..8); one sample per
      file. Slice files are named ``<case>_slice<NNN>``; ``volume_id`` and
      ``slice_index`` come from the name.
    - ``split='test_vol'`` (alias ``'test'``):
      ``<data_root>/test_vol_h5/<case>.npy.h5`` volumes with datasets
      ``image`` and ``label`` (D, H, W); one sample per slice of every
      volume (each file's header is read when listing).

    The samples are those of ``<list_dir>/train.txt`` (slice names) or
    ``<list_dir>/test_vol.txt`` (case names), in file order, when the list
    exists; without it (and ``list_dir`` the default) every file is listed
    in sorted order, and an INFO log says so. A ``list_dir`` that is not
    the default must hold the list.

    ``spacing`` of a sample: from the ``spacing`` argument when it covers
    the volume, else the h5 file's ``spacing`` attribute (written by
    densekit's converter and phantom generator, not by TransUNet), else
    None. TransUNet's h5 files carry no spacing (its test script takes one
    ``z_spacing`` for all volumes).

    Args:
        data_root (str | os.PathLike): Folder holding ``train_npz`` and
            ``test_vol_h5`` (TransUNet's ``data/Synapse``).
        split (str): ``'train'``, ``'test_vol'`` or ``'test'``.
            Defaults to 'train'.
        list_dir (str, optional): Folder of the list files, relative to
            ``data_root`` unless absolute; None always lists the files.
            Defaults to 'lists/lists_Synapse'.
        spacing (str | Sequence[float] | Mapping[str, Sequence[float]],
            optional): (z, y, x) in mm for every volume, a mapping from
            ``volume_id`` to it, or a JSON file of such a mapping (relative
            to ``data_root`` unless absolute; the converter writes
            ``spacing.json``). Defaults to None.
        train_dir (str): The slice folder. Defaults to 'train_npz'.
        test_dir (str): The volume folder. Defaults to 'test_vol_h5'.
        metainfo (Mapping, optional): Overrides :attr:`METAINFO`, e.g.
            ``PHANTOM_METAINFO`` for the synthetic phantoms; its
            ``classes`` set ``num_classes``.
        pipeline (Sequence[dict | Callable]): Data transforms.
            Defaults to ().
        test_mode (bool, optional): mmengine's ``test_mode``; None means
            ``split != 'train'``. Defaults to None.
        lazy_init, serialize_data, indices, max_refetch: See
            :class:`mmengine.dataset.BaseDataset`.

    Examples:
        >>> ds = SynapseDataset('data/Synapse', split='test_vol')
        >>> info = ds.get_data_info(0)
        >>> info['volume_id'], info['slice_index']  # test_vol.txt order
        ('case0008', 0)
    """
    METAINFO = SYNAPSE_METAINFO

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 split: str = 'train',
                 *,
                 list_dir: Optional[str] = DEFAULT_SYNAPSE_LIST_DIR,
                 spacing: SpacingArg = None,
                 train_dir: str = 'train_npz',
                 test_dir: str = 'test_vol_h5',
                 metainfo: Optional[Mapping] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        name = type(self).__name__
        check_str_arg(name, 'split', split, _SYNAPSE_SPLITS)
        if list_dir is not None:
            check_str_arg(name, 'list_dir', list_dir)
        check_str_arg(name, 'train_dir', train_dir)
        check_str_arg(name, 'test_dir', test_dir)
        super().__init__(
            data_root, split, tuple(_SYNAPSE_SPLITS),
            attrs=dict(split=_SYNAPSE_SPLITS[split], list_dir=list_dir,
                       train_dir=train_dir, test_dir=test_dir,
                       spacing=spacing),
            metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data,
            indices=indices, max_refetch=max_refetch)

    # -- helpers -------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return path if osp.isabs(path) else osp.join(self.data_root, path)

    def _list_file(self) -> Optional[str]:
        """The list file to use, or None to list the folder."""
        if self.list_dir is None:
            return None
        path = osp.join(self._abs(self.list_dir), self.split + '.txt')
        if osp.isfile(path):
            return path
        if self.list_dir != DEFAULT_SYNAPSE_LIST_DIR:
            raise FileNotFoundError(
                f'{type(self).__name__}: list file {path} does not exist '
                f'(list_dir={self.list_dir!r}); pass list_dir=None to list '
                f'every file instead. The layout expected is '
                f'{SYNAPSE_LAYOUT}.')
        print_log(f'{type(self).__name__}: no {path}; listing every file of '
                  f'split {self.split!r}', logger='current')
        return None

    def _spacing_table(self) -> Tuple[Optional[tuple], Dict[str, tuple]]:
        """(spacing for all volumes, per-volume spacing) from the arg."""
        name, spacing = type(self).__name__, self.spacing
        if spacing is None:
            return None, {}
        if isinstance(spacing, str):
            path = self._abs(spacing)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{name}: spacing file {path} does '
                                        'not exist')
            try:
                with open(path, encoding='utf-8') as f:
                    spacing = json.load(f)
            except ValueError as e:
                raise ValueError(f'{name}: spacing file {path} is not valid '
                                 f'JSON ({e})') from e
            if not isinstance(spacing, dict):
                raise ValueError(f'{name}: spacing file {path} must hold a '
                                 'JSON object {volume_id: [z, y, x]}, but '
                                 f'holds a {type(spacing).__name__}')
            where = f'{path}'
        else:
            where = 'spacing'
        if isinstance(spacing, Mapping):
            return None, {
                str(k): check_spacing(v, f'{name}: {where}[{k!r}]')
                for k, v in spacing.items()
            }
        return check_spacing(spacing, f'{name}: {where}'), {}

    # -- listing -------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """List the slices of ``split`` (class docstring).

        Returns:
            list[dict]: One ``data_info`` per slice (module docstring).
        """
        name = type(self).__name__
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{name}: data_root {self.data_root} does not exist. The '
                f'layout expected is {SYNAPSE_LAYOUT}.')
        common, per_volume = self._spacing_table()
        num_classes = len(self.metainfo['classes'])
        if self.split == 'train':
            return self._list_train(common, per_volume, num_classes)
        return self._list_test(common, per_volume, num_classes)

    def _list_train(self, common, per_volume, num_classes) -> List[dict]:
        name = type(self).__name__
        folder = self._abs(self.train_dir)
        _require_dir(name, folder, 'the training slices *.npz',
                     SYNAPSE_LAYOUT)
        list_file = self._list_file()
        entries = []  # (stem, path, where)
        if list_file is not None:
            for line, entry in _read_list(list_file):
                stem = entry[:-4] if entry.endswith('.npz') else entry
                path = osp.join(folder, stem + '.npz')
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{name}: {list_file} line {line} lists {entry!r} '
                        f'but {path} does not exist. The layout expected is '
                        f'{SYNAPSE_LAYOUT}.')
                entries.append((stem, path, f'{list_file} line {line}'))
        else:
            stems = [f[:-4] for f in os.listdir(folder)
                     if f.endswith('.npz') and not f.startswith('.')]
            entries = [(s, osp.join(folder, s + '.npz'), None)
                       for s in stems]
        if not entries:
            raise FileNotFoundError(
                f'{name}: no training slices: {list_file or folder} lists no '
                f'*.npz. The layout expected is {SYNAPSE_LAYOUT}.')
        parsed = []
        for stem, path, where in entries:
            match = _SLICE_NAME.match(stem)
            if match is None:
                raise ValueError(
                    f'{name}: slice file {path}' +
                    (f' (from {where})' if where else '') +
                    ' is not named <case>_slice<NNN>.npz, so its volume and '
                    'slice index are unknown')
            parsed.append((match['volume'], int(match['index']), path))
        if list_file is None:  # numeric slice order, not string order
            parsed.sort(key=lambda p: (p[0], p[1]))
        counts = Counter(volume for volume, _, _ in parsed)
        return [
            dict(img_path=path, seg_map_path=path, volume_id=volume,
                 slice_index=index, num_slices=counts[volume],
                 spacing=per_volume.get(volume, common),
                 intensity_norm=None, num_classes=num_classes)
            for volume, index, path in parsed
        ]

    def _list_test(self, common, per_volume, num_classes) -> List[dict]:
        name = type(self).__name__
        folder = self._abs(self.test_dir)
        _require_dir(name, folder, 'the test volumes *.npy.h5',
                     SYNAPSE_LAYOUT)
        list_file = self._list_file()
        volumes = []  # (volume_id, path)
        if list_file is not None:
            for line, entry in _read_list(list_file):
                volume = entry[:-7] if entry.endswith('.npy.h5') else entry
                path = osp.join(folder, volume + '.npy.h5')
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{name}: {list_file} line {line} lists {entry!r} '
                        f'but {path} does not exist. The layout expected is '
                        f'{SYNAPSE_LAYOUT}.')
                volumes.append((volume, path))
        else:
            volumes = sorted(
                (f[:-7], osp.join(folder, f)) for f in os.listdir(folder)
                if f.endswith('.npy.h5') and not f.startswith('.'))
        if not volumes:
            raise FileNotFoundError(
                f'{name}: no test volumes: {list_file or folder} lists no '
                f'*.npy.h5. The layout expected is {SYNAPSE_LAYOUT}.')
        data_list = []
        for volume, path in volumes:
            info = h5_volume_info(path)
            spacing = per_volume.get(volume, common)
            if spacing is None:
                spacing = info['spacing']
            depth = info['shape'][0]
            data_list.extend(
                dict(img_path=path, seg_map_path=path, volume_id=volume,
                     slice_index=index, num_slices=depth, spacing=spacing,
                     intensity_norm=None, num_classes=num_classes)
                for index in range(depth))
        return data_list


@DATASETS.register_module()
class ACDCDataset(SplitDataset):
    """ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018) from its NIfTI
    release, one sample per short-axis slice.

    Lists every ``<data_root>/<split>/<patient>/<patient>_frame<NN>.nii.gz``
    (the ED and ES frames; the ``_4d`` cine is skipped) with its label
    ``<patient>_frame<NN>_gt.nii.gz``; ``volume_id`` is
    ``<patient>_frame<NN>``. Shapes and ``spacing`` come from the NIfTI
    headers: voxels are read as (D, H, W) = the header's (k, j, i) and
    ``spacing`` is the header zooms reversed, (z, y, x) in mm.

    Intensities are normalised per volume by ``LoadMedicalSlice``. The
    default ``'minmax'`` ((v - min) / (max - min), to [0, 1]) is what the
    2D U-Net baselines on ACDC use: the slices Swin-Unet and the
    semi-supervised U-Net benchmarks train on are made by
    ``HiLab-git/SSL4MIS:code/dataloaders/acdc_data_processing.py``, which
    min-max normalises each volume. ``'zscore'`` is nnU-Net's per-image
    z-score for MRI.

    Args:
        data_root (str | os.PathLike): The ACDC root (holds ``training``
            and ``testing``; for the 2022 release, ``ACDC/database``).
        split (str): The folder of patient folders. Defaults to 'training'.
        patients (Sequence[str] | str, optional): Patient folders to keep
            (e.g. a 70/10/20 train/val/test split), or a text file with one
            per line (relative to ``data_root`` unless absolute); None keeps
            every patient. Defaults to None.
        intensity_norm (str, optional): ``'minmax'``, ``'zscore'`` or None.
            Defaults to 'minmax'.
        metainfo, pipeline, test_mode, lazy_init, serialize_data, indices,
            max_refetch: As for :class:`SynapseDataset` (``test_mode`` None
            means ``split != 'training'``).
    """
    METAINFO = ACDC_METAINFO

    def __init__(self,
                 data_root: Union[str, os.PathLike],
                 split: str = 'training',
                 *,
                 patients: Optional[Union[str, Sequence[str]]] = None,
                 intensity_norm: Optional[str] = 'minmax',
                 metainfo: Optional[Mapping] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        name = type(self).__name__
        _check_norm(name, intensity_norm)
        if patients is not None and not isinstance(patients, str):
            if not patients or not all(
                    isinstance(p, str) and p for p in patients):
                raise ValueError(f'{name}: patients must be None, a list '
                                 'file or a non-empty sequence of patient '
                                 f'folder names, but got {patients!r}')
            patients = tuple(patients)
        super().__init__(
            data_root, split, train_split='training',
            attrs=dict(patients=patients, intensity_norm=intensity_norm),
            metainfo=metainfo, pipeline=pipeline, test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data,
            indices=indices, max_refetch=max_refetch)

    def _patient_names(self, split_dir: str) -> List[str]:
        name = type(self).__name__
        found = sorted(d for d in os.listdir(split_dir)
                       if not d.startswith('.')
                       and osp.isdir(osp.join(split_dir, d)))
        if self.patients is None:
            if not found:
                raise FileNotFoundError(
                    f'{name}: {split_dir} holds no patient folders. The '
                    f'layout expected is {ACDC_LAYOUT}.')
            return found
        wanted = self.patients
        if isinstance(wanted, str):
            path = wanted if osp.isabs(wanted) else osp.join(
                self.data_root, wanted)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{name}: patient list {path} does '
                                        'not exist')
            wanted = [entry for _, entry in _read_list(path)]
        missing = [p for p in wanted if p not in found]
        if missing:
            raise FileNotFoundError(
                f'{name}: patient folder(s) {missing[:10]} not found in '
                f'{split_dir} (it holds {len(found)} patient folders). The '
                f'layout expected is {ACDC_LAYOUT}.')
        return list(wanted)

    def load_data_list(self) -> List[dict]:
        """List the slices of every ED/ES frame of ``split`` (class
        docstring).

        Returns:
            list[dict]: One ``data_info`` per slice (module docstring).
        """
        name = type(self).__name__
        split_dir = osp.join(self.data_root, self.split)
        if not osp.isdir(split_dir):
            hint = ''
            if osp.isdir(osp.join(self.data_root, 'database', self.split)):
                hint = (' (the 2022 ACDC release nests it: use data_root='
                        f'{osp.join(self.data_root, "database")!r})')
            raise FileNotFoundError(
                f'{name}: {split_dir} does not exist{hint}. The layout '
                f'expected is {ACDC_LAYOUT}.')
        num_classes = len(self.metainfo['classes'])
        data_list = []
        for patient in self._patient_names(split_dir):
            folder = osp.join(split_dir, patient)
            # the pattern excludes <patient>_4d.nii.gz and the *_gt labels
            frames = sorted((m for m in map(_ACDC_FRAME.match,
                                            os.listdir(folder))
                             if m is not None), key=lambda m: m[0])
            if not frames:
                raise FileNotFoundError(
                    f'{name}: {folder} holds no <patient>_frame<NN>.nii.gz '
                    f'volumes. The layout expected is {ACDC_LAYOUT}.')
            for match in frames:
                img_path = osp.join(folder, match[0])
                seg_path = osp.join(folder, match['volume'] + '_gt' +
                                    match['suffix'])
                if not osp.isfile(seg_path):
                    raise FileNotFoundError(
                        f'{name}: frame {img_path} has no label; expected '
                        f'{seg_path}. The layout expected is {ACDC_LAYOUT}.')
                img_info = nifti_volume_info(img_path)
                seg_info = nifti_volume_info(seg_path)
                check_same_shape(img_info['shape'], seg_info['shape'],
                                 img_path, seg_path)
                depth = img_info['shape'][0]
                data_list.extend(
                    dict(img_path=img_path, seg_map_path=seg_path,
                         volume_id=match['volume'], slice_index=index,
                         num_slices=depth, spacing=img_info['spacing'],
                         intensity_norm=self.intensity_norm,
                         num_classes=num_classes)
                    for index in range(depth))
        return data_list


__all__ = [
    'SYNAPSE_CLASSES', 'SYNAPSE_PALETTE', 'SYNAPSE_METAINFO', 'ACDC_CLASSES',
    'ACDC_PALETTE', 'ACDC_METAINFO', 'SYNAPSE_LAYOUT', 'ACDC_LAYOUT',
    'SynapseDataset', 'ACDCDataset'
]
