"""Annotation files and class names are checked before a run, one line per
fault naming the file."""
import json

import cv2
import numpy as np
import pytest
from mmengine import Config

from densekit.utils.annotation_check import (AnnotationError,
                                             check_annotation_files,
                                             check_num_classes,
                                             label_mapping_fault)
from densekit.utils.dataset_check import find_missing_dataset_paths
from tests.conftest import ROOT

# a custom set's categories: only the classes used, ids from a bigger set
CATEGORIES = [dict(id=47, name='cup'), dict(id=17, name='cat')]
COCO_80 = None  # mmdet's CocoDataset.METAINFO classes, read lazily


def write_coco(root, images=3, categories=CATEGORIES, boxes=None):
    """A real-layout COCO folder: annotations/instances_train.json and
    train/*.jpg (64x48 images, one box per image unless ``boxes``)."""
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'train').mkdir(exist_ok=True)
    data = dict(images=[], annotations=[], categories=categories)
    for i in range(images):
        name = f'img_{i}.jpg'
        cv2.imwrite(str(root / 'train' / name),
                    np.full((48, 64, 3), 40 * i, np.uint8))
        data['images'].append(dict(id=i + 1, file_name=name, width=64,
                                   height=48))
        for j, box in enumerate(boxes or [[4, 4, 20, 16]]):
            data['annotations'].append(dict(
                id=len(data['annotations']) + 1, image_id=i + 1,
                category_id=categories[j % len(categories)]['id'],
                bbox=box, area=box[2] * box[3], iscrowd=0))
    path = root / 'annotations' / 'instances_train.json'
    path.write_text(json.dumps(data))
    return path


def config(root, classes=('cup', 'cat'), num_classes=None):
    metainfo = None if classes is None else dict(classes=classes)
    dataset = dict(type='CocoDataset', data_root=str(root) + '/',
                   ann_file='annotations/instances_train.json',
                   data_prefix=dict(img='train/'))
    if metainfo:
        dataset['metainfo'] = metainfo
    return Config(dict(
        default_scope='mmdet',
        model=dict(bbox_head=dict(num_classes=num_classes or len(
            classes or range(80)))),
        train_dataloader=dict(batch_size=2, dataset=dict(
            type='MultiImageMixDataset', dataset=dataset, pipeline=[])),
        val_dataloader=dict(batch_size=1, dataset=dict(dataset)),
        val_evaluator=dict(type='CocoMetric',
                           ann_file=str(root / 'annotations' /
                                        'instances_train.json'))))


def _fault(cfg, severity='error'):
    with pytest.raises(AnnotationError) as err:
        check_annotation_files(cfg, severity)
    return str(err.value).splitlines()


def test_custom_set_with_its_classes_passes(tmp_path):
    write_coco(tmp_path)
    check_annotation_files(config(tmp_path))
    check_num_classes(config(tmp_path))


@pytest.mark.parametrize('content, expected', [
    (b'', 'the file is empty (0 bytes)'),
    (b'{"images": [', 'not valid JSON (line 1 column 13'),
    (b'[1, 2]', 'a COCO file is a JSON object'),
    (b'{"annotations": []}', "no 'images' list"),
])
def test_unreadable_file_is_one_line(tmp_path, content, expected):
    path = write_coco(tmp_path)
    path.write_bytes(content)
    line, = _fault(config(tmp_path))
    assert line.startswith(f'{path}: ') and expected in line


def test_annotations_without_images(tmp_path):
    path = write_coco(tmp_path)
    data = json.loads(path.read_text())
    data['images'] = []
    path.write_text(json.dumps(data))
    line, = _fault(config(tmp_path))
    assert line == (f'{path}: 3 annotations but no images; every '
                    "annotation's image_id must be listed in 'images' (with "
                    'id, file_name, width, height)')


def test_unknown_category_ids_are_counted(tmp_path):
    path = write_coco(tmp_path)
    data = json.loads(path.read_text())
    data['annotations'][0]['category_id'] = 5
    data['annotations'][2]['category_id'] = 5
    path.write_text(json.dumps(data))
    line, = _fault(config(tmp_path))
    assert line.startswith(f'{path}: 2 annotations have a category_id not '
                           "in 'categories' (5; categories have ids 17, 47)")


def test_bad_boxes_are_counted_and_their_fate_said(tmp_path):
    boxes = [[4, 4, 20, 16], [4, 4, 0, 10], [70, 50, 5, 5], [50, 40, 30, 30]]
    path = write_coco(tmp_path, boxes=boxes)
    line, = _fault(config(tmp_path))
    assert line == (f'{path}: 3 with non-positive width or height and 3 '
                    'wholly outside their image of 12 boxes; mmdet\'s '
                    'CocoDataset drops them when loading')
    # --data-check warn: logged, the run goes on
    check_annotation_files(config(tmp_path), 'warn')


def test_missing_images_counted_before_training(tmp_path):
    path = write_coco(tmp_path, images=4)
    (tmp_path / 'train' / 'img_1.jpg').unlink()
    (tmp_path / 'train' / 'img_3.jpg').unlink()
    line, = _fault(config(tmp_path))
    assert line == (f'{path}: 2 of 4 images listed are missing under '
                    f'{tmp_path}/train/ (first: img_1.jpg, img_3.jpg)')


def test_default_80_classes_on_a_custom_file_stop_with_the_fix(tmp_path):
    """The silent remapping: cup labelled 0 and named 'person'."""
    path = write_coco(tmp_path)
    lines = _fault(config(tmp_path, classes=None))
    line, = lines  # train, val and the evaluator share the file: one line
    assert line.startswith(
        f"{path}: mmdet would label category 'cup' as class 0 'person' of "
        'train_dataloader.dataset.dataset.metainfo.classes (80 names: ')
    assert ('--cfg-options train_dataloader.dataset.dataset.metainfo.'
            "classes=\"['cup', 'cat']\" and num_classes=2") in line


def test_classes_in_another_order_than_the_file_stop(tmp_path):
    write_coco(tmp_path)
    lines = _fault(config(tmp_path, classes=('cat', 'cup')))
    assert "label category 'cup' as class 0 'cat'" in lines[0]


def test_subset_of_the_file_categories_is_fine():
    cats = [dict(id=1, name='person'), dict(id=2, name='bicycle'),
            dict(id=3, name='car')]
    assert label_mapping_fault('f.json', cats, ('person', 'bicycle'),
                               'k') is None
    assert label_mapping_fault('f.json', cats, ('person', 'car'),
                               'k') is None
    # mmdet takes the file's order, not the classes': car would be 'person'
    assert "'person' as class 0 'car'" in label_mapping_fault(
        'f.json', cats, ('car', 'person'), 'k')


def test_head_num_classes_must_match_classes(tmp_path):
    write_coco(tmp_path)
    with pytest.raises(AnnotationError) as err:
        check_num_classes(config(tmp_path, num_classes=80))
    assert str(err.value) == (
        'model.bbox_head.num_classes=80 but train_dataloader.dataset.dataset'
        ".metainfo.classes has 2 names (cup, cat); set --cfg-options "
        'model.bbox_head.num_classes=2 (or give 80 class names)')


@pytest.mark.parametrize('name', ['yolov8_n_shapes', 'yolov8_n_coco',
                                  'mamba_yolo_t_shapes',
                                  'faster-rcnn_r50_fpn_shapes',
                                  'retinanet_r50_fpn_1x_coco'])
def test_shipped_configs_heads_match_their_classes(name):
    check_num_classes(Config.fromfile(f'{ROOT}/configs/det/{name}.py'))


def test_hooks_dataloaders_are_checked():
    """EfficientAD's map_norm_dataloader is built by its hook."""
    cfg = Config.fromfile(f'{ROOT}/configs/anomaly/efficientad_s_synthetic.py')
    keys = [m.key for m in find_missing_dataset_paths(cfg)]
    assert any(k.startswith('custom_hooks[') and 'map_norm_dataloader' in k
               for k in keys), keys
