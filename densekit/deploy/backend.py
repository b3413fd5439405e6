"""A model's tensor forward run by ONNX Runtime or OpenVINO, giving what
the PyTorch forward gives, so the PyTorch post-processing runs unchanged.

:class:`RuntimeForward` wraps an exported file, or exports the model on the
fly into a cache (one file per input size, reused across processes), and
returns per task what the inferencers read from PyTorch:

=========  ==============================================================
task       ``RuntimeForward(inputs)`` returns
=========  ==============================================================
det        ``bbox_head.forward``'s tuple of per-level lists, for
           ``bbox_head.predict_by_feat``; a file exported with
           ``--with-postprocess``: ``dict(boxes, scores, labels,
           num_dets)`` (see :func:`postprocessed_instances`)
seg        ``seg_logits`` of ``encode_decode``
anomaly    ``(combined, map_st, map_ae)`` of ``EfficientAD._forward``
=========  ==============================================================

:func:`attach_runtime` makes a segmentor's ``encode_decode`` or an
EfficientAD's ``inference_maps`` call the runtime, so ``inference``,
``slide_inference``, ``predict`` and ``test_step`` use it untouched.

The cache is ``$DENSEKIT_CACHE/deploy`` (default
``~/.cache/densekit/deploy``), keyed by the config text, the checkpoint
(path, size, modification time), the input size and the format.
"""
import copy
import hashlib
import os
import os.path as osp
import types
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .exporter import ExportError, export_model, model_task, read_meta
from .runtime import RUNTIME_BACKENDS, RuntimeSession, check_backend


def default_cache_dir() -> str:
    """``$DENSEKIT_CACHE/deploy`` (``~/.cache/densekit/deploy``)."""
    root = os.environ.get('DENSEKIT_CACHE') or osp.join(
        osp.expanduser('~'), '.cache', 'densekit')
    return osp.join(root, 'deploy')


def config_cache_key(cfg, checkpoint: Optional[str]) -> str:
    """A key naming a config + checkpoint pair in the export cache."""
    import densekit
    h = hashlib.sha1()
    h.update(getattr(cfg, 'pretty_text', repr(cfg)).encode())
    if checkpoint is not None:
        st = os.stat(checkpoint)
        h.update(f'{osp.abspath(checkpoint)}:{st.st_size}:{st.st_mtime_ns}'
                 .encode())
    h.update(f'{densekit.__version__}:{torch.__version__}'.encode())
    return h.hexdigest()[:16]


def _weights_key(model: nn.Module) -> str:
    h = hashlib.sha1(type(model).__name__.encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class RuntimeForward:
    """The tensor forward of ``model`` through a runtime (module docstring).

    Args:
        model (nn.Module): The PyTorch model: exported on the fly without
            ``model_path``; gives the output structure and device.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
        model_path (str, optional): An exported file (``.onnx`` / ``.xml``,
            with its ``.json`` beside it). None: export on the fly.
        cache_dir (str, optional): Default :func:`default_cache_dir`.
        cache_key (str, optional): Names the model in the cache
            (:func:`config_cache_key`); None hashes the weights.
        num_threads (int, optional): Runtime threads.
        dynamic_batch (bool): Export on the fly with a symbolic batch
            (batched slices of the volume inferencer). Defaults to False.
    """

    def __init__(self,
                 model: nn.Module,
                 backend: str,
                 *,
                 model_path: Optional[str] = None,
                 cache_dir: Optional[str] = None,
                 cache_key: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 dynamic_batch: bool = False) -> None:
        self.backend = check_backend(backend, RUNTIME_BACKENDS)
        self.model = model
        self.task = model_task(model)
        self.num_threads = num_threads
        self.dynamic_batch = dynamic_batch
        self.cache_dir = cache_dir or default_cache_dir()
        self._cache_key = cache_key
        self._sessions: Dict[tuple, Tuple[RuntimeSession, dict]] = {}
        self.model_path = model_path
        if model_path is not None:
            meta = read_meta(model_path)
            if meta.get('task') not in (None, self.task):
                raise ValueError(
                    f'RuntimeForward: {model_path} was exported from a '
                    f'{meta["task"]} model, but the config builds a '
                    f'{self.task} model ({type(model).__name__})')
            session = RuntimeSession(model_path, self.backend, num_threads)
            self._fixed = (session, meta)
        else:
            self._fixed = None

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device('cpu')

    def _session(self, inputs: Tensor) -> Tuple[RuntimeSession, dict]:
        if self._fixed is not None:
            session, meta = self._fixed
            shape = meta.get('input_shape')
            if shape is not None and list(inputs.shape[-2:]) != list(shape):
                raise ValueError(
                    f'{self.model_path} was exported for {shape[0]}x'
                    f'{shape[1]} inputs, but the pipeline gives '
                    f'{inputs.shape[-2]}x{inputs.shape[-1]}; re-export with '
                    f'--shape {inputs.shape[-2]} {inputs.shape[-1]}')
            return session, meta
        size = tuple(int(s) for s in inputs.shape[-2:])
        if size not in self._sessions:
            self._sessions[size] = self._export_cached(size)
        return self._sessions[size]

    def _export_cached(self, size: Tuple[int, int]
                       ) -> Tuple[RuntimeSession, dict]:
        key = self._cache_key or _weights_key(self.model)
        fmt = 'onnx' if self.backend == 'onnxruntime' else 'openvino'
        name = f'{self.task}_{size[0]}x{size[1]}' + (
            '_dynamic' if self.dynamic_batch else '')
        folder = osp.join(self.cache_dir, key)
        path = osp.join(folder, name + ('.onnx' if fmt == 'onnx' else
                                        '.xml'))
        fixed = osp.join(folder, f'{self.task}_{size[0]}x{size[1]}' + (
            '.onnx' if fmt == 'onnx' else '.xml'))
        if not osp.isfile(path) and osp.isfile(fixed):
            path = fixed  # an earlier try found the batch cannot be dynamic
        if not osp.isfile(path):
            model = _unpatched(self.model)
            try:
                path = export_model(model, folder, fmt=fmt, shape=size,
                                    name=name,
                                    dynamic_batch=self.dynamic_batch)
            except ExportError as e:
                if 'dynamic batch' not in str(e):
                    raise
                # run batches image by image (RuntimeForward.run)
                path = export_model(model, folder, fmt=fmt, shape=size,
                                    name=osp.splitext(osp.basename(fixed))[0])
        return (RuntimeSession(path, self.backend, self.num_threads),
                read_meta(path))

    def run(self, inputs: Tensor) -> Tuple[Dict[str, np.ndarray], dict]:
        """Raw outputs ``{name: array}`` and the file's meta data."""
        session, meta = self._session(inputs)
        if inputs.shape[0] > 1 and not meta.get('dynamic_batch', False):
            # a batch-1 graph: one image at a time, outputs concatenated
            parts = [session({session.input_names[0]: x[None]})
                     for x in inputs]
            return {k: np.concatenate([p[k] for p in parts])
                    for k in parts[0]}, meta
        return session({session.input_names[0]: inputs}), meta

    def __call__(self, inputs: Tensor):
        """Outputs in the structure of the PyTorch forward (module
        docstring), as tensors on the model's device."""
        outputs, meta = self.run(inputs)
        device = self.device
        tensors = [torch.from_numpy(v).to(device) for v in outputs.values()]
        if self.task == 'seg':
            return tensors[0]
        if self.task == 'anomaly':
            named = dict(zip(outputs, tensors))
            return named['combined'], named['map_st'], named['map_ae']
        if meta.get('with_postprocess'):
            return dict(zip(outputs, tensors))
        return regroup(tensors, meta.get('groups'))


# methods attach_runtime overrides on the instance
_PATCHED = ('encode_decode', 'inference_maps')


def _unpatched(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` without :func:`attach_runtime`'s
    overrides (exporting the patched model would call the runtime)."""
    saved = {k: model.__dict__.pop(k) for k in _PATCHED
             if k in model.__dict__}
    try:
        copy_ = copy.deepcopy(model).eval()
    finally:
        model.__dict__.update(saved)
    return copy_


def regroup(tensors: Sequence[Tensor],
            groups: Optional[Sequence]) -> Tuple[List[Tensor], ...]:
    """Flat per-(output, level) tensors -> the head's tuple of lists
    (``groups``: ``[[name, num_levels], ...]`` of the export meta)."""
    if not groups:
        raise ValueError('regroup: the exported file has no output grouping '
                         '(its .json is missing); re-export it with '
                         'tools/deploy/export.py')
    out, i = [], 0
    for _, count in groups:
        out.append(list(tensors[i:i + int(count)]))
        i += int(count)
    return tuple(out)


def postprocessed_instances(outputs: Dict[str, Tensor], img_meta: dict,
                            index: int = 0):
    """``InstanceData`` of one image from a ``--with-postprocess`` graph,
    in original-image pixels: letterbox padding (``pad_param``) and the
    resize (``scale_factor``) undone and clipped to ``ori_shape``, as
    ``YOLOv8Head.predict_by_feat(rescale=True)`` does (which rescales
    before NMS instead of after: the same boxes for a uniform scale).
    """
    from mmengine.structures import InstanceData
    num = int(outputs['num_dets'][index])
    boxes = outputs['boxes'][index, :num].float().clone()
    if 'pad_param' in img_meta:
        top, _, left, _ = img_meta['pad_param']
        boxes -= boxes.new_tensor([left, top, left, top])
    if 'scale_factor' in img_meta:
        sx, sy = img_meta['scale_factor'][:2]
        boxes /= boxes.new_tensor([sx, sy, sx, sy])
    if 'ori_shape' in img_meta:
        h, w = img_meta['ori_shape'][:2]
        boxes[:, 0::2].clamp_(0, w)
        boxes[:, 1::2].clamp_(0, h)
    return InstanceData(bboxes=boxes,
                        scores=outputs['scores'][index, :num].float(),
                        labels=outputs['labels'][index, :num].long())


def attach_runtime(model: nn.Module, runtime: RuntimeForward) -> nn.Module:
    """Route a segmentor's ``encode_decode`` or an EfficientAD's
    ``inference_maps`` through ``runtime`` (instance attributes; the class
    is untouched). Detectors are run by the caller (``DetInferencer``)."""
    if runtime.task == 'seg':
        model.encode_decode = types.MethodType(
            lambda self, inputs, batch_img_metas: runtime(inputs), model)
    elif runtime.task == 'anomaly':
        model.inference_maps = types.MethodType(
            lambda self, inputs: runtime(inputs), model)
    return model


def make_runtime(model: nn.Module, backend: str, *, cfg=None,
                 checkpoint: Optional[str] = None,
                 model_path: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 dynamic_batch: bool = False) -> Optional[RuntimeForward]:
    """``None`` for ``backend='pytorch'``, else a :class:`RuntimeForward`
    (on-the-fly exports keyed by ``cfg`` + ``checkpoint``)."""
    backend = check_backend(backend)
    if backend == 'pytorch':
        if model_path is not None:
            raise ValueError(f'an exported model ({model_path}) needs '
                             "backend='onnxruntime' or 'openvino', not "
                             "'pytorch'")
        return None
    key = config_cache_key(cfg, checkpoint) if cfg is not None else None
    return RuntimeForward(model, backend, model_path=model_path,
                          cache_key=key, num_threads=num_threads,
                          dynamic_batch=dynamic_batch)


