"""NIfTI image/label volumes -> TransUNet's slice format.

:func:`convert_nifti_to_slices` writes what TransUNet's
``datasets/README.md`` describes and
:class:`densekit.datasets.SynapseDataset` reads::

    <out_dir>/train_npz/<case>_slice<NNN>.npz   # image (H, W) float32,
                                                # label (H, W) uint8
    <out_dir>/test_vol_h5/<case>.npy.h5        # image, label (D, H, W);
                                                # attribute spacing (z, y, x)
    <out_dir>/lists/lists_Synapse/train.txt    # slice names
    <out_dir>/lists/lists_Synapse/test_vol.txt # case names
    <out_dir>/spacing.json                     # {case: [z, y, x]} in mm

Training volumes become one npz per axial slice, test volumes one h5 file
each (TransUNet trains on slices and tests whole volumes). The ``spacing``
h5 attribute and ``spacing.json`` are densekit additions that TransUNet's
loader ignores; they give the volume metric its voxel size.

Intensities: CT is windowed as TransUNet's README says, "clip the images
within [-125, 275], normalize each 3D image to [0, 1]", i.e.
``(clip(v, -125, 275) + 125) / 400`` (``window``); MRI (ACDC) is instead
normalised per volume (``normalize='minmax'`` or ``'zscore'``).

Labels: Synapse's raw labels have 13 organs; TransUNet keeps 8 and sets the
rest to background. TransUNet's repository does not contain that mapping
(its ``datasets/preprocess_data.py`` does not remap labels);
:data:`SYNAPSE_LABEL_MAP` is the mapping of mmsegmentation's
``tools/dataset_converters/synapse.py`` (``label_mapping``, "Label mapping
from TransUNet paper setting"), which agrees with the organ order of
TransUNet's result tables and with the raw label ids of the BTCV challenge
(1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 esophagus,
6 liver, 7 stomach, 8 aorta, 9 inferior vena cava, 10 portal and splenic
veins, 11 pancreas, 12 right adrenal gland, 13 left adrenal gland).

Axes: NIfTI voxel arrays (i, j, k) are written as (D, H, W) = (k, j, i)
(``axes='zyx'``, SimpleITK's array order, the same as
:class:`densekit.datasets.ACDCDataset`), or (k, i, j) with ``axes='zxy'``,
the ``np.transpose(data, (2, 0, 1))`` of TransUNet's
``datasets/preprocess_data.py``. ``spacing`` is reordered to match, so it
is always (slice, row, column). Neither reproduces the extra left-right
flip of mmseg's converter; in-plane orientation does not change the
organ labels or the metrics.
"""
import json
import os
import os.path as osp
import re
import shutil
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..medical_io import (INTENSITY_NORMS, check_same_shape, import_h5py,
                          import_nibabel, labels_to_uint8, nifti_spacing_dhw,
                          normalize_volume, strip_nifti_suffix)

# Synapse raw label id -> TransUNet's 8-organ label (0 for the other five
# organs); see the module docstring for the source.
SYNAPSE_LABEL_MAP: Dict[int, int] = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6,
                                     1: 7, 7: 8}
SYNAPSE_RAW_CLASSES = ('background', 'spleen', 'right_kidney', 'left_kidney',
                       'gallbladder', 'esophagus', 'liver', 'stomach',
                       'aorta', 'inferior_vena_cava',
                       'portal_and_splenic_veins', 'pancreas',
                       'right_adrenal_gland', 'left_adrenal_gland')
# TransUNet's lists/lists_Synapse/test_vol.txt (the other 18 of the 30
# labelled cases are its training set).
TRANSUNET_SYNAPSE_TEST_CASES = ('case0008', 'case0022', 'case0038',
                                'case0036', 'case0032', 'case0002',
                                'case0029', 'case0003', 'case0001',
                                'case0004', 'case0025', 'case0035')
CT_WINDOW = (-125.0, 275.0)
AXES = ('zyx', 'zxy')
_TRANSPOSE = dict(zyx=(2, 1, 0), zxy=(2, 0, 1))
SYNAPSE_RAW_LAYOUT = ('<src>/img/img<NNNN>.nii.gz with labels '
                      '<src>/label/label<NNNN>.nii.gz (the Synapse '
                      '"RawData/Training" folder)')
ACDC_RAW_LAYOUT = ('<src>/patient<NNN>/patient<NNN>_frame<NN>.nii.gz with '
                   'labels <src>/patient<NNN>/patient<NNN>_frame<NN>_gt.nii.gz'
                   ' (the ACDC "training" or "testing" folder)')


class VolumePair(NamedTuple):
    """One image volume and its label volume."""
    volume_id: str
    img_path: str
    label_path: str


def find_synapse_raw_pairs(src: str) -> List[VolumePair]:
    """The ``img<NNNN>.nii.gz``/``label<NNNN>.nii.gz`` pairs of a Synapse
    raw folder, as ``case<NNNN>`` volumes (TransUNet's names), sorted.

    Raises:
        FileNotFoundError: Missing folders or label files (names them).
    """
    img_dir, label_dir = osp.join(src, 'img'), osp.join(src, 'label')
    for folder in (img_dir, label_dir):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{folder} does not exist; the layout '
                                    f'expected is {SYNAPSE_RAW_LAYOUT}')
    pairs = []
    for name in sorted(os.listdir(img_dir)):
        stem = strip_nifti_suffix(name)
        match = re.fullmatch(r'img(\d+)', stem)
        if stem == name or match is None:
            continue
        label_path = osp.join(label_dir, 'label' + name[3:])
        if not osp.isfile(label_path):
            raise FileNotFoundError(
                f'image {osp.join(img_dir, name)} has no label; expected '
                f'{label_path} (the layout expected is {SYNAPSE_RAW_LAYOUT})')
        pairs.append(VolumePair(f'case{int(match[1]):04d}',
                                osp.join(img_dir, name), label_path))
    if not pairs:
        raise FileNotFoundError(f'{img_dir} holds no img<NNNN>.nii[.gz]; the '
                                f'layout expected is {SYNAPSE_RAW_LAYOUT}')
    return pairs


def find_acdc_pairs(src: str) -> List[VolumePair]:
    """The ``<patient>_frame<NN>`` image/label pairs of an ACDC split folder
    (volume id ``<patient>_frame<NN>``), sorted."""
    if not osp.isdir(src):
        raise FileNotFoundError(f'{src} does not exist; the layout expected '
                                f'is {ACDC_RAW_LAYOUT}')
    pairs = []
    for patient in sorted(os.listdir(src)):
        folder = osp.join(src, patient)
        if not osp.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            match = re.fullmatch(r'(.+_frame\d+)(\.nii(?:\.gz)?)', name)
            if match is None:
                continue
            label_path = osp.join(folder, match[1] + '_gt' + match[2])
            if not osp.isfile(label_path):
                raise FileNotFoundError(
                    f'frame {osp.join(folder, name)} has no label; expected '
                    f'{label_path} (the layout expected is '
                    f'{ACDC_RAW_LAYOUT})')
            pairs.append(VolumePair(match[1], osp.join(folder, name),
                                    label_path))
    if not pairs:
        raise FileNotFoundError(f'{src} holds no <patient>_frame<NN>.nii.gz; '
                                f'the layout expected is {ACDC_RAW_LAYOUT}')
    return pairs


def window_intensity(volume: np.ndarray,
                     window: Tuple[float, float] = CT_WINDOW) -> np.ndarray:
    """Clip to ``window`` = (low, high) and scale to [0, 1], float32."""
    low, high = float(window[0]), float(window[1])
    volume = np.clip(np.asarray(volume, np.float32), low, high)
    return ((volume - low) / (high - low)).astype(np.float32)


def remap_labels(label: np.ndarray, label_map: Mapping[int, int],
                 path: str = '<array>') -> np.ndarray:
    """Map raw label ids through ``label_map``; ids not in it become 0.

    Raises:
        ValueError: Non-integer labels or ids outside 0..255 (names
            ``path``).
    """
    label = labels_to_uint8(label, path)
    lut = np.zeros(256, np.uint8)
    for raw, new in label_map.items():
        lut[int(raw)] = int(new)
    return lut[label]


def split_volume_ids(volume_ids: Sequence[str], test_fraction: float,
                     seed: int = 0) -> Tuple[str, ...]:
    """Choose ``round(test_fraction * n)`` test volumes (at least 1 if the
    fraction is > 0) with ``np.random.default_rng(seed)``; sorted."""
    if not 0 <= test_fraction < 1:
        raise ValueError('test_fraction must be in [0, 1), but got '
                         f'{test_fraction!r}')
    ids = sorted(volume_ids)
    num = int(round(test_fraction * len(ids)))
    if test_fraction > 0:
        num = min(max(num, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))[:num]
    return tuple(sorted(ids[i] for i in order))


def _load_pair(pair: VolumePair, axes: str):
    nib = import_nibabel()
    arrays = []
    for path in (pair.img_path, pair.label_path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} does not exist')
        try:
            img = nib.load(path)
            arr = np.asanyarray(img.dataobj)
        except Exception as e:
            raise ValueError(f'{path}: not a readable NIfTI file ({e})') \
                from e
        if arr.ndim != 3:
            raise ValueError(f'{path}: expected a 3D volume, but its voxel '
                             f'array has shape {arr.shape}')
        arrays.append(np.ascontiguousarray(arr.transpose(_TRANSPOSE[axes])))
        if path == pair.img_path:
            zyx = nifti_spacing_dhw(img)
            spacing = zyx if axes == 'zyx' else (zyx[0], zyx[2], zyx[1])
    check_same_shape(arrays[0].shape, arrays[1].shape, pair.img_path,
                     pair.label_path)
    return arrays[0], arrays[1], spacing


def convert_nifti_to_slices(pairs: Sequence[VolumePair],
                            out_dir: str,
                            *,
                            test_ids: Sequence[str] = (),
                            window: Optional[Tuple[float,
                                                   float]] = CT_WINDOW,
                            normalize: Optional[str] = None,
                            label_map: Optional[Mapping[int, int]] = None,
                            num_classes: Optional[int] = None,
                            axes: str = 'zyx',
                            list_dir: str = 'lists/lists_Synapse',
                            overwrite: bool = False) -> dict:
    """Write NIfTI volumes in TransUNet's slice format (module docstring).

    Args:
        pairs (Sequence[VolumePair]): Volumes, e.g. from
            :func:`find_synapse_raw_pairs` or :func:`find_acdc_pairs`.
        out_dir (str): Output root (``SynapseDataset``'s ``data_root``).
        test_ids (Sequence[str]): Volume ids written to ``test_vol_h5``;
            the others go to ``train_npz``. Defaults to ().
        window (tuple[float, float], optional): Clip window scaled to
            [0, 1] (CT), or None to keep the intensities. Defaults to
            (-125, 275).
        normalize (str, optional): Per-volume ``'minmax'`` or ``'zscore'``
            (MRI); not together with ``window``. Defaults to None.
        label_map (Mapping[int, int], optional): Raw id -> label, others
            0 (:data:`SYNAPSE_LABEL_MAP` for Synapse); None keeps labels.
            Defaults to None.
        num_classes (int, optional): Check the written labels lie in
            ``0 .. num_classes - 1``. Defaults to None.
        axes (str): ``'zyx'`` or ``'zxy'`` (module docstring). Defaults to
            'zyx'.
        list_dir (str): Where the lists go, relative to ``out_dir``.
            Defaults to 'lists/lists_Synapse'.
        overwrite (bool): Replace existing ``train_npz``/``test_vol_h5``
            folders (otherwise a non-empty one is a ``FileExistsError``).
            Defaults to False.

    Returns:
        dict: ``out_dir``, ``train_ids`` and ``test_ids`` (tuples),
        ``num_train_slices``, ``spacing`` ({volume_id: (z, y, x)}) and
        ``label_counts`` (voxels per written label value, all volumes).
    """
    if axes not in AXES:
        raise ValueError(f'axes must be one of {AXES}, but got {axes!r}')
    if normalize is not None and normalize not in INTENSITY_NORMS:
        raise ValueError(f'normalize must be None or one of '
                         f'{INTENSITY_NORMS}, but got {normalize!r}')
    if window is not None:
        if len(window) != 2 or not float(window[0]) < float(window[1]):
            raise ValueError('window must be None or (low, high) with low < '
                             f'high, but got {window!r}')
        if normalize is not None:
            raise ValueError('window and normalize are exclusive (window '
                             'already scales to [0, 1]), but got '
                             f'window={window!r}, normalize={normalize!r}')
    pairs = [VolumePair(*p) for p in pairs]
    ids = [p.volume_id for p in pairs]
    if not pairs:
        raise ValueError('no volumes to convert')
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f'volume ids {duplicates} appear more than once')
    unknown = sorted(set(test_ids) - set(ids))
    if unknown:
        raise ValueError(f'test_ids {unknown} are not among the volumes '
                         f'found ({ids[:5]}{"..." if len(ids) > 5 else ""})')
    h5py = import_h5py()
    train_dir = osp.join(out_dir, 'train_npz')
    test_dir = osp.join(out_dir, 'test_vol_h5')
    present = [d for d in (train_dir, test_dir)
               if osp.isdir(d) and os.listdir(d)]
    if present and not overwrite:
        raise FileExistsError(
            f'{", ".join(present)} already hold files; pass overwrite=True '
            '(--overwrite) to replace them or choose another out_dir')
    for folder in (train_dir, test_dir):
        if osp.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
    test_set = set(test_ids)
    train_names, spacing_table = [], {}
    label_counts = np.zeros(256, np.int64)
    for pair in pairs:
        image, label, spacing = _load_pair(pair, axes)
        if window is not None:
            image = window_intensity(image, window)
        else:
            image = normalize_volume(image, normalize, pair.img_path)
        if label_map is not None:
            label = remap_labels(label, label_map, pair.label_path)
        label = labels_to_uint8(label, pair.label_path, num_classes)
        label_counts += np.bincount(label.ravel(), minlength=256)
        spacing_table[pair.volume_id] = spacing
        if pair.volume_id in test_set:
            with h5py.File(osp.join(test_dir, pair.volume_id + '.npy.h5'),
                           'w') as f:
                f.create_dataset('image', data=image)
                f.create_dataset('label', data=label)
                f.attrs['spacing'] = np.asarray(spacing, np.float64)
            continue
        for index in range(image.shape[0]):
            stem = f'{pair.volume_id}_slice{index:03d}'
            np.savez(osp.join(train_dir, stem + '.npz'), image=image[index],
                     label=label[index])
            train_names.append(stem)
    lists = osp.join(out_dir, list_dir)
    os.makedirs(lists, exist_ok=True)
    ordered_test = [i for i in ids if i in test_set]
    with open(osp.join(lists, 'train.txt'), 'w', encoding='utf-8') as f:
        f.writelines(n + '\n' for n in train_names)
    with open(osp.join(lists, 'test_vol.txt'), 'w', encoding='utf-8') as f:
        f.writelines(i + '\n' for i in ordered_test)
    with open(osp.join(out_dir, 'spacing.json'), 'w', encoding='utf-8') as f:
        json.dump({k: list(v) for k, v in spacing_table.items()}, f,
                  indent=1)
    return dict(
        out_dir=out_dir,
        train_ids=tuple(i for i in ids if i not in test_set),
        test_ids=tuple(ordered_test), num_train_slices=len(train_names),
        spacing=spacing_table,
        label_counts={v: int(n) for v, n in enumerate(label_counts) if n})


__all__ = [
    'SYNAPSE_LABEL_MAP', 'SYNAPSE_RAW_CLASSES',
    'TRANSUNET_SYNAPSE_TEST_CASES', 'CT_WINDOW', 'VolumePair',
    'find_synapse_raw_pairs', 'find_acdc_pairs', 'window_intensity',
    'remap_labels', 'split_volume_ids', 'convert_nifti_to_slices'
]
