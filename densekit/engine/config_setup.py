"""Shared preparation of a config before a Runner is built from it.

``tools/train.py`` and ``tools/test.py`` call :func:`prepare_config`, so both
apply the same precedence (command line > config file > defaults) and the
same early checks (unknown ``--cfg-options`` keys, unregistered types,
missing dataset paths, SyncBN without a process group, gloo without CUDA).
"""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from densekit.utils.compat import (revert_sync_batchnorm_cfg,
                                   select_dist_backend)
from densekit.utils.config_check import (check_cfg_options,
                                         check_registered_types)
from densekit.utils.dataset_check import check_dataset_paths


def prepare_config(config_path: str,
                   *,
                   launcher: str = 'none',
                   cfg_options: Optional[dict] = None,
                   work_dir: Optional[str] = None,
                   check_data: bool = True) -> Config:
    """Load and validate a config for a run.

    Args:
        config_path (str): Path of the config file.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        cfg_options (dict, optional): Parsed ``--cfg-options``; each key must
            exist in the config or be accepted by its parent's ``type``.
        work_dir (str, optional): ``--work-dir``; wins over the config's
            ``work_dir``, which wins over ``./work_dirs/<config name>``.
        check_data (bool): Check that every dataset path exists.

    Returns:
        Config: Ready for ``Runner.from_cfg``.
    """
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'config file {config_path} does not exist')
    cfg = Config.fromfile(config_path)
    check_cfg_options(cfg, cfg_options)
    if cfg_options:
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
    if check_data:
        check_dataset_paths(cfg)
    return cfg


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
