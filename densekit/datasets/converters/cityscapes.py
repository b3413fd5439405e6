"""Cityscapes ``gtFine`` annotations -> ``*_gtFine_labelTrainIds.png``.

mmseg's ``CityscapesDataset`` reads 19-class ``labelTrainIds`` maps, which
the Cityscapes download does not contain: they are made from the released
``*_gtFine_polygons.json`` (as ``cityscapesscripts``' ``json2labelImg``
does: polygons drawn in file order onto "unlabeled", ``deleted`` objects
skipped, ``<name>group`` read as ``<name>``) or, equivalently, from the
released ``*_gtFine_labelIds.png`` through the official id -> trainId table.
No dependency on cityscapesscripts.
"""
import json
import os
import os.path as osp
from functools import partial
from multiprocessing import Pool
from typing import Dict, List, NamedTuple, Tuple

import cv2
import numpy as np
from PIL import Image, ImageDraw


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int  # 255: ignored in training and evaluation


# cityscapesscripts/helpers/labels.py (name, id, trainId); trainId -1 and
# 255 are both "ignore"
CITYSCAPES_LABELS: Tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row) for row in (
        ('unlabeled', 0, 255), ('ego vehicle', 1, 255),
        ('rectification border', 2, 255), ('out of roi', 3, 255),
        ('static', 4, 255), ('dynamic', 5, 255), ('ground', 6, 255),
        ('road', 7, 0), ('sidewalk', 8, 1), ('parking', 9, 255),
        ('rail track', 10, 255), ('building', 11, 2), ('wall', 12, 3),
        ('fence', 13, 4), ('guard rail', 14, 255), ('bridge', 15, 255),
        ('tunnel', 16, 255), ('pole', 17, 5), ('polegroup', 18, 255),
        ('traffic light', 19, 6), ('traffic sign', 20, 7),
        ('vegetation', 21, 8), ('terrain', 22, 9), ('sky', 23, 10),
        ('person', 24, 11), ('rider', 25, 12), ('car', 26, 13),
        ('truck', 27, 14), ('bus', 28, 15), ('caravan', 29, 255),
        ('trailer', 30, 255), ('train', 31, 16), ('motorcycle', 32, 17),
        ('bicycle', 33, 18), ('license plate', -1, 255)))
NAME_TO_LABEL: Dict[str, CityscapesLabel] = {
    label.name: label for label in CITYSCAPES_LABELS}
# labelId -> trainId lookup table for uint8 maps
_ID_TO_TRAIN_ID = np.full(256, 255, dtype=np.uint8)
for _label in CITYSCAPES_LABELS:
    if _label.id >= 0:
        _ID_TO_TRAIN_ID[_label.id] = _label.train_id

POLYGONS_SUFFIX = '_gtFine_polygons.json'
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a ``labelIds`` array to ``labelTrainIds`` (uint8, 255 ignored)."""
    if label_ids.dtype != np.uint8:
        if label_ids.min() < 0 or label_ids.max() > 255:
            raise ValueError('labelIds must lie in [0, 255]')
        label_ids = label_ids.astype(np.uint8)
    return _ID_TO_TRAIN_ID[label_ids]


def polygons_to_train_ids(polygons_file: str) -> np.ndarray:
    """Rasterise one ``*_gtFine_polygons.json`` into a trainId map.

    Raises:
        ValueError: naming the file, for an unknown label or a malformed
            record.
    """
    with open(polygons_file) as f:
        record = json.load(f)
    try:
        height, width = int(record['imgHeight']), int(record['imgWidth'])
        objects = record['objects']
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{polygons_file}: not a Cityscapes polygons file '
                         f'(needs imgHeight, imgWidth, objects): {e}') from e
    canvas = Image.new('L', (width, height), NAME_TO_LABEL['unlabeled'].id)
    draw = ImageDraw.Draw(canvas)
    for k, obj in enumerate(objects):
        if obj.get('deleted'):
            continue
        name = obj['label']
        if name not in NAME_TO_LABEL and name.endswith('group'):
            name = name[:-len('group')]
        if name not in NAME_TO_LABEL:
            raise ValueError(f'{polygons_file}: object {k} has unknown label '
                             f'{obj["label"]!r}')
        label = NAME_TO_LABEL[name]
        if label.id < 0:
            continue
        polygon = [tuple(map(float, point)) for point in obj['polygon']]
        if len(polygon) < 2:
            continue
        draw.polygon(polygon, fill=label.id)
    return label_ids_to_train_ids(np.asarray(canvas))


def _convert_one(source: str, suffix: str) -> str:
    target = source[:-len(suffix)] + TRAIN_IDS_SUFFIX
    if suffix == POLYGONS_SUFFIX:
        train_ids = polygons_to_train_ids(source)
    else:
        label_ids = cv2.imread(source, cv2.IMREAD_UNCHANGED)
        if label_ids is None or label_ids.ndim != 2:
            raise ValueError(f'{source}: not a single-channel labelIds PNG')
        train_ids = label_ids_to_train_ids(label_ids)
    if not cv2.imwrite(target, train_ids):
        raise OSError(f'could not write {target}')
    return target


def convert_cityscapes(data_root: str, source: str = 'polygons',
                       nproc: int = 1) -> List[str]:
    """Write ``*_gtFine_labelTrainIds.png`` beside every source annotation
    under ``<data_root>/gtFine``.

    Args:
        data_root (str): Folder holding ``gtFine/<split>/<city>/``.
        source (str): ``'polygons'`` (``*_gtFine_polygons.json``, as
            mmseg's converter) or ``'labelIds'`` (``*_gtFine_labelIds.png``).
        nproc (int): Worker processes. Defaults to 1.

    Returns:
        list[str]: Written files, sorted.
    """
    suffix = {'polygons': POLYGONS_SUFFIX,
              'labelIds': LABEL_IDS_SUFFIX}.get(source)
    if suffix is None:
        raise ValueError(f"source must be 'polygons' or 'labelIds', got "
                         f'{source!r}')
    gt_dir = osp.join(data_root, 'gtFine')
    if not osp.isdir(gt_dir):
        raise FileNotFoundError(f'{gt_dir} does not exist: unzip '
                                f'gtFine_trainvaltest.zip into {data_root}')
    sources = sorted(
        osp.join(folder, name) for folder, _, names in os.walk(gt_dir)
        for name in names if name.endswith(suffix))
    if not sources:
        raise FileNotFoundError(f'no *{suffix} under {gt_dir}')
    convert = partial(_convert_one, suffix=suffix)
    if nproc > 1:
        with Pool(nproc) as pool:
            return sorted(pool.map(convert, sources, chunksize=16))
    return sorted(map(convert, sources))
