"""Mixed-precision training on CPUs: bfloat16 autocast.

mmengine's ``AmpOptimWrapper`` refuses CPUs (it is built on CUDA's
float16 GradScaler). On a CPU with native bfloat16 (AVX-512 BF16 / AMX)
``torch.autocast('cpu', dtype=torch.bfloat16)`` runs convolutions and
matrix products in bfloat16 through oneDNN while parameters, gradients and
optimizer state stay float32; bfloat16 has float32's exponent range, so no
loss scaling is needed. ``tools/train.py --amp`` selects this wrapper when
CUDA is absent and the CPU supports bfloat16.
"""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from densekit.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward context is CPU bfloat16 autocast.

    Args:
        dtype (str): Only ``'bfloat16'`` (CPU autocast's dtype).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError('CPUAutocastOptimWrapper: dtype must be '
                             f'bfloat16, got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
