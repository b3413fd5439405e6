"""What this machine's CPU can do, asked once by the library and the tools."""
import torch

__all__ = ['cpu_supports_bf16']


def cpu_supports_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
