"""Deterministic 3D "phantom organ" CT volumes, in TransUNet's Synapse layout.

:func:`generate_phantom_synapse` writes exactly what TransUNet's
``datasets/README.md`` describes, so :class:`densekit.datasets.SynapseDataset`
(and TransUNet's own ``Synapse_dataset``) reads it unchanged::

    <out_dir>/train_npz/case0001_slice000.npz ...   # image, label (H, W)
    <out_dir>/test_vol_h5/case5001.npy.h5 ...        # image, label (D, H, W)
    <out_dir>/lists/lists_Synapse/train.txt          # slice names
    <out_dir>/lists/lists_Synapse/test_vol.txt       # case names
    <out_dir>/spacing.json           # {case: [z, y, x]} in mm, all cases
    <out_dir>/synthetic_meta.json    # generation parameters (reuse check)

Training cases are ``case0001``, ``case0002``, ...; test cases
``case5001``, ``case5002``, ... (:data:`TEST_CASE_OFFSET`), so adding
training volumes never renames a test volume. Each h5 volume carries a
``spacing`` attribute (z, y, x) in mm, which TransUNet's loader ignores;
``spacing.json`` gives it for every case (``SynapseDataset(...,
spacing='spacing.json')`` uses it for the training slices too).

A volume is an elliptical body outline (soft tissue, ~0.3 after the
[-125, 275] HU window; air outside is exactly 0, as windowed CT is) holding
ellipsoid organs from :data:`PHANTOM_ORGANS`: each is jittered per volume in
position, size, in-plane rotation and tilt, has a smooth low-frequency
intensity variation around its own mean, and is painted in table order (a
later organ overwrites an earlier one), so neighbours such as liver/right
kidney and left kidney/spleen usually touch along a shared surface. Gaussian
noise is added inside the body; intensities are clipped to [0, 1]. Label
``1 + k`` is organ ``k``; 0 is background (air and body).

Volume ``i`` of split ``s`` (0 train, 1 test) is drawn from
``np.random.default_rng([seed, s, i])`` with the same sequence of draws
whatever ``num_organs`` is (unused organs are drawn and dropped), so a
volume does not depend on the number of other volumes. Drawing is
vectorised numpy; h5py writes the test volumes.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..medical_io import import_h5py

# name, centre (z, y, x) and semi-axes (z, y, x) in the volume's
# normalised coordinates ([-1, 1] along each axis; y grows towards the
# back, x towards the patient's left as in radiological display), mean
# intensity after the CT window.
PHANTOM_ORGANS: Tuple[Tuple[str, Tuple[float, float, float],
                            Tuple[float, float, float], float], ...] = (
    ('liver', (0.15, -0.05, -0.35), (0.60, 0.38, 0.32), 0.62),
    ('right_kidney', (-0.25, 0.30, -0.28), (0.40, 0.17, 0.12), 0.80),
    ('left_kidney', (-0.25, 0.30, 0.30), (0.40, 0.17, 0.12), 0.76),
    ('spleen', (0.20, 0.12, 0.50), (0.40, 0.18, 0.14), 0.68),
    ('stomach', (0.30, -0.30, 0.20), (0.35, 0.20, 0.22), 0.45),
    ('aorta', (0.00, 0.18, 0.02), (1.50, 0.07, 0.07), 0.88),
)
MAX_PHANTOM_ORGANS = len(PHANTOM_ORGANS)
DEFAULT_NUM_ORGANS = 4
PHANTOM_PALETTE = [[0, 0, 0], [255, 0, 255], [0, 255, 255], [255, 0, 0],
                   [255, 255, 0], [240, 240, 240], [0, 0, 255]]


def phantom_classes(num_organs: int = DEFAULT_NUM_ORGANS) -> Tuple[str, ...]:
    """``('background', <first num_organs organ names>)``."""
    if isinstance(num_organs, bool) or not isinstance(
            num_organs, (int, np.integer)) or not (
                1 <= num_organs <= MAX_PHANTOM_ORGANS):
        raise ValueError(f'num_organs must be an int in 1..'
                         f'{MAX_PHANTOM_ORGANS}, but got {num_organs!r}')
    return ('background', ) + tuple(o[0] for o in
                                    PHANTOM_ORGANS[:num_organs])


def phantom_metainfo(num_organs: int = DEFAULT_NUM_ORGANS) -> dict:
    """``metainfo`` for ``SynapseDataset`` reading a phantom set."""
    return dict(classes=phantom_classes(num_organs),
                palette=PHANTOM_PALETTE[:num_organs + 1])


# The classes of the default set (num_organs=4).
PHANTOM_CLASSES = phantom_classes(DEFAULT_NUM_ORGANS)
PHANTOM_METAINFO = phantom_metainfo(DEFAULT_NUM_ORGANS)
PHANTOM_SPACING = (3.0, 1.5, 1.5)
TEST_CASE_OFFSET = 5000
# Bump when the drawing or layout changes, so cached sets are regenerated.
PHANTOM_GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'
LIST_DIR = osp.join('lists', 'lists_Synapse')
NOISE_STD = 0.02
_GENERATOR = 'densekit.datasets.synthetic.generate_phantom_synapse'


def _smooth_field(rng: np.random.Generator, zz, yy, xx) -> np.ndarray:
    """Sum of two random low-frequency cosines, values in [-1, 1]."""
    field = 0.0
    for _ in range(2):
        f = rng.uniform(-1.5, 1.5, 3)
        phase = rng.uniform(0, 2 * np.pi)
        field = field + 0.5 * np.cos(np.pi * (f[0] * zz + f[1] * yy +
                                              f[2] * xx) + phase)
    return field


def render_phantom_volume(
        rng: np.random.Generator,
        size: Sequence[int] = (24, 128, 128),
        num_organs: int = DEFAULT_NUM_ORGANS
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one phantom volume (module docstring).

    Args:
        rng (np.random.Generator): The volume's generator.
        size (Sequence[int]): (D, H, W). Defaults to (24, 128, 128).
        num_organs (int): Organs kept, the first of
            :data:`PHANTOM_ORGANS`. Defaults to 4.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``image`` float32 (D, H, W) in
        [0, 1] and ``label`` uint8 (D, H, W) in ``0 .. num_organs``.
    """
    phantom_classes(num_organs)  # validates
    d, h, w = (int(s) for s in size)
    # voxel centres in [-1, 1]; a single slice sits at z = 0
    zz = np.linspace(-1, 1, d, dtype=np.float32)[:, None, None] if d > 1 \
        else np.zeros((1, 1, 1), np.float32)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[None, :, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, None, :]

    # body: an elliptic cylinder, slightly off centre
    cy, cx = rng.uniform(-0.03, 0.03, 2)
    ay, ax = rng.uniform(0.68, 0.78), rng.uniform(0.86, 0.94)
    body = (((yy - cy) / ay)**2 + ((xx - cx) / ax)**2 <= 1.0)
    body = np.broadcast_to(body, (d, h, w))
    image = np.where(body, 0.30 + 0.04 * _smooth_field(rng, zz, yy, xx),
                     0.0).astype(np.float32)
    label = np.zeros((d, h, w), np.uint8)

    for k, (_, centre, axes, mean) in enumerate(PHANTOM_ORGANS):
        c = np.asarray(centre) + rng.uniform(-0.05, 0.05, 3)
        r = np.asarray(axes) * rng.uniform(0.85, 1.15, 3)
        yaw = np.deg2rad(rng.uniform(-20, 20))  # in-plane rotation
        tilt = np.deg2rad(rng.uniform(-8, 8))  # rotation in the z-y plane
        level = mean + rng.uniform(-0.03, 0.03)
        field = _smooth_field(rng, zz, yy, xx)
        if k >= num_organs:
            continue
        dz, dy, dx = zz - c[0], yy - c[1], xx - c[2]
        u = np.cos(yaw) * dy + np.sin(yaw) * dx
        v = -np.sin(yaw) * dy + np.cos(yaw) * dx
        tz = np.cos(tilt) * dz + np.sin(tilt) * u
        tu = -np.sin(tilt) * dz + np.cos(tilt) * u
        inside = ((tz / r[0])**2 + (tu / r[1])**2 + (v / r[2])**2 <= 1.0) \
            & body
        label[inside] = k + 1
        organ = np.broadcast_to(level * (1 + 0.06 * field), (d, h, w))
        image[inside] = organ[inside]

    noise = rng.normal(0.0, NOISE_STD, (d, h, w)).astype(np.float32)
    image = np.where(body, np.clip(image + noise, 0.0, 1.0), 0.0)
    return image.astype(np.float32), label


def _case_ids(num_train: int, num_test: int) -> Tuple[List[str], List[str]]:
    return ([f'case{i + 1:04d}' for i in range(num_train)],
            [f'case{TEST_CASE_OFFSET + i + 1:04d}' for i in range(num_test)])


def _expected_files(out_dir: str, params: dict) -> List[str]:
    train, test = _case_ids(params['num_train_volumes'],
                            params['num_test_volumes'])
    depth = params['size'][0]
    files = [osp.join(out_dir, 'train_npz', f'{c}_slice{z:03d}.npz')
             for c in train for z in range(depth)]
    files += [osp.join(out_dir, 'test_vol_h5', f'{c}.npy.h5') for c in test]
    files += [osp.join(out_dir, LIST_DIR, n)
              for n in ('train.txt', 'test_vol.txt')]
    files.append(osp.join(out_dir, 'spacing.json'))
    return files


def _reusable(out_dir: str, params: dict):
    try:
        with open(osp.join(out_dir, META_FILE), encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get('complete') is not True
            or meta.get('generator_version') != PHANTOM_GENERATOR_VERSION
            or meta.get('params') != params):
        return None
    if not all(osp.isfile(p) for p in _expected_files(out_dir, params)):
        return None
    return meta


def generate_phantom_synapse(out_dir: str,
                             num_train_volumes: int = 12,
                             num_test_volumes: int = 4,
                             size: Sequence[int] = (24, 128, 128),
                             num_organs: int = DEFAULT_NUM_ORGANS,
                             seed: int = 0,
                             spacing: Sequence[float] = PHANTOM_SPACING,
                             overwrite: bool = False) -> dict:
    """Write the phantom set in TransUNet's Synapse layout (module
    docstring).

    A complete set made with the same parameters is reused unless
    ``overwrite``; a folder holding ``train_npz``, ``test_vol_h5`` or
    ``lists`` but no ``synthetic_meta.json`` is only replaced with
    ``overwrite=True``. The default set (12 + 4 volumes of 24 x 128 x 128)
    takes about a second.

    Args:
        out_dir (str): Dataset root (``SynapseDataset``'s ``data_root``).
        num_train_volumes (int): Volumes written as npz slices.
            Defaults to 12.
        num_test_volumes (int): Volumes written as h5. Defaults to 4.
        size (Sequence[int]): (D, H, W) of every volume, H and W >= 16.
            Defaults to (24, 128, 128).
        num_organs (int): Organs (1..6), the first of
            :data:`PHANTOM_ORGANS`; read the set with
            ``metainfo=phantom_metainfo(num_organs)``
            (:data:`PHANTOM_METAINFO` for 4). Defaults to 4.
        seed (int): Base seed. Defaults to 0.
        spacing (Sequence[float]): (z, y, x) in mm, stored in the h5
            files. Defaults to (3.0, 1.5, 1.5).
        overwrite (bool): Regenerate even if a matching set exists.

    Returns:
        dict: ``out_dir``, ``train_ids``, ``test_ids``, ``num_train_slices``,
        ``classes``, ``label_counts`` (voxels per class name, all volumes)
        and ``reused``.
    """
    name = 'generate_phantom_synapse'
    for arg, value in (('num_train_volumes', num_train_volumes),
                       ('num_test_volumes', num_test_volumes),
                       ('seed', seed)):
        if isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name}: {arg} must be an int >= 0, but got '
                             f'{value!r}')
    if num_train_volumes + num_test_volumes == 0:
        raise ValueError(f'{name}: num_train_volumes and num_test_volumes '
                         'are both 0')
    if num_train_volumes > TEST_CASE_OFFSET or \
            num_test_volumes > 9999 - TEST_CASE_OFFSET:
        raise ValueError(f'{name}: at most {TEST_CASE_OFFSET} training and '
                         f'{9999 - TEST_CASE_OFFSET} test volumes, but got '
                         f'{num_train_volumes} and {num_test_volumes}')
    size_ok = (not isinstance(size, (str, bytes)) and len(size) == 3
               and all(isinstance(s, (int, np.integer))
                       and not isinstance(s, bool) for s in size))
    if not size_ok or size[0] < 1 or min(size[1:]) < 16 or size[0] > 999:
        raise ValueError(f'{name}: size must be three ints (D, H, W) with '
                         f'1 <= D <= 999 and H, W >= 16, but got {size!r}')
    classes = phantom_classes(num_organs)
    if len(spacing) != 3 or not all(float(s) > 0 for s in spacing):
        raise ValueError(f'{name}: spacing must be three positive numbers '
                         f'(z, y, x) in mm, but got {spacing!r}')
    params = dict(task='phantom', num_train_volumes=int(num_train_volumes),
                  num_test_volumes=int(num_test_volumes),
                  size=[int(s) for s in size], num_organs=int(num_organs),
                  seed=int(seed), spacing=[float(s) for s in spacing])
    train_ids, test_ids = _case_ids(params['num_train_volumes'],
                                    params['num_test_volumes'])
    depth = params['size'][0]
    result = dict(out_dir=out_dir, train_ids=tuple(train_ids),
                  test_ids=tuple(test_ids),
                  num_train_slices=len(train_ids) * depth, classes=classes)
    meta_path = osp.join(out_dir, META_FILE)
    if not overwrite:
        meta = _reusable(out_dir, params)
        if meta is not None:
            return dict(result, label_counts=meta['label_counts'],
                        reused=True)

    managed = [osp.join(out_dir, d)
               for d in ('train_npz', 'test_vol_h5', 'lists')]
    present = [p for p in managed if osp.isdir(p) and os.listdir(p)]
    if present and not overwrite and not osp.isfile(meta_path):
        raise FileExistsError(
            f'{name}: {out_dir} already holds {", ".join(present)} but no '
            f'{META_FILE}, so it was not written by this generator. Pass '
            'overwrite=True (--overwrite in tools/data/make_synthetic.py) or '
            'choose another out_dir.')
    h5py = import_h5py()
    for path in managed:
        if osp.isdir(path):
            shutil.rmtree(path)
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(generator=_GENERATOR,
                generator_version=PHANTOM_GENERATOR_VERSION, params=params,
                classes=list(classes), complete=False)
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(meta, f)

    train_dir = osp.join(out_dir, 'train_npz')
    test_dir = osp.join(out_dir, 'test_vol_h5')
    list_dir = osp.join(out_dir, LIST_DIR)
    for folder in (train_dir, test_dir, list_dir):
        os.makedirs(folder)
    counts = np.zeros(len(classes), np.int64)
    slice_names = []
    for split_index, ids in enumerate((train_ids, test_ids)):
        for index, case in enumerate(ids):
            rng = np.random.default_rng([seed, split_index, index])
            image, label = render_phantom_volume(rng, params['size'],
                                                 num_organs)
            counts += np.bincount(label.ravel(), minlength=len(classes))
            if split_index == 1:
                with h5py.File(osp.join(test_dir, case + '.npy.h5'),
                               'w') as f:
                    f.create_dataset('image', data=image)
                    f.create_dataset('label', data=label)
                    f.attrs['spacing'] = np.asarray(params['spacing'])
                continue
            for z in range(depth):
                stem = f'{case}_slice{z:03d}'
                np.savez(osp.join(train_dir, stem + '.npz'), image=image[z],
                         label=label[z])
                slice_names.append(stem)
    with open(osp.join(list_dir, 'train.txt'), 'w', encoding='utf-8') as f:
        f.writelines(n + '\n' for n in slice_names)
    with open(osp.join(list_dir, 'test_vol.txt'), 'w', encoding='utf-8') as f:
        f.writelines(c + '\n' for c in test_ids)
    with open(osp.join(out_dir, 'spacing.json'), 'w', encoding='utf-8') as f:
        json.dump({c: params['spacing'] for c in train_ids + test_ids}, f,
                  indent=1)
    label_counts: Dict[str, int] = {
        c: int(n) for c, n in zip(classes, counts)}
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(dict(meta, complete=True, label_counts=label_counts), f)
    return dict(result, label_counts=label_counts, reused=False)


__all__ = [
    'PHANTOM_ORGANS', 'MAX_PHANTOM_ORGANS', 'PHANTOM_CLASSES',
    'PHANTOM_PALETTE', 'PHANTOM_METAINFO', 'PHANTOM_SPACING',
    'TEST_CASE_OFFSET', 'phantom_classes', 'phantom_metainfo',
    'render_phantom_volume', 'generate_phantom_synapse'
]
