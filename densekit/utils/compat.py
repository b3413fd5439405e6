"""Compatibility fixes for the pinned OpenMMLab stack, all in one place.

* **Checkpoint loading under torch >= 2.6.** ``torch.load`` defaults to
  ``weights_only=True`` there, while mmengine 0.10.7 calls it without the
  argument; an mmengine checkpoint carries a message hub (``HistoryBuffer``,
  numpy scalars and arrays), so loading it, and therefore ``--resume``, fails.
  :func:`register_safe_checkpoint_loader` replaces mmengine's local-file
  loader by one that unpickles with an allow-list of mmengine/numpy types and
  falls back to full unpickling only for a local file, with a warning.
* **SyncBN without a process group** is turned into BN
  (:func:`revert_sync_batchnorm_cfg`).
* **``--amp`` on a machine without CUDA** is refused with a clear message
  (:func:`check_amp_available`).
* **Distributed backend**: ``nccl`` becomes ``gloo`` without CUDA
  (:func:`select_dist_backend`).
"""
import logging
import os.path as osp
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log

_REGISTERED = False


def _checkpoint_safe_globals() -> list:
    """Types an mmengine checkpoint may contain besides tensors and dicts."""
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = [HistoryBuffer, np.ndarray, np.dtype, np.core.multiarray.scalar,
               np.core.multiarray._reconstruct]
    # numpy >= 1.25 pickles dtypes as instances of numpy.dtypes.*DType
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    allowed += [np.float64, np.float32, np.int64, np.int32, np.bool_]
    return allowed


def safe_torch_load(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` a local checkpoint written by mmengine.

    Tries ``weights_only=True`` with mmengine's and numpy's types allowed;
    if the file holds anything else (an old checkpoint pickling a config
    object, say), warns and loads it fully. Only call it on files you trust,
    as with any pickle.

    Args:
        filename (str): Local path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded object (usually a dict with ``state_dict``, ``meta``,
        ``message_hub``, ``optimizer``, ``param_schedulers``).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    if 'weights_only' not in torch.load.__code__.co_varnames:
        return torch.load(filename, map_location=map_location)
    try:
        with torch.serialization.safe_globals(_checkpoint_safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if 'Unsupported global' in ln),
                      lines[0] if lines else 'unknown reason')
        print_log(
            f'{filename} holds objects outside the weights-only allow-list '
            f'({reason}); loading it with full unpickling because it is '
            'a local file. Only load checkpoints you trust.',
            logger='current', level=logging.WARNING)
        return torch.load(
            filename, map_location=map_location, weights_only=False)


def register_safe_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints through :func:`safe_torch_load`.

    Idempotent; called when :mod:`densekit` is imported, so it also covers
    configs run by mmdet's/mmseg's own tools through ``custom_imports``.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(safe_torch_load)
    _REGISTERED = True


def revert_sync_batchnorm_cfg(cfg: Any) -> int:
    """Replace ``type='SyncBN'`` by ``'BN'`` everywhere in a config, in place.

    SyncBN needs an initialised process group; a single-process run (no
    ``--launcher``) would fail at the first forward otherwise.

    Returns:
        int: Number of replaced norm configs.
    """
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') in ('SyncBN', 'MMSyncBN', 'mmdet.SyncBN',
                               'mmseg.SyncBN'):
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += revert_sync_batchnorm_cfg(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += revert_sync_batchnorm_cfg(value)
    return count


def check_amp_available() -> None:
    """Raise ``SystemExit`` with a clear message if AMP cannot run here."""
    if not torch.cuda.is_available():
        raise SystemExit(
            '--amp needs a CUDA device (mmengine\'s AmpOptimWrapper uses '
            'torch.cuda.amp), but torch.cuda.is_available() is False on this '
            'machine. Train without --amp on CPU.')


def select_dist_backend(cfg) -> None:
    """Use ``gloo`` instead of ``nccl`` when CUDA is unavailable (in place)."""
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl' and \
            not torch.cuda.is_available():
        dist_cfg['backend'] = 'gloo'
