"""Check that a config's dataset files exist before a run starts.

mmengine only finds a missing annotation file when the dataset is built
(often minutes into a run, inside a dataloader worker) and a missing image
folder only when the first image fails to load. :func:`check_dataset_paths`
resolves the paths exactly as ``mmengine.dataset.BaseDataset`` does and
reports every missing one with the config key it came from and how to get
the data.
"""
import os
import os.path as osp
import re
from typing import Any, Iterator, List, Mapping, NamedTuple, Sequence, Tuple

from mmengine.utils import is_abs

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# (pattern on the lower-cased path, how to get the data); the first match
# wins, so 'synthetic' goes before the public datasets it may imitate.
_DATA_HINTS = (
    (re.compile(r'synthetic_shapes_seg|shapes_seg'),
     'synthetic data: python tools/data/make_synthetic.py shapes_seg '
     '--out {data_root}'),
    (re.compile(r'synthetic'),
     'synthetic data: python tools/data/make_synthetic.py shapes '
     '--out {data_root}'),
    (re.compile(r'coco'), 'COCO 2017: download train2017.zip, val2017.zip and '
     'annotations_trainval2017.zip from https://cocodataset.org/#download '
     'and unzip into {data_root} so it holds annotations/'
     'instances_{{train,val}}2017.json, train2017/ and val2017/'),
    (re.compile(r'ade20k|adechallenge'),
     'ADE20K: download http://data.csail.mit.edu/places/ADEchallenge/'
     'ADEChallengeData2016.zip and unzip so {data_root} holds '
     'images/{{training,validation}}/ and annotations/'
     '{{training,validation}}/'),
    (re.compile(r'cityscapes'),
     'Cityscapes: download leftImg8bit_trainvaltest.zip and '
     'gtFine_trainvaltest.zip from '
     'https://www.cityscapes-dataset.com/downloads/ (free account) into '
     '{data_root} (leftImg8bit/{{train,val}}/, gtFine/{{train,val}}/), then '
     'make *_labelTrainIds.png with python '
     'tools/dataset_converters/cityscapes.py {data_root}'),
)
_GENERIC_HINT = ('check data_root, ann_file and data_prefix in the config '
                 '(or override them with --cfg-options)')


class MissingPath(NamedTuple):
    """A dataset path that does not exist.

    Attributes:
        key (str): Dotted config key, e.g.
            ``'train_dataloader.dataset.data_prefix.img'``.
        path (str): The path as the dataset would open it.
        data_root (str): ``data_root`` of the dataset config ('' if unset).
    """
    key: str
    path: str
    data_root: str


def _resolve(data_root: str, path: str) -> str:
    """Join as ``BaseDataset._join_prefix`` does: absolute paths are kept."""
    if data_root and not is_abs(path):
        return osp.join(data_root, path)
    return path


def _is_remote(path: str) -> bool:
    return '://' in path


def _collect(dataset: Any, key: str, missing: List[MissingPath]) -> None:
    """Append the missing paths of a dataset config and its wrapped ones."""
    if not isinstance(dataset, Mapping):
        return  # an already built dataset object: nothing to resolve
    inner = dataset.get('dataset')
    if inner is not None:
        _collect(inner, f'{key}.dataset', missing)
    inners = dataset.get('datasets')
    if isinstance(inners, Sequence) and not isinstance(inners, str):
        for i, sub in enumerate(inners):
            _collect(sub, f'{key}.datasets[{i}]', missing)

    backend = (dataset.get('backend_args') or {}).get('backend', 'local')
    if backend != 'local':
        return  # e.g. petrel path mapping: local-looking paths are remote
    data_root = dataset.get('data_root') or ''
    if not isinstance(data_root, str) or _is_remote(data_root):
        return
    if data_root and not osp.isdir(data_root):
        missing.append(MissingPath(f'{key}.data_root', data_root, data_root))

    ann_file = dataset.get('ann_file') or ''
    if isinstance(ann_file, str) and ann_file:
        path = _resolve(data_root, ann_file)
        if not _is_remote(path) and not osp.exists(path):
            missing.append(MissingPath(f'{key}.ann_file', path, data_root))

    data_prefix = dataset.get('data_prefix') or {}
    if isinstance(data_prefix, Mapping):
        for name, prefix in data_prefix.items():
            if not isinstance(prefix, str) or not (prefix or data_root):
                continue
            path = _resolve(data_root, prefix)
            if not _is_remote(path) and not osp.exists(path):
                missing.append(
                    MissingPath(f'{key}.data_prefix.{name}', path, data_root))
            elif (name == 'seg_map_path' and not _is_remote(path)
                  and _is_cityscapes(dataset, path)):
                suffix = dataset.get('seg_map_suffix',
                                     CITYSCAPES_SEG_MAP_SUFFIX)
                if not _has_file_ending(path, suffix):
                    missing.append(MissingPath(
                        f'{key}.data_prefix.seg_map_path',
                        osp.join(path, '<city>', '*' + suffix), data_root))


# mmseg's CityscapesDataset label maps, made by its cityscapes converter
CITYSCAPES_SEG_MAP_SUFFIX = '_gtFine_labelTrainIds.png'


def _is_cityscapes(dataset: Mapping, path: str) -> bool:
    return 'cityscapes' in str(dataset.get('type', '')).lower() or \
        'gtfine' in path.lower()


def _has_file_ending(root: str, suffix: str) -> bool:
    """Whether any file under ``root`` ends with ``suffix`` (stops at the
    first one)."""
    for _, _, files in os.walk(root):
        if any(f.endswith(suffix) for f in files):
            return True
    return False


def iter_dataloaders(cfg: Any) -> Iterator[Tuple[str, Mapping]]:
    """Every dataloader config a run builds, with its config key.

    ``train_dataloader``, ``val_dataloader`` and ``test_dataloader``, then
    the dataloaders hooks build themselves: any ``*dataloader`` key of a
    ``custom_hooks`` entry (EfficientAD's
    ``custom_hooks[0].map_norm_dataloader``). Only dicts with a ``dataset``
    are yielded.

    Args:
        cfg (:obj:`mmengine.Config` | dict): The full config.

    Yields:
        tuple[str, Mapping]: (key, dataloader config).
    """
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if isinstance(loader, Mapping) and loader.get('dataset') is not None:
            yield key, loader
    hooks = cfg.get('custom_hooks') or []
    if not isinstance(hooks, Sequence) or isinstance(hooks, str):
        return
    for i, hook in enumerate(hooks):
        if not isinstance(hook, Mapping):
            continue
        for name, loader in hook.items():
            if str(name).endswith('dataloader') and \
                    isinstance(loader, Mapping) and \
                    loader.get('dataset') is not None:
                yield f'custom_hooks[{i}].{name}', loader


def iter_datasets(dataset: Any, key: str) -> Iterator[Tuple[str, Mapping]]:
    """The leaf dataset configs of a (possibly wrapped) dataset config.

    Wrappers are recursed into through ``dataset`` (MultiImageMixDataset,
    RepeatDataset, ClassBalancedDataset) or ``datasets`` (ConcatDataset).

    Yields:
        tuple[str, Mapping]: (key, dataset config), e.g.
        ``('train_dataloader.dataset.dataset', {...})``.
    """
    if not isinstance(dataset, Mapping):
        return
    inner = dataset.get('dataset')
    inners = dataset.get('datasets')
    if inner is not None:
        yield from iter_datasets(inner, f'{key}.dataset')
    elif isinstance(inners, Sequence) and not isinstance(inners, str):
        for i, sub in enumerate(inners):
            yield from iter_datasets(sub, f'{key}.datasets[{i}]')
    else:
        yield key, dataset


def find_missing_dataset_paths(cfg: Any) -> List[MissingPath]:
    """List the dataset paths of a config that do not exist.

    See :func:`check_dataset_paths`, which raises instead of returning.

    Args:
        cfg (:obj:`mmengine.Config` | dict): The full config.

    Returns:
        list[:obj:`MissingPath`]: In config order; empty if all exist.
    """
    if not callable(getattr(cfg, 'get', None)):
        raise TypeError('check_dataset_paths: cfg must be an mmengine Config '
                        f'or a dict, but got {type(cfg).__name__}')
    missing: List[MissingPath] = []
    for loader_key, loader in iter_dataloaders(cfg):
        _collect(loader['dataset'], f'{loader_key}.dataset', missing)
    return missing


def _hint(item: MissingPath) -> str:
    text = f'{item.data_root} {item.path}'.lower()
    data_root = item.data_root or osp.dirname(item.path.rstrip('/\\')) or '.'
    for pattern, hint in _DATA_HINTS:
        if pattern.search(text):
            return hint.format(data_root=data_root)
    return _GENERIC_HINT


def check_dataset_paths(cfg: Any) -> None:
    """Raise if a dataloader's annotation file or data folder is missing.

    For each of ``train_dataloader``, ``val_dataloader`` and
    ``test_dataloader`` (absent or None ones are skipped) and each
    dataloader of a hook (:func:`iter_dataloaders`) the ``dataset`` is
    walked, recursing into wrappers through their ``dataset`` key
    (``MultiImageMixDataset``, ``RepeatDataset``, ``ClassBalancedDataset``)
    or ``datasets`` list (``ConcatDataset``). ``data_root`` is joined with
    ``ann_file`` and each ``data_prefix`` value as
    ``BaseDataset._join_prefix`` does (absolute paths kept). Remote paths
    (``s3://``, ``http://``) and datasets with a non-local ``backend_args``
    are not checked; relative paths are resolved from the current directory.

    Args:
        cfg (:obj:`mmengine.Config` | dict): The full config.

    Raises:
        FileNotFoundError: Listing every missing path with its config key
            (e.g. ``train_dataloader.dataset.ann_file``) and, once per
            dataset kind, how to get the data.
        TypeError: If ``cfg`` has no ``get`` method.

    Examples:
        >>> from mmengine import Config
        >>> cfg = Config(dict(train_dataloader=dict(dataset=dict(
        ...     data_root='data/synthetic_shapes/',
        ...     ann_file='annotations/instances_train.json'))))
        >>> check_dataset_paths(cfg)  # doctest: +SKIP
        FileNotFoundError: check_dataset_paths: 2 dataset path(s) ...
    """
    missing = find_missing_dataset_paths(cfg)
    if not missing:
        return
    lines = [
        f'check_dataset_paths: {len(missing)} dataset path(s) in the config '
        f'do not exist (relative paths are resolved from {os.getcwd()}):'
    ]
    lines += [f'  {item.key}: {item.path}' for item in missing]
    hints: List[str] = []
    for item in missing:
        hint = _hint(item)
        if hint not in hints:
            hints.append(hint)
    lines.append('How to get the data:')
    lines += [f'  {hint}' for hint in hints]
    root_keys = [item.key for item in missing
                 if item.key.endswith('.data_root')]
    if root_keys:
        overrides = ' '.join(
            re.sub(r'\[(\d+)\]', r'.\1', key) + '=/path/to/data/'
            for key in root_keys)  # --cfg-options writes list items as .i
        lines.append('Or point the config at an existing copy: '
                     f'--cfg-options {overrides} (and the evaluator\'s '
                     'ann_file, e.g. val_evaluator.ann_file=...)')
    raise FileNotFoundError('\n'.join(lines))
