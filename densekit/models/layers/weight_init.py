"""The official weight initialisations of the backbone families, for
``model.apply(...)``."""
import math
from typing import Optional

import torch
import torch.nn as nn


def trunc_normal_init_weights(module: nn.Module) -> None:
    """The ConvNeXt-family ``_init_weights`` (EdgeNeXt, HorNet): truncated
    normal (std 0.02) convs and linears with zero bias, unit LayerNorms;
    use as ``model.apply(trunc_normal_init_weights)``."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def fan_out_normal_init_weights(module: nn.Module) -> None:
    """The PVT-family ``_init_weights`` (SMT, TransNeXt): truncated normal
    (std 0.02) linears, unit LayerNorms, conv weights ``N(0, 2 / fan_out)``
    with ``fan_out = k * k * C_out / groups``, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * \
            module.out_channels // module.groups
        nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def layer_scale(dims: int, init_value: float,
                enabled: bool = True) -> Optional[nn.Parameter]:
    """A per-channel layer-scale vector (CaiT) filled with ``init_value``,
    or None when disabled (the block then skips the multiplication)."""
    if not enabled:
        return None
    return nn.Parameter(torch.full((dims, ), float(init_value)))


def drop_path_rates(max_rate: float, num_blocks: int) -> list:
    """Stochastic-depth rates rising linearly from 0 to ``max_rate`` over
    ``num_blocks`` blocks, as the official backbones compute them
    (``torch.linspace(0, rate, n).tolist()``, float32 values); built on the
    CPU so a model also builds under ``torch.device('meta')``."""
    return torch.linspace(0, max_rate, num_blocks, device='cpu').tolist()
