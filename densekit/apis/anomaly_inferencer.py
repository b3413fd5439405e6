"""Image inference with a densekit anomaly detector, timed stage by stage.

:class:`AnomalyInferencer` is :class:`~densekit.apis.SegInferencer`'s
sibling for anomaly-detection configs (``model.type`` in
:data:`ANOMALY_MODEL_TYPES`, e.g. ``configs/anomaly/efficientad_s_mvtec.py``):
one :class:`AnomalyResult` (an image score, its decision and an anomaly map
in original-image pixels) per image. :func:`draw_anomaly` paints the map as a
JET heat map on a fixed value range, so colours compare across images.

Scores are on EfficientAD's calibrated scale only when the checkpoint holds
the map-normalisation quantiles (``model.has_quantiles``, written by
``densekit.EfficientADStatsHook`` in ``tools/train.py`` / ``tools/test.py``):
0 is then the 0.9 quantile and 0.1 the 0.995 quantile of the local and
global maps of held-out normal pixels. Without them (no checkpoint, random
weights) the maps are raw squared feature distances and
:class:`AnomalyInferencer` warns.

Examples:
    >>> from densekit.apis import AnomalyInferencer, draw_anomaly
    >>> inferencer = AnomalyInferencer(
    ...     'configs/anomaly/efficientad_s_synthetic.py',
    ...     'work_dirs/efficientad_s_synthetic/iter_600.pth', device='cpu')
    >>> result = inferencer('img.png')  # or a BGR np.ndarray, or a list
    >>> result.score, result.is_anomalous, result.anomaly_map.shape
    (0.81, True, (256, 256))
    >>> vis = draw_anomaly(cv2.imread('img.png'), result.anomaly_map,
    ...                    result.score, result.threshold)
"""
import copy
import math
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
from mmengine.config import Config
from mmengine.registry import init_default_scope

from densekit.utils.checkpoint_check import load_weights
from densekit.utils.compat import revert_sync_batchnorm_cfg
from .image_io import (LOADING_TRANSFORMS, ImageInput, load_image_input,
                       transform_name)

# ``model.type`` (scope prefix stripped) of the anomaly detectors;
# :func:`~densekit.apis.build_inferencer` routes these configs here
ANOMALY_MODEL_TYPES = ('EfficientAD', )
# Image-score threshold when neither ``score_thr`` nor
# ``model.test_cfg.score_threshold`` is given. On the quantile-normalised
# scale a map value v has, for normal pixels, an exceedance probability of
# about 0.005 * 20 ** (-(v - 0.1) / 0.1) if the tail is exponential (0.1 at
# the 0.995 quantile, 0 at the 0.9 one). At v = 0.3 that is ~1.3e-5 per
# pixel, a few percent of normal 64x64 score maps; 0.1 would flag nearly
# every normal image (its maximum over thousands of pixels). Calibrate per
# category where you can: ``AnomalyMetric``'s ``image_f1_max`` reports its
# threshold; put it in ``model.test_cfg.score_threshold``.
DEFAULT_SCORE_THR = 0.3
# the test pipeline's image loader is dropped (images are read here), and
# so are the ground-truth and training-only steps
_DROPPED_TRANSFORMS = ('LoadAnomalyMask', 'LoadPenaltyImage')
_CORNERS = ('top-left', 'top-right', 'bottom-left', 'bottom-right')


@dataclass
class AnomalyResult:
    """Anomaly score, decision and map of one image.

    Attributes:
        score (float): Image anomaly score, the model's ``pred_score``; for
            EfficientAD the maximum of the combined map resized to the image
            (``anomaly_map.max()`` with the default
            ``map_postprocess='nelson1425'``; with ``'anomalib'`` the
            maximum of the map at the network input).
        anomaly_map (np.ndarray): float32 (H, W) map at the original image
            size (the model's ``anomaly_map``, bilinearly resized).
        is_anomalous (bool): ``score >= threshold``.
        threshold (float): Image-score threshold of the decision.
        img_shape (tuple[int, int]): (H, W) of the original image.
        calibrated (bool): Whether the maps were quantile normalised (the
            model had ``has_quantiles``); if not, ``score`` and
            ``threshold`` are not on the same scale.
        img_path (str, optional): File the image was read from.
        timings_ms (dict[str, float]): ``preprocess``, ``inference`` and
            ``postprocess`` wall-clock milliseconds.
    """
    score: float
    anomaly_map: np.ndarray
    is_anomalous: bool
    threshold: float
    img_shape: Tuple[int, int]
    calibrated: bool = True
    img_path: Optional[str] = None
    timings_ms: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.anomaly_map.shape != tuple(self.img_shape):
            raise ValueError(
                f'AnomalyResult: anomaly_map has shape '
                f'{self.anomaly_map.shape}, image {tuple(self.img_shape)}')

    def to_dict(self) -> dict:
        """JSON-serialisable summary (the map itself is not included; the
        image demo writes it as ``maps/<name>.npy``).

        Returns:
            dict: ``img_path``, ``img_shape`` ([H, W]), ``score``,
            ``is_anomalous``, ``threshold``, ``calibrated``, ``map_max``
            (maximum of ``anomaly_map``) and ``timings_ms``.
        """
        return dict(
            img_path=self.img_path,
            img_shape=[int(s) for s in self.img_shape],
            score=round(float(self.score), 6),
            is_anomalous=bool(self.is_anomalous),
            threshold=float(self.threshold),
            calibrated=bool(self.calibrated),
            map_max=round(float(self.anomaly_map.max()), 6),
            timings_ms={k: float(v) for k, v in self.timings_ms.items()})


def _check_number(value, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ValueError(f'{owner}: {name} must be a finite number, but got '
                         f'{value!r}')
    return float(value)


def draw_anomaly(img: np.ndarray,
                 anomaly_map: np.ndarray,
                 score: float,
                 threshold: float,
                 *,
                 vmin: float = 0.0,
                 vmax: Optional[float] = None,
                 alpha: float = 0.5,
                 contour: bool = True,
                 label: bool = True,
                 corner: str = 'top-left') -> np.ndarray:
    """Blend a JET heat map of an anomaly map over a BGR image.

    The map is scaled by the fixed range [``vmin``, ``vmax``] (clipped), not
    by each image's own minimum and maximum, so equal colours mean equal
    values in every image; by default the threshold sits in the middle of
    the colour scale (cyan-green), values at or above ``2 * threshold`` are
    dark red.

    Args:
        img (np.ndarray): BGR uint8 image (H, W, 3) the map belongs to.
        anomaly_map (np.ndarray): Float map (H, W), e.g.
            :attr:`AnomalyResult.anomaly_map`.
        score (float): Image score, written in the label.
        threshold (float): Decision threshold: the label says ANOMALOUS when
            ``score >= threshold``; the contour encloses the map values
            ``>= threshold``.
        vmin (float): Map value drawn dark blue. Defaults to 0.0.
        vmax (float, optional): Map value drawn dark red. Defaults to None,
            meaning ``2 * threshold`` (which must then exceed ``vmin``).
        alpha (float): Opacity of the heat map, in [0, 1]. Defaults to 0.5.
        contour (bool): Outline the thresholded region in white. Defaults
            to True.
        label (bool): Write "<decision> <score> (thr <threshold>)" on a dark
            box. Defaults to True.
        corner (str): Where the label goes: ``'top-left'``,
            ``'top-right'``, ``'bottom-left'`` or ``'bottom-right'``.
            Defaults to ``'top-left'``.

    Returns:
        np.ndarray: A new BGR uint8 image of the shape of ``img``.

    Raises:
        ValueError: Shapes differ, the range is empty, or an argument is
            out of range.
    """
    owner = 'draw_anomaly'
    if not isinstance(img, np.ndarray) or img.ndim != 3 or \
            img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'{owner}: img must be a BGR uint8 array of shape '
                         '(H, W, 3), but got '
                         f'{getattr(img, "shape", type(img).__name__)}')
    anomaly_map = np.asarray(anomaly_map)
    if anomaly_map.shape != img.shape[:2]:
        raise ValueError(f'{owner}: image {img.shape[:2]} and anomaly map '
                         f'{anomaly_map.shape} differ')
    score = _check_number(score, 'score', owner)
    threshold = _check_number(threshold, 'threshold', owner)
    vmin = _check_number(vmin, 'vmin', owner)
    vmax = 2 * threshold if vmax is None else _check_number(
        vmax, 'vmax', owner)
    if vmax <= vmin:
        raise ValueError(f'{owner}: the colour range needs vmax > vmin, but '
                         f'got vmin={vmin}, vmax={vmax} (vmax defaults to '
                         '2 * threshold; pass vmax for thresholds <= 0)')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'{owner}: alpha must be in [0, 1], got {alpha}')
    if corner not in _CORNERS:
        raise ValueError(f'{owner}: corner must be one of {_CORNERS}, but '
                         f'got {corner!r}')
    values = np.nan_to_num(anomaly_map.astype(np.float32), nan=vmin)
    scaled = np.clip((values - vmin) / (vmax - vmin), 0, 1)
    heat = cv2.applyColorMap((scaled * 255).round().astype(np.uint8),
                             cv2.COLORMAP_JET)
    canvas = cv2.addWeighted(np.ascontiguousarray(img), 1 - alpha, heat,
                             alpha, 0)
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 256))
    if contour:
        region = (values >= threshold).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, (255, 255, 255), thickness,
                         cv2.LINE_AA)
    if label:
        anomalous = score >= threshold
        text = (f'{"ANOMALOUS" if anomalous else "normal"} {score:.3f} '
                f'(thr {threshold:.3g})')
        font = cv2.FONT_HERSHEY_SIMPLEX
        font_scale = max(0.4, min(height, width) / 640)
        (tw, th), baseline = cv2.getTextSize(text, font, font_scale, 1)
        box_w = min(tw + 8, width)
        box_h = min(th + baseline + 8, height)
        left = 0 if corner.endswith('left') else width - box_w
        top = 0 if corner.startswith('top') else height - box_h
        # red box for anomalous, dark green for normal (BGR)
        colour = (0, 0, 200) if anomalous else (0, 110, 0)
        cv2.rectangle(canvas, (left, top), (left + box_w - 1,
                                            top + box_h - 1), colour, -1)
        cv2.putText(canvas, text, (left + 4, top + th + 4), font, font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def build_anomaly_inference_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline after its image loader, for images read
    by :class:`AnomalyInferencer`: ``LoadAnomalyMask`` (ground truth) and
    ``LoadPenaltyImage`` (training only) dropped.

    Args:
        cfg (Config): An anomaly-detection config.

    Returns:
        list[dict]: Transform configs for :class:`mmcv.transforms.Compose`
        (e.g. ``Resize`` then ``PackAnomalyInputs``).

    Raises:
        ValueError: The config has no test pipeline, or it does not start by
            loading the image.
    """
    if 'test_dataloader' not in cfg:
        raise ValueError(
            'AnomalyInferencer needs `test_dataloader.dataset.pipeline` in '
            f'the config {cfg.filename}, but it has no `test_dataloader`')
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    names = [transform_name(t.get('type')) for t in pipeline]
    if not names or names[0] not in LOADING_TRANSFORMS:
        raise ValueError(
            'AnomalyInferencer: `test_dataloader.dataset.pipeline` of config '
            f'{cfg.filename} must start by loading the image (one of '
            f'{LOADING_TRANSFORMS}), but got {names}')
    return [t for t, name in zip(pipeline[1:], names[1:])
            if name not in _DROPPED_TRANSFORMS]


class AnomalyInferencer:
    """Run an anomaly detector on image files or arrays, timing each stage.

    One image at a time (batch 1)::

        preprocess:  loaded image -> test pipeline (Resize,
                     PackAnomalyInputs) -> model.data_preprocessor
        inference:   model.predict (maps, resize to the original image,
                     image score)
        postprocess: to numpy, score >= threshold

    The decision threshold is, first to last: ``score_thr``,
    ``model.test_cfg.score_threshold`` of the config,
    :data:`DEFAULT_SCORE_THR` (see there for why 0.3).

    Args:
        config (str | Config): Anomaly-detection config (path or object; an
            object is copied, not modified).
        checkpoint (str, optional): Weights, with the statistics buffers
            (``teacher_mean``/``teacher_std``, ``quantiles``). Without it the
            model keeps random weights and no statistics, and a
            ``UserWarning`` says the scores are uncalibrated. Defaults to
            None.
        device (str, optional): Torch device. Defaults to None, meaning
            ``'cuda'`` if available, else ``'cpu'``.
        score_thr (float, optional): Image-score threshold (see above).
            Defaults to None.
        cfg_options (dict, optional): Config overrides.
        strict (bool): Refuse a checkpoint that does not fit the model (one
            line naming the first mismatching keys); False loads the weights
            that fit. Defaults to True.
        backend (str): ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``:
            the runtime of the tensor forward (the three networks and the map
            normalisation); the maps are resized and scored by PyTorch as
            before. Without ``backend_model`` the
            model is exported on the fly into a cache
            (:mod:`densekit.deploy.backend`). Defaults to 'pytorch'.
        backend_model (str, optional): A file exported by
            ``tools/deploy/export.py``. Defaults to None.
        num_threads (int, optional): Runtime threads. Defaults to None.

    Examples:
        >>> inferencer = AnomalyInferencer(
        ...     'configs/anomaly/efficientad_s_mvtec.py', 'bottle.pth',
        ...     device='cpu', score_thr=0.4)
        >>> [r.is_anomalous for r in inferencer(['a.png', 'b.png'])]
        [False, True]
    """

    def __init__(self,
                 config: Union[str, os.PathLike, Config],
                 checkpoint: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 score_thr: Optional[float] = None,
                 cfg_options: Optional[dict] = None,
                 strict: bool = True,
                 backend: str = 'pytorch',
                 backend_model: Optional[str] = None,
                 num_threads: Optional[int] = None) -> None:
        if isinstance(config, (str, os.PathLike)):
            config = os.fspath(config)
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'AnomalyInferencer: config file {config} does not exist')
            cfg = Config.fromfile(config)
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError('AnomalyInferencer: config must be a file path '
                            'or an mmengine Config, but got '
                            f'{type(config)}')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(f'AnomalyInferencer: checkpoint file '
                                    f'{checkpoint} does not exist')
        if score_thr is not None:
            score_thr = _check_number(score_thr, 'score_thr',
                                      'AnomalyInferencer')
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        pipeline = build_anomaly_inference_pipeline(cfg)
        revert_sync_batchnorm_cfg(cfg.model)
        init_default_scope(cfg.get('default_scope', 'densekit'))
        from densekit.registry import MODELS

        # no init_weights(): it would load model.teacher_checkpoint, whose
        # weights the checkpoint replaces anyway
        model = MODELS.build(cfg.model)
        if checkpoint is not None:
            load_weights(model, checkpoint, strict=strict,
                         config=cfg.filename or 'the config',
                         owner='AnomalyInferencer')
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = torch.device(device)
        from densekit.deploy.backend import attach_runtime, make_runtime
        self.runtime = make_runtime(
            self.model, backend, cfg=cfg, checkpoint=checkpoint,
            model_path=backend_model, num_threads=num_threads,
            dynamic_batch=False)
        if self.runtime is not None:
            attach_runtime(self.model, self.runtime)
        self.pipeline = Compose(pipeline)
        if score_thr is None:
            score_thr = (getattr(model, 'test_cfg', None)
                         or {}).get('score_threshold')
        self.score_thr = DEFAULT_SCORE_THR if score_thr is None else float(
            score_thr)
        self._warn_if_uncalibrated(checkpoint)

    @property
    def calibrated(self) -> bool:
        """bool: The model normalises its maps (``has_quantiles``; models
        without that buffer count as calibrated)."""
        flag = getattr(self.model, 'has_quantiles', None)
        return True if flag is None else bool(flag)

    def _warn_if_uncalibrated(self, checkpoint: Optional[str]) -> None:
        if self.calibrated:
            return
        source = ('no checkpoint was given (random weights)'
                  if checkpoint is None else
                  f'checkpoint {checkpoint} has has_quantiles=False')
        warnings.warn(
            'AnomalyInferencer: the model has no map-normalisation '
            f'quantiles ({source}), so anomaly maps and scores are raw '
            'squared feature distances, not on the calibrated scale (0.1 = '
            'the 0.995 quantile of normal pixels) that score_thr='
            f'{self.score_thr:g} assumes. Use a checkpoint saved by '
            'tools/train.py or tools/test.py with EfficientADStatsHook, or '
            'filter warnings matching "AnomalyInferencer: the model has no '
            'map-normalisation" to silence this.',
            UserWarning, stacklevel=3)

    # ----------------------------------------------------------- inference
    def __call__(
        self, inputs: Union[ImageInput, Sequence[ImageInput]]
    ) -> Union[AnomalyResult, List[AnomalyResult]]:
        """Score one image or a list of images.

        Args:
            inputs (str | PathLike | np.ndarray | list): An image file, a BGR
                array of shape (H, W, 3) (or (H, W) grayscale), or a
                list/tuple of them.

        Returns:
            AnomalyResult | list[AnomalyResult]: One result per image; a list
            exactly when ``inputs`` is a list or tuple.
        """
        if isinstance(inputs, (list, tuple)):
            return [self._infer_one(*self._load(x)) for x in inputs]
        return self._infer_one(*self._load(inputs))

    @staticmethod
    def _load(image: ImageInput) -> Tuple[np.ndarray, Optional[str]]:
        return load_image_input(image, 'AnomalyInferencer')

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def _infer_one(self, img: np.ndarray,
                   img_path: Optional[str]) -> AnomalyResult:
        """Preprocess, score and postprocess one BGR image (H, W, 3)."""
        model = self.model
        start = time.perf_counter()
        shape = tuple(int(s) for s in img.shape[:2])
        # what LoadImageFromFile would have set
        packed = self.pipeline(
            dict(img=img, img_path=img_path, img_shape=shape,
                 ori_shape=shape))
        data = model.data_preprocessor(
            dict(inputs=[packed['inputs']],
                 data_samples=[packed['data_samples']]), False)
        self._sync()
        t_pre = time.perf_counter()
        sample = model.predict(data['inputs'], data['data_samples'])[0]
        self._sync()
        t_inf = time.perf_counter()
        anomaly_map = sample.anomaly_map.float().cpu().numpy()
        score = float(sample.pred_score)
        t_post = time.perf_counter()
        return AnomalyResult(
            score=score,
            anomaly_map=anomaly_map.astype(np.float32, copy=False),
            is_anomalous=score >= self.score_thr,
            threshold=self.score_thr,
            img_shape=shape,
            calibrated=self.calibrated,
            img_path=img_path,
            timings_ms=dict(
                preprocess=(t_pre - start) * 1e3,
                inference=(t_inf - t_pre) * 1e3,
                postprocess=(t_post - t_inf) * 1e3))
