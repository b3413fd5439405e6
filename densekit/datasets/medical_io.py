"""Reading medical volumes and slices: the helpers shared by the medical
datasets, :class:`densekit.datasets.transforms.LoadMedicalSlice`, the
NIfTI converter and the phantom generator.

Axis convention: every 3D array here is ``(D, H, W)`` = (slice, row,
column). NIfTI voxel arrays are indexed ``(i, j, k)`` (x, y, z in voxel
space); :func:`nifti_to_dhw` transposes them to ``(k, j, i)``, the order
SimpleITK's ``GetArrayFromImage`` returns and the ACDC U-Net baselines
slice (``HiLab-git/SSL4MIS:code/dataloaders/acdc_data_processing.py``), so
a voxel spacing ``(z, y, x)`` in mm is ``header.get_zooms()[:3][::-1]``.

``h5py`` and ``nibabel`` are optional: they are imported on first use and
a missing one raises ``ImportError`` with the ``pip install`` command.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

NIFTI_SUFFIXES = ('.nii.gz', '.nii')
H5_SUFFIXES = ('.npy.h5', '.h5', '.hdf5')
# Per-volume intensity normalisations (see normalize_volume).
INTENSITY_NORMS = ('minmax', 'zscore')


def import_h5py():
    """Import ``h5py`` or raise an ``ImportError`` saying how to install it."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            'densekit reads TransUNet\'s test volumes (*.npy.h5) with h5py, '
            'which is not installed: pip install h5py') from e
    return h5py


def import_nibabel():
    """Import ``nibabel`` or raise an ``ImportError`` saying how to install
    it."""
    try:
        import nibabel
    except ImportError as e:
        raise ImportError(
            'densekit reads NIfTI volumes (*.nii, *.nii.gz) with nibabel, '
            'which is not installed: pip install nibabel') from e
    return nibabel


def file_format(path: str) -> str:
    """``'npz'``, ``'h5'`` or ``'nifti'`` from a file name's suffix.

    Raises:
        ValueError: For any other suffix.
    """
    name = osp.basename(str(path)).lower()
    if name.endswith('.npz'):
        return 'npz'
    if name.endswith(H5_SUFFIXES):
        return 'h5'
    if name.endswith(NIFTI_SUFFIXES):
        return 'nifti'
    raise ValueError(
        f'{path}: unknown medical image format; expected a 2D slice *.npz '
        f'(keys image, label), an HDF5 volume {"/".join(H5_SUFFIXES)} '
        f'(datasets image, label) or a NIfTI volume '
        f'{"/".join(NIFTI_SUFFIXES)}')


def strip_nifti_suffix(name: str) -> str:
    """``'img0001.nii.gz'`` -> ``'img0001'``."""
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def nifti_to_dhw(arr: np.ndarray, path: str = '<array>') -> np.ndarray:
    """Transpose a NIfTI ``(i, j, k)`` voxel array to ``(D, H, W)`` =
    ``(k, j, i)`` (a view).

    Raises:
        ValueError: If ``arr`` is not 3D (names ``path``).
    """
    if arr.ndim != 3:
        raise ValueError(f'{path}: expected a 3D volume, but its voxel array '
                         f'has shape {tuple(arr.shape)}')
    return arr.transpose(2, 1, 0)


def nifti_spacing_dhw(img) -> Tuple[float, float, float]:
    """Voxel spacing ``(z, y, x)`` in mm (the header's zooms reversed) of a
    loaded ``nibabel`` image, matching :func:`nifti_to_dhw`."""
    zooms = img.header.get_zooms()[:3]
    return tuple(float(z) for z in zooms[::-1])


def check_spacing(spacing, where: str) -> Optional[Tuple[float, float,
                                                         float]]:
    """``None`` or a tuple of three positive floats, else ``ValueError``
    naming ``where``."""
    if spacing is None:
        return None
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(np.isfinite(v) and v > 0
                                   for v in values):
        raise ValueError(f'{where}: spacing must be None or three positive '
                         f'numbers (z, y, x) in mm, but got {spacing!r}')
    return values


def intensity_stats(volume: np.ndarray, mode: Optional[str],
                    path: str = '<array>') -> Optional[Tuple[float, float]]:
    """The two numbers a per-volume normalisation needs.

    Args:
        volume (np.ndarray): The whole volume, any shape.
        mode (str, optional): ``'minmax'`` -> ``(min, max - min)``,
            ``'zscore'`` -> ``(mean, std)``, None -> None.
        path (str): Named in errors.

    Returns:
        tuple[float, float] | None: ``(offset, scale)`` so that the
        normalised volume is ``(volume - offset) / scale``; ``scale`` is 1
        for a constant volume.
    """
    if mode is None:
        return None
    if mode not in INTENSITY_NORMS:
        raise ValueError(f'{path}: intensity_norm must be None or one of '
                         f'{INTENSITY_NORMS}, but got {mode!r}')
    volume = np.asarray(volume, np.float64)
    if mode == 'minmax':
        offset, scale = float(volume.min()), float(np.ptp(volume))
    else:
        offset, scale = float(volume.mean()), float(volume.std())
    return offset, (scale if scale > 0 else 1.0)


def normalize_volume(volume: np.ndarray, mode: Optional[str],
                     path: str = '<array>') -> np.ndarray:
    """Per-volume intensity normalisation, float32.

    ``'minmax'`` maps the volume's range to [0, 1] (what the ACDC U-Net
    baselines do); ``'zscore'`` subtracts the mean and divides by the
    standard deviation (nnU-Net's scheme for MRI); None only casts.
    """
    stats = intensity_stats(volume, mode, path)
    volume = np.asarray(volume, np.float32)
    if stats is None:
        return volume
    return ((volume - stats[0]) / stats[1]).astype(np.float32)


def labels_to_uint8(label: np.ndarray, path: str,
                    num_classes: Optional[int] = None,
                    what: str = 'label') -> np.ndarray:
    """Check a label array and return it as uint8.

    Args:
        label (np.ndarray): Integer-valued labels (any dtype, any shape).
        path (str): The file, named in errors.
        num_classes (int, optional): Valid labels are ``0 ..
            num_classes - 1``; None only checks they fit in uint8.
        what (str): Names the array in errors. Defaults to 'label'.

    Raises:
        ValueError: Non-integer values, or values outside the class range
            (the message lists up to 10 of them).
    """
    label = np.asarray(label)
    if label.dtype.kind == 'b':
        return label.astype(np.uint8)
    if label.dtype.kind == 'f':
        if not np.all(np.isfinite(label)) or np.any(label != np.round(label)):
            bad = np.unique(label[~np.isfinite(label)
                                  | (label != np.round(label))])
            raise ValueError(
                f'{path}: {what} holds non-integer values {bad[:10].tolist()}'
                '; labels must be integer class indices')
    elif label.dtype.kind not in 'iu':
        raise ValueError(f'{path}: {what} has dtype {label.dtype}; labels '
                         'must be integer class indices')
    high = 256 if num_classes is None else num_classes
    values = np.unique(label)
    bad = values[(values < 0) | (values >= high)]
    if bad.size:
        rng = (f'the {num_classes} classes 0..{num_classes - 1}'
               if num_classes is not None else 'uint8 (0..255)')
        raise ValueError(
            f'{path}: {what} values {bad[:10].tolist()} are outside {rng}; '
            f'values found: {values[:20].tolist()}')
    return label.astype(np.uint8)


def check_same_shape(image_shape: Sequence[int], label_shape: Sequence[int],
                     path: str, label_path: Optional[str] = None) -> None:
    """``ValueError`` naming the file(s) when image and label shapes
    differ."""
    if tuple(image_shape) != tuple(label_shape):
        where = path if label_path is None or label_path == path else (
            f'{path} (image) and {label_path} (label)')
        raise ValueError(f'{where}: image shape {tuple(image_shape)} and '
                         f'label shape {tuple(label_shape)} differ')


def h5_volume_info(path: str) -> dict:
    """Shape and spacing of a TransUNet ``*.npy.h5`` volume without reading
    its voxels.

    Returns:
        dict: ``shape`` ((D, H, W)) and ``spacing`` (the ``spacing``
        attribute as a (z, y, x) tuple, or None when absent).

    Raises:
        ValueError: Missing ``image``/``label`` datasets, not 3D, or
            shapes differ (names the file).
    """
    h5py = import_h5py()
    try:
        f = h5py.File(path, 'r')
    except OSError as e:
        raise ValueError(f'{path}: not a readable HDF5 file ({e})') from e
    with f:
        missing = [k for k in ('image', 'label') if k not in f]
        if missing:
            raise ValueError(
                f'{path}: HDF5 volume has no dataset(s) {missing}; TransUNet '
                f'volumes hold "image" and "label" (D, H, W), found '
                f'{sorted(f.keys())}')
        shape, label_shape = f['image'].shape, f['label'].shape
        spacing = f.attrs.get('spacing', None)
    if len(shape) != 3:
        raise ValueError(f'{path}: "image" must be a (D, H, W) volume, but '
                         f'has shape {tuple(shape)}')
    check_same_shape(shape, label_shape, path)
    return dict(shape=tuple(int(s) for s in shape),
                spacing=check_spacing(spacing, f'{path} attribute "spacing"'))


def nifti_volume_info(path: str) -> dict:
    """Shape ((D, H, W)) and spacing ((z, y, x) mm) of a NIfTI volume from
    its header (no voxels are read)."""
    nib = import_nibabel()
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises several types for bad files
        raise ValueError(f'{path}: not a readable NIfTI file ({e})') from e
    shape = tuple(int(s) for s in img.shape)
    if len(shape) != 3:
        raise ValueError(f'{path}: expected a 3D volume, but the NIfTI '
                         f'header gives shape {shape}')
    return dict(shape=shape[::-1], spacing=nifti_spacing_dhw(img))


def read_nifti(path: str) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    """Read a 3D NIfTI volume as ``(D, H, W)`` with its (z, y, x) spacing.

    The array keeps the on-disk dtype after scaling (``dataobj``:
    integer labels stay integer; scaled images become float).
    """
    nib = import_nibabel()
    try:
        img = nib.load(path)
        arr = np.asanyarray(img.dataobj)
    except Exception as e:
        raise ValueError(f'{path}: not a readable NIfTI file ({e})') from e
    return np.ascontiguousarray(nifti_to_dhw(arr, path)), \
        nifti_spacing_dhw(img)


__all__ = [
    'NIFTI_SUFFIXES', 'H5_SUFFIXES', 'INTENSITY_NORMS', 'import_h5py',
    'import_nibabel', 'file_format', 'strip_nifti_suffix', 'nifti_to_dhw',
    'nifti_spacing_dhw', 'check_spacing', 'intensity_stats',
    'normalize_volume', 'labels_to_uint8', 'check_same_shape',
    'h5_volume_info', 'nifti_volume_info', 'read_nifti'
]
