"""Shared preparation of a config before a Runner is built from it.

``tools/train.py`` and ``tools/test.py`` call :func:`prepare_config`, so both
apply the same precedence (command line > config file > defaults) and the
same early checks (unknown ``--cfg-options`` keys, unregistered types,
missing dataset paths, broken annotation files, class names that do not
match the annotation file or the head, SyncBN without a process group, gloo
without CUDA). A failed check raises ``FileNotFoundError``, ``KeyError``,
``TypeError`` or ``ValueError`` with a message meant to be printed as it is
(:data:`PREFLIGHT_ERRORS`, :func:`preflight_message`).
"""
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log

from densekit.utils.compat import (install_mmengine_compat,
                                   revert_sync_batchnorm_cfg,
                                   select_dist_backend)
from densekit.utils.config_check import (check_cfg_options,
                                         check_registered_types)
from densekit.utils.dataset_check import check_dataset_paths, iter_dataloaders

# what the pre-flight checks raise; the tools print these without a traceback
PREFLIGHT_ERRORS = (FileNotFoundError, KeyError, TypeError, ValueError)


def preflight_message(error: BaseException) -> str:
    """'<Type>: <message>' of a pre-flight error (a KeyError's message
    without the quotes ``str(KeyError)`` adds)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args \
        else str(error)
    return f'{type(error).__name__}: {text}'


def prepare_config(config_path: str,
                   *,
                   launcher: str = 'none',
                   cfg_options: Optional[dict] = None,
                   work_dir: Optional[str] = None,
                   check_data: bool = True,
                   data_check: str = 'error',
                   classes_from: str = 'train_dataloader',
                   unreadable: str = 'raise') -> Config:
    """Load and validate a config for a run.

    Args:
        config_path (str): Path of the config file.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        cfg_options (dict, optional): Parsed ``--cfg-options``; each key must
            exist in the config or be new under a dict that takes it
            (:func:`~densekit.utils.config_check.check_cfg_options`). When
            the config's ``test_dataloader`` (``test_evaluator``) equals its
            ``val_dataloader`` (``val_evaluator``) and only the val one is
            overridden, the test one follows (logged).
        work_dir (str, optional): ``--work-dir``; wins over the config's
            ``work_dir``, which wins over ``./work_dirs/<config name>``.
        check_data (bool): Check that every dataset path exists and every
            COCO annotation file is sound
            (:func:`~densekit.utils.annotation_check.check_annotation_files`).
        data_check (str): ``'error'`` or ``'warn'``: whether boxes mmdet
            drops and missing image files stop the run.
        classes_from (str): The dataloader whose class names each head's
            ``num_classes`` must match (``'test_dataloader'`` for testing).
        unreadable (str): What validation/test pipelines do with an image
            they cannot load (:func:`set_unreadable_images`): ``'raise'``
            (stop, naming the file) or ``'empty'`` (score it as an image
            with no predictions, listed at the end; detection only).

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'config file {config_path} does not exist')
    install_mmengine_compat()  # also for configs without densekit's runtime
    cfg = Config.fromfile(config_path)
    check_cfg_options(cfg, cfg_options)
    if cfg_options:
        cfg_options = follow_val_overrides(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(config_path))[0])

    if launcher == 'none':
        reverted = revert_sync_batchnorm_cfg(cfg._cfg_dict)
        if reverted:
            print_log(
                f'{reverted} SyncBN config(s) turned into BN: no process '
                'group without --launcher', logger='current')
    select_dist_backend(cfg)
    apply_selective_scan_impl(cfg)
    check_registered_types(cfg)
    cap_num_workers(cfg)
    set_unreadable_images(cfg, unreadable)
    from densekit.utils.annotation_check import (check_annotation_files,
                                                 check_num_classes)
    check_num_classes(cfg, classes_from if cfg.get(classes_from) is not None
                      else 'test_dataloader')
    if check_data:
        check_dataset_paths(cfg)
        check_annotation_files(cfg, data_check)
    return cfg


def follow_val_overrides(cfg: Config, options: Dict[str, Any]) -> dict:
    """Apply ``val_*`` overrides to the ``test_*`` twin the config shares.

    Configs write ``test_dataloader = val_dataloader`` and
    ``test_evaluator = val_evaluator``; after parsing they are two equal
    dicts, so ``--cfg-options val_dataloader.dataset.data_root=X`` alone
    would leave the test set at the old path. When the twins are equal in
    the config and no ``test_*`` key is given, each ``val_*`` key is copied
    to ``test_*`` (one log line).

    Args:
        cfg (Config): The config before the overrides.
        options (dict): Parsed ``--cfg-options``.

    Returns:
        dict: ``options`` plus the derived ``test_*`` keys.
    """
    options = dict(options)
    derived: List[str] = []
    for val_key, test_key in (('val_dataloader', 'test_dataloader'),
                              ('val_evaluator', 'test_evaluator')):
        if cfg.get(val_key) is None or cfg.get(val_key) != cfg.get(test_key):
            continue
        if any(k == test_key or k.startswith(test_key + '.')
               for k in options):
            continue
        for key in list(options):
            if key == val_key or key.startswith(val_key + '.'):
                new_key = test_key + key[len(val_key):]
                options[new_key] = options[key]
                derived.append(new_key)
    if derived:
        print_log(f'{", ".join(derived)}: the config\'s test set is its '
                  'val set, so the val overrides apply to it too (override '
                  'test_* keys to set it apart)', logger='current')
    return options


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cap_num_workers(cfg: Config) -> None:
    """Cap every dataloader's ``num_workers`` at the CPU cores (in place),
    with one log line; torch warns on every loader otherwise, and more
    workers than cores only add processes."""
    cores = cpu_count()
    capped = []
    for key, loader in iter_dataloaders(cfg):
        workers = loader.get('num_workers', 0)
        if isinstance(workers, int) and workers > cores:
            loader['num_workers'] = cores
            capped.append(f'{key} {workers} -> {cores}')
    if capped:
        print_log(f'num_workers capped at the {cores} CPU cores of this '
                  f'machine: {", ".join(capped)}', logger='current')


def apply_amp(cfg: Config, wrapper: Optional[str] = None) -> str:
    """Switch a config's optimizer wrapper to mixed precision (in place):
    ``--amp`` of ``tools/train.py``.

    Args:
        cfg (Config): The config.
        wrapper (str, optional): ``'AmpOptimWrapper'`` (float16 autocast
            with dynamic loss scaling, CUDA) or
            ``'densekit.CPUAutocastOptimWrapper'`` (bfloat16 autocast, no
            loss scaling, CPU). Defaults to what this machine runs
            (:func:`densekit.utils.compat.check_amp_available`).

    Returns:
        str: The wrapper type set.
    """
    from densekit.utils.compat import check_amp_available
    wrapper = wrapper or check_amp_available()
    cfg.optim_wrapper.type = wrapper
    if wrapper == 'AmpOptimWrapper':
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:  # CPU bfloat16 autocast: no loss scaling
        cfg.optim_wrapper.dtype = 'bfloat16'
    return wrapper


def apply_selective_scan_impl(cfg: Config) -> None:
    """Set the process-wide selective-scan implementation of the tools.

    A config's top-level ``selective_scan_impl = 'pytorch'`` (or any of
    :data:`densekit.models.layers.selective_scan.IMPLS`) applies to every
    SS2D block built without an explicit ``scan_impl``; the environment
    variable ``DENSEKIT_SELECTIVE_SCAN``, when set, wins, like a
    command-line flag. Both are read here only (the entry points); library
    code takes ``impl`` arguments
    (:func:`densekit.models.layers.selective_scan.set_default_impl`).

    Raises:
        ValueError: A value is not one of the implementations.
    """
    from densekit.models.layers.selective_scan import (ENV_VAR, check_impl,
                                                       set_default_impl)
    impl = cfg.get('selective_scan_impl')
    if impl is not None:
        try:
            impl = check_impl(impl)
        except ValueError as e:
            raise ValueError(f'selective_scan_impl in the config: {e}') \
                from None
    env = os.environ.get(ENV_VAR, '').strip()
    if env:
        try:
            env = check_impl(env)
        except ValueError as e:
            raise ValueError(f'{ENV_VAR}: {e}') from None
        if impl is not None and env != impl:
            print_log(f'selective_scan_impl={impl!r} in the config is '
                      f'overridden by {ENV_VAR}={env}', logger='current')
        impl = env
    if impl is not None:
        set_default_impl(impl)


def add_exact_resume_hook(cfg: Config) -> None:
    """Prepare a training config for exact resumption (in place).

    Adds ``densekit.ExactResumeHook`` (random states derived from the seed
    and the training position) unless the config lists it, and keeps at
    least the last two checkpoints (``max_keep_ckpts`` 1 becomes 2, logged),
    so the previous one is still there when the latest is corrupt.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    names = {str(h.get('type', '')).split('.')[-1] for h in hooks
             if isinstance(h, dict)}
    if 'ExactResumeHook' not in names:
        hooks.append(dict(type='densekit.ExactResumeHook'))
        cfg.custom_hooks = hooks
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(ckpt, dict) and ckpt.get('max_keep_ckpts') == 1:
        ckpt['max_keep_ckpts'] = 2
        print_log('default_hooks.checkpoint.max_keep_ckpts 1 -> 2: the '
                  'previous checkpoint is kept to resume from if the latest '
                  'is damaged', logger='current')


def resolve_resume(cfg: Config, resume: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from, checked (sets
    ``cfg.resume`` False when there is none).

    Args:
        cfg (Config): The prepared config (its ``work_dir`` set).
        resume (str): ``'auto'`` (``--resume`` without a path: the work
            dir's ``last_checkpoint``) or a checkpoint path.

    Returns:
        str | None: The checkpoint path, or None (no checkpoint in the work
        dir: one warning line, training starts from scratch).

    Raises:
        FileNotFoundError: The given or recorded checkpoint does not exist.
        CheckpointError: It is truncated or corrupt (naming the previous
            checkpoint to resume from).
    """
    from densekit.utils.checkpoint_check import check_checkpoint_file
    if resume != 'auto':
        check_checkpoint_file(resume, 'resume')
        return resume
    record = osp.join(cfg.work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        print_log(f'--resume: no checkpoint to resume from in {cfg.work_dir} '
                  '(no last_checkpoint file); training starts from scratch',
                  logger='current', level=logging.WARNING)
        cfg.resume = False
        return None
    with open(record) as f:
        path = f.read().strip()
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'--resume: {record} names {path}, which does not exist; pass '
            'an existing checkpoint: --resume PATH')
    check_checkpoint_file(path, 'resume')
    return path


def _pipelines(dataset: Any) -> List[list]:
    from densekit.utils.dataset_check import iter_datasets
    found = []
    if isinstance(dataset, dict) and isinstance(dataset.get('pipeline'),
                                                list):
        found.append(dataset['pipeline'])  # a wrapper's own pipeline
    for _, leaf in iter_datasets(dataset, ''):
        if leaf is not dataset and isinstance(leaf.get('pipeline'), list):
            found.append(leaf['pipeline'])
    return found


def set_unreadable_images(cfg: Config, mode: str = 'raise') -> None:
    """Set what evaluation pipelines do with an image they cannot load.

    In every dataloader but ``train_dataloader`` (mmengine cannot draw a
    replacement sample there), each ``LoadImageFromFileSafe`` gets
    ``on_failure=mode``. For ``'empty'`` the packers also pack the
    ``img_unreadable`` meta key and ``densekit.UnreadableImageHook`` is
    added.

    Args:
        cfg (Config): The config (modified in place).
        mode (str): ``'raise'`` or ``'empty'``.

    Raises:
        ValueError: ``mode`` is unknown, or ``'empty'`` for a config that
            is not a detection one.
    """
    from densekit.datasets.transforms.loading import UNREADABLE_KEY
    if mode not in ('raise', 'empty'):
        raise ValueError(f'unreadable images: mode must be raise or empty, '
                         f'but got {mode!r}')
    if mode == 'empty' and cfg.get('default_scope') != 'mmdet':
        raise ValueError('--unreadable-as-empty scores unreadable images as '
                         'images without detections: detection configs '
                         f'only, but {cfg.filename} has default_scope='
                         f'{cfg.get("default_scope")!r}')
    for key, loader in iter_dataloaders(cfg):
        if key == 'train_dataloader':
            continue
        for pipeline in _pipelines(loader['dataset']):
            for step in pipeline:
                name = str(step.get('type', '')).split('.')[-1] \
                    if isinstance(step, dict) else ''
                if name == 'LoadImageFromFileSafe':
                    step.pop('strict', None)
                    step['on_failure'] = mode
                elif name == 'PackDetInputs' and mode == 'empty':
                    keys = tuple(step.get('meta_keys', (
                        'img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'flip', 'flip_direction')))
                    if UNREADABLE_KEY not in keys:
                        step['meta_keys'] = keys + (UNREADABLE_KEY, )
    if mode == 'empty':
        hooks = list(cfg.get('custom_hooks') or [])
        hooks.append(dict(type='densekit.UnreadableImageHook'))
        cfg.custom_hooks = hooks
