"""Check a config's COCO annotation files and class names before a run.

mmdet finds a broken annotation file late and obscurely: an empty or
truncated file is a raw ``JSONDecodeError`` traceback, a file with
annotations but no images a ``ValueError`` from deep inside, a missing image
one warning per epoch, and a class list that does not match the file's
categories nothing at all: ``CocoDataset`` labels the categories it finds in
*file order* ``0, 1, ...`` and names them by position in
``metainfo.classes``, so a custom file whose ``categories`` lists only the
classes it uses, trained with COCO's 80 names, turns 'cup' into 'person'
without a word. :func:`check_annotation_files` reads each COCO file of the
config once and reports every fault as one line naming the file;
:func:`check_num_classes` compares each head's ``num_classes`` with the
class names.

Faults (:class:`AnnotationError`, a ``ValueError``):

* the file is empty, not JSON, or not a COCO dict (``images``,
  ``annotations``, ``categories``);
* annotations but no images, or annotations of image ids not in ``images``;
* ``category_id`` not in ``categories``;
* images without ``width``/``height``, boxes that are not 4 numbers;
* boxes of non-positive size or wholly outside their image (mmdet drops them
  silently), image files listed but missing: counted, with the first few
  named; ``severity='warn'`` turns these two into warnings (mmdet survives
  them: the boxes are dropped, ``LoadImageFromFileSafe`` skips the images);
* class names that mmdet would map to the wrong categories (see above).

Boxes partly outside their image are reported (info) and kept: the
pipeline's ``Resize``/``RandomAffine`` clip them to the image.
"""
import json
import logging
import os.path as osp
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence,
                    Tuple)

from mmengine.logging import print_log

from .dataset_check import _resolve, iter_dataloaders, iter_datasets

SEVERITIES = ('error', 'warn')
_SHOW = 3  # names listed per fault


class AnnotationError(ValueError):
    """Faults of a config's annotation files, one line per fault."""


def _first(items: Sequence[Any]) -> str:
    shown = ', '.join(str(i) for i in list(items)[:_SHOW])
    return shown + (', ...' if len(items) > _SHOW else '')


def _dataset_class(type_name: Any, scope: Optional[str]) -> Optional[type]:
    if not isinstance(type_name, str):
        return type_name if isinstance(type_name, type) else None
    from .config_check import _lookup
    return _lookup(type_name, scope)


def _is_coco(dataset: Mapping, scope: Optional[str]) -> bool:
    ann_file = dataset.get('ann_file')
    if not isinstance(ann_file, str) or not ann_file.endswith('.json'):
        return False
    cls = _dataset_class(dataset.get('type'), scope)
    if cls is None:
        return False
    from mmdet.datasets import CocoDataset
    return issubclass(cls, CocoDataset)


def dataset_classes(dataset: Mapping,
                    scope: Optional[str]) -> Optional[Tuple[str, ...]]:
    """The class names a dataset config gives its samples:
    ``metainfo.classes``, else its type's ``METAINFO['classes']``.

    Returns:
        tuple[str] | None: None when neither is known.
    """
    metainfo = dataset.get('metainfo')
    if isinstance(metainfo, Mapping) and metainfo.get('classes') is not None:
        return tuple(metainfo['classes'])
    cls = _dataset_class(dataset.get('type'), scope)
    default = getattr(cls, 'METAINFO', {}).get('classes')
    return None if default is None else tuple(default)


def _load_json(path: str, faults: List[str]) -> Optional[dict]:
    if osp.getsize(path) == 0:
        faults.append(f'{path}: the file is empty (0 bytes); expected a COCO '
                      'JSON with images, annotations and categories')
        return None
    try:
        with open(path, 'rb') as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        where = f'line {e.lineno} column {e.colno}: {e.msg}' if isinstance(
            e, json.JSONDecodeError) else str(e)
        faults.append(f'{path}: not valid JSON ({where}); a truncated copy? '
                      'Re-export or re-download it')
        return None
    if not isinstance(data, dict):
        faults.append(f'{path}: a COCO file is a JSON object with images, '
                      f'annotations and categories, got a '
                      f'{type(data).__name__}')
        return None
    for key in ('images', 'categories'):
        if not isinstance(data.get(key), list):
            faults.append(f'{path}: no {key!r} list (keys: '
                          f'{", ".join(sorted(data)) or "none"})')
            return None
    if not isinstance(data.get('annotations', []), list):
        faults.append(f'{path}: \'annotations\' must be a list')
        return None
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _CocoFile:
    """One COCO JSON, checked once; ``faults`` / ``soft`` / ``info`` lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.faults: List[str] = []  # always errors
        self.soft: List[str] = []  # errors unless severity='warn'
        self.info: List[str] = []
        self.data = _load_json(path, self.faults)
        self.images_checked: set = set()
        if self.data is not None:
            self._check()

    @property
    def categories(self) -> List[dict]:
        return [] if self.data is None else self.data['categories']

    def _check(self) -> None:
        path, data = self.path, self.data
        images, anns = data['images'], data.get('annotations', [])
        cats = data['categories']
        if not images:
            if anns:
                self.faults.append(
                    f'{path}: {len(anns)} annotations but no images; every '
                    "annotation's image_id must be listed in 'images' (with "
                    'id, file_name, width, height)')
            else:
                self.faults.append(f'{path}: no images')
            return
        bad_imgs = [i for i, img in enumerate(images)
                    if not isinstance(img, dict) or 'id' not in img
                    or 'file_name' not in img or not _is_number(
                        img.get('width')) or not _is_number(img.get('height'))]
        if bad_imgs:
            self.faults.append(
                f'{path}: {len(bad_imgs)} of {len(images)} images lack id, '
                f'file_name, width or height (first at images[{bad_imgs[0]}])')
            return
        sizes = {img['id']: (img['width'], img['height']) for img in images}
        cat_ids = {c.get('id') for c in cats if isinstance(c, dict)}
        if any(not isinstance(c, dict) or 'id' not in c or 'name' not in c
               for c in cats):
            self.faults.append(f'{path}: every category needs an id and a '
                               'name')
            return
        no_image, bad_cat, bad_box, no_area = [], {}, [], 0
        empty, outside, partly, tiny = 0, 0, 0, 0
        for ann in anns:
            if not isinstance(ann, dict):
                bad_box.append(ann)
                continue
            if ann.get('image_id') not in sizes:
                no_image.append(ann.get('image_id'))
                continue
            if ann.get('category_id') not in cat_ids:
                bad_cat.setdefault(ann.get('category_id'), 0)
                bad_cat[ann.get('category_id')] += 1
            bbox = ann.get('bbox')
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or \
                    not all(_is_number(v) for v in bbox):
                bad_box.append(ann.get('id'))
                continue
            if 'area' not in ann:
                no_area += 1
            if ann.get('ignore', False):
                continue
            x, y, w, h = bbox
            width, height = sizes[ann['image_id']]
            if w <= 0 or h <= 0:
                empty += 1
            elif min(x + w, width) - max(x, 0) <= 0 or \
                    min(y + h, height) - max(y, 0) <= 0:
                outside += 1
            elif w < 1 or h < 1:
                tiny += 1
            elif x < 0 or y < 0 or x + w > width or y + h > height:
                partly += 1
        if no_image:
            self.faults.append(
                f'{path}: {len(no_image)} annotations refer to image ids not '
                f"in 'images' (first: {_first(no_image)})")
        if bad_cat:
            self.faults.append(
                f'{path}: {sum(bad_cat.values())} annotations have a '
                "category_id not in 'categories' "
                f'({_first(sorted(bad_cat, key=str))}; '
                f'categories have ids {_first(sorted(cat_ids, key=str))})')
        if bad_box:
            self.faults.append(
                f'{path}: {len(bad_box)} annotations have no [x, y, w, h] '
                f'bbox of 4 numbers (first ids: {_first(bad_box)})')
        if no_area:
            self.faults.append(
                f"{path}: {no_area} annotations have no 'area' (mmdet's "
                'CocoDataset reads it; w * h will do for boxes)')
        if empty or outside:
            parts = []
            if empty:
                parts.append(f'{empty} with non-positive width or height')
            if outside:
                parts.append(f'{outside} wholly outside their image')
            self.soft.append(
                f'{path}: {" and ".join(parts)} of {len(anns)} boxes; '
                "mmdet's CocoDataset drops them when loading")
        if tiny:
            self.info.append(f'{path}: {tiny} boxes narrower or lower than '
                             '1 px are dropped by mmdet\'s CocoDataset')
        if partly:
            self.info.append(f'{path}: {partly} boxes extend past their '
                             'image; they are kept and clipped to the image '
                             'by the pipeline')

    def check_images(self, img_dir: str) -> None:
        """Count the listed image files missing under ``img_dir``."""
        if self.data is None or img_dir in self.images_checked:
            return
        self.images_checked.add(img_dir)
        images = self.data['images']
        missing = [img['file_name'] for img in images
                   if not osp.isfile(osp.join(img_dir, img['file_name']))]
        if missing:
            self.soft.append(
                f'{self.path}: {len(missing)} of {len(images)} images listed '
                f'are missing under {img_dir} (first: {_first(missing)})')


def label_mapping_fault(path: str, categories: List[dict],
                        classes: Sequence[str], key: str) -> Optional[str]:
    """One line if mmdet would label the file's categories wrongly.

    ``CocoDataset`` (and ``CocoMetric``) take the file's categories whose
    name is in ``classes``, in file order, as labels ``0, 1, ...`` and name
    label ``i`` ``classes[i]``: right only when those categories are a
    prefix of ``classes`` in the same order.

    Args:
        path (str): The annotation file (for the message).
        categories (list[dict]): Its ``categories``.
        classes (Sequence[str]): The class names the config gives.
        key (str): Config key of the classes, for the message.

    Returns:
        str | None: The fault, or None when every label is right.
    """
    names = [c['name'] for c in categories]
    used = [n for n in names if n in set(classes)]
    wrong = [(i, n) for i, n in enumerate(used) if classes[i] != n]
    if used and not wrong:
        return None
    in_order = ', '.join(f'{c["name"]!r}' for c in categories)
    fix = (f'--cfg-options {key}="[{in_order}]" and num_classes='
           f'{len(names)} in the model\'s head(s)')
    if not used:
        return (f'{path}: none of its {len(names)} categories '
                f'({_first(names)}) is in {key} ({len(classes)} names: '
                f'{_first(classes)}); set the classes to the file\'s '
                f'categories: {fix}')
    i, name = wrong[0]
    return (f'{path}: mmdet would label category {name!r} as class {i} '
            f'{classes[i]!r} of {key} ({len(classes)} names: '
            f'{_first(classes)}; the file has {len(names)} categories: '
            f'{_first(names)}); give the classes in the file\'s category '
            f'order: {fix} (a class missing from this file must still be '
            "listed in its 'categories')")


def _img_dir(dataset: Mapping) -> Optional[str]:
    prefix = dataset.get('data_prefix') or {}
    img = prefix.get('img', prefix.get('img_path')) if isinstance(
        prefix, Mapping) else None
    data_root = dataset.get('data_root') or ''
    if img is None and not data_root:
        return None
    return _resolve(data_root, img or '')


def _coco_datasets(cfg: Any, scope: Optional[str]) -> Iterator[
        Tuple[str, Mapping]]:
    for loader_key, loader in iter_dataloaders(cfg):
        for key, dataset in iter_datasets(loader['dataset'],
                                          f'{loader_key}.dataset'):
            if _is_coco(dataset, scope):
                yield key, dataset


def _evaluators(cfg: Any) -> Iterator[Tuple[str, str, Mapping]]:
    """(evaluator key, loader key, metric cfg) of each CocoMetric-style
    metric with an ``ann_file``."""
    for prefix in ('val', 'test'):
        evaluator = cfg.get(f'{prefix}_evaluator')
        metrics = evaluator if isinstance(evaluator, (list, tuple)) \
            else [evaluator]
        for i, metric in enumerate(metrics):
            if not isinstance(metric, Mapping):
                continue
            if isinstance(metric.get('metrics'), (list, tuple)):  # Evaluator
                continue
            ann_file = metric.get('ann_file')
            if isinstance(ann_file, str) and ann_file.endswith('.json') and \
                    'coco' in str(metric.get('type', '')).lower():
                key = f'{prefix}_evaluator' + (
                    f'[{i}]' if isinstance(evaluator, (list, tuple)) else '')
                yield key, f'{prefix}_dataloader', metric


def check_annotation_files(cfg: Any, severity: str = 'error') -> None:
    """Check every COCO annotation file of a config before a run.

    Walks the datasets of every dataloader (``train/val/test_dataloader``
    and those of ``custom_hooks``, through dataset wrappers) whose type is a
    ``CocoDataset`` and whose ``ann_file`` is a ``.json``, and each COCO
    evaluator's ``ann_file``. Each file is read once. Missing files are
    :func:`~densekit.utils.dataset_check.check_dataset_paths`' business and
    skipped here.

    Args:
        cfg (:obj:`mmengine.Config` | dict): The full config.
        severity (str): ``'error'`` (default) or ``'warn'``: whether boxes
            mmdet drops and missing image files stop the run or are logged
            as warnings. Structural faults always stop it.

    Raises:
        AnnotationError: One line per fault, each naming the file.
    """
    if severity not in SEVERITIES:
        raise ValueError(f'check_annotation_files: severity must be one of '
                         f'{SEVERITIES}, but got {severity!r}')
    scope = cfg.get('default_scope')
    files: Dict[str, _CocoFile] = {}
    # file -> [fault line, other keys with the same fault]
    label_faults: Dict[str, list] = {}

    def add_label_fault(path: str, fault: Optional[str], key: str) -> bool:
        if not fault:
            return False
        if path in label_faults:
            label_faults[path][1].append(key)
        else:
            label_faults[path] = [fault, []]
        return True

    def get(path: str) -> Optional[_CocoFile]:
        if not osp.isfile(path):
            return None
        if path not in files:
            files[path] = _CocoFile(path)
        return files[path]

    loader_classes: Dict[str, Tuple[str, ...]] = {}
    for key, dataset in _coco_datasets(cfg, scope):
        path = _resolve(dataset.get('data_root') or '', dataset['ann_file'])
        coco = get(path)
        if coco is None:
            continue
        img_dir = _img_dir(dataset)
        if img_dir is not None and osp.isdir(img_dir):
            coco.check_images(img_dir)
        classes = dataset_classes(dataset, scope)
        loader_classes.setdefault(key.split('.')[0], classes)
        if coco.data is not None and classes is not None:
            fault = label_mapping_fault(path, coco.categories, classes,
                                        f'{key}.metainfo.classes')
            if not add_label_fault(path, fault, f'{key}.metainfo.classes'):
                _log_ignored(coco, classes)
    for key, loader_key, metric in _evaluators(cfg):
        coco = get(metric['ann_file'])
        classes = loader_classes.get(loader_key)
        if coco is None or coco.data is None or classes is None:
            continue
        fault = label_mapping_fault(
            metric['ann_file'], coco.categories, classes,
            f'{loader_key}.dataset.metainfo.classes (given to {key})')
        add_label_fault(coco.path, fault, key)

    errors, warnings = [], []
    for coco in files.values():
        errors += coco.faults
        (warnings if severity == 'warn' else errors).extend(coco.soft)
        for line in coco.info:
            print_log(line, logger='current')
    for line in warnings:
        print_log(line, logger='current', level=logging.WARNING)
    for fault, others in label_faults.values():
        errors.append(fault + (f'; the same for {", ".join(others)}'
                               if others else ''))
    if errors:
        raise AnnotationError('\n'.join(errors))


def _log_ignored(coco: _CocoFile, classes: Sequence[str]) -> None:
    """Info line when the classes are a subset of the file's categories."""
    other = [c['name'] for c in coco.categories if c['name'] not in classes]
    if not other or getattr(coco, '_logged_subset', False):
        return
    coco._logged_subset = True
    other_ids = {c['id'] for c in coco.categories if c['name'] not in classes}
    n = sum(1 for a in coco.data.get('annotations', [])
            if isinstance(a, dict) and a.get('category_id') in other_ids)
    print_log(f'{coco.path}: training on {len(classes)} of its '
              f'{len(coco.categories)} categories; {n} annotations of the '
              f'other {len(other)} ({_first(other)}) are ignored',
              logger='current')


def _num_classes_entries(node: Any, path: str) -> Iterator[Tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f'{path}.{key}'
            if key == 'num_classes':
                yield child, value
            elif 'rpn' not in str(key):  # RPN heads are class-agnostic (1)
                yield from _num_classes_entries(value, child)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _num_classes_entries(value, f'{path}[{i}]')


def check_num_classes(cfg: Any, loader_key: str = 'train_dataloader') -> None:
    """Raise if a detection head's ``num_classes`` differs from the number
    of class names its dataset gives.

    Only for detection configs (``default_scope='mmdet'``); every
    ``num_classes`` under ``model`` outside RPN heads is compared with
    :func:`dataset_classes` of the first dataset of ``loader_key``.

    Args:
        cfg (:obj:`mmengine.Config` | dict): The full config.
        loader_key (str): ``'train_dataloader'`` for training,
            ``'test_dataloader'`` for testing.

    Raises:
        AnnotationError: One line naming both keys and the fix.
    """
    scope = cfg.get('default_scope')
    if scope != 'mmdet' or not isinstance(cfg.get(loader_key), Mapping):
        return
    loader = cfg[loader_key]
    if loader.get('dataset') is None:
        return
    found = next(iter_datasets(loader['dataset'], f'{loader_key}.dataset'),
                 None)
    if found is None:
        return
    key, dataset = found
    classes = dataset_classes(dataset, scope)
    if classes is None:
        return
    for head_key, num in _num_classes_entries(cfg.get('model'), 'model'):
        if isinstance(num, int) and num != len(classes):
            raise AnnotationError(
                f'{head_key}={num} but {key}.metainfo.classes has '
                f'{len(classes)} names ({_first(classes)}); set '
                f'--cfg-options {head_key.replace("[", ".").replace("]", "")}'
                f'={len(classes)} (or give {num} class names)')
