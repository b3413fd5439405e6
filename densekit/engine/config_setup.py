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


def apply_selective_scan_impl(cfg: Config) -> None:
    """Honour a config's top-level ``selective_scan_impl`` key.

    ``selective_scan_impl = 'pytorch'`` (or ``'auto'``, ``'cpp'``,
    ``'cuda'``) forces the selective-scan implementation of every SS2D
    block, as the ``DENSEKIT_SELECTIVE_SCAN`` environment variable does
    (see :func:`densekit.models.layers.selective_scan.selective_path`); the
    environment variable, when set, wins, like a command-line flag.

    Raises:
        ValueError: The value is not one of the implementations.
    """
    from densekit.models.layers.selective_scan import ENV_VAR, PATHS
    impl = cfg.get('selective_scan_impl')
    if impl is None:
        return
    if impl not in PATHS:
        raise ValueError(f'selective_scan_impl must be one of {PATHS}, but '
                         f'the config says {impl!r}')
    if os.environ.get(ENV_VAR):
        if os.environ[ENV_VAR] != impl:
            print_log(f'selective_scan_impl={impl!r} in the config is '
                      f'overridden by {ENV_VAR}={os.environ[ENV_VAR]}',
                      logger='current')
        return
    os.environ[ENV_VAR] = impl
