"""A faster inference path for :class:`EfficientAD`: the eager maps in
float32; in bfloat16 (the default where the CPU has native bfloat16) maps
that differ from them by up to about 1% of their range.

EfficientAD's cost is three small all-convolutional networks on one image;
on a CPU the plain eager float32 forward spends its time in oneDNN
convolutions, extra memory passes for every ReLU and layout reorders. This
path applies, each optional and measured in ``tools/analysis/benchmark.py``:

1. **channels-last** weights and inputs (oneDNN's native layout, no
   reorders);
2. **graph freezing with fused conv + ReLU**: the teacher, student and
   autoencoder are traced into one TorchScript graph, frozen (weights become
   constants) and passed through ``torch.jit.optimize_for_inference``,
   which fuses each convolution with its ReLU and keeps oneDNN's blocked
   layout between layers; a graph is traced per input size;
3. **bfloat16** networks on CPUs with native bfloat16 (AVX-512 BF16 / AMX):
   weights and activations in bfloat16, while the feature normalisation,
   the squared differences, the map normalisation and everything after run
   in float32 on the networks' outputs. bfloat16 keeps 8 significant bits,
   so these maps are not the eager ones: they differ by up to about 1% of
   the map range, and scores and AUROCs move slightly. ``dtype='float32'``
   keeps (1) and (2) and gives the eager maps to float32 rounding.

:class:`EfficientADInference` wraps a trained model and returns what
``EfficientAD._forward`` returns: ``(combined, local, global)`` maps,
through the same :func:`~.efficient_ad.postprocess_maps` (the model's
``map_postprocess`` and ``pad_maps``).
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from densekit.utils.hardware import cpu_supports_bf16
from .efficient_ad import distance_maps, postprocess_maps


class _Networks(nn.Module):
    """Teacher, student and autoencoder in one module (one graph)."""

    def __init__(self, teacher: nn.Module, student: nn.Module,
                 autoencoder: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher
        self.student = student
        self.autoencoder = autoencoder

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return (self.teacher(x), self.student(x),
                self.autoencoder(x, x.shape[-2:]))


class EfficientADInference(nn.Module):
    """EfficientAD maps through the optimised path described above.

    Args:
        model (EfficientAD): A model with its statistics (copied; the model
            itself is not changed).
        channels_last (bool): Defaults to True.
        fuse (bool): TorchScript freeze + ``optimize_for_inference``
            (conv + ReLU fusion). Defaults to True.
        dtype (str): Of the networks: ``'float32'`` (the eager maps, to
            float32 rounding), ``'bfloat16'`` (about 2x faster on CPUs with
            native bfloat16; maps within about 1% of their range of the
            eager ones) or ``'auto'`` (bfloat16 where the CPU has native
            support, on CPU only; float32 otherwise). Defaults to
            ``'auto'``.

    Examples:
        >>> fast = EfficientADInference(model)  # doctest: +SKIP
        >>> combined, map_st, map_ae = fast(images)  # [0, 1] RGB batch
    """

    def __init__(self,
                 model: nn.Module,
                 channels_last: bool = True,
                 fuse: bool = True,
                 dtype: str = 'auto') -> None:
        super().__init__()
        device = model.input_mean.device
        if dtype == 'auto':
            dtype = ('bfloat16' if device.type == 'cpu'
                     and cpu_supports_bf16() else 'float32')
        if dtype not in ('float32', 'bfloat16'):
            raise ValueError('EfficientADInference: dtype must be float32, '
                             f'bfloat16 or auto, got {dtype!r}')
        self.dtype = getattr(torch, dtype)
        self.channels_last = channels_last
        self.fuse = fuse
        self.out_channels = model.out_channels
        self.pad_maps = model.pad_maps
        self.map_postprocess = model.map_postprocess
        import copy
        networks = _Networks(copy.deepcopy(model.teacher),
                             copy.deepcopy(model.student),
                             copy.deepcopy(model.autoencoder)).eval()
        networks.requires_grad_(False)
        networks.to(dtype=self.dtype)
        if channels_last:
            networks.to(memory_format=torch.channels_last)
        self.networks = networks
        for name in ('input_mean', 'input_std', 'teacher_mean',
                     'teacher_std', 'quantiles', 'has_teacher_stats',
                     'has_quantiles'):
            self.register_buffer(name, getattr(model, name).detach().clone())
        self._graphs: Dict[Tuple[int, ...], torch.jit.ScriptModule] = {}

    @property
    def description(self) -> str:
        parts = [str(self.dtype).replace('torch.', '')]
        if self.channels_last:
            parts.append('channels-last')
        if self.fuse:
            parts.append('frozen TorchScript, conv+ReLU fused')
        return ', '.join(parts)

    def _prepare(self, images: Tensor) -> Tensor:
        x = ((images - self.input_mean) / self.input_std).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _run_networks(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        if not self.fuse:
            return self.networks(x)
        key = tuple(x.shape)
        graph = self._graphs.get(key)
        if graph is None:
            with torch.no_grad():
                traced = torch.jit.trace(self.networks, (x, ),
                                         check_trace=False)
                graph = torch.jit.optimize_for_inference(
                    torch.jit.freeze(traced))
            self._graphs[key] = graph
        return graph(x)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """[0, 1] RGB (N, 3, H, W) -> (combined, local, global) maps, as
        ``EfficientAD._forward``."""
        teacher, student, ae = (o.float() for o in self._run_networks(
            self._prepare(images)))
        if bool(self.has_teacher_stats):
            teacher = (teacher - self.teacher_mean) / self.teacher_std
        map_st, map_ae = distance_maps(teacher, student, ae)
        return postprocess_maps(
            map_st, map_ae,
            self.quantiles if bool(self.has_quantiles) else None,
            order=self.map_postprocess, pad=self.pad_maps,
            image_size=images.shape[-2:])


def build_inference_path(model: nn.Module, backend: Optional[str] = None,
                         dtype: str = 'auto') -> nn.Module:
    """``'eager'`` (the model itself) or ``'optimized'``
    (:class:`EfficientADInference` with ``dtype``: ``'auto'`` is bfloat16
    on CPUs with native bfloat16, whose maps differ slightly from the eager
    ones; ``'float32'`` keeps them)."""
    if backend in (None, 'eager'):
        return model
    if backend == 'optimized':
        return EfficientADInference(model, dtype=dtype)
    raise ValueError(f"inference backend must be 'eager' or 'optimized', "
                     f'got {backend!r}')
