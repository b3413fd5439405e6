"""Deterministic "synthetic shapes" semantic segmentation, in ADE20K's layout.

:func:`generate_shapes_ade` draws the images of :mod:`.shapes` (same
renderer, same per-image seeding) and writes them with per-pixel class maps
exactly as ADE20K (``ADEChallengeData2016``) is laid out, so mmseg's
ADE20K-style configs read it with only the class list changed::

    <out_dir>/images/training/ADE_train_00000001.jpg ...
    <out_dir>/images/validation/ADE_val_00000001.jpg ...
    <out_dir>/annotations/training/ADE_train_00000001.png ...
    <out_dir>/annotations/validation/ADE_val_00000001.png ...
    <out_dir>/synthetic_meta.json      # generation parameters (reuse check)

Annotations follow ADE20K's encoding: single-channel uint8 PNGs where 0 is
"unlabelled" and ``1 + i`` is class ``i`` of :data:`SHAPES_SEG_CLASSES`
(``background`` first, then the four shapes), so configs load them with
``reduce_zero_label=True`` as for ADE20K (0 becomes the ignore index 255,
``1 + i`` becomes ``i``). The generator labels every pixel; pixels it marks
0 are those of shapes smaller than ``min_label_area`` after occlusion, which
a human annotator would leave unlabelled as well.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict

import cv2
import numpy as np

from .shapes import (JPEG_QUALITY, SHAPES_CLASSES, SHAPES_PALETTE,
                     render_shapes_image)

SHAPES_SEG_CLASSES = ('background', ) + SHAPES_CLASSES
SHAPES_SEG_PALETTE = [(120, 120, 120)] + list(SHAPES_PALETTE)
SHAPES_SEG_METAINFO = dict(classes=SHAPES_SEG_CLASSES,
                           palette=SHAPES_SEG_PALETTE)

# Bump when the drawing or encoding changes, so cached sets are regenerated.
SEG_GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'
# ADE20K's split folders and file prefixes, indexed like shapes' _SPLITS
# (train 0, val 1: the same per-image seeds as the detection set).
_SPLITS = (('training', 'ADE_train_'), ('validation', 'ADE_val_'))


def shapes_label_map(labels: np.ndarray, masks: np.ndarray,
                     min_label_area: int = 0) -> np.ndarray:
    """ADE20K-encoded class map of one rendered image.

    Args:
        labels (np.ndarray): (K, ) shape class indices into
            :data:`SHAPES_CLASSES`.
        masks (np.ndarray): (K, H, W) disjoint visible masks.
        min_label_area (int): Objects with fewer visible pixels are
            left unlabelled (0). Defaults to 0.

    Returns:
        np.ndarray: uint8 (H, W): 1 for background, ``2 + label`` for a
        shape's pixels, 0 for unlabelled pixels.
    """
    seg = np.ones(masks.shape[1:], np.uint8)
    for label, mask in zip(labels, masks):
        seg[mask] = 0 if mask.sum() < min_label_area else 2 + int(label)
    return seg


def _file_stem(split_index: int, index: int) -> str:
    return f'{_SPLITS[split_index][1]}{index + 1:08d}'


def _paths(out_dir: str) -> Dict[str, Dict[str, str]]:
    return dict(
        img_dirs={
            folder: osp.join(out_dir, 'images', folder)
            for folder, _ in _SPLITS
        },
        ann_dirs={
            folder: osp.join(out_dir, 'annotations', folder)
            for folder, _ in _SPLITS
        })


def _reusable(out_dir: str, params: dict, counts: Dict[str, int]) -> bool:
    meta_path = osp.join(out_dir, META_FILE)
    try:
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if (not isinstance(meta, dict) or meta.get('complete') is not True
            or meta.get('generator_version') != SEG_GENERATOR_VERSION
            or meta.get('params') != params):
        return False
    paths = _paths(out_dir)
    for split_index, (folder, _) in enumerate(_SPLITS):
        for index in range(counts[folder]):
            stem = _file_stem(split_index, index)
            if not (osp.isfile(osp.join(paths['img_dirs'][folder],
                                        stem + '.jpg'))
                    and osp.isfile(osp.join(paths['ann_dirs'][folder],
                                            stem + '.png'))):
                return False
    return True


def generate_shapes_ade(out_dir: str,
                        num_train: int = 2000,
                        num_val: int = 200,
                        img_size: int = 256,
                        max_objects: int = 6,
                        min_label_area: int = 0,
                        seed: int = 0,
                        overwrite: bool = False) -> dict:
    """Write the synthetic shapes segmentation set (see module docstring).

    Image ``i`` of split ``s`` is the image of the detection set made with
    the same ``seed``, ``img_size`` and ``max_objects`` (both call
    :func:`render_shapes_image` with ``np.random.default_rng([seed, s,
    i])``). A complete set made with the same parameters is reused unless
    ``overwrite``; a folder holding ``images/`` or ``annotations/`` but no
    ``synthetic_meta.json`` is only replaced with ``overwrite=True``.

    Args:
        out_dir (str): Dataset root (the config's ``data_root``).
        num_train (int): Training images. Defaults to 2000.
        num_val (int): Validation images. Defaults to 200.
        img_size (int): Height and width. Defaults to 256.
        max_objects (int): Most shapes per image. Defaults to 6.
        min_label_area (int): Visible shapes smaller than this many pixels
            are labelled 0 (unlabelled). Defaults to 0.
        seed (int): Base seed. Defaults to 0.
        overwrite (bool): Regenerate even if a matching set exists.

    Returns:
        dict: ``out_dir``, ``img_dirs`` and ``ann_dirs`` (keyed by
        ``'training'``/``'validation'``), ``num_images`` (same keys),
        ``pixel_counts`` (per class, training split) and ``reused``.
    """
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('img_size', img_size), ('max_objects', max_objects),
                        ('min_label_area', min_label_area), ('seed', seed)):
        if not isinstance(value, (int, np.integer)) or \
                isinstance(value, bool) \
                or value < 0:
            raise ValueError(f'generate_shapes_ade: {name} must be an int '
                             f'>= 0, but got {value!r}')
    if img_size < 32 or max_objects < 1:
        raise ValueError(f'generate_shapes_ade: need img_size >= 32 and '
                         f'max_objects >= 1, but got img_size={img_size}, '
                         f'max_objects={max_objects}')
    params = dict(task='shapes_seg', num_train=int(num_train),
                  num_val=int(num_val), img_size=int(img_size),
                  max_objects=int(max_objects),
                  min_label_area=int(min_label_area), seed=int(seed))
    counts = dict(training=params['num_train'],
                  validation=params['num_val'])
    paths = _paths(out_dir)
    result = dict(out_dir=out_dir, **paths, num_images=dict(counts))
    meta_path = osp.join(out_dir, META_FILE)
    if not overwrite and _reusable(out_dir, params, counts):
        with open(meta_path, encoding='utf-8') as f:
            meta = json.load(f)
        return dict(result, pixel_counts=meta['pixel_counts'], reused=True)

    managed = [osp.join(out_dir, 'images'), osp.join(out_dir, 'annotations')]
    present = [p for p in managed if osp.isdir(p) and os.listdir(p)]
    if present and not overwrite and not osp.isfile(meta_path):
        raise FileExistsError(
            f'generate_shapes_ade: {out_dir} already holds '
            f'{", ".join(present)} but no {META_FILE}, so it was not written '
            'by this generator. Pass overwrite=True (--overwrite in '
            'tools/data/make_synthetic.py) or choose another out_dir.')
    for path in managed:
        if osp.isdir(path):
            shutil.rmtree(path)
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(generator='densekit.datasets.synthetic.generate_shapes_ade',
                generator_version=SEG_GENERATOR_VERSION, params=params,
                complete=False)
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(meta, f)

    # the detection set's defaults for object sizes (20-110 px at 256)
    min_size = round(img_size * 20 / 256, 2)
    max_size = round(img_size * 110 / 256, 2)
    pixel_counts = np.zeros(len(SHAPES_SEG_CLASSES) + 1, np.int64)
    for split_index, (folder, _) in enumerate(_SPLITS):
        os.makedirs(paths['img_dirs'][folder])
        os.makedirs(paths['ann_dirs'][folder])
        for index in range(counts[folder]):
            rng = np.random.default_rng([seed, split_index, index])
            sample = render_shapes_image(
                rng, img_size=img_size, min_objects=1,
                max_objects=max_objects, min_size=min_size,
                max_size=max_size)
            seg = shapes_label_map(sample.labels, sample.masks,
                                   min_label_area)
            if folder == 'training':
                pixel_counts += np.bincount(
                    seg.ravel(), minlength=len(pixel_counts))
            stem = _file_stem(split_index, index)
            img_path = osp.join(paths['img_dirs'][folder], stem + '.jpg')
            ann_path = osp.join(paths['ann_dirs'][folder], stem + '.png')
            if not cv2.imwrite(img_path, sample.img,
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f'cv2.imwrite could not write {img_path}')
            if not cv2.imwrite(ann_path, seg):
                raise OSError(f'cv2.imwrite could not write {ann_path}')
    counts_by_name = {'unlabelled': int(pixel_counts[0])}
    counts_by_name.update({
        name: int(n)
        for name, n in zip(SHAPES_SEG_CLASSES, pixel_counts[1:])
    })
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(dict(meta, complete=True, pixel_counts=counts_by_name), f)
    return dict(result, pixel_counts=counts_by_name, reused=False)


__all__ = [
    'SHAPES_SEG_CLASSES', 'SHAPES_SEG_PALETTE', 'SHAPES_SEG_METAINFO',
    'shapes_label_map', 'generate_shapes_ade'
]
