"""A faster inference path for :class:`EfficientAD` (same maps, up to
bfloat16 rounding).

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
   in float32 on the networks' outputs.

:class:`EfficientADInference` wraps a trained model and returns what
``EfficientAD._forward`` returns: ``(combined, local, global)`` maps.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from densekit.engine.optimizers import cpu_supports_bf16


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
        dtype (str): ``'float32'``, ``'bfloat16'`` or ``'auto'``
            (bfloat16 where the CPU has native support, on CPU only).
            Defaults to ``'auto'``.

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
        c = self.out_channels
        if bool(self.has_teacher_stats):
            teacher = (teacher - self.teacher_mean) / self.teacher_std
        map_st = (teacher - student[:, :c]).pow(2).mean(1, keepdim=True)
        map_ae = (ae - student[:, c:]).pow(2).mean(1, keepdim=True)
        if bool(self.has_quantiles):
            qa_st, qb_st, qa_ae, qb_ae = self.quantiles
            map_st = 0.1 * (map_st - qa_st) / (qb_st - qa_st)
            map_ae = 0.1 * (map_ae - qa_ae) / (qb_ae - qa_ae)
        combined = 0.5 * map_st + 0.5 * map_ae
        if self.pad_maps:
            combined, map_st, map_ae = (F.pad(m, (4, 4, 4, 4))
                                        for m in (combined, map_st, map_ae))
        return combined, map_st, map_ae


def build_inference_path(model: nn.Module, backend: Optional[str] = None
                         ) -> nn.Module:
    """``'eager'`` (the model itself) or ``'optimized'``
    (:class:`EfficientADInference` with its defaults)."""
    if backend in (None, 'eager'):
        return model
    if backend == 'optimized':
        return EfficientADInference(model)
    raise ValueError(f"inference backend must be 'eager' or 'optimized', "
                     f'got {backend!r}')
