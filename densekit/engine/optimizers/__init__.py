from .cpu_autocast_optim_wrapper import (CPUAutocastOptimWrapper,
                                         cpu_supports_bf16)

__all__ = ['CPUAutocastOptimWrapper', 'cpu_supports_bf16']
