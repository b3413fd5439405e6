"""Catch config mistakes before a run starts, with messages that say where.

* :func:`check_cfg_options`: every ``--cfg-options`` key must exist in the
  config or be new under a dict that takes it (an argument of the dict's
  ``type``, a key mmengine reads such as ``randomness.seed``, anything under
  ``metainfo``); otherwise the error names the key and the closest existing
  keys.
* :func:`check_registered_types`: every ``type=`` in the config must resolve
  in the registry tree (under the config's ``default_scope``); otherwise the
  error names the config key and the closest registered names.
"""
import contextlib
import difflib
import importlib
import inspect
from typing import Any, Iterator, List, Optional, Tuple

import mmengine.registry as mmengine_registry
from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry

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


def _scoped_registry(root: Registry, scope: Optional[str]) -> Registry:
    """The registry of ``scope`` in ``root``'s tree, else ``root``.

    What ``Registry.switch_scope_and_registry`` finds, without its warning
    for trees the scope has no node in (mmdet has no ``function``,
    ``inferencer`` or ``strategy`` registry: three warnings per run).
    """
    if not scope or root.scope == scope:
        return root
    try:
        importlib.import_module(f'{scope}.registry')
    except ImportError:
        pass
    child = root._search_child(scope)  # a Registry with len() 0 is falsy
    return root if child is None else child


def _lookup(type_name: str, scope: Optional[str]) -> Optional[type]:
    """Find ``type_name`` in any root registry, as a build would."""
    for root in _root_registries():
        registry = _scoped_registry(root, scope)
        with DefaultScope.overwrite_default_scope(scope) if scope else \
                contextlib.nullcontext():
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


# dicts mmengine's Runner unpacks into a known signature: a new key must be
# one of these (``Runner.set_randomness``, ``Runner.setup_env``,
# ``set_multi_processing``)
_SCHEMAS = {
    'randomness': ('seed', 'diff_rank_seed', 'deterministic'),
    'env_cfg': ('cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'),
    'env_cfg.mp_cfg': ('mp_start_method', 'opencv_num_threads'),
}
# dicts (below the top level) whose keys are free-form: dataset metainfo
# (``classes``, ``palette``, ...), a model's train/test settings, file
# backend and process-group arguments, init and paramwise configs
_OPEN_DICTS = ('metainfo', 'train_cfg', 'test_cfg', 'backend_args',
               'dist_cfg', 'init_cfg', 'paramwise_cfg', 'custom_keys')
# top-level dicts given to mmengine as keyword arguments: their value must
# be a dict
_DICT_KEYS = ('randomness', 'env_cfg', 'visualizer', 'log_processor',
              'default_hooks', 'optim_wrapper', 'train_cfg', 'val_cfg',
              'test_cfg', 'model')


def _names(parts: List[str]) -> str:
    """'a.b' of the dict keys in a path (list indices dropped)."""
    return '.'.join(p for p in parts if not p.isdigit())


def _check_new_subtree(dotted: str, base: List[str], rest: List[str]) -> None:
    """Check keys created below an accepted new key ``base`` (a schema'd
    dict's keys must be in its schema; anything else is free-form)."""
    path = list(base)
    for part in rest:
        schema = _SCHEMAS.get(_names(path))
        if schema is not None and part not in schema:
            close = difflib.get_close_matches(part, schema, n=3)
            raise KeyError(
                f'--cfg-options key {dotted!r}: {part!r} is not a key of '
                f'{_names(path)} (mmengine reads {", ".join(schema)}). Close '
                f'matches: {", ".join(close) if close else "none"}')
        path.append(part)


def _deeper_hint(node: dict, part: str, where: str, scope: Optional[str]) \
        -> str:
    """' Did you mean X?' when a wrapped dataset below ``node`` (its
    ``dataset`` key, as in MultiImageMixDataset) has or takes ``part``."""
    inner = node.get('dataset')
    if not isinstance(inner, dict) or 'type' not in node:
        return ''
    inner_where = f'{where}.dataset'
    takes = part in inner
    if not takes and isinstance(inner.get('type'), str):
        cls = _lookup(inner['type'], scope)
        if cls is not None:
            accepted, var_kw = _accepted_args(cls)
            takes = var_kw or part in accepted
    if takes:
        return (f' {where} is a {node.get("type", "wrapper")} around '
                f'{inner_where}: did you mean {inner_where}.{part}?')
    return _deeper_hint(inner, part, inner_where, scope)


def _check_value(dotted: str, value: Any) -> None:
    """Types mmengine needs, checked before it fails with a TypeError."""
    top = dotted.split('.')[0]
    if dotted in _DICT_KEYS and not isinstance(value, dict):
        example = {'randomness': 'randomness.seed=0',
                   'env_cfg': 'env_cfg.cudnn_benchmark=True'}.get(
                       dotted, f'{dotted}.<key>=<value>')
        raise TypeError(
            f'--cfg-options {dotted}={value!r}: {dotted} must be a dict, '
            f'not {type(value).__name__}; set one of its keys, e.g. '
            f'{example}')
    if top == 'randomness' and dotted == 'randomness.seed' and not (
            value is None or isinstance(value, int)
            and not isinstance(value, bool)):
        raise TypeError(f'--cfg-options randomness.seed={value!r}: the seed '
                        f'must be an int or None, not '
                        f'{type(value).__name__}')


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Raise ``KeyError`` for ``--cfg-options`` keys the config cannot take.

    A key is accepted when it exists in ``cfg``, or when it is new under a
    dict that takes new keys, as mmengine's ``merge_from_dict`` would add
    it:

    * a dict with a registered ``type`` whose constructor takes that
      argument (or ``**kwargs``), e.g.
      ``train_dataloader.dataset.metainfo.classes`` on a ``CocoDataset``;
    * a top-level key mmengine's Runner reads (``randomness``, ``resume``,
      ...); below ``randomness`` and ``env_cfg`` only the keys mmengine
      reads (``randomness.seed``; ``randomness.sed`` is refused with a
      close match);
    * anything below a free-form dict (``metainfo``, ``test_cfg``,
      ``train_cfg``, ``backend_args``, ``dist_cfg``, ``init_cfg``, ...).

    Anything else (``train_dataloader.batch_sise``) is an error naming the
    key and the closest existing keys.

    Args:
        cfg (Config): The config *before* ``merge_from_dict(options)``.
        options (dict, optional): Parsed ``--cfg-options``.

    Raises:
        KeyError: A key the config cannot take.
        TypeError: A value of the wrong type for mmengine, e.g.
            ``randomness=0`` (it must be a dict: ``randomness.seed=0``).
    """
    if not options:
        return
    scope = cfg.get('default_scope')
    for dotted, value in options.items():
        _check_value(dotted, value)
        node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
        parts = dotted.split('.')
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit() and \
                    int(part) < len(node):
                node = node[int(part)]
                continue
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            where = '.'.join(parts[:depth]) or '<top level>'
            rest = parts[depth + 1:]
            if isinstance(node, dict) and \
                    _accepts_new(node, parts[:depth], part, scope):
                _check_new_subtree(dotted, parts[:depth + 1], rest)
                break
            siblings = list(node.keys()) if isinstance(node, dict) else []
            schema = _SCHEMAS.get(_names(parts[:depth]))
            close = difflib.get_close_matches(
                part, list(dict.fromkeys(list(schema or ()) + siblings)),
                n=5)
            hint = _deeper_hint(node, part, where, scope) \
                if isinstance(node, dict) else ''
            raise KeyError(
                f'--cfg-options key {dotted!r}: {part!r} does not exist under '
                f'{where}. Close matches: '
                f'{", ".join(close) if close else "none"}. Existing keys: '
                f'{", ".join(map(str, siblings[:20]))}.{hint}')


def _accepts_new(node: dict, path: List[str], part: str,
                 scope: Optional[str]) -> bool:
    """Whether the dict ``node`` at ``path`` takes the new key ``part``."""
    if not path:
        return part in _RUNNER_KEYS
    names = _names(path)
    if names in _SCHEMAS:
        return part in _SCHEMAS[names]
    if len(path) > 1 and path[-1] in _OPEN_DICTS:  # not the top-level
        return True  # train_cfg/test_cfg (loop configs)
    cls = _lookup(node['type'], scope) if isinstance(
        node.get('type'), str) else None
    if cls is None:
        return False
    accepted, var_kw = _accepted_args(cls)
    return var_kw or part in accepted
