from .compat import (check_amp_available, register_safe_checkpoint_loader,
                     revert_sync_batchnorm_cfg, safe_torch_load,
                     select_dist_backend)

__all__ = [
    'check_amp_available', 'register_safe_checkpoint_loader',
    'revert_sync_batchnorm_cfg', 'safe_torch_load', 'select_dist_backend'
]
from .config_check import check_cfg_options, check_registered_types  # noqa

__all__ += ['check_cfg_options', 'check_registered_types']
from .dataset_check import check_dataset_paths  # noqa

__all__ += ['check_dataset_paths']
