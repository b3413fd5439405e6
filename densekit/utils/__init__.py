"""Checks and compatibility fixes shared by the tools and the library.

The names below are imported on first use (PEP 562), so ``import densekit``
(which needs only :mod:`densekit.utils.compat`) loads neither torch nor
mmengine's runner.
"""
import importlib

_EXPORTS = {
    'check_amp_available': 'compat',
    'install_mmengine_compat': 'compat',
    'revert_sync_batchnorm_cfg': 'compat',
    'safe_torch_load': 'compat',
    'select_dist_backend': 'compat',
    'check_cfg_options': 'config_check',
    'check_registered_types': 'config_check',
    'check_dataset_paths': 'dataset_check',
    'check_annotation_files': 'annotation_check',
    'check_num_classes': 'annotation_check',
    'check_checkpoint_file': 'checkpoint_check',
    'load_weights': 'checkpoint_check',
    'read_checkpoint': 'checkpoint_check',
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module = importlib.import_module(f'.{_EXPORTS[name]}', __name__)
    return getattr(module, name)


def __dir__():
    return sorted(list(globals()) + __all__)
