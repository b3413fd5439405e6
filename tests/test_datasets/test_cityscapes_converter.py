"""Cityscapes gtFine -> labelTrainIds, on fixtures in the released format
(``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json`` and
``..._gtFine_labelIds.png``)."""
import json

import cv2
import numpy as np
import pytest

from densekit.datasets.converters import (convert_cityscapes,
                                          label_ids_to_train_ids,
                                          polygons_to_train_ids)
from tests.conftest import run_tool

H, W = 32, 48


def write_polygons(path, objects):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(imgHeight=H, imgWidth=W,
                                    objects=objects)))


def make_gtfine(root):
    city = root / 'gtFine' / 'val' / 'lindau'
    objects = [
        dict(label='road', polygon=[[0, 16], [47, 16], [47, 31], [0, 31]]),
        dict(label='sky', polygon=[[0, 0], [47, 0], [47, 15], [0, 15]]),
        # drawn later: on top of the road
        dict(label='cargroup', polygon=[[10, 20], [20, 20], [20, 28],
                                        [10, 28]]),
        dict(label='person', deleted=1, polygon=[[30, 18], [34, 18],
                                                  [34, 30], [30, 30]]),
        dict(label='license plate', polygon=[[12, 24], [14, 24], [14, 26],
                                             [12, 26]]),
        dict(label='guard rail', polygon=[[40, 20], [46, 20], [46, 30],
                                          [40, 30]]),
    ]
    write_polygons(city / 'lindau_000000_000019_gtFine_polygons.json',
                   objects)
    return city


def test_polygons_follow_json2labelimg_rules(tmp_path):
    city = make_gtfine(tmp_path)
    train_ids = polygons_to_train_ids(
        str(city / 'lindau_000000_000019_gtFine_polygons.json'))
    assert train_ids.shape == (H, W) and train_ids.dtype == np.uint8
    assert train_ids[5, 5] == 10                  # sky
    assert train_ids[30, 2] == 0                  # road
    assert train_ids[22, 15] == 13                # "cargroup" -> car
    assert train_ids[25, 13] == 13                # license plate: skipped
    assert train_ids[24, 32] == 0                 # deleted person: road
    assert train_ids[25, 43] == 255               # guard rail: ignored


def test_label_ids_table():
    ids = np.array([[0, 7, 8, 11, 26], [33, 34, 18, 24, 255]], np.uint8)
    assert label_ids_to_train_ids(ids).tolist() == [[255, 0, 1, 2, 13],
                                                    [18, 255, 255, 11, 255]]


def test_convert_writes_train_ids_beside_the_sources(tmp_path):
    city = make_gtfine(tmp_path)
    written = convert_cityscapes(str(tmp_path))
    assert [p.split('/')[-1] for p in written] == [
        'lindau_000000_000019_gtFine_labelTrainIds.png']
    png = cv2.imread(written[0], cv2.IMREAD_UNCHANGED)
    assert png.shape == (H, W) and png[5, 5] == 10
    # from labelIds: the same map (ids of the same drawing)
    label_ids = np.full((H, W), 7, np.uint8)
    label_ids[:16] = 23
    cv2.imwrite(str(city / 'lindau_000000_000020_gtFine_labelIds.png'),
                label_ids)
    written = convert_cityscapes(str(tmp_path), source='labelIds')
    png = cv2.imread(written[0], cv2.IMREAD_UNCHANGED)
    assert png[0, 0] == 10 and png[20, 0] == 0


def test_bad_input_names_the_file(tmp_path):
    city = tmp_path / 'gtFine' / 'train' / 'aachen'
    bad = city / 'aachen_000000_000019_gtFine_polygons.json'
    write_polygons(bad, [dict(label='spaceship', polygon=[[0, 0], [1, 1],
                                                          [0, 1]])])
    with pytest.raises(ValueError, match=r"aachen_000000_000019_gtFine_"
                       r"polygons\.json: object 0 has unknown label "
                       r"'spaceship'"):
        convert_cityscapes(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='gtFine does not exist'):
        convert_cityscapes(str(tmp_path / 'nowhere'))
    res = run_tool(['tools/dataset_converters/cityscapes.py',
                    str(tmp_path)])
    assert res.returncode == 1 and 'spaceship' in res.stdout
