"""mmcv's compiled ops where its kernels do not reach: CUDA tensors with an
mmcv built with CPU ops only, and bfloat16 / float16 tensors on the CPU.

mmcv 2.1 has no wheel for recent torch releases; built from source without a
CUDA toolkit (``MMCV_WITH_OPS=1 FORCE_CUDA=0``, what ``tools/setup_env.sh``
does) its ``mmcv._ext`` holds CPU kernels only, and every op then fails on
CUDA tensors (``nms_impl: implementation for device cuda:0 not found``),
although the models themselves run on the GPU. mmcv's CPU kernels also
take float32 / float64 only, so under CPU bfloat16 autocast (``--amp``)
the RPN's NMS fails (``expected scalar type Float but found BFloat16``).
:func:`adapt_mmcv_ops` wraps each ``ext_module`` of ``mmcv.ops`` so that a
call with such tensors copies them to the CPU in float32, runs the CPU
kernel, brings the results back (to the caller's device and floating
dtype) and writes back the arguments the kernel filled in place (mmcv's
ops take their output buffers as arguments). Slower than a native kernel
(a copy per call), exact (float32 CPU arithmetic), and only for ops with a
CPU kernel; calls with float32 / float64 CPU tensors, or CUDA tensors with
mmcv's CUDA ops, go straight to the kernel.
densekit's own ops do not need it: RoIAlign has a pure-PyTorch path for
CUDA (:func:`densekit.ops.roi_align.roi_align_torch`), the scan a Triton
one.

Nothing is patched on import: ``tools/train.py``, ``tools/test.py`` and
``tools/analysis/device_check.py`` call :func:`adapt_mmcv_ops` (it wraps
when CUDA is available and mmcv has no CUDA ops, or for CPU mixed
precision), and it says so in the log.
"""
import importlib
import logging
import pkgutil
from typing import Any, Callable, List, Optional

import torch
from mmengine.logging import print_log
from torch import Tensor

_LOW_PRECISION = (torch.bfloat16, torch.float16)


def needs_host_copy(t: Tensor) -> bool:
    """Whether mmcv's kernels cannot take ``t`` as it is: a non-CPU tensor
    with an mmcv without CUDA ops, or a bfloat16 / float16 CPU tensor."""
    if t.device.type == 'cpu':
        return t.dtype in _LOW_PRECISION
    from densekit.ops.roi_align import mmcv_has_cuda_ops
    return not mmcv_has_cuda_ops()


def _to_cpu(t: Tensor) -> Tensor:
    dtype = torch.float32 if t.dtype in _LOW_PRECISION else t.dtype
    return t.detach().to('cpu', dtype)


def _to_origin(t: Tensor, like: Tensor) -> Tensor:
    dtype = like.dtype if (t.is_floating_point()
                           and like.is_floating_point()) else t.dtype
    return t.to(like.device, dtype)


class CPURoundTripExt:
    """An mmcv ``ext_module`` whose functions take tensors of any device.

    Args:
        ext: The wrapped extension module.
        is_foreign (callable): Whether a tensor argument must be copied.
            Defaults to :func:`needs_host_copy`.
        to_host (callable): Tensor -> its copy for the kernel. Defaults to
            a float32 (low-precision inputs) CPU copy.
        to_origin (callable): ``(result, original)`` -> the result on
            ``original``'s device (and floating dtype).
    """

    def __init__(self,
                 ext: Any,
                 is_foreign: Optional[Callable[[Tensor], bool]] = None,
                 to_host: Callable[[Tensor], Tensor] = _to_cpu,
                 to_origin: Callable[[Tensor, Tensor], Tensor] = _to_origin):
        self.wrapped_ext = ext
        self._is_foreign = is_foreign or needs_host_copy
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


def adapt_mmcv_ops(low_precision_cpu: bool = False,
                   force: bool = False) -> List[str]:
    """Wrap every ``mmcv.ops`` extension in :class:`CPURoundTripExt` when
    its kernels would not reach: CUDA is available and mmcv has no CUDA
    ops, or ``low_precision_cpu`` (CPU bfloat16 / float16 autocast), or
    ``force``. Idempotent.

    Returns:
        list[str]: The modules wrapped by this call.
    """
    from densekit.ops.roi_align import mmcv_has_cuda_ops
    gpu_without_ops = torch.cuda.is_available() and not mmcv_has_cuda_ops()
    if not (force or gpu_without_ops or low_precision_cpu):
        return []
    wrapped = []
    for module in mmcv_op_modules():
        if isinstance(module.ext_module, CPURoundTripExt):
            continue
        module.ext_module = CPURoundTripExt(module.ext_module)
        wrapped.append(module.__name__)
    if wrapped:
        why = ('mmcv was built without CUDA ops' if gpu_without_ops else
               'CPU mixed precision')
        print_log(
            f'{why}: mmcv\'s ops ({len(wrapped)} modules: nms, focal loss, '
            'deformable convolution, ...) run their CPU kernels on float32 '
            'CPU copies of CUDA / bfloat16 / float16 tensors (exact, slower'
            + ('; build mmcv with a CUDA toolkit for its kernels)'
               if gpu_without_ops else ')'),
            logger='current', level=logging.WARNING)
    return wrapped


__all__ = ['CPURoundTripExt', 'adapt_mmcv_ops', 'mmcv_op_modules',
           'needs_host_copy']
