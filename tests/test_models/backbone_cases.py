"""Every registered densekit backbone with small arguments that give four
outputs whose strides double from level to level (4, 8, 16 and 32, or a
backbone's natural four, e.g. ResNetViT's 2, 4, 8, 16; the columns read
them from ``feature_info``): the rows of the cross-task tests
(``test_cross_task.py``, ``test_segmentors/test_upernet.py``). A new
backbone must be added here, or those tests fail."""
from typing import List

BACKBONES = {
    'YOLOv8CSPDarknet': dict(deepen_factor=0.33, widen_factor=0.125,
                             last_stage_out_channels=1024,
                             out_indices=(1, 2, 3, 4)),
    'MambaYOLO': dict(arch='T', out_indices=(1, 2, 3, 4)),
    'EdgeNeXt': dict(arch='xxs', out_indices=(0, 1, 2, 3)),
    'FocalNet': dict(arch=dict(embed_dims=32, depths=(1, 1, 1, 1),
                               focal_levels=2, focal_windows=3),
                     out_indices=(0, 1, 2, 3)),
    'HorNet': dict(arch=dict(base_dim=16, depths=(1, 1, 1, 1),
                             gf_sizes=(None, None, (14, 8), (7, 4))),
                   out_indices=(0, 1, 2, 3)),
    'SMT': dict(arch=dict(embed_dims=(32, 64, 128, 256), depths=(1, 1, 2, 1),
                          mlp_ratios=(2, 2, 2, 2), head_conv=3,
                          sa_num_heads=(-1, -1, 4, 8)),
                out_indices=(0, 1, 2, 3), drop_path_rate=0.),
    'TransNeXt': dict(arch=dict(embed_dims=(16, 32, 64, 64),
                                depths=(1, 1, 2, 1), num_heads=(2, 2, 4, 4),
                                mlp_ratios=(4, 4, 4, 4)),
                      img_size=64, out_indices=(0, 1, 2, 3)),
    # TransUNet's encoder ends at stride 16: its root (/2), the /4 and /8
    # skips and the ViT map (/16), as TransUNet's decoder reads them
    'ResNetViT': dict(img_size=64, stem_channels=16, base_channels=8,
                      stage_blocks=(1, 1, 1),
                      norm_cfg=dict(type='GN', num_groups=8), embed_dims=32,
                      num_layers=1, num_heads=2, out_indices=(0, 1, 2, 4)),
}


def registered_backbones() -> List[str]:
    """Names of the densekit backbone classes in the registry."""
    import densekit.models  # noqa: F401  (registers everything)
    from densekit.models.backbones import BaseBackbone
    from densekit.registry import MODELS
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, BaseBackbone)
                  and cls is not BaseBackbone)
