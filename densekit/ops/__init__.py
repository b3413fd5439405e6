"""densekit's compiled ops (``densekit._ext``), built by ``setup.py``.

The ops are optional: every one has a pure-PyTorch path, used (with a
one-line warning) when the extension is not built. Build it in a checkout
with ``python setup.py build_ext --inplace`` (``make test``/``make demo``
do it), or install with ``pip install -e . --no-build-isolation``.

Ops:
    ``selective_scan_fwd`` / ``selective_scan_bwd``: Mamba's S6 scan on the
    CPU (``densekit/ops/csrc/selective_scan_cpu.cpp``), used by
    :func:`densekit.models.layers.selective_scan.selective_scan_fn`.
    ``roi_align_fwd`` / ``roi_align_bwd``: multi-threaded RoIAlign (average
    pooling) on the CPU (``densekit/ops/csrc/roi_align_cpu.cpp``), used by
    :func:`densekit.ops.roi_align.roi_align` (mmcv's op otherwise).
"""
import functools
from types import ModuleType
from typing import Optional, Tuple

BUILD_HINT = ('build it with `python setup.py build_ext --inplace` in the '
              'densekit checkout (or `pip install -e . --no-build-isolation`)')


@functools.lru_cache(maxsize=None)
def load_ext() -> Tuple[Optional[ModuleType], Optional[str]]:
    """``(module, None)`` when ``densekit._ext`` imports, else ``(None,
    reason)``; cached."""
    try:
        from densekit import _ext
    except ImportError as e:  # not built, or built against another torch
        return None, f'{type(e).__name__}: {e}'
    return _ext, None


__all__ = ['load_ext', 'BUILD_HINT']
