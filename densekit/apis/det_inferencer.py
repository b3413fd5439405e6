"""Image inference with a densekit detector, timed stage by stage.

:class:`DetInferencer` loads a detection config and checkpoint with
:func:`mmdet.apis.init_detector` and returns one :class:`DetResult` (plain
numpy arrays in original-image pixels) per image; :func:`draw_detections`
paints a result with OpenCV.

Examples:
    >>> from densekit.apis import DetInferencer, draw_detections
    >>> inferencer = DetInferencer('configs/det/yolov8_n_shapes.py',
    ...                            'work_dirs/yolov8_n_shapes/epoch_12.pth',
    ...                            device='cpu')
    >>> result = inferencer('img.jpg')  # or a BGR np.ndarray, or a list
    >>> result.bboxes.shape, result.class_names[:1], result.timings_ms
    ((3, 4), ['circle'], {'preprocess': 1.9, 'inference': 21.4, ...})
    >>> vis = draw_detections(cv2.imread('img.jpg'), result,
    ...                       inferencer.palette)
"""
import copy
import logging
import os
import os.path as osp
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.apis import init_detector
from mmdet.registry import DATASETS
from mmdet.structures.bbox import BaseBoxes
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from densekit.utils.checkpoint_check import load_weights, read_checkpoint
from .image_io import (ImageInput, array_input_pipeline, fallback_palette,
                       load_image_input)

# Transforms that need ground truth, dropped from the inference pipeline.
_ANNOTATION_TRANSFORMS = ('LoadAnnotations', )


@dataclass
class DetResult:
    """Detections of one image, as numpy arrays in original-image pixels.

    Attributes:
        bboxes (np.ndarray): float32 boxes of shape (N, 4) in
            (x1, y1, x2, y2) format, clipped to the image.
        scores (np.ndarray): float32 confidences of shape (N, ), sorted in
            descending order.
        labels (np.ndarray): int64 class indices of shape (N, ).
        class_names (list[str]): Class name of each of the N labels.
        img_shape (tuple[int, int]): (H, W) of the original image.
        img_path (str, optional): File the image was read from; None for an
            array input.
        timings_ms (dict[str, float]): Wall-clock milliseconds of the
            ``preprocess``, ``inference`` and ``postprocess`` stages (see
            :class:`DetInferencer`).
    """
    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: List[str]
    img_shape: Tuple[int, int]
    img_path: Optional[str] = None
    timings_ms: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        num = len(self.bboxes)
        if self.bboxes.ndim != 2 or self.bboxes.shape[1] != 4:
            raise ValueError('DetResult: bboxes must have shape (N, 4), but '
                             f'got {tuple(self.bboxes.shape)}')
        lengths = dict(
            scores=len(self.scores),
            labels=len(self.labels),
            class_names=len(self.class_names))
        if any(n != num for n in lengths.values()):
            raise ValueError(f'DetResult: {num} bboxes but lengths {lengths}')

    def __len__(self) -> int:
        return len(self.bboxes)

    def to_dict(self) -> dict:
        """JSON-serialisable form (Python scalars and lists only).

        Returns:
            dict: ``img_path``, ``img_shape`` ([H, W]), ``instances`` (a list
            of dicts with ``bbox`` [x1, y1, x2, y2] rounded to 0.01 px,
            ``score``, ``label``, ``class_name``) and ``timings_ms``.
        """
        instances = [
            dict(
                bbox=[round(float(v), 2) for v in bbox],
                score=round(float(score), 5),
                label=int(label),
                class_name=str(name))
            for bbox, score, label, name in zip(self.bboxes, self.scores,
                                                self.labels, self.class_names)
        ]
        return dict(
            img_path=self.img_path,
            img_shape=[int(s) for s in self.img_shape],
            instances=instances,
            timings_ms={k: float(v) for k, v in self.timings_ms.items()})


def build_inference_pipeline(cfg: Config) -> List[dict]:
    """Test pipeline of ``cfg`` adapted to images given as arrays.

    The image-loading transform becomes ``mmdet.LoadImageFromNDArray`` and
    annotation loading is dropped; everything else (resize, pad, pack) is the
    config's ``test_dataloader.dataset.pipeline``.

    Args:
        cfg (Config): A detection config.

    Returns:
        list[dict]: Transform configs for :class:`mmcv.transforms.Compose`.
    """
    if 'test_dataloader' not in cfg:
        raise ValueError(
            'DetInferencer needs `test_dataloader.dataset.pipeline` in the '
            f'config {cfg.filename}, but it has no `test_dataloader`')
    return array_input_pipeline(
        get_test_pipeline_cfg(cfg), loader='mmdet.LoadImageFromNDArray',
        drop=_ANNOTATION_TRANSFORMS, owner='DetInferencer',
        filename=cfg.filename)


def draw_detections(img: np.ndarray,
                    result: DetResult,
                    palette: Optional[Sequence[Sequence[int]]] = None,
                    *,
                    show_score: bool = True) -> np.ndarray:
    """Draw boxes and "class score" captions on a copy of an image.

    Args:
        img (np.ndarray): BGR uint8 image of shape (H, W, 3), in the pixel
            frame of ``result.bboxes``.
        result (DetResult): Detections to draw.
        palette (Sequence[Sequence[int]], optional): RGB colour per class
            index (mmdet's ``dataset_meta['palette']`` convention). Labels
            beyond it, or all labels when None, get generated colours.
        show_score (bool): Append the score to the class name (False for
            ground truth). Defaults to True.

    Returns:
        np.ndarray: The annotated BGR uint8 image, same shape as ``img``.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError('draw_detections: img must be a numpy array, but got '
                        f'{type(img).__name__}')
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError('draw_detections: img must be a BGR uint8 array of '
                         f'shape (H, W, 3), but got shape {img.shape} and '
                         f'dtype {img.dtype}')
    canvas = np.ascontiguousarray(img).copy()
    height, width = canvas.shape[:2]
    size = min(height, width)
    thickness = max(1, round(size / 320))
    font_scale = max(0.35, size / 1000)
    font = cv2.FONT_HERSHEY_SIMPLEX
    if isinstance(palette, str):  # mmdet allows names such as 'random'
        palette = None
    for bbox, score, label, name in zip(result.bboxes, result.scores,
                                        result.labels, result.class_names):
        label = int(label)
        rgb = palette[label] if palette is not None and \
            label < len(palette) else fallback_palette(label + 1)[label]
        color = tuple(int(c) for c in reversed(tuple(rgb)[:3]))  # to BGR
        x1, y1, x2, y2 = (int(round(float(v))) for v in bbox)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness,
                      cv2.LINE_AA)
        caption = f'{name} {float(score):.2f}' if show_score else str(name)
        (tw, th), baseline = cv2.getTextSize(caption, font, font_scale, 1)
        # caption above the box, or inside it when the box touches the top
        top = y1 - th - baseline - 2 if y1 - th - baseline - 2 >= 0 else y1
        left = min(max(x1, 0), max(width - tw - 2, 0))
        cv2.rectangle(canvas, (left, top),
                      (left + tw + 2, top + th + baseline + 2), color, -1)
        luminance = 0.299 * color[2] + 0.587 * color[1] + 0.114 * color[0]
        text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(canvas, caption, (left + 1, top + th + 1), font,
                    font_scale, text_color, 1, cv2.LINE_AA)
    return canvas


class DetInferencer:
    """Run a detector on image files or arrays, timing each stage.

    Images are processed one at a time (batch size 1), so each
    :class:`DetResult` carries its own timings, measured with
    ``time.perf_counter`` (after ``torch.cuda.synchronize`` on CUDA)::

        __call__(): read_image() -> _infer_one() per image
        _infer_one():
            preprocess:  test pipeline -> collate -> model.data_preprocessor
            inference:   model.extract_feat -> model.bbox_head.forward (or
                         the runtime of ``backend``)
            postprocess: bbox_head.predict_by_feat(rescale=True)
                         -> score_thr filter -> numpy

    A model without ``bbox_head.predict_by_feat`` (e.g. two-stage) is run
    with ``model.test_step``, timed as inference; preprocess then covers the
    pipeline and collate only.

    Args:
        config (str | Config): Detection config (path or object; an object
            is copied, not modified).
        checkpoint (str, optional): Checkpoint path. Its
            ``meta['dataset_meta']`` gives the class names; without a
            checkpoint (random weights) they come from the config's test
            dataset. Defaults to None.
        device (str, optional): Torch device. Defaults to None, meaning
            ``'cuda'`` if available, else ``'cpu'``.
        score_thr (float): Detections scoring below it are dropped (after the
            model's own ``test_cfg`` filtering and NMS). Defaults to 0.3.
        strict (bool): Refuse a checkpoint that does not fit the config's
            model (one line naming the first mismatching keys and the config
            it was saved from); False loads the weights that fit. Defaults
            to True.
        backend (str): ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``:
            the runtime of the tensor forward (backbone, neck, head maps;
            post-processing stays PyTorch's, so the boxes after NMS are the
            same). Without ``backend_model`` the model is exported on the
            fly into a cache (:mod:`densekit.deploy.backend`). Defaults to
            'pytorch'.
        backend_model (str, optional): A file exported by
            ``tools/deploy/export.py`` (its raw maps, or boxes from
            ``--with-postprocess``). Defaults to None.
        num_threads (int, optional): Runtime threads. Defaults to None.
        fuse_conv_bn (bool): Fold the BatchNorms into their convolutions
            (:func:`densekit.models.utils.fuse_conv_bn`; the PyTorch
            backend; the same detections to float round-off). Defaults to
            True.

    Examples:
        >>> inferencer = DetInferencer('configs/det/yolov8_n_shapes.py',
        ...                            'epoch_12.pth', device='cpu')
        >>> results = inferencer(['a.jpg', cv2.imread('b.jpg')])
        >>> [len(r) for r in results]
        [3, 1]
    """

    def __init__(self,
                 config: Union[str, os.PathLike, Config],
                 checkpoint: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 score_thr: float = 0.3,
                 strict: bool = True,
                 backend: str = 'pytorch',
                 backend_model: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 fuse_conv_bn: bool = True,
                 multi_label: Optional[bool] = None) -> None:
        if isinstance(config, (str, os.PathLike)):
            config = os.fspath(config)
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'DetInferencer: config file {config} does not exist')
            cfg = Config.fromfile(config)
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError('DetInferencer: config must be a file path or an '
                            f'mmengine Config, but got {type(config)}')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'DetInferencer: checkpoint file {checkpoint} does not exist')
        if isinstance(score_thr, bool) or \
                not isinstance(score_thr, (int, float)) or \
                not 0.0 <= score_thr <= 1.0:
            raise ValueError('DetInferencer: score_thr must be a number in '
                             f'[0, 1], but got {score_thr!r}')
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        pipeline = build_inference_pipeline(cfg)
        # read (and checked) before the model is built: a corrupt file fails
        # first; init_detector would load it non-strictly
        ckpt = None if checkpoint is None else read_checkpoint(checkpoint)

        with warnings.catch_warnings(record=True) as caught:
            self.model = init_detector(cfg, None, device=device)
        for warning in caught:
            # "checkpoint is None, use COCO classes": not true here, the
            # checkpoint's or the config's classes replace COCO's below
            if 'checkpoint is None' in str(warning.message):
                continue
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
        if ckpt is not None:
            load_weights(self.model, ckpt, strict=strict, path=checkpoint,
                         config=cfg.filename or 'the config',
                         owner='DetInferencer')
            self._meta_from_checkpoint(ckpt)
        self.cfg = cfg
        self.device = torch.device(device)
        self.score_thr = float(score_thr)
        # built after init_detector, which set the config's default scope
        self.pipeline = Compose(pipeline)
        self._fix_classes(checkpoint)
        head = getattr(self.model, 'bbox_head', None)
        if multi_label is not None and getattr(head, 'reads_multi_label',
                                               False):
            head.test_cfg = ConfigDict(head.test_cfg or {},
                                       multi_label=bool(multi_label))
        self._staged = hasattr(self.model, 'extract_feat') and callable(
            getattr(head, 'predict_by_feat', None))
        if not self._staged:
            print_log(
                f'DetInferencer: {type(self.model).__name__} has no '
                '`bbox_head.predict_by_feat`; timing model.test_step as '
                '"inference" (it includes the data preprocessor).',
                logger='current')
        from densekit.deploy.backend import make_runtime
        self.runtime = make_runtime(self.model, backend, cfg=cfg,
                                    checkpoint=checkpoint,
                                    model_path=backend_model,
                                    num_threads=num_threads)
        if fuse_conv_bn and self.runtime is None:
            from densekit.models.utils.fuse_conv_bn import fuse_conv_bn as fuse
            fuse(self.model.eval())

    # ------------------------------------------------------------ metadata
    def _meta_from_checkpoint(self, ckpt: dict) -> None:
        """``meta.dataset_meta`` (or mmdet 2's ``CLASSES``) of a checkpoint,
        as ``init_detector`` reads it; the config's palette wins."""
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        palette = self.model.dataset_meta.get('palette')
        if 'dataset_meta' in meta:
            dataset_meta = {k.lower(): v
                            for k, v in meta['dataset_meta'].items()}
        elif 'CLASSES' in meta:
            dataset_meta = {'classes': meta['CLASSES']}
        else:
            return  # COCO's classes; _fix_classes prefers the config's
        if palette is not None and (palette != 'random'
                                    or 'palette' not in dataset_meta):
            dataset_meta['palette'] = palette
        self.model.dataset_meta = dataset_meta

    def _config_metainfo(self) -> dict:
        dataset_cfg = copy.deepcopy(self.cfg.test_dataloader.dataset)
        dataset_cfg['lazy_init'] = True  # metainfo only, no annotation file
        return DATASETS.build(dataset_cfg).metainfo

    def _fix_classes(self, checkpoint: Optional[str]) -> None:
        """Use the config's classes without weights or on a count mismatch.

        ``init_detector`` falls back to COCO's 80 classes when there is no
        checkpoint or the checkpoint has no ``dataset_meta``.
        """
        meta = self.model.dataset_meta
        num_classes = getattr(getattr(self.model, 'bbox_head', None),
                              'num_classes', None)
        if checkpoint is not None and (num_classes is None or len(
                meta['classes']) == num_classes):
            self._warn_if_classes_differ(checkpoint, meta['classes'])
            return
        try:
            cfg_classes = self._config_metainfo().get('classes')
        except Exception as e:  # noqa: BLE001 - only a better default
            print_log(f'DetInferencer: could not read class names from the '
                      f'config test dataset ({type(e).__name__}: {e})',
                      logger='current')
            return
        if cfg_classes is not None and (num_classes is None
                                        or len(cfg_classes) == num_classes):
            if checkpoint is not None:
                print_log(
                    f'DetInferencer: checkpoint {checkpoint} gives '
                    f'{len(meta["classes"])} class names (COCO\'s when it '
                    'has no meta.dataset_meta) but the head predicts '
                    f'{num_classes} classes; using the config\'s class names',
                    logger='current', level=logging.WARNING)
            meta['classes'] = tuple(cfg_classes)

    def _warn_if_classes_differ(self, checkpoint: str,
                                classes: Sequence[str]) -> None:
        """Warn when the checkpoint's class names are not the config's test
        dataset's (another dataset, or the config's default 80 COCO names
        while the checkpoint was trained on a custom set)."""
        try:
            cfg_classes = self._config_metainfo().get('classes')
        except Exception:  # noqa: BLE001 - only a warning
            return
        if cfg_classes is None or tuple(cfg_classes) == tuple(classes):
            return
        print_log(
            f'DetInferencer: checkpoint {checkpoint} was trained on '
            f'{len(classes)} classes ({", ".join(map(str, classes[:4]))}'
            f'{", ..." if len(classes) > 4 else ""}) but the config\'s test '
            f'dataset has {len(cfg_classes)} '
            f'({", ".join(map(str, cfg_classes[:4]))}'
            f'{", ..." if len(cfg_classes) > 4 else ""}); labels are named by '
            'the checkpoint\'s classes', logger='current',
            level=logging.WARNING)

    @property
    def classes(self) -> Tuple[str, ...]:
        """tuple[str]: Class names, indexed by label."""
        return tuple(self.model.dataset_meta['classes'])

    @property
    def palette(self) -> Optional[List[Tuple[int, int, int]]]:
        """list[tuple] or None: RGB colour per class from ``dataset_meta``
        (None when it is absent or a name such as ``'random'``)."""
        palette = self.model.dataset_meta.get('palette')
        if palette is None or isinstance(palette, str):
            return None
        return [tuple(int(c) for c in color) for color in palette]

    # ----------------------------------------------------------- inference
    def __call__(
        self, inputs: Union[ImageInput, Sequence[ImageInput]]
    ) -> Union[DetResult, List[DetResult]]:
        """Detect objects in one image or a list of images.

        Args:
            inputs (str | PathLike | np.ndarray | list): An image file, a BGR
                array of shape (H, W, 3) (or (H, W) grayscale), or a
                list/tuple of them.

        Returns:
            DetResult | list[DetResult]: One result per image; a list exactly
            when ``inputs`` is a list or tuple.

        Raises:
            FileNotFoundError: An image file does not exist.
            ValueError: An image file cannot be decoded, or an array has a
                shape other than (H, W, 3) or (H, W).
        """
        if isinstance(inputs, (list, tuple)):
            return [self._infer_one(*self._load(x)) for x in inputs]
        return self._infer_one(*self._load(inputs))

    @staticmethod
    def _load(image: ImageInput) -> Tuple[np.ndarray, Optional[str]]:
        return load_image_input(image, 'DetInferencer')

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def _infer_one(self, img: np.ndarray,
                   img_path: Optional[str]) -> DetResult:
        """Preprocess, forward and postprocess one BGR image (H, W, 3)."""
        model = self.model
        start = time.perf_counter()
        packed = self.pipeline(dict(img=img, img_id=0))
        data = dict(
            inputs=[packed['inputs']], data_samples=[packed['data_samples']])
        if self._staged:
            data = model.data_preprocessor(data, False)
            self._sync()
            t_pre = time.perf_counter()
            if self.runtime is not None:
                outs = self.runtime(data['inputs'])
            else:
                outs = model.bbox_head(model.extract_feat(data['inputs']))
            self._sync()
            t_inf = time.perf_counter()
            metas = [sample.metainfo for sample in data['data_samples']]
            if isinstance(outs, dict):  # a --with-postprocess graph
                from densekit.deploy.backend import postprocessed_instances
                instances = postprocessed_instances(outs, metas[0])
            else:
                instances = model.bbox_head.predict_by_feat(
                    *outs, batch_img_metas=metas, rescale=True)[0]
        else:
            t_pre = time.perf_counter()
            instances = model.test_step(data)[0].pred_instances
            self._sync()
            t_inf = time.perf_counter()

        bboxes = instances.bboxes
        if isinstance(bboxes, BaseBoxes):
            bboxes = bboxes.tensor
        keep = instances.scores >= self.score_thr
        scores = instances.scores[keep].float()
        order = torch.argsort(scores, descending=True, stable=True)
        scores = scores[order].cpu().numpy()
        labels = instances.labels[keep][order].long().cpu().numpy()
        bboxes = bboxes[keep][order].float().cpu().numpy().reshape(-1, 4)
        height, width = img.shape[:2]
        np.clip(bboxes[:, 0::2], 0, width, out=bboxes[:, 0::2])
        np.clip(bboxes[:, 1::2], 0, height, out=bboxes[:, 1::2])
        classes = self.classes
        names = [
            classes[i] if 0 <= i < len(classes) else f'class_{i}'
            for i in labels.tolist()
        ]
        t_post = time.perf_counter()
        return DetResult(
            bboxes=bboxes.astype(np.float32),
            scores=scores.astype(np.float32),
            labels=labels.astype(np.int64),
            class_names=names,
            img_shape=(int(height), int(width)),
            img_path=img_path,
            timings_ms=dict(
                preprocess=(t_pre - start) * 1e3,
                inference=(t_inf - t_pre) * 1e3,
                postprocess=(t_post - t_inf) * 1e3))
