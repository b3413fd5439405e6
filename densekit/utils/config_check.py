"""Catch config mistakes before a run starts, with messages that say where.

* :func:`check_cfg_options`: every ``--cfg-options`` key must exist in the
  config, or be an argument accepted by the ``type`` of the dict it is added
  to; otherwise the error names the key and the closest existing keys.
* :func:`check_registered_types`: every ``type=`` in the config must resolve
  in the registry tree (under the config's ``default_scope``); otherwise the
  error names the config key and the closest registered names.
"""
import contextlib
import difflib
import inspect
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry
import mmengine.registry as mmengine_registry

# dicts whose ``type`` is not a registry key: mmcv op names (``nms``;
# ``roi_layer``, which mmdet's RoI extractors take from ``mmcv.ops`` by
# name) and albumentations' parameters
_NON_REGISTRY_KEYS = ('nms', 'roi_layer', 'bbox_params', 'keypoint_params')
_NON_REGISTRY_PARENT_TYPES = ('Albu', 'mmdet.Albu', 'mmseg.Albu')
# top-level keys whose ``type``s mmengine's Runner builds from registries
# (other top-level names are plain variables of the config file)
_BUILT_KEYS = ('model', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'val_evaluator', 'test_evaluator',
               'optim_wrapper', 'param_scheduler', 'default_hooks',
               'custom_hooks', 'visualizer', 'train_cfg', 'val_cfg',
               'test_cfg', 'log_processor', 'model_wrapper_cfg')
# top-level keys mmengine's Runner understands besides those in the config
_RUNNER_KEYS = set(inspect.signature(
    __import__('mmengine.runner', fromlist=['Runner']).Runner.__init__)
    .parameters) | {'default_scope', 'custom_imports', 'auto_scale_lr',
                    'launcher', 'resume', 'load_from', 'work_dir'}


def _root_registries() -> List[Registry]:
    return [
        value for value in vars(mmengine_registry).values()
        if isinstance(value, Registry) and value.parent is None
    ]


def _lookup(type_name: str, scope: Optional[str]) -> Optional[type]:
    """Find ``type_name`` in any root registry, as a build would."""
    for root in _root_registries():
        with root.switch_scope_and_registry(scope) as registry:
            try:
                found = registry.get(type_name)
            except Exception:  # noqa: BLE001 - broken lazy import: absent
                found = None
        if found is not None:
            return found
    return None


def _all_registered_names() -> List[str]:
    names = []
    for root in _root_registries():
        stack = [root]
        while stack:
            registry = stack.pop()
            try:
                registry.import_from_location()
            except ImportError:  # a project's optional module: list the rest
                pass
            prefix = '' if registry.scope == 'mmengine' \
                else registry.scope + '.'
            names += [prefix + key for key in registry.module_dict]
            stack += list(registry.children.values())
    return sorted(set(names))


def _iter_types(node: Any, path: str,
                parent_type: Optional[str] = None) -> Iterator[Tuple[str,
                                                                     str]]:
    if isinstance(node, dict):
        node_type = node.get('type')
        key = path.rsplit('.', 1)[-1]
        skip = key in _NON_REGISTRY_KEYS or \
            parent_type in _NON_REGISTRY_PARENT_TYPES
        if isinstance(node_type, str) and not skip:
            yield f'{path}.type' if path else 'type', node_type
        for child_key, value in node.items():
            child_path = f'{path}.{child_key}' if path else str(child_key)
            yield from _iter_types(
                value, child_path,
                node_type if isinstance(node_type, str) else None)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_types(value, f'{path}[{i}]', parent_type)


def check_registered_types(cfg: Config) -> None:
    """Raise ``KeyError`` if a ``type`` in ``cfg`` is registered nowhere.

    Args:
        cfg (Config): A loaded config (its ``custom_imports`` already
            imported, as ``Config.fromfile`` does).
    """
    scope = cfg.get('default_scope')
    with DefaultScope.overwrite_default_scope(scope) if scope else \
            contextlib.nullcontext():
        built = {k: v for k, v in cfg.to_dict().items() if k in _BUILT_KEYS}
        for key, type_name in _iter_types(built, ''):
            if _lookup(type_name, scope) is not None:
                continue
            close = difflib.get_close_matches(
                type_name.split('.')[-1],
                [n.split('.')[-1] for n in _all_registered_names()], n=5)
            full = [
                n for n in _all_registered_names()
                if n.split('.')[-1] in close
            ][:8]
            raise KeyError(
                f'`{key}` = {type_name!r} is not registered in any registry '
                f'(default_scope={scope!r}). Close matches: '
                f'{", ".join(full) or "none"}. Names from another project '
                "need its scope, e.g. 'mmdet.X' or 'densekit.X'.")


def _accepted_args(cls: type) -> Tuple[set, bool]:
    params = inspect.signature(cls.__init__).parameters
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD
                     for p in params.values())
    return set(params) - {'self'}, has_var_kw


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Raise ``KeyError`` for ``--cfg-options`` keys the config cannot take.

    A key is accepted when it exists in ``cfg``, or when its parent dict has a
    registered ``type`` whose constructor takes that argument (or
    ``**kwargs``), or when it is a top-level key mmengine's Runner reads.

    Args:
        cfg (Config): The config *before* ``merge_from_dict(options)``.
        options (dict, optional): Parsed ``--cfg-options``.
    """
    if not options:
        return
    scope = cfg.get('default_scope')
    for dotted in options:
        node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        parts = dotted.split('.')
        for depth, part in enumerate(parts):
            is_leaf = depth == len(parts) - 1
            if isinstance(node, (list, tuple)) and part.isdigit() and \
                    int(part) < len(node):
                node = node[int(part)]
                continue
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            where = '.'.join(parts[:depth]) or '<top level>'
            if is_leaf and isinstance(node, dict):
                if depth == 0 and part in _RUNNER_KEYS:
                    break
                cls = _lookup(node['type'], scope) if isinstance(
                    node.get('type'), str) else None
                if cls is not None:
                    accepted, var_kw = _accepted_args(cls)
                    if var_kw or part in accepted:
                        break
            siblings = list(node.keys()) if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, siblings, n=5)
            raise KeyError(
                f'--cfg-options key {dotted!r}: {part!r} does not exist under '
                f'{where}. Close matches: '
                f'{", ".join(close) if close else "none"}. Existing keys: '
                f'{", ".join(map(str, siblings[:20]))}')
