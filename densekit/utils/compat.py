"""Compatibility fixes for the pinned OpenMMLab stack, all in one place.

* **Checkpoint loading under torch >= 2.6.** ``torch.load`` defaults to
  ``weights_only=True`` there, while mmengine 0.10.7 calls it without the
  argument; an mmengine checkpoint carries a message hub (``HistoryBuffer``,
  numpy scalars and arrays), so loading it, and therefore ``--resume``, fails.
  :func:`install_mmengine_compat` replaces mmengine's local-file
  loader by one that unpickles with an allow-list of tensor/numpy/mmengine
  types and falls back to full unpickling only for a local file, with a
  warning.
* **SyncBN without a process group** is turned into BN
  (:func:`revert_sync_batchnorm_cfg`).
* **``--amp`` on a machine without CUDA** is refused with a clear message
  (:func:`check_amp_available`).
* **Distributed training without CUDA**: ``nccl`` becomes ``gloo``, DDP
  gets no ``device_ids`` (:func:`select_dist_backend`) and mmengine's
  launcher skips ``torch.cuda.set_device``
  (:func:`patch_cpu_distributed_init`).
* **Checkpoints written atomically**: mmengine writes a checkpoint in place,
  so a run killed while saving leaves a truncated ``epoch_N.pth``;
  :func:`atomic_save_checkpoint` writes a temporary file and renames it.

Nothing here is applied on import: ``import densekit`` leaves mmengine as it
is. The three mmengine patches (checkpoint loader, atomic save, CPU
distributed init) are applied, together and once, by
:func:`install_mmengine_compat`, which runs

* in densekit's tools (``tools/train.py``, ``tools/test.py``, the analysis
  scripts) through :func:`densekit.engine.config_setup.prepare_config`, and
* for any densekit config, because its base runtime lists
  :mod:`densekit.utils.mmengine_patches` in ``custom_imports``: so a run of
  a densekit config through mmdet's or mmseg's own ``tools/train.py`` gets
  them too, and a config without that entry does not.

The library's own loaders (inferencers, exporters, ``init_cfg`` pretrained
weights) read checkpoints with :func:`safe_torch_load` directly and need no
patch.
"""
import codecs
import collections
import logging
import os
import os.path as osp
import pickle
import sys
import types
from typing import Any, Callable

from mmengine.logging import print_log

_INSTALLED = False


def _guarded_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for unpickling, limited to HistoryBuffer's statistics.

    mmengine's ``HistoryBuffer`` pickles its ``statistics_methods`` as
    ``getattr(HistoryBuffer, 'mean')`` and the like; nothing else may use it.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # the built-in statistics are registered only once a buffer exists
    names = {'min', 'max', 'current', 'mean'} | set(
        HistoryBuffer._statistics_methods)
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and \
            name in names:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({type(obj).__name__}, {name!r}) is not allowed')


def _allowed_globals() -> dict:
    """(module, name) -> object an mmengine checkpoint may reference."""
    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('collections', 'defaultdict'): collections.defaultdict,
        ('builtins', 'getattr'): _guarded_getattr,
        ('__builtin__', 'getattr'): _guarded_getattr,
        ('builtins', 'set'): set,
        ('builtins', 'frozenset'): frozenset,
        ('builtins', 'slice'): slice,
        ('builtins', 'complex'): complex,
        ('_codecs', 'encode'): codecs.encode,
        ('torch', 'Size'): torch.Size,
        ('torch', 'device'): torch.device,
        ('torch._utils', '_rebuild_tensor_v2'):
        torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_parameter'):
        torch._utils._rebuild_parameter,
        ('torch._tensor', '_rebuild_from_type_v2'):
        torch._tensor._rebuild_from_type_v2,
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'): HistoryBuffer,
    }
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[(module, '_reconstruct')] = np.ndarray.__reduce__(
            np.zeros(1))[0]
        allowed[(module, 'scalar')] = np.float64(0).__reduce__()[0]
    for name in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32',
                 'int64', 'uint8', 'bool_'):
        allowed[('numpy', name)] = getattr(np, name)
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith('DType'):
                allowed[('numpy.dtypes', name)] = getattr(dtypes, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only the globals of :func:`_allowed_globals`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f'Unsupported global: {module}.{name}') from None


# What torch.load needs of a ``pickle_module``.
_restricted_pickle = types.SimpleNamespace(
    __name__='densekit_restricted_pickle',
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kw: _RestrictedUnpickler(f, **kw).load())


def safe_torch_load(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` a local checkpoint written by mmengine.

    Unpickles with an allow-list of the tensor, numpy and mmengine types an
    mmengine checkpoint holds (the message hub pickles ``HistoryBuffer``s
    with bound methods, which torch's own ``weights_only=True`` rejects); if
    the file holds anything else (an old checkpoint pickling a config
    object, say), warns and loads it fully. Only call it on files you trust,
    as with any pickle.

    Args:
        filename (str): Local path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded object (usually a dict with ``state_dict``, ``meta``,
        ``message_hub``, ``optimizer``, ``param_schedulers``).
    """
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    try:
        return torch.load(filename, map_location=map_location,
                          pickle_module=_restricted_pickle,
                          weights_only=False)
    except pickle.UnpicklingError as err:
        print_log(
            f'{filename} holds objects outside the allow-list ({err}); '
            'loading it with full unpickling because it is a local file. '
            'Only load checkpoints you trust.',
            logger='current', level=logging.WARNING)
        return torch.load(
            filename, map_location=map_location, weights_only=False)


def _patch_mmengine_runner() -> None:
    from mmengine.runner import checkpoint
    checkpoint.CheckpointLoader.register_scheme(
        prefixes='', force=True)(safe_torch_load)
    if not getattr(checkpoint.save_checkpoint, '_densekit_atomic', False):
        original = checkpoint.save_checkpoint

        def save(ckpt, filename, file_client_args=None, backend_args=None):
            return atomic_save_checkpoint(ckpt, filename, file_client_args,
                                          backend_args, fallback=original)

        save._densekit_atomic = True
        checkpoint.save_checkpoint = save
        runner_module = sys.modules.get('mmengine.runner.runner')
        if runner_module is not None:  # bound its own name already
            runner_module.save_checkpoint = save
    patch_cpu_distributed_init()


def atomic_save_checkpoint(checkpoint: dict, filename: str,
                           file_client_args=None, backend_args=None, *,
                           fallback: Callable = None) -> None:
    """mmengine's ``save_checkpoint``, through a temporary file and an
    atomic rename for local paths (a killed save leaves no truncated
    ``epoch_N.pth``, only a ``.tmp`` file); other backends go to
    ``fallback`` (mmengine's)."""
    backend = (backend_args or {}).get('backend', 'local')
    if '://' in str(filename) or file_client_args is not None or \
            backend != 'local':
        return fallback(checkpoint, filename,
                        file_client_args=file_client_args,
                        backend_args=backend_args)
    import torch
    folder = osp.dirname(osp.abspath(filename))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(filename)}.tmp{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def install_mmengine_compat() -> None:
    """Patch mmengine 0.10.7 for this stack, process-wide and once: local
    checkpoints load through :func:`safe_torch_load`, checkpoints save
    atomically (:func:`atomic_save_checkpoint`) and the pytorch launcher
    initialises without CUDA (:func:`patch_cpu_distributed_init`).

    Idempotent; logs one line the first time. Called explicitly by
    densekit's tools and imported by densekit configs (see the module
    docstring); importing :mod:`densekit` does not call it.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _patch_mmengine_runner()
    print_log('densekit: mmengine patched for this stack (allow-list '
              'checkpoint loader for torch >= 2.6, atomic checkpoint saves, '
              'CPU distributed init); see densekit/utils/compat.py',
              logger='current', level=logging.DEBUG)


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


def check_amp_available() -> str:
    """The optimizer wrapper ``--amp`` uses here: ``'AmpOptimWrapper'``
    (CUDA float16) or ``'densekit.CPUAutocastOptimWrapper'`` (bfloat16 on a
    CPU with native bfloat16); ``SystemExit`` with a clear message when
    neither can run."""
    import torch
    if torch.cuda.is_available():
        return 'AmpOptimWrapper'
    from densekit.utils.hardware import cpu_supports_bf16
    if cpu_supports_bf16():
        return 'densekit.CPUAutocastOptimWrapper'
    raise SystemExit(
        '--amp needs a CUDA device (mmengine\'s AmpOptimWrapper uses '
        'torch.cuda.amp) or a CPU with native bfloat16 (AVX-512 BF16 / AMX, '
        'for densekit.CPUAutocastOptimWrapper); this machine has neither. '
        'Train without --amp.')


def select_dist_backend(cfg) -> None:
    """Make a config's distributed settings work without CUDA (in place).

    ``nccl`` becomes ``gloo``, and unless the config sets
    ``model_wrapper_cfg``, DDP is built without ``device_ids`` (mmengine
    passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module).
    """
    import torch
    if torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg['model_wrapper_cfg'] = dict(
            type='MMDistributedDataParallel',
            device_ids=None,  # explicit: mmengine's default is [LOCAL_RANK]
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def patch_cpu_distributed_init() -> None:
    """Let mmengine's pytorch launcher initialise without CUDA.

    mmengine 0.10.7 calls ``torch.cuda.set_device(local_rank)`` before
    ``init_process_group`` whatever the backend, which raises on a CPU-only
    torch; without CUDA only the process group is initialised. Idempotent.
    """
    import torch
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_densekit_cpu_safe', False):
        return

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch._densekit_cpu_safe = True
    dist_utils._init_dist_pytorch = init_dist_pytorch
