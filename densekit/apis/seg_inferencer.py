"""Image inference with a densekit (mmseg) segmentor, timed stage by stage.

:class:`SegInferencer` is :class:`~densekit.apis.DetInferencer`'s sibling
for semantic segmentation configs (``default_scope='mmseg'``): one
:class:`SegResult` (a label map in original-image pixels) per image;
:func:`draw_segmentation` paints it as a coloured overlay with a legend.
:func:`build_inferencer` picks the right one for a config (detection,
segmentation or :class:`~densekit.apis.AnomalyInferencer`).

Examples:
    >>> from densekit.apis import SegInferencer, draw_segmentation
    >>> inferencer = SegInferencer('configs/seg/upernet_yolov8-n_shapes.py',
    ...                            'work_dirs/upernet/iter_1600.pth',
    ...                            device='cpu')
    >>> result = inferencer('img.jpg')  # or a BGR np.ndarray, or a list
    >>> result.label_map.shape, result.class_fractions()
    ((256, 256), {'background': 0.91, 'circle': 0.05, ...})
    >>> vis = draw_segmentation(cv2.imread('img.jpg'), result,
    ...                         inferencer.palette)
"""
import copy
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.utils.checkpoint_check import load_weights
from densekit.utils.compat import revert_sync_batchnorm_cfg
from .image_io import (ImageInput, array_input_pipeline, fallback_palette,
                       load_image_input)

# ground-truth steps, dropped from the inference pipeline
_ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'CheckSegLabels')


@dataclass
class SegResult:
    """Semantic segmentation of one image.

    Attributes:
        label_map (np.ndarray): int64 (H, W) class index per pixel, at the
            original image size.
        classes (tuple[str]): Names of all classes, indexed by label.
        img_shape (tuple[int, int]): (H, W) of the original image.
        img_path (str, optional): File the image was read from.
        timings_ms (dict[str, float]): ``preprocess``, ``inference`` and
            ``postprocess`` wall-clock milliseconds.
    """
    label_map: np.ndarray
    classes: Tuple[str, ...]
    img_shape: Tuple[int, int]
    img_path: Optional[str] = None
    timings_ms: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label_map.shape != tuple(self.img_shape):
            raise ValueError(f'SegResult: label_map has shape '
                             f'{self.label_map.shape}, image {self.img_shape}')

    def class_fractions(self) -> Dict[str, float]:
        """Fraction of the pixels of each class present, by class index."""
        counts = np.bincount(self.label_map.ravel(),
                             minlength=len(self.classes))
        total = max(int(self.label_map.size), 1)
        return {self._name(i): float(n) / total
                for i, n in enumerate(counts) if n}

    def _name(self, label: int) -> str:
        return (self.classes[label]
                if 0 <= label < len(self.classes) else f'class_{label}')

    def to_dict(self) -> dict:
        """JSON-serialisable summary (the label map itself is not
        included; the demos write it as a PNG)."""
        return dict(
            img_path=self.img_path,
            img_shape=[int(s) for s in self.img_shape],
            class_fractions={k: round(v, 5)
                             for k, v in self.class_fractions().items()},
            timings_ms={k: float(v) for k, v in self.timings_ms.items()})


def draw_segmentation(img: np.ndarray,
                      result: SegResult,
                      palette: Optional[Sequence[Sequence[int]]] = None,
                      alpha: float = 0.5,
                      legend: bool = True) -> np.ndarray:
    """Blend a colour per class over a BGR image and list the classes.

    Args:
        img (np.ndarray): BGR image (H, W, 3) the result belongs to.
        result (SegResult): Its segmentation.
        palette (sequence, optional): RGB colour per class; default: a
            generated one.
        alpha (float): Opacity of the class colours. Defaults to 0.5.
        legend (bool): Draw a legend (swatch, name, area %) of the classes
            present, largest first. Defaults to True.

    Returns:
        np.ndarray: A new BGR image.
    """
    if img.shape[:2] != result.label_map.shape:
        raise ValueError(f'draw_segmentation: image {img.shape[:2]} and '
                         f'label map {result.label_map.shape} differ')
    num = len(result.classes)
    colours = np.asarray(palette if palette is not None else
                         fallback_palette(num), dtype=np.uint8)
    if len(colours) < num:
        colours = np.concatenate([colours, fallback_palette(num)[len(
            colours):]])
    bgr = colours[:, ::-1]
    labels = np.clip(result.label_map, 0, len(bgr) - 1)
    overlay = bgr[labels]
    canvas = cv2.addWeighted(img, 1 - alpha, overlay, alpha, 0)
    if not legend:
        return canvas
    fractions = sorted(result.class_fractions().items(),
                       key=lambda kv: -kv[1])
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    line = 14
    name_to_label = {n: i for i, n in enumerate(result.classes)}
    entries = [f'{name} {frac:.0%}' for name, frac in fractions]
    width = max(cv2.getTextSize(e, font, scale, 1)[0][0]
                for e in entries) + 22
    height = line * len(entries) + 6
    box = canvas[:height, :width]
    canvas[:height, :width] = (box * 0.4).astype(np.uint8)  # dark backing
    for k, ((name, _), text) in enumerate(zip(fractions, entries)):
        top = 3 + k * line
        colour = tuple(int(c) for c in bgr[min(name_to_label.get(name, 0),
                                               len(bgr) - 1)])
        cv2.rectangle(canvas, (4, top + 2), (14, top + 11), colour, -1)
        cv2.putText(canvas, text, (18, top + 11), font, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def build_seg_inference_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline for in-memory images: loader replaced by
    ``mmseg.LoadImageFromNDArray``, annotation steps dropped."""
    return array_input_pipeline(
        cfg.test_dataloader.dataset.pipeline,
        loader='mmseg.LoadImageFromNDArray', drop=_ANNOTATION_TRANSFORMS,
        owner='SegInferencer', filename=cfg.filename)


class SegInferencer:
    """Run a segmentor on image files or arrays, timing each stage.

    One image at a time (batch 1)::

        preprocess:  test pipeline -> model.data_preprocessor
        inference:   model.inference (whole or slide, per test_cfg; DToP
                     prunes here)
        postprocess: model.postprocess_result (resize to the original
                     image, argmax) -> numpy

    Args:
        config (str | Config): Segmentation config (``default_scope``
            ``'mmseg'``).
        checkpoint (str, optional): Weights; class names come from its
            ``meta.dataset_meta``, else from the config's test dataset.
        device (str, optional): Default: ``'cuda'`` if available.
        cfg_options (dict, optional): Config overrides.
        strict (bool): Refuse a checkpoint that does not fit the model (one
            line naming the first mismatching keys); False loads the weights
            that fit. Defaults to True.
        backend (str): ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``:
            the runtime of the tensor forward (``encode_decode``, so whole
            and slide inference both use it); the post-processing stays
            PyTorch's. Without ``backend_model`` the
            model is exported on the fly into a cache
            (:mod:`densekit.deploy.backend`). Defaults to 'pytorch'.
        backend_model (str, optional): A file exported by
            ``tools/deploy/export.py``. Defaults to None.
        num_threads (int, optional): Runtime threads. Defaults to None.
        fuse_conv_bn (bool): Fold the BatchNorms into their convolutions
            (:func:`densekit.models.utils.fuse_conv_bn`; the PyTorch
            backend). Defaults to True.
    """

    # exports made on the fly have a symbolic batch (volume slices)
    _runtime_dynamic_batch = False

    def __init__(self,
                 config: Union[str, os.PathLike, Config],
                 checkpoint: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 strict: bool = True,
                 backend: str = 'pytorch',
                 backend_model: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 fuse_conv_bn: bool = True) -> None:
        if isinstance(config, (str, os.PathLike)):
            config = os.fspath(config)
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'SegInferencer: config file {config} does not exist')
            cfg = Config.fromfile(config)
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError('SegInferencer: config must be a file path or an '
                            f'mmengine Config, but got {type(config)}')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'SegInferencer: checkpoint file {checkpoint} does not exist')
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        revert_sync_batchnorm_cfg(cfg.model)
        cfg.model.train_cfg = None
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        from mmseg.registry import DATASETS, MODELS
        model = MODELS.build(cfg.model)
        meta = None
        if checkpoint is not None:
            ckpt = load_weights(model, checkpoint, strict=strict,
                                config=cfg.filename or 'the config',
                                owner='SegInferencer')
            meta = ckpt.get('meta', {}).get('dataset_meta')
        if meta is None:
            dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
            dataset_cfg['lazy_init'] = True
            meta = DATASETS.build(dataset_cfg).metainfo
        model.dataset_meta = dict(meta)
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = torch.device(device)
        self.pipeline = self._build_pipeline(cfg)
        from densekit.deploy.backend import attach_runtime, make_runtime
        self.runtime = make_runtime(
            self.model, backend, cfg=cfg, checkpoint=checkpoint,
            model_path=backend_model, num_threads=num_threads,
            dynamic_batch=self._runtime_dynamic_batch)
        if self.runtime is not None:
            attach_runtime(self.model, self.runtime)
        elif fuse_conv_bn:
            from densekit.models.utils.fuse_conv_bn import fuse_conv_bn as fuse
            fuse(self.model)

    def _build_pipeline(self, cfg: Config) -> Compose:
        """The per-image test pipeline (:func:`build_seg_inference_pipeline`;
        :class:`~densekit.apis.VolumeInferencer` reads volume slices)."""
        return Compose(build_seg_inference_pipeline(cfg))

    @property
    def classes(self) -> Tuple[str, ...]:
        return tuple(self.model.dataset_meta['classes'])

    @property
    def palette(self) -> Optional[List[Tuple[int, int, int]]]:
        palette = self.model.dataset_meta.get('palette')
        if palette is None or isinstance(palette, str):
            return None
        return [tuple(int(c) for c in colour) for colour in palette]

    def __call__(
        self, inputs: Union[ImageInput, Sequence[ImageInput]]
    ) -> Union[SegResult, List[SegResult]]:
        """Segment one image or a list (a list in, a list out)."""
        if isinstance(inputs, (list, tuple)):
            return [self._infer_one(*self._load(x)) for x in inputs]
        return self._infer_one(*self._load(inputs))

    @staticmethod
    def _load(image: ImageInput) -> Tuple[np.ndarray, Optional[str]]:
        return load_image_input(image, 'SegInferencer')

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def _infer_one(self, img: np.ndarray,
                   img_path: Optional[str]) -> SegResult:
        model = self.model
        start = time.perf_counter()
        packed = self.pipeline(dict(img=img))
        data = model.data_preprocessor(
            dict(inputs=[packed['inputs']],
                 data_samples=[packed['data_samples']]), False)
        self._sync()
        t_pre = time.perf_counter()
        metas = [s.metainfo for s in data['data_samples']]
        seg_logits = model.inference(data['inputs'], metas)
        self._sync()
        t_inf = time.perf_counter()
        sample = model.postprocess_result(seg_logits,
                                          data['data_samples'])[0]
        label_map = sample.pred_sem_seg.data[0].long().cpu().numpy()
        t_post = time.perf_counter()
        return SegResult(
            label_map=label_map,
            classes=self.classes,
            img_shape=tuple(int(s) for s in img.shape[:2]),
            img_path=img_path,
            timings_ms=dict(
                preprocess=(t_pre - start) * 1e3,
                inference=(t_inf - t_pre) * 1e3,
                postprocess=(t_post - t_inf) * 1e3))


def config_task(config: Union[str, os.PathLike, Config]) -> str:
    """The task of a config: ``'anomaly'`` when ``model.type`` (scope
    prefix stripped) is one of
    :data:`~densekit.apis.anomaly_inferencer.ANOMALY_MODEL_TYPES`, else
    ``'seg'`` for configs in mmseg's scope, else ``'det'``."""
    from .anomaly_inferencer import ANOMALY_MODEL_TYPES
    cfg = config if isinstance(config, Config) else Config.fromfile(
        os.fspath(config))
    model_type = (cfg.get('model') or {}).get('type')
    if isinstance(model_type, str) and \
            model_type.split('.')[-1] in ANOMALY_MODEL_TYPES:
        return 'anomaly'
    return 'seg' if cfg.get('default_scope') == 'mmseg' else 'det'


def build_inferencer(config: Union[str, os.PathLike, Config],
                     checkpoint: Optional[str] = None,
                     *,
                     device: Optional[str] = None,
                     score_thr: Optional[float] = None,
                     strict: bool = True,
                     backend: str = 'pytorch',
                     backend_model: Optional[str] = None,
                     num_threads: Optional[int] = None,
                     fuse_conv_bn: bool = True,
                     multi_label: Optional[bool] = None):
    """The inferencer of a config's task (:func:`config_task`).

    Args:
        config (str | PathLike | Config): Model config.
        checkpoint (str, optional): Weights. Defaults to None.
        device (str, optional): Torch device. Defaults to None (cuda if
            available).
        score_thr (float, optional): Detection: the box score threshold
            (None means 0.3); anomaly detection: the image-score threshold
            (None means ``model.test_cfg.score_threshold``, else
            :data:`~densekit.apis.anomaly_inferencer.DEFAULT_SCORE_THR`);
            ignored for segmentation. Defaults to None.
        strict (bool): Refuse a checkpoint that does not fit the config's
            model. Defaults to True.
        backend, backend_model, num_threads: The runtime of the model's
            tensor forward (see :class:`DetInferencer`). Defaults to
            PyTorch.
        fuse_conv_bn (bool): Detection and segmentation: fold BatchNorms
            into their convolutions. Defaults to True.
        multi_label (bool, optional): Detection: every class of a box or
            its best one (see :class:`DetInferencer`). Defaults to None.

    Returns:
        DetInferencer | SegInferencer | AnomalyInferencer
    """
    if isinstance(config, (str, os.PathLike)) and not osp.isfile(config):
        raise FileNotFoundError(f'config file {config} does not exist')
    task = config_task(config)
    runtime = dict(backend=backend, backend_model=backend_model,
                   num_threads=num_threads)
    if task == 'seg':
        return SegInferencer(config, checkpoint, device=device,
                             strict=strict, fuse_conv_bn=fuse_conv_bn,
                             **runtime)
    if task == 'anomaly':
        from .anomaly_inferencer import AnomalyInferencer
        return AnomalyInferencer(config, checkpoint, device=device,
                                 score_thr=score_thr, strict=strict,
                                 **runtime)
    from .det_inferencer import DetInferencer
    return DetInferencer(config, checkpoint, device=device,
                         score_thr=0.3 if score_thr is None else score_thr,
                         strict=strict, fuse_conv_bn=fuse_conv_bn,
                         multi_label=multi_label, **runtime)
