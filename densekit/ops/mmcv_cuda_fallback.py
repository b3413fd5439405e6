"""mmcv's compiled ops on CUDA tensors when mmcv has CPU ops only.

mmcv 2.1 has no wheel for recent torch releases; built from source without a
CUDA toolkit (``MMCV_WITH_OPS=1 FORCE_CUDA=0``, what ``tools/setup_env.sh``
does) its ``mmcv._ext`` holds CPU kernels only, and every op then fails on
CUDA tensors (``nms_impl: implementation for device cuda:0 not found``),
although the models themselves run on the GPU. :func:`use_cpu_ops_for_cuda`
makes such an mmcv usable on a GPU: each ``ext_module`` of ``mmcv.ops`` is
wrapped so that a call with tensors on another device copies them to the
CPU, runs the CPU kernel, copies the results back and writes back the
arguments the kernel filled in place (mmcv's ops take their output buffers
as arguments). Slower than mmcv's CUDA kernels (a device round trip per
call), exact (the same CPU arithmetic), and only for ops with a CPU kernel.
densekit's own ops do not need it: RoIAlign has a pure-PyTorch path for
CUDA (:func:`densekit.ops.roi_align.roi_align_torch`), the scan a Triton
one.

Nothing is patched on import: ``tools/train.py``, ``tools/test.py`` and
``tools/analysis/device_check.py`` call :func:`use_cpu_ops_for_cuda` when
CUDA is available and mmcv has no CUDA ops, and say so in the log.
"""
import importlib
import logging
import pkgutil
from typing import Any, Callable, List, Optional

import torch
from mmengine.logging import print_log
from torch import Tensor


def _to_cpu(t: Tensor) -> Tensor:
    return t.detach().cpu()


def _to_origin(t: Tensor, like: Tensor) -> Tensor:
    return t.to(like.device)


class CPURoundTripExt:
    """An mmcv ``ext_module`` whose functions take tensors of any device.

    Args:
        ext: The wrapped extension module.
        is_foreign (callable): Whether a tensor argument must go to the
            CPU. Defaults to "not on the CPU".
        to_host (callable): Tensor -> its CPU copy. Defaults to
            ``t.detach().cpu()``.
        to_origin (callable): ``(cpu_tensor, original)`` -> the result
            where ``original`` lives. Defaults to ``t.to(original.device)``.
    """

    def __init__(self,
                 ext: Any,
                 is_foreign: Optional[Callable[[Tensor], bool]] = None,
                 to_host: Callable[[Tensor], Tensor] = _to_cpu,
                 to_origin: Callable[[Tensor, Tensor], Tensor] = _to_origin):
        self.wrapped_ext = ext
        self._is_foreign = is_foreign or (lambda t: t.device.type != 'cpu')
        self._to_host = to_host
        self._to_origin = to_origin

    def __getattr__(self, name: str):
        fn = getattr(self.wrapped_ext, name)
        if not callable(fn):
            return fn

        def call(*args, **kwargs):
            # (original, cpu copy, copy before the call) per foreign tensor
            moved = []

            def host(value):
                if isinstance(value, Tensor) and self._is_foreign(value):
                    copy = self._to_host(value)
                    moved.append((value, copy, copy.clone()))
                    return copy
                return value

            cpu_args = [host(a) for a in args]
            cpu_kwargs = {k: host(v) for k, v in kwargs.items()}
            if not moved:
                return fn(*args, **kwargs)
            out = fn(*cpu_args, **cpu_kwargs)
            # write back only what the kernel filled in place: an
            # in-place copy into an unchanged input would bump its autograd
            # version for nothing
            for original, copy, before in moved:
                if not torch.equal(copy, before):
                    with torch.no_grad():
                        original.copy_(self._to_origin(copy, original))
            like = moved[0][0]
            return self._back(out, like)

        return call

    def _back(self, out, like: Tensor):
        if isinstance(out, Tensor):
            return self._to_origin(out, like)
        if isinstance(out, (list, tuple)):
            return type(out)(self._back(o, like) for o in out)
        return out


def mmcv_op_modules() -> List[Any]:
    """The ``mmcv.ops`` submodules that hold an ``ext_module``."""
    import mmcv.ops
    modules = []
    for info in pkgutil.iter_modules(mmcv.ops.__path__):
        try:
            module = importlib.import_module(f'mmcv.ops.{info.name}')
        except Exception:  # an op whose import needs what is not here
            continue
        if hasattr(module, 'ext_module'):
            modules.append(module)
    return modules


def use_cpu_ops_for_cuda(force: bool = False) -> List[str]:
    """Wrap every ``mmcv.ops`` extension in :class:`CPURoundTripExt` when
    CUDA is available and mmcv has no CUDA ops (or ``force``).

    Returns:
        list[str]: The wrapped modules' names (empty when nothing was
        needed or everything was already wrapped).
    """
    from densekit.ops.roi_align import mmcv_has_cuda_ops
    if not force and (not torch.cuda.is_available() or mmcv_has_cuda_ops()):
        return []
    wrapped = []
    for module in mmcv_op_modules():
        if isinstance(module.ext_module, CPURoundTripExt):
            continue
        module.ext_module = CPURoundTripExt(module.ext_module)
        wrapped.append(module.__name__)
    if wrapped:
        print_log(
            f'mmcv was built without CUDA ops: its ops ({len(wrapped)} '
            'modules: nms, focal loss, deformable convolution, ...) run '
            'their CPU kernels on copies of CUDA tensors (correct, slower; '
            'build mmcv with a CUDA toolkit for its kernels)',
            logger='current', level=logging.WARNING)
    return wrapped


__all__ = ['CPURoundTripExt', 'use_cpu_ops_for_cuda', 'mmcv_op_modules']
