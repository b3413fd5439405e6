"""Reading released checkpoints into densekit modules: one unwrapping rule
and one loader that reports (and refuses) key mismatches."""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor


class UnconvertedKeysError(KeyError, ValueError):
    """Keys a converter does not know: the checkpoint is not (only) in the
    layout it maps. Every ``convert_<name>`` raises it the same way, so the
    converter command (``tools/model_converters/convert.py``) reports them in
    one summary line and writes nothing.

    A ``KeyError`` (the key lookup failed) and a ``ValueError`` (the input is
    not what was asked for), so either ``except`` catches it.

    Attributes:
        owner (str): The converter, e.g. ``'convert_focalnet'``.
        layout (str): The source layout it maps, e.g. ``'official
            FocalNet'``.
        keys (list[str]): The unknown keys, in checkpoint order.
        total (int): Number of keys in the checkpoint.
    """

    def __init__(self, owner: str, layout: str, keys: Sequence[str],
                 total: int, hint: str = '') -> None:
        self.owner, self.layout = owner, layout
        self.keys: List[str] = list(keys)
        self.total = int(total)
        self.message = (
            f'{owner}: {len(self.keys)} keys not in the {layout} '
            f'layout{hint}: {self.keys[:10]}'
            + (' ...' if len(self.keys) > 10 else ''))
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def unwrap_state_dict(checkpoint,
                      owner: str,
                      keys: Sequence[str] = ('state_dict', 'model'),
                      ema_key: Optional[str] = None) -> Dict[str, Tensor]:
    """A flat state dict out of the checkpoint layouts in circulation.

    Args:
        checkpoint: A state dict, an ``nn.Module``, or a training
            checkpoint holding one under the first of ``keys`` present
            (mmengine ``state_dict``, official ``model``, ultralytics
            ``ema``/``model``); nested wrappers are unwrapped too.
        owner (str): Named in errors (e.g. ``'convert_focalnet'``).
        keys (Sequence[str]): Wrapper keys, in order of preference.
        ema_key (str, optional): Take this entry (e.g. ``'model_ema'``)
            and fail when it is absent.

    Returns:
        dict: name -> tensor, a common ``module.`` prefix removed.
    """
    if isinstance(checkpoint, nn.Module):
        return OrderedDict(checkpoint.state_dict())
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'{owner} expects a state dict, a checkpoint dict or '
                        f'an nn.Module, but got {type(checkpoint).__name__}')
    if ema_key is not None:
        inner = checkpoint.get(ema_key)
        if not isinstance(inner, (Mapping, nn.Module)):
            raise KeyError(f'{owner}: the checkpoint has no {ema_key!r} '
                           'state dict')
        return unwrap_state_dict(inner, owner, keys)
    for key in keys:
        inner = checkpoint.get(key)
        if isinstance(inner, (Mapping, nn.Module)):
            return unwrap_state_dict(inner, owner, keys)
    state_dict = OrderedDict(checkpoint)
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = OrderedDict(
            (k[len('module.'):], v) for k, v in state_dict.items())
    return state_dict


def load_pretrained(module: nn.Module,
                    init_cfg: dict,
                    convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]],
                    optional_keys: Sequence[str] = ()) -> Dict[str, list]:
    """Load ``init_cfg=dict(type='Pretrained', checkpoint=...)`` into
    ``module``, converting the checkpoint's layout, and say what did not
    match instead of silently training from scratch.

    ``init_cfg`` keys: ``checkpoint`` (path or URL), ``prefix`` (keep only
    keys under it, e.g. ``'backbone.'``), ``map_location``, ``allow_missing``
    (extra regexes of module keys the checkpoint may lack) and
    ``max_missing`` (how many other missing keys to tolerate; default 0).

    Raises:
        ValueError: naming the checkpoint, when the converter refuses its
            keys, when more keys are missing than allowed, when a shape
            differs, or when nothing matches.

    Returns:
        dict: ``missing``, ``unexpected`` and ``optional_missing`` key lists.
    """
    owner = type(module).__name__
    path = init_cfg['checkpoint']
    map_location = init_cfg.get('map_location', 'cpu')
    if '://' in str(path):  # URLs, torchvision://, ...: mmengine's schemes
        from mmengine.runner.checkpoint import CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location=map_location, logger='current')
    else:
        from densekit.utils.compat import safe_torch_load
        checkpoint = safe_torch_load(path, map_location=map_location)
    state_dict = unwrap_state_dict(checkpoint, owner)
    prefix = init_cfg.get('prefix')
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state_dict = OrderedDict((k[len(prefix):], v)
                                 for k, v in state_dict.items()
                                 if k.startswith(prefix))
        if not state_dict:
            raise ValueError(f'{owner}: no key of {path} starts with '
                             f'{prefix!r}')
    try:
        state_dict = convert(state_dict)
    except UnconvertedKeysError as err:  # name the file, as below
        raise ValueError(f'{owner}: {path} lacks a layout the converter of '
                         f'{owner} knows: {err}') from err
    own = module.state_dict()
    patterns = [re.compile(p) for p in
                list(optional_keys) + list(init_cfg.get('allow_missing', ()))]
    missing = [k for k in own if k not in state_dict]
    optional = [k for k in missing if any(p.match(k) for p in patterns)]
    missing = [k for k in missing if k not in optional]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [f'{k}: checkpoint {tuple(v.shape)} vs model '
                   f'{tuple(own[k].shape)}' for k, v in state_dict.items()
                   if k in own and tuple(v.shape) != tuple(own[k].shape)]

    def preview(keys):
        return ', '.join(keys[:5]) + (' ...' if len(keys) > 5 else '')

    print_log(f'{owner}: {path}: {len(own) - len(missing) - len(optional)}/'
              f'{len(own)} weights loaded; missing {len(missing)} '
              f'({preview(missing)}), allowed missing {len(optional)}, '
              f'unexpected {len(unexpected)} ({preview(unexpected)})',
              logger='current')
    if wrong_shape:
        raise ValueError(f'{owner}: {path} has weights of other shapes: '
                         f'{preview(wrong_shape)}')
    if len(missing) > int(init_cfg.get('max_missing', 0)) or \
            len(missing) + len(optional) == len(own):
        raise ValueError(
            f'{owner}: {path} lacks {len(missing)} of the {len(own)} '
            f'weights ({preview(missing)}) and has {len(unexpected)} '
            f'unexpected ones ({preview(unexpected)}): not a checkpoint of '
            'this model (wrong arch, or a layout the converter does not '
            'know). Accept it with init_cfg.allow_missing=[regex, ...] or '
            'init_cfg.max_missing=N')
    module.load_state_dict(
        OrderedDict((k, v) for k, v in state_dict.items() if k in own),
        strict=False)
    return dict(missing=missing, unexpected=unexpected,
                optional_missing=optional)


def read_checkpoint_file(path: str, unsafe: bool = False):
    """``torch.load`` a released checkpoint on the CPU: with
    ``weights_only=True`` (``argparse.Namespace`` allowed, as training
    scripts store their args) unless ``unsafe``, which runs pickled code.

    Raises:
        FileNotFoundError: no such file.
        RuntimeError: the safe load failed; says to pass ``unsafe``.
    """
    import argparse
    import os.path as osp

    import torch
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if unsafe:
        return torch.load(path, map_location='cpu', weights_only=False)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise RuntimeError(
            f'{path} could not be read with weights_only=True '
            f'({type(err).__name__}: {err}); rerun with --unsafe-load if you '
            'trust the file') from err


def state_dict_problems(state_dict: Mapping[str, Tensor],
                        model_state: Mapping[str, Tensor],
                        optional: Sequence[str] = ()):
    """What a strict ``load_state_dict`` would object to.

    Args:
        state_dict: Converted weights.
        model_state: The target model's ``state_dict()``.
        optional (Sequence[str]): Regexes of model keys that may be absent
            (per-output norms, BatchNorm counters).

    Returns:
        tuple[list[str], list[str]]: Problems as readable lines (missing,
        unexpected, other shape), and the optional keys that are absent.
    """
    patterns = [re.compile(p) for p in optional]
    absent = [k for k in model_state if k not in state_dict]
    optional_absent = [k for k in absent if any(p.match(k) for p in patterns)]
    problems = [f'missing in checkpoint: {k}' for k in absent
                if k not in optional_absent]
    for key, value in state_dict.items():
        if key not in model_state:
            problems.append(f'not in the model: {key}')
        elif tuple(value.shape) != tuple(model_state[key].shape):
            problems.append(
                f'shape of {key}: checkpoint {tuple(value.shape)}, model '
                f'{tuple(model_state[key].shape)}')
    return problems, optional_absent


def convert_state_dict_keys(checkpoint, owner: str, layout: str,
                            convert_key: Callable[[str, bool], Optional[str]],
                            with_head: bool = False) -> Dict[str, Tensor]:
    """The key-by-key conversion shared by the backbone converters.

    A detection/segmentation checkpoint (``backbone.``-prefixed keys) keeps
    its backbone (and ``head.`` with ``with_head``); every key goes through
    ``convert_key(key, with_head)``, which returns the new key, ``''`` to
    drop it on purpose, or None for a key the layout does not know. With
    ``with_head`` the result is in the classifier's layout
    (``backbone.*`` + ``head.*``).

    Raises:
        UnconvertedKeysError: listing the unknown keys, ``owner`` and
            ``layout`` named.
    """
    state_dict = unwrap_state_dict(checkpoint, owner)
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = OrderedDict(
            (k[len('backbone.'):] if k.startswith('backbone.') else k, v)
            for k, v in state_dict.items()
            if k.startswith('backbone.') or (with_head
                                             and k.startswith('head.')))
    converted: Dict[str, Tensor] = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new_key = convert_key(key, with_head)
        if new_key is None:
            unknown.append(key)
        elif new_key:
            converted[new_key] = value
    if unknown:
        raise UnconvertedKeysError(owner, layout, unknown, len(state_dict))
    if with_head:
        converted = OrderedDict(
            (k if k.startswith('head.') else f'backbone.{k}', v)
            for k, v in converted.items())
    return converted
