"""Deterministic synthetic anomaly-detection data, in MVTec AD's layout.

:func:`generate_anomaly_mvtec` writes one category laid out exactly as an
MVTec AD category is, so :class:`densekit.datasets.MVTecADDataset` (and any
MVTec AD loader) reads it unchanged::

    <out_dir>/<category>/train/good/000.png ...
    <out_dir>/<category>/test/good/000.png ...
    <out_dir>/<category>/test/<defect>/000.png ...    # scratch, blob, color
    <out_dir>/<category>/ground_truth/<defect>/000_mask.png ...
    <out_dir>/synthetic_meta.json     # generation parameters (reuse check)

Normal images are a woven texture (a basket weave of threads along two
slightly rotated axes) with a per-image random thread period, rotation,
phase, tint, illumination gradient and pixel noise, so normal images look
alike but are never identical. Defective images are a normal image with one
defect painted in:

* ``scratch``: a thin (1 to 3 px at 256) curved line, much brighter or darker
  than the fabric;
* ``blob``: a dark stain made of one to three overlapping ellipses;
* ``color``: an elliptical spot with a foreign hue (red, green or blue) that
  keeps the weave's shading.

Masks are exact: a defect changes only the pixels of its mask (the pixel noise
is drawn before the defect and added to every pixel), and ground-truth PNGs are
single-channel uint8 with 255 on defect pixels and 0 elsewhere, as in MVTec AD.
Good images have no mask file, as in MVTec AD.

Image ``i`` of group ``g`` is drawn from ``np.random.default_rng([seed, g,
i])`` where ``g`` is 0 for ``train/good``, 1 for ``test/good`` and ``2 + k``
for defect :data:`ANOMALY_DEFECT_TYPES` ``[k]``; so the same arguments give
byte-identical files and no image depends on the number of other images.

Only numpy and OpenCV are needed; drawing is vectorised.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

# Defect folders under test/ and ground_truth/, in the order that fixes their
# seed group (2 + index).
ANOMALY_DEFECT_TYPES = ('scratch', 'blob', 'color')
# Bump when the drawing or layout changes, so cached sets are regenerated.
ANOMALY_GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'
_GENERATOR = 'densekit.datasets.synthetic.generate_anomaly_mvtec'
# Standard deviation of the per-pixel Gaussian noise, in grey levels.
NOISE_STD = 3.0
# Mean BGR colour of the fabric (a tan cloth).
_FABRIC_BGR = np.array([95., 140., 175.], np.float32)
# Foreign hues of ``color`` defects (BGR): red, green, blue.
_SPOT_BGR = np.array([[40., 40., 215.], [50., 190., 40.], [215., 90., 30.]],
                     np.float32)
# Seed group of each folder: train/good 0, test/good 1, defects 2 + k.
_GOOD_GROUPS = {'train/good': 0, 'test/good': 1}


def _woven_texture(rng: np.random.Generator, img_size: int) -> np.ndarray:
    """Noise-free normal fabric, float32 (H, W, 3) BGR in [0, 255]."""
    s = img_size
    period = s / 12 * rng.uniform(0.97, 1.03)
    theta = np.deg2rad(rng.uniform(-2.0, 2.0))
    phase = rng.uniform(0.0, 1.0, 2)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    u = (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase[0]
    v = (yy * np.cos(theta) - xx * np.sin(theta)) / period + phase[1]
    fu, fv = u % 1.0, v % 1.0
    # In cell (i, j) the thread running along u is on top when i + j is even;
    # a thread is bright at its centre line and shaded towards its crossings.
    u_on_top = (np.floor(u) + np.floor(v)) % 2 == 0
    along_u = np.sqrt(np.sin(np.pi * fv)) * (0.8 + 0.2 * np.sin(np.pi * fu))
    along_v = np.sqrt(np.sin(np.pi * fu)) * (0.8 + 0.2 * np.sin(np.pi * fv))
    weave = np.where(u_on_top, along_u, along_v)
    # illumination: brightness and a linear gradient of up to +-8 %
    gx, gy = rng.uniform(-0.08, 0.08, 2)
    light = rng.uniform(0.95, 1.05) * (1 + gx * (xx / s - 0.5) + gy *
                                       (yy / s - 0.5))
    tint = _FABRIC_BGR * rng.uniform(0.96, 1.04, 3).astype(np.float32)
    value = (0.45 + 0.55 * weave) * light
    return value[..., None] * tint


def _random_center(rng: np.random.Generator, img_size: int,
                   margin: float) -> np.ndarray:
    return rng.uniform(margin * img_size, (1 - margin) * img_size, 2)


def _draw_scratch(rng: np.random.Generator, base: np.ndarray,
                  img_size: int) -> Tuple[np.ndarray, np.ndarray]:
    s = img_size
    start = _random_center(rng, s, 0.15)
    angle = rng.uniform(0, 2 * np.pi)
    length = s * rng.uniform(0.25, 0.55)
    end = start + length * np.array([np.cos(angle), np.sin(angle)])
    bend = length * rng.uniform(-0.25, 0.25)
    ctrl = (start + end) / 2 + bend * np.array([-np.sin(angle),
                                                np.cos(angle)])
    t = np.linspace(0, 1, 32)[:, None]
    curve = (1 - t)**2 * start + 2 * (1 - t) * t * ctrl + t**2 * end
    curve = np.clip(np.rint(curve), 0, s - 1).astype(np.int32)
    thickness = int(rng.integers(1, max(2, s // 85) + 1))
    mask = np.zeros((s, s), np.uint8)
    cv2.polylines(mask, [curve.reshape(-1, 1, 2)], False, 1, thickness,
                  lineType=cv2.LINE_8)
    if rng.random() < 0.5:
        defect = base * 0.25  # dark groove
    else:
        defect = base * 0.3 + 175.0  # bright, fibres pulled out
    return mask.astype(bool), defect


def _draw_blob(rng: np.random.Generator, base: np.ndarray,
               img_size: int) -> Tuple[np.ndarray, np.ndarray]:
    s = img_size
    center = _random_center(rng, s, 0.15)
    mask = np.zeros((s, s), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        c = center + rng.normal(0, 0.03 * s, 2)
        axes = np.maximum(1, np.rint(s * rng.uniform(0.03, 0.08, 2)))
        cv2.ellipse(mask, tuple(int(x) for x in np.rint(c)),
                    tuple(int(a) for a in axes), rng.uniform(0, 180), 0, 360,
                    1, thickness=-1)
    stain = np.array([25., 45., 70.], np.float32)  # dark brown
    defect = 0.35 * base + stain
    return mask.astype(bool), defect


def _draw_color(rng: np.random.Generator, base: np.ndarray,
                img_size: int) -> Tuple[np.ndarray, np.ndarray]:
    s = img_size
    center = _random_center(rng, s, 0.12)
    axes = np.maximum(1, np.rint(s * rng.uniform(0.03, 0.07, 2)))
    mask = np.zeros((s, s), np.uint8)
    cv2.ellipse(mask, tuple(int(x) for x in np.rint(center)),
                tuple(int(a) for a in axes), rng.uniform(0, 180), 0, 360, 1,
                thickness=-1)
    spot = _SPOT_BGR[int(rng.integers(len(_SPOT_BGR)))]
    # keep the weave's shading, replace the hue
    shading = base.mean(axis=2, keepdims=True) / _FABRIC_BGR.mean()
    return mask.astype(bool), shading * spot


_DEFECT_DRAWERS = dict(scratch=_draw_scratch, blob=_draw_blob,
                       color=_draw_color)


def render_anomaly_image(
        rng: np.random.Generator,
        img_size: int = 256,
        defect: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one fabric image, normal or with one defect.

    Two calls with generators in the same state draw the same fabric and
    noise whatever ``defect`` is, so ``render_anomaly_image(rng_a, s)`` and
    ``render_anomaly_image(rng_b, s, 'blob')`` differ only inside the blob's
    mask.

    Args:
        rng (np.random.Generator): Source of all randomness.
        img_size (int): Height and width. Defaults to 256.
        defect (str, optional): One of :data:`ANOMALY_DEFECT_TYPES`, or None
            for a normal image. Defaults to None.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``img`` uint8 (H, W, 3) BGR and
        ``mask`` bool (H, W), True on defect pixels (all False if
        ``defect`` is None).
    """
    if defect is not None and defect not in _DEFECT_DRAWERS:
        raise ValueError(f'render_anomaly_image: defect must be None or one '
                         f'of {ANOMALY_DEFECT_TYPES}, but got {defect!r}')
    base = _woven_texture(rng, img_size)
    noise = rng.normal(0.0, NOISE_STD, base.shape).astype(np.float32)
    if defect is None:
        mask = np.zeros(base.shape[:2], bool)
        img = base
    else:
        mask, defect_px = _DEFECT_DRAWERS[defect](rng, base, img_size)
        img = np.where(mask[..., None], defect_px, base)
    img = np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)
    return img, mask


def _folder_counts(num_train: int, num_test_good: int, num_test_defect: int,
                   defect_types: Sequence[str]) -> Dict[str, int]:
    """Images per folder; defects share ``num_test_defect`` evenly (earlier
    types get the remainder)."""
    counts = {'train/good': num_train, 'test/good': num_test_good}
    per_type, extra = divmod(num_test_defect, len(defect_types))
    for k, name in enumerate(defect_types):
        counts[f'test/{name}'] = per_type + (k < extra)
    return counts


def _seed_group(folder: str) -> int:
    if folder in _GOOD_GROUPS:
        return _GOOD_GROUPS[folder]
    return 2 + ANOMALY_DEFECT_TYPES.index(folder.split('/', 1)[1])


def _expected_files(category_dir: str, counts: Dict[str, int]):
    for folder, num in counts.items():
        defect = folder.split('/', 1)[1]
        for index in range(num):
            stem = f'{index:03d}'
            img_path = osp.join(category_dir, folder, stem + '.png')
            mask_path = None if defect == 'good' else osp.join(
                category_dir, 'ground_truth', defect, stem + '_mask.png')
            yield folder, index, img_path, mask_path


def _read_meta(meta_path: str) -> Optional[dict]:
    try:
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _write_meta(meta_path: str, meta: dict) -> None:
    tmp_path = meta_path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp_path, meta_path)


def _reusable(entry: Optional[dict], params: dict, category_dir: str,
              counts: Dict[str, int]) -> bool:
    if (not isinstance(entry, dict) or entry.get('complete') is not True
            or entry.get('generator_version') != ANOMALY_GENERATOR_VERSION
            or entry.get('params') != params):
        return False
    for _, _, img_path, mask_path in _expected_files(category_dir, counts):
        if not osp.isfile(img_path) or (mask_path is not None
                                        and not osp.isfile(mask_path)):
            return False
    return True


def _check_args(category, num_train, num_test_good, num_test_defect,
                img_size, seed, defect_types) -> None:
    if not isinstance(category, str) or not category or category in (
            '.', '..') or any(c in category for c in '/\\'):
        raise ValueError('generate_anomaly_mvtec: category must be a folder '
                         f'name (no path separators), but got {category!r}')
    for name, value in (('num_train', num_train),
                        ('num_test_good', num_test_good),
                        ('num_test_defect', num_test_defect),
                        ('img_size', img_size), ('seed', seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(
                value, bool) or value < 0:
            raise ValueError(f'generate_anomaly_mvtec: {name} must be an int '
                             f'>= 0, but got {value!r}')
    if img_size < 32:
        raise ValueError('generate_anomaly_mvtec: img_size must be >= 32, '
                         f'but got {img_size}')
    if isinstance(defect_types, str) or not defect_types or any(
            d not in ANOMALY_DEFECT_TYPES for d in defect_types) or len(
                set(defect_types)) != len(defect_types):
        raise ValueError('generate_anomaly_mvtec: defect_types must be a '
                         'non-empty sequence of distinct names from '
                         f'{ANOMALY_DEFECT_TYPES}, but got {defect_types!r}')


def generate_anomaly_mvtec(out_dir: str,
                           category: str = 'texture',
                           num_train: int = 200,
                           num_test_good: int = 40,
                           num_test_defect: int = 60,
                           img_size: int = 256,
                           seed: int = 0,
                           overwrite: bool = False,
                           defect_types: Sequence[str] = ANOMALY_DEFECT_TYPES
                           ) -> dict:
    """Write one synthetic category in MVTec AD's layout (module docstring).

    A complete category made with the same parameters is reused unless
    ``overwrite``. ``synthetic_meta.json`` in ``out_dir`` records each
    category generated there, so several categories can share one root; only
    ``<out_dir>/<category>`` is ever deleted. A ``<out_dir>/<category>``
    folder that this generator did not write (no entry in
    ``synthetic_meta.json``) is only replaced with ``overwrite=True``.

    Args:
        out_dir (str): Dataset root (the dataset's ``data_root``).
        category (str): Category folder name; the texture does not depend
            on it. Defaults to 'texture'.
        num_train (int): Normal training images (``train/good``).
            Defaults to 200.
        num_test_good (int): Normal test images (``test/good``).
            Defaults to 40.
        num_test_defect (int): Defective test images, shared evenly by
            ``defect_types`` (earlier types get the remainder).
            Defaults to 60.
        img_size (int): Height and width, >= 32. Defaults to 256.
        seed (int): Base seed. Defaults to 0.
        overwrite (bool): Regenerate even if a matching set exists.
            Defaults to False.
        defect_types (Sequence[str]): Defect folders to write, from
            :data:`ANOMALY_DEFECT_TYPES`. Defaults to all three.

    Returns:
        dict: ``out_dir``, ``category``, ``category_dir``, ``num_images``
        (images per folder, keyed like ``'train/good'``, ``'test/scratch'``)
        and ``reused`` (bool).

    Examples:
        >>> info = generate_anomaly_mvtec('data/synthetic_anomaly')
        >>> info['num_images']['test/blob']
        20
    """
    _check_args(category, num_train, num_test_good, num_test_defect,
                img_size, seed, defect_types)
    defect_types = tuple(defect_types)
    params = dict(task='anomaly_mvtec', category=category,
                  num_train=int(num_train), num_test_good=int(num_test_good),
                  num_test_defect=int(num_test_defect),
                  img_size=int(img_size), seed=int(seed),
                  defect_types=list(defect_types))
    counts = _folder_counts(params['num_train'], params['num_test_good'],
                            params['num_test_defect'], defect_types)
    category_dir = osp.join(out_dir, category)
    result = dict(out_dir=out_dir, category=category,
                  category_dir=category_dir, num_images=dict(counts))
    meta_path = osp.join(out_dir, META_FILE)
    meta = _read_meta(meta_path)
    ours = meta is not None and meta.get('generator') == _GENERATOR
    entry = meta.get('categories', {}).get(category) if ours else None
    if not overwrite and _reusable(entry, params, category_dir, counts):
        return dict(result, reused=True)

    foreign = []
    if osp.isdir(category_dir) and os.listdir(category_dir) and entry is None:
        foreign.append(category_dir)
    if osp.exists(meta_path) and not ours:
        foreign.append(meta_path)
    if foreign and not overwrite:
        raise FileExistsError(
            f'generate_anomaly_mvtec: {" and ".join(foreign)} already '
            f'exist(s) but {meta_path} has no record of category '
            f'{category!r} written by this generator. Pass overwrite=True '
            '(--overwrite in tools/data/make_synthetic.py) or choose another '
            'out_dir.')
    if osp.isdir(category_dir):
        shutil.rmtree(category_dir)
    os.makedirs(out_dir, exist_ok=True)
    if not ours:
        meta = dict(generator=_GENERATOR, categories={})
    meta['categories'][category] = dict(
        generator_version=ANOMALY_GENERATOR_VERSION, params=params,
        complete=False)
    _write_meta(meta_path, meta)

    for folder in counts:
        os.makedirs(osp.join(category_dir, folder))
        defect = folder.split('/', 1)[1]
        if defect != 'good':
            os.makedirs(osp.join(category_dir, 'ground_truth', defect))
    for folder, index, img_path, mask_path in _expected_files(
            category_dir, counts):
        rng = np.random.default_rng([seed, _seed_group(folder), index])
        img, mask = render_anomaly_image(
            rng, img_size, None if mask_path is None else
            folder.split('/', 1)[1])
        if not cv2.imwrite(img_path, img):
            raise OSError(f'cv2.imwrite could not write {img_path}')
        if mask_path is not None and not cv2.imwrite(
                mask_path, mask.astype(np.uint8) * 255):
            raise OSError(f'cv2.imwrite could not write {mask_path}')
    meta['categories'][category]['complete'] = True
    _write_meta(meta_path, meta)
    return dict(result, reused=False)


__all__ = [
    'ANOMALY_DEFECT_TYPES', 'render_anomaly_image', 'generate_anomaly_mvtec'
]
