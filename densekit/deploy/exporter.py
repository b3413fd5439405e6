"""Export densekit models to ONNX and OpenVINO IR.

What is exported is each task's *tensor forward*, from the data
preprocessor's output (normalised, padded ``(B, 3, H, W)`` float32) to the
tensors that the task's PyTorch post-processing reads, so a runtime's
outputs go through the very same decoding as eager PyTorch
(:mod:`densekit.deploy.backend`):

=========  =====================================  ===========================
task       graph outputs                          wrapper
=========  =====================================  ===========================
det        the head's raw maps per level,         :class:`DetHeadForward`
           e.g. ``cls_scores_0``, ``bbox_preds_0``
det, with  ``boxes`` (B, k, 4), ``scores``,       :class:`YOLOPostprocess`
postproc.  ``labels`` (B, k), ``num_dets`` (B,):  (YOLOv8 heads)
           decode + ONNX ``NonMaxSuppression``
seg        ``seg_logits`` (B, K, H, W) at the     :class:`SegForward`
           input size (``encode_decode``)
anomaly    ``anomaly_map`` (B, 1, H, W), normal-  :class:`AnomalyForward`
           ised, at the input size, ``score``
           (B,), and the maps ``combined``,
           ``map_st``, ``map_ae`` of ``_forward``
stream     the head's raw maps plus the feature   :class:`StreamForward`
           buffer as explicit state (inputs
           ``frame``, ``reset``, ``buffer_l``;
           outputs ``new_buffer_l``)
=========  =====================================  ===========================

Call graph::

    export_model(): load_model() -> build_export_spec() -> export_onnx()
                    [-> OpenVINO convert + save] -> <name>.json (meta)
    export_onnx(): torch.onnx.export(dynamo=False) into a temp file
                   -> check_graph() -> [fp16 weights] -> atomic rename

The TorchScript-based exporter (``dynamo=False``, opset 17) is used: it
traces the eval-mode forward once at the given input size (the spatial size
is fixed; ``dynamic_batch`` makes dim 0 symbolic). Mamba-YOLO's selective
scan switches to standard ONNX ops while exporting
(:func:`~densekit.models.layers.selective_scan_export.selective_scan_export`).

Failures raise :class:`ExportError`, one line naming the module that does
not export and why; nothing is left in the output folder (files are
written to temp names and renamed when complete).
"""
import contextlib
import copy
import inspect
import json
import os
import os.path as osp
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

FORMATS = ('onnx', 'openvino')
OPSET = 17
TASKS = ('det', 'seg', 'anomaly', 'stream')
# YOLO post-processing defaults of the exported graph (the demo's threshold
# is applied afterwards by the inferencer)
DEFAULT_POSTPROCESS = dict(score_thr=0.001, iou_threshold=0.7,
                           max_per_img=300)


class ExportError(ValueError):
    """A model (or one of its modules) that cannot be exported; the
    message is one line naming it."""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
def load_config(config, cfg_options: Optional[dict] = None):
    """A config file (or a copy of a Config) with ``cfg_options`` merged."""
    from mmengine.config import Config
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        config = os.fspath(config)
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'config {cfg.filename} has no `model` to build')
    return cfg


def build_model(cfg) -> nn.Module:
    """``cfg.model`` built in the config's default scope, eval mode, CPU."""
    from mmengine.registry import MODELS, init_default_scope

    from densekit.utils.compat import revert_sync_batchnorm_cfg
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    revert_sync_batchnorm_cfg(model_cfg)
    if 'train_cfg' in model_cfg and cfg.get('default_scope') == 'mmseg':
        model_cfg['train_cfg'] = None
    return MODELS.build(model_cfg).eval()


def load_state_dict_strict(model: nn.Module, checkpoint: str,
                           config_name: str = 'the config') -> dict:
    """Load ``checkpoint`` into ``model``; every key and shape must match.

    Returns:
        dict: The checkpoint's ``meta`` (empty when it has none).

    Raises:
        FileNotFoundError: No such file.
        ValueError: One line: how many keys are missing, unexpected or of
            another shape, with the first of each.
    """
    from densekit.utils.checkpoint_check import read_checkpoint
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file {checkpoint} does not exist')
    ckpt = read_checkpoint(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {checkpoint} holds no state dict '
                         f'(got {type(state).__name__})')
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
              for k in own if k in state and hasattr(state[k], 'shape')
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for name, keys in (('missing', missing), ('unexpected', unexpected),
                           ('shape mismatches', shapes)):
            if keys:
                parts.append(f'{len(keys)} {name} (e.g. {keys[0]})')
        raise ValueError(f'checkpoint {checkpoint} does not match '
                         f'{config_name}: ' + ', '.join(parts))
    model.load_state_dict(state, strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}


def load_model(config, checkpoint: Optional[str] = None,
               cfg_options: Optional[dict] = None) -> Tuple[nn.Module, object]:
    """``(model, cfg)``: the config's model in eval mode on the CPU, with
    the checkpoint's weights loaded strictly (random weights without
    one)."""
    cfg = load_config(config, cfg_options)
    model = build_model(cfg)
    if checkpoint is not None:
        load_state_dict_strict(model, checkpoint,
                               f'config {cfg.filename}')
    return model, cfg


# --------------------------------------------------------------------------
# Task wrappers: nn.Modules defining what the graph computes
# --------------------------------------------------------------------------
def model_task(model: nn.Module) -> str:
    """``'stream'``, ``'anomaly'``, ``'seg'`` or ``'det'`` (one of
    :data:`TASKS`); ``ExportError`` for models none of them covers."""
    name = type(model).__name__
    if name == 'EfficientAD':
        return 'anomaly'
    if hasattr(model, 'predict_stream') and \
            getattr(model, 'temporal_fusion', None) is not None:
        return 'stream'
    if hasattr(model, 'decode_head'):
        return 'seg'
    if getattr(model, 'roi_head', None) is not None:
        raise ExportError(
            f'module roi_head ({type(model.roi_head).__name__}) of {name} '
            'does not export: two-stage detectors crop a data-dependent '
            'number of proposals (RoIAlign), which a fixed ONNX graph of '
            'standard ops cannot hold; export a one-stage detector')
    if hasattr(model, 'bbox_head'):
        return 'det'
    raise ExportError(f'{name} does not export: no bbox_head, decode_head '
                      'or EfficientAD maps to export (tasks: '
                      f'{", ".join(TASKS)})')


def head_output_names(head: nn.Module, num_groups: int) -> List[str]:
    """Names of the head's ``forward`` outputs: the leading arguments of
    its ``predict_by_feat`` (``cls_scores``, ``bbox_preds``,
    ``score_factors``), else generic ones."""
    for fn in (getattr(head, 'predict_by_feat', None),
               getattr(getattr(head, 'bbox_head', None), 'predict_by_feat',
                       None)):
        if fn is None:
            continue
        params = []
        for p in inspect.signature(fn).parameters.values():
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) \
                    or p.name == 'batch_img_metas':
                break
            params.append(p.name)
        if len(params) >= num_groups:
            return params[:num_groups]
    return [f'outputs{i}' for i in range(num_groups)]


class DetHeadForward(nn.Module):
    """``bbox_head(extract_feat(inputs))`` flattened to one tensor per
    (output, level): ``cls_scores_0, ..., bbox_preds_0, ...``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        outs = self.model.bbox_head(self.model.extract_feat(inputs))
        return tuple(t for group in outs for t in group)


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (class-wise, boxes (x1, y1, x2, y2)).

    Args (forward): boxes (B, A, 4); scores (B, C, A); max_per_class,
    iou_threshold, score_threshold: 0-dim tensors.

    Returns:
        Tensor: (M, 3) int64 ``[batch, class, box]`` of the kept boxes, as
        ONNX's operator (eager: mmcv's NMS, used while tracing only).
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: Tensor,
                iou_threshold: Tensor, score_threshold: Tensor) -> Tensor:
        from mmcv.ops import nms
        selected = []
        for b in range(boxes.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c]
                idx = torch.nonzero(s > score_threshold).flatten()
                if idx.numel() == 0:
                    continue
                _, keep = nms(boxes[b, idx], s[idx], float(iou_threshold))
                keep = idx[keep[:int(max_per_class)]]
                selected.append(torch.stack(
                    [torch.full_like(keep, b), torch.full_like(keep, c),
                     keep], 1))
        if not selected:
            return boxes.new_zeros((0, 3), dtype=torch.long)
        return torch.cat(selected).long()

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold,
                 score_threshold):
        return g.op('NonMaxSuppression', boxes, scores, max_per_class,
                    iou_threshold, score_threshold, center_point_box_i=0)


class YOLOPostprocess(nn.Module):
    """YOLOv8-head decode + class-wise NMS in the graph.

    Multi-label as YOLOv8Head.predict_by_feat: every (prior, class) above
    ``score_thr`` is a candidate, NMS runs per class at ``iou_threshold``
    (ONNX ``NonMaxSuppression``), and the ``max_per_img`` best kept
    (prior, class) pairs of each image are returned (TopK over the kept
    scores). Boxes are in the network input's pixels (letterbox padding
    and resizing are undone by the caller). Unlike the PyTorch path there
    is no ``nms_pre`` cut before NMS.

    Returns (forward):
        tuple[Tensor]: ``boxes`` (B, k, 4), ``scores`` (B, k) (0 for empty
        slots), ``labels`` (B, k) int64, ``num_dets`` (B,) int64, with
        ``k = min(max_per_img, num_priors * num_classes)``, slots sorted by
        score.
    """

    def __init__(self, model: nn.Module, score_thr: float = 0.001,
                 iou_threshold: float = 0.7, max_per_img: int = 300) -> None:
        super().__init__()
        head = model.bbox_head
        if not all(hasattr(head, a) for a in ('_flatten', '_decode',
                                              '_flat_priors', 'reg_max')):
            raise ExportError(
                f'module bbox_head ({type(head).__name__}) does not export '
                'with post-processing: --with-postprocess covers YOLOv8 '
                'heads (densekit.YOLOv8Head and subclasses); export without '
                'it (the raw maps) instead')
        self.model = model
        self.score_thr = float(score_thr)
        self.iou_threshold = float(iou_threshold)
        self.max_per_img = int(max_per_img)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        head = self.model.bbox_head
        cls_scores, bbox_preds = head(self.model.extract_feat(inputs))
        priors, strides = head._flat_priors(
            [s.shape[-2:] for s in cls_scores], cls_scores[0].dtype,
            cls_scores[0].device)
        scores = head._flatten(cls_scores, head.num_classes).sigmoid()
        boxes = head._decode(head._flatten(bbox_preds, 4 * head.reg_max),
                             priors, strides)  # (B, A, 4)
        scores = scores.transpose(1, 2)  # (B, C, A)
        num_classes, num_priors = int(scores.shape[1]), int(scores.shape[2])
        selected = _NonMaxSuppression.apply(
            boxes, scores, torch.tensor(self.max_per_img),
            torch.tensor(self.iou_threshold, dtype=torch.float32),
            torch.tensor(self.score_thr, dtype=torch.float32))
        kept = torch.zeros_like(scores)
        kept[selected[:, 0], selected[:, 1], selected[:, 2]] = 1.0
        k = min(self.max_per_img, num_classes * num_priors)
        top, index = (scores * kept).flatten(1).topk(k, dim=1)
        labels = torch.div(index, num_priors, rounding_mode='floor')
        prior = index - labels * num_priors
        top_boxes = torch.gather(boxes, 1, prior[..., None].expand(-1, -1, 4))
        num_dets = (top > 0).sum(1)
        return top_boxes, top, labels, num_dets


class SegForward(nn.Module):
    """``encode_decode``: (B, 3, H, W) -> ``seg_logits`` (B, K, H, W)."""

    def __init__(self, model: nn.Module, shape: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        shape = tuple(int(s) for s in shape)
        self.meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.encode_decode(inputs,
                                        [self.meta] * int(inputs.shape[0]))


class AnomalyForward(nn.Module):
    """EfficientAD's maps and image score.

    Returns (forward):
        tuple[Tensor]: ``anomaly_map`` (B, 1, H, W): the combined map
        (normalised once the model has its quantiles) resized to the input;
        ``score`` (B,): its maximum (``EfficientAD.predict``'s score for an
        image of the input's size); ``combined``, ``map_st``, ``map_ae``:
        :meth:`EfficientAD._forward` (from which the inferencer computes
        the map at the original image size as PyTorch does).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        combined, map_st, map_ae = self.model._forward(inputs)
        size = tuple(int(s) for s in inputs.shape[-2:])
        anomaly_map = combined if tuple(combined.shape[-2:]) == size else \
            F.interpolate(combined, size=size, mode='bilinear')
        if self.model.map_postprocess == 'anomalib':
            score = combined.amax((1, 2, 3))
        else:
            score = anomaly_map.amax((1, 2, 3))
        return anomaly_map, score, combined, map_st, map_ae


class StreamForward(nn.Module):
    """One streaming step of a StreamYOLO detector, buffer as state.

    Inputs: ``frame`` (B, 3, H, W); ``reset`` (B,) float32, 1 at a
    sequence start (the buffer is then filled with this frame's features,
    as ``predict_stream`` repeats the earliest frame); ``buffer_l``
    (B, N, C_l, H_l, W_l) per level, the N past frames' features, oldest
    first. Outputs: the head's raw maps, then ``new_buffer_l``, the last
    N frames' features including this one.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: Tensor, reset: Tensor,
                *buffers: Tensor) -> Tuple[Tensor, ...]:
        feats = self.model.extract_frame_feats(frame)
        windows = []
        for feat, past in zip(feats, buffers):
            current = feat[:, None]
            start = reset.view(-1, 1, 1, 1, 1) > 0.5
            past = torch.where(start, current.expand_as(past), past)
            windows.append(torch.cat([past, current], 1))
        outs = self.model.bbox_head(self.model.fuse(windows))
        head_outs = tuple(t for group in outs for t in group)
        return head_outs + tuple(w[:, 1:] for w in windows)


def _pool_matrix(size: int, out: int) -> Tensor:
    """(out, size) averaging weights of adaptive pooling's bins: bin i
    spans ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    weights = torch.zeros(out, size)
    for i in range(out):
        start = (i * size) // out
        end = -(-((i + 1) * size) // out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


class AdaptiveAvgPool2dExport(nn.Module):
    """``nn.AdaptiveAvgPool2d`` that exports at any input size.

    ONNX has no adaptive pooling: the exporter maps it to ``AveragePool``
    only when the output size divides the input size (UPerNet's pyramid
    pooling, scales 1/2/3/6, does not at 512x512: a 16x16 map). Otherwise
    the same bins are two matmuls with constant averaging matrices.
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        size = self.output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        out_h = height if size[0] is None else int(size[0])
        out_w = width if size[1] is None else int(size[1])
        if height % out_h == 0 and width % out_w == 0:
            return F.adaptive_avg_pool2d(x, (out_h, out_w))
        rows = _pool_matrix(height, out_h).to(x)
        cols = _pool_matrix(width, out_w).to(x)
        return torch.matmul(torch.matmul(rows, x), cols.t())


def prepare_for_export(module: nn.Module) -> nn.Module:
    """Swap modules without an ONNX translation at every size for
    equivalents (in place): ``nn.AdaptiveAvgPool2d`` ->
    :class:`AdaptiveAvgPool2dExport`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.AdaptiveAvgPool2d):
            setattr(module, name, AdaptiveAvgPool2dExport(child.output_size))
        else:
            prepare_for_export(child)
    return module


def _input_channels(model: nn.Module) -> int:
    """Image channels: those of the first convolution of the backbone
    (or model); 3 when there is none (medical U-Nets take 1)."""
    root = getattr(model, 'backbone', None) or getattr(
        model, 'teacher', None) or model
    for m in root.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return 3


# --------------------------------------------------------------------------
# Export specification
# --------------------------------------------------------------------------
@dataclass
class ExportSpec:
    """What :func:`export_onnx` traces: the wrapper, example inputs, names
    and dynamic axes, and the meta data written next to the file."""
    module: nn.Module
    inputs: Tuple[Tensor, ...]
    input_names: List[str]
    output_names: List[str]
    dynamic_axes: Dict[str, Dict[int, str]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def _input_shape(model: nn.Module, shape: Sequence[int]) -> Tuple[int, int]:
    """(H, W) padded up to the data preprocessor's size divisor."""
    divisor = getattr(getattr(model, 'data_preprocessor', None),
                      'pad_size_divisor', 1) or 1
    return tuple(-(-int(s) // divisor) * divisor for s in shape)


def build_export_spec(model: nn.Module,
                      shape: Sequence[int],
                      *,
                      batch_size: int = 1,
                      dynamic_batch: bool = False,
                      with_postprocess: bool = False,
                      postprocess_cfg: Optional[dict] = None) -> ExportSpec:
    """The wrapper and example inputs exporting ``model`` at ``shape``.

    Args:
        model (nn.Module): An eval-mode model (not modified: the wrapper
            holds a copy).
        shape (Sequence[int]): Input (H, W), padded up to the model's
            ``pad_size_divisor``.
        batch_size (int): Batch of the example input. Defaults to 1.
        dynamic_batch (bool): Make dim 0 of every input and output
            symbolic. Defaults to False.
        with_postprocess (bool): Detection: decode + NMS in the graph
            (:class:`YOLOPostprocess`). Defaults to False.
        postprocess_cfg (dict, optional): ``score_thr``, ``iou_threshold``,
            ``max_per_img`` (:data:`DEFAULT_POSTPROCESS`; ``score_thr`` and
            the IoU default to the model's ``test_cfg``).
    """
    task = model_task(model)
    model = prepare_for_export(copy.deepcopy(model).eval())
    height, width = _input_shape(model, shape)
    channels = _input_channels(model)
    meta = dict(task=task, input_shape=[height, width],
                input_channels=channels,
                model_type=type(model).__name__,
                with_postprocess=bool(with_postprocess),
                dynamic_batch=bool(dynamic_batch))
    image = torch.rand(batch_size, channels, height, width)
    batch_axes = {0: 'batch'} if dynamic_batch else None
    if with_postprocess and task != 'det':
        raise ExportError(f'--with-postprocess is for detectors (YOLOv8 '
                          f'heads), but {type(model).__name__} is a {task} '
                          'model')
    if task == 'seg' and getattr(model, 'pruning', {}).get('enabled'):
        # the pruned forward keeps a data-dependent number of tokens
        warnings.warn(
            f'{type(model).__name__}: exporting with pruning off (the '
            'pruned forward gathers a data-dependent number of tokens per '
            'image, which a traced graph would freeze at the example '
            "input's count)", UserWarning)
        model.pruning = dict(model.pruning, enabled=False)
    if task == 'det' and with_postprocess:
        cfg = dict(DEFAULT_POSTPROCESS)
        test_cfg = getattr(model.bbox_head, 'test_cfg', None) or {}
        if 'score_thr' in test_cfg:
            cfg['score_thr'] = float(test_cfg['score_thr'])
        nms = test_cfg.get('nms') or {}
        if 'iou_threshold' in nms:
            cfg['iou_threshold'] = float(nms['iou_threshold'])
        if 'max_per_img' in test_cfg:
            cfg['max_per_img'] = int(test_cfg['max_per_img'])
        cfg.update(postprocess_cfg or {})
        module = YOLOPostprocess(model, **cfg)
        names = ['boxes', 'scores', 'labels', 'num_dets']
        meta.update(postprocess=cfg)
        return ExportSpec(module, (image, ), ['input'], names,
                          _axes(['input'] + names, batch_axes), meta)
    if task == 'det':
        module = DetHeadForward(model)
        with torch.no_grad():
            outs = model.bbox_head(model.extract_feat(image))
        groups = head_output_names(model.bbox_head, len(outs))
        names = [f'{g}_{i}' for g, group in zip(groups, outs)
                 for i in range(len(group))]
        meta.update(groups=[[g, len(group)] for g, group in zip(groups,
                                                                 outs)])
        return ExportSpec(module, (image, ), ['input'], names,
                          _axes(['input'] + names, batch_axes), meta)
    if task == 'seg':
        names = ['seg_logits']
        return ExportSpec(SegForward(model, (height, width)), (image, ),
                          ['input'], names,
                          _axes(['input'] + names, batch_axes), meta)
    if task == 'anomaly':
        names = ['anomaly_map', 'score', 'combined', 'map_st', 'map_ae']
        meta.update(map_postprocess=model.map_postprocess)
        return ExportSpec(AnomalyForward(model), (image, ), ['input'], names,
                          _axes(['input'] + names, batch_axes), meta)
    # stream: one frame plus the buffer of N past frames' features
    with torch.no_grad():
        feats = model.extract_frame_feats(image)
        outs = model.bbox_head(model.fuse(
            [f[:, None].expand(-1, model.num_past_frames + 1, -1, -1, -1)
             for f in feats]))
    num_past = int(model.num_past_frames)
    buffers = tuple(f[:, None].expand(-1, num_past, -1, -1, -1).contiguous()
                    for f in feats)
    groups = head_output_names(model.bbox_head, len(outs))
    head_names = [f'{g}_{i}' for g, group in zip(groups, outs)
                  for i in range(len(group))]
    buffer_names = [f'buffer_{i}' for i in range(len(buffers))]
    input_names = ['frame', 'reset'] + buffer_names
    output_names = head_names + [f'new_{n}' for n in buffer_names]
    meta.update(groups=[[g, len(group)] for g, group in zip(groups, outs)],
                num_past_frames=num_past,
                buffer_shapes=[list(b.shape[1:]) for b in buffers])
    reset = torch.ones(batch_size)
    return ExportSpec(StreamForward(model), (image, reset) + buffers,
                      input_names, output_names,
                      _axes(input_names + output_names, batch_axes), meta)


def _axes(names: Sequence[str], axes: Optional[dict]) -> Dict[str, dict]:
    return {n: dict(axes) for n in names} if axes else {}


# --------------------------------------------------------------------------
# ONNX export with error localisation and atomic writes
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_fds():
    """Silence fds 1 and 2 (the TorchScript exporter prints the whole IR
    graph from C++ when a translation fails; the error says enough)."""
    saved = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        try:
            for fd in (1, 2):
                try:
                    os.fsync(fd)
                except OSError:
                    pass
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            yield
        finally:
            for fd, copy_fd in saved:
                os.dup2(copy_fd, fd)
                os.close(copy_fd)


class _ModuleStack:
    """Forward hooks recording which module is running (named by its path
    in the exported wrapper), to name the one a trace failed in."""

    def __init__(self, root: nn.Module) -> None:
        self.stack: List[Tuple[str, nn.Module]] = []
        self.handles = []
        for name, module in root.named_modules():
            self.handles.append(module.register_forward_pre_hook(
                self._push(name, module)))
            self.handles.append(module.register_forward_hook(self._pop))

    def _push(self, name, module):
        def hook(*_):
            self.stack.append((name, module))
        return hook

    def _pop(self, *_):
        if self.stack:
            self.stack.pop()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _display(name: str) -> str:
    """Module path inside the wrapper -> the model's own path."""
    return re.sub(r'^model\.?', '', name) or '<model>'


def _locate_op(module: nn.Module, inputs: Tuple[Tensor, ...],
               error: BaseException) -> Optional[str]:
    """The module path calling the op a symbolic conversion failed on,
    from the traced graph's scopes (``None`` if it cannot be told)."""
    text = str(error)
    match = (re.search(r"operator '(?:aten::)?(\w+)'", text)
             or re.search(r"symbolic function '(\w+)'", text)
             or re.search(r'aten::(\w+)', text))
    if match is None:
        return None
    op = match.group(1)
    try:
        from torch.onnx._internal.torchscript_exporter import utils
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            utils._setup_trace_module_map(module, False)
            try:
                graph = utils._create_jit_graph(module, inputs)[0]
            finally:
                utils._reset_trace_module_map()
    except Exception:  # noqa: BLE001 - localisation is best effort
        return None
    for node in graph.nodes():
        if node.kind() not in (f'aten::{op}', f'aten::{op}_'):
            continue
        # 'pkg.Wrapper::/pkg.Net::model/...Seq::block/pkg.Bad::block.1':
        # the innermost module's class and its name below its grandparent
        last = node.scopeName().split('/')[-1]
        cls, _, tail = last.rpartition('::')
        cls = cls.split('.')[-1]
        for name, sub in module.named_modules():
            if type(sub).__name__ == cls and (name == tail or name.endswith(
                    '.' + tail)):
                return name
    return None


def _module_label(root: nn.Module, path: str) -> str:
    try:
        module = root.get_submodule(path)
        return f'{_display(path)} ({type(module).__name__})'
    except AttributeError:
        return _display(path)


def check_graph(path: str) -> None:
    """``onnx.checker`` and standard operator domains only.

    Raises:
        ExportError: A node of a custom domain (e.g. an mmcv op), naming
            the module it comes from (node names carry the module path).
    """
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model)
    for node in model.graph.node:
        if node.domain not in ('', 'ai.onnx'):
            scope = '/'.join(node.name.strip('/').split('/')[:-1])
            where = scope.replace('/', '.') or '<model>'
            raise ExportError(
                f'module {_display(where)} does not export with standard '
                f'ONNX ops: it emits the custom op {node.domain}::'
                f'{node.op_type}, which ONNX Runtime and OpenVINO do not '
                'run')


def _convert_fp16_weights(path: str) -> None:
    """float32 weights -> float16 initializers followed by a Cast back to
    float32 (half the file size; the graph still computes in float32, as
    OpenVINO's ``compress_to_fp16``)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(path)
    graph = model.graph
    inits, casts = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or \
                int(np.prod(init.dims)) < 16:
            inits.append(init)
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16),
            init.name + '_fp16')
        inits.append(half)
        casts.append(helper.make_node('Cast', [half.name], [init.name],
                                      to=onnx.TensorProto.FLOAT,
                                      name=f'/{init.name}_fp16_Cast'))
    del graph.initializer[:]
    graph.initializer.extend(inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.save(model, path)


def export_onnx(spec: ExportSpec, path: str, *, fp16: bool = False) -> None:
    """Trace ``spec`` into ``path`` (written only when complete).

    Raises:
        ExportError: The trace or the ONNX translation failed (the message
            names the module), or the graph holds custom ops.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.onnx', dir=folder)
    os.close(fd)
    stack = _ModuleStack(spec.module)
    mha = getattr(torch.backends, 'mha', None)
    fastpath = mha.get_fastpath_enabled() if mha is not None else None
    try:
        try:
            if mha is not None:
                # nn.MultiheadAttention's eval fast path is one fused op
                # (aten::_native_multi_head_attention) with no ONNX form
                mha.set_fastpath_enabled(False)
            with torch.no_grad(), warnings.catch_warnings(), _quiet_fds():
                warnings.simplefilter('ignore')
                torch.onnx.export(
                    spec.module, spec.inputs, tmp, dynamo=False,
                    opset_version=OPSET, input_names=spec.input_names,
                    output_names=spec.output_names,
                    dynamic_axes=spec.dynamic_axes or None,
                    do_constant_folding=True)
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - re-raised as one line
            first = str(e).strip().split('\n')[0][:300]
            if stack.stack:
                where = _module_label(spec.module, stack.stack[-1][0])
            else:
                stack.remove()
                found = _locate_op(spec.module, spec.inputs, e)
                where = _module_label(spec.module, found) if found else \
                    f'<{type(spec.module.model).__name__}>'
            raise ExportError(f'module {where} does not export to ONNX: '
                              f'{type(e).__name__}: {first}') from e
        finally:
            stack.remove()
            if mha is not None:
                mha.set_fastpath_enabled(fastpath)
        check_graph(tmp)
        if fp16:
            _convert_fp16_weights(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


DYNAMIC_BATCH_HINT = ('export without --dynamic-batch (the runtime backends '
                      'then run a batch one image at a time)')


def verify_dynamic_batch(model: nn.Module, shape: Sequence[int],
                         path: str, **spec_kwargs) -> None:
    """Run a dynamic-batch ONNX file (traced at batch 2) at batches 1 and
    3 in ONNX Runtime against eager PyTorch: a forward that turns the batch
    size into a constant (``int(x.shape[0])`` in a reshape) traces without
    complaint but computes garbage, or fails, at another batch size.

    ``spec_kwargs`` (``with_postprocess``, ``postprocess_cfg``) are the
    export's, so the reference computes what the graph computes.

    Raises:
        ExportError: The outputs differ (relative 1e-3) or the run fails.
    """
    import numpy as np

    from .runtime import RuntimeSession
    name = type(model).__name__
    session = RuntimeSession(path, 'onnxruntime')
    for batch in (1, 3):
        spec = build_export_spec(model, shape, batch_size=batch,
                                 **spec_kwargs)
        with torch.no_grad():
            ref = spec.module(*spec.inputs)
        ref = ref if isinstance(ref, tuple) else (ref, )
        try:
            outs = session(dict(zip(spec.input_names, spec.inputs)))
        except Exception as e:  # noqa: BLE001 - re-raised as one line
            first = ' '.join(str(e).split())[:200]
            raise ExportError(
                f'{name} does not export with a dynamic batch (the graph '
                f'traced at batch 2 fails at batch {batch}: {first}); '
                f'{DYNAMIC_BATCH_HINT}') from e
        for r, (out_name, o) in zip(ref, outs.items()):
            if spec.meta.get('with_postprocess') and \
                    out_name in ('boxes', 'labels'):
                continue  # arbitrary in the empty slots past num_dets
            r = r.float().numpy()
            scale = max(float(np.abs(r).max()), 1e-12) if r.size else 1.0
            if o.shape != r.shape or (r.size and float(
                    np.abs(o - r).max()) > 1e-3 * scale):
                raise ExportError(
                    f'{name} does not export with a dynamic batch: output '
                    f'{out_name} at batch {batch} differs from PyTorch (its '
                    'forward fixes the batch size of the trace); '
                    f'{DYNAMIC_BATCH_HINT}')


def _save_openvino(onnx_path: str, xml_path: str, fp16: bool) -> None:
    """Convert an ONNX file to OpenVINO IR (``.xml`` + ``.bin``),
    atomically (the ``.xml`` appears last)."""
    from .runtime import import_runtime
    ov = import_runtime('openvino')
    folder = osp.dirname(osp.abspath(xml_path))
    tmp_dir = tempfile.mkdtemp(prefix='.tmp-', dir=folder)
    try:
        tmp_xml = osp.join(tmp_dir, 'model.xml')
        model = ov.convert_model(onnx_path)
        ov.save_model(model, tmp_xml, compress_to_fp16=fp16)
        bin_path = osp.splitext(xml_path)[0] + '.bin'
        os.replace(osp.join(tmp_dir, 'model.bin'), bin_path)
        os.replace(tmp_xml, xml_path)
    finally:
        for name in os.listdir(tmp_dir):
            os.remove(osp.join(tmp_dir, name))
        os.rmdir(tmp_dir)


def _write_json(path: str, data: dict) -> None:
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.json', dir=folder)
    with os.fdopen(fd, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def meta_path(model_path: str) -> str:
    """The meta data file beside an exported model."""
    return osp.splitext(model_path)[0] + '.json'


def read_meta(model_path: str) -> dict:
    """The meta data written by :func:`export_model` (``{}`` if absent)."""
    path = meta_path(model_path)
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def check_format(fmt: str) -> str:
    name = str(fmt).strip().lower()
    if name not in FORMATS:
        raise ValueError(f'export format must be one of {FORMATS}, but got '
                         f'{fmt!r}')
    return name


def export_model(model: nn.Module,
                 out_dir: str,
                 *,
                 fmt: str = 'onnx',
                 shape: Sequence[int] = (640, 640),
                 name: Optional[str] = None,
                 dynamic_batch: bool = False,
                 with_postprocess: bool = False,
                 fp16: bool = False,
                 postprocess_cfg: Optional[dict] = None,
                 extra_meta: Optional[dict] = None) -> str:
    """Export a built model; returns the path of the model file.

    Args:
        model (nn.Module): Eval-mode model (not modified).
        out_dir (str): Output folder (created).
        fmt (str): ``'onnx'`` (``<name>.onnx``) or ``'openvino'``
            (``<name>.xml`` + ``.bin``). Defaults to 'onnx'.
        shape (Sequence[int]): Input (H, W). Defaults to (640, 640).
        name (str, optional): File stem. Defaults to the model's type.
        dynamic_batch, with_postprocess, postprocess_cfg: See
            :func:`build_export_spec`; a dynamic batch is verified
            (:func:`verify_dynamic_batch`).
        fp16 (bool): float16 weights (ONNX: initializers + Cast; OpenVINO:
            ``compress_to_fp16``); computation stays float32.
        extra_meta (dict, optional): Added to ``<name>.json``.

    Returns:
        str: ``<out_dir>/<name>.onnx`` or ``.xml``; ``<name>.json`` beside
        it holds the task, input shape, input/output names and the output
        grouping the runtime backend needs.

    Raises:
        ExportError: See :func:`export_onnx`; nothing is written then.
        ValueError: Unknown ``fmt``.
    """
    fmt = check_format(fmt)
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise ValueError(f'shape must be (H, W) with positive sizes, but got '
                         f'{tuple(shape)}')
    spec = build_export_spec(
        model, shape, batch_size=2 if dynamic_batch else 1,
        dynamic_batch=dynamic_batch, with_postprocess=with_postprocess,
        postprocess_cfg=postprocess_cfg)
    verify_kw = dict(with_postprocess=with_postprocess,
                     postprocess_cfg=postprocess_cfg)
    name = name or type(model).__name__
    os.makedirs(out_dir, exist_ok=True)
    onnx_path = osp.join(out_dir, name + '.onnx')
    meta = dict(spec.meta, format=fmt, fp16=bool(fp16), opset=OPSET,
                input_names=spec.input_names,
                output_names=spec.output_names, **(extra_meta or {}))
    if fmt == 'onnx':
        export_onnx(spec, onnx_path, fp16=fp16)
        if dynamic_batch:
            try:
                verify_dynamic_batch(model, shape, onnx_path, **verify_kw)
            except ExportError:
                os.remove(onnx_path)
                raise
        _write_json(meta_path(onnx_path), meta)
        return onnx_path
    xml_path = osp.join(out_dir, name + '.xml')
    tmp_dir = tempfile.mkdtemp(prefix='.tmp-', dir=out_dir)
    try:
        tmp_onnx = osp.join(tmp_dir, 'model.onnx')
        export_onnx(spec, tmp_onnx)
        if dynamic_batch:
            verify_dynamic_batch(model, shape, tmp_onnx, **verify_kw)
        _save_openvino(tmp_onnx, xml_path, fp16)
    finally:
        for f in os.listdir(tmp_dir):
            os.remove(osp.join(tmp_dir, f))
        os.rmdir(tmp_dir)
    _write_json(meta_path(xml_path), meta)
    return xml_path


def onnx_export(module: nn.Module, args: Sequence[Tensor], path: str, *,
                input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: Optional[dict] = None) -> None:
    """:func:`export_onnx` of a plain module (benchmarks, tests)."""
    export_onnx(ExportSpec(module, tuple(args), list(input_names),
                           list(output_names), dynamic_axes or {}), path)


def default_name(config: Union[str, object]) -> str:
    """File stem for a config: its file name without ``.py``."""
    filename = config if isinstance(config, str) else getattr(
        config, 'filename', None) or 'model'
    return osp.splitext(osp.basename(filename))[0]
