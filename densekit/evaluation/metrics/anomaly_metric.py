"""Image- and pixel-level anomaly-detection metrics (MVTec AD protocol)."""
import logging
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from densekit.evaluation.functional import (f1_max, pixel_auroc, pro_auc,
                                            roc_auc)
from densekit.registry import METRICS

# metric name accepted in ``metric`` -> key in the returned dict
METRIC_KEYS = {
    'image_auroc': 'image_AUROC',
    'pixel_auroc': 'pixel_AUROC',
    'au_pro': 'AU-PRO',
    'image_f1_max': 'image_F1max',
    'pixel_f1_max': 'pixel_F1max',
}
PIXEL_METRICS = ('pixel_auroc', 'au_pro', 'pixel_f1_max')
MAP_DTYPES = ('float16', 'float32')
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@METRICS.register_module()
class AnomalyMetric(BaseMetric):
    """Anomaly-detection evaluation as in the MVTec AD benchmark, for
    EfficientAD and other models that output an image score and a map.

    Image level: ROC AUC and max-F1 of ``pred_score`` against ``gt_label``.
    Pixel level, over all pixels of all images: ROC AUC, max-F1 and AU-PRO
    (area under the per-region-overlap curve up to ``pro_fpr_limit``,
    normalised to [0, 1]) of ``anomaly_map`` against ``gt_mask``. The
    computations are the exact, sort-based functions of
    :mod:`densekit.evaluation.functional.anomaly_metrics`.

    Each element of ``data_samples`` given to :meth:`process` is a dict (the
    ``BaseDataElement.to_dict()`` that the ``Evaluator`` produces) with:

    * ``pred_score`` (float | Tensor): the image anomaly score, a number
      or a one-element tensor; higher = more anomalous.
    * ``anomaly_map`` (Tensor | np.ndarray): shape (H, W) or (1, H, W) at
      the original image size (a ``PixelData`` turned into
      ``{'data': ...}`` is accepted too). Needed for pixel metrics only.
    * ``gt_label`` (int | Tensor): 0 normal, 1 anomalous.
    * ``gt_mask`` (Tensor | np.ndarray, optional): shape (H, W) or
      (1, H, W) like the map; nonzero pixels are anomalous, so 0/1 and
      0/255 masks both work. Missing or ``None`` for a normal image means
      an all-normal mask; if any anomalous image has none (a dataset
      without masks), the pixel metrics are skipped with a logged note.
    * metainfo: ``img_path`` (named in errors), ``defect_type`` (needed
      with ``per_defect=True``; normal images usually say ``'good'``) and
      ``category`` (a warning is logged if one evaluation mixes several:
      MVTec AD reports each category separately).

    Memory: every map is kept until :meth:`compute_metrics`, so it is
    stored as float16 on the CPU (2 bytes per pixel; a map whose values do
    not fit float16 is kept as float32, with a warning) and, with
    ``map_size``, downsampled first (``map_size=256`` stores 128 KiB per
    image instead of 2 MiB for a 1024x1024 MVTec image). Float16 keeps
    about 3 significant digits, which can turn nearly equal pixel scores
    into ties; set ``map_dtype='float32'`` for full precision. No map is
    stored when no pixel metric is requested.

    Returned keys (prefixed ``anomaly/`` by the evaluator): ``image_AUROC``,
    ``pixel_AUROC``, ``AU-PRO``, ``image_F1max``, ``pixel_F1max`` for the
    requested ``metric`` names, and ``image_AUROC/<defect_type>`` per defect
    type with ``per_defect=True``.

    References:
        Batzner, Heckler, Koenig. "EfficientAD: Accurate Visual Anomaly
        Detection at Millisecond-Level Latencies." WACV 2024.

        Bergmann, Batzner, Fauser, Sattlegger, Steger. "The MVTec Anomaly
        Detection Dataset: A Comprehensive Real-World Dataset for
        Unsupervised Anomaly Detection." IJCV 129, 2021.

    Args:
        metric (str | Sequence[str]): Any of ``'image_auroc'``,
            ``'pixel_auroc'``, ``'au_pro'``, ``'image_f1_max'``,
            ``'pixel_f1_max'``. Defaults to all five.
        pro_fpr_limit (float): FPR up to which the PRO curve is integrated,
            in (0, 1]. Defaults to 0.3 (the MVTec AD protocol).
        map_size (int | tuple[int, int], optional): Resize maps and masks to
            this (H, W) (an int means square) before storing them, for the
            pixel metrics: maps with ``area`` interpolation when shrinking
            (``bilinear`` when growing), masks with ``nearest-exact``.
            ``None`` keeps the original size, which is the protocol of
            record. Defaults to None.
        per_defect (bool): Also report image AUROC of each defect type
            against all normal images. Defaults to False.
        map_dtype (str): ``'float16'`` or ``'float32'``, how stored maps
            are kept. Defaults to ``'float16'``.
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results are
            gathered in distributed evaluation. Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix; ``None`` uses ``'anomaly'``.

    Examples:
        >>> metric = AnomalyMetric(metric=('image_auroc', 'au_pro'))
        >>> mask = torch.zeros(4, 4)
        >>> mask[1:3, 1:3] = 1
        >>> metric.process({}, [
        ...     dict(pred_score=0.1, gt_label=0,
        ...          anomaly_map=torch.zeros(4, 4), gt_mask=None),
        ...     dict(pred_score=0.9, gt_label=1, anomaly_map=mask * 0.8,
        ...          gt_mask=mask)])
        >>> metric.compute_metrics(metric.results)  # doctest: +SKIP
        {'image_AUROC': 1.0, 'AU-PRO': 1.0}
    """
    default_prefix: Optional[str] = 'anomaly'

    def __init__(self,
                 metric: Union[str, Sequence[str]] = tuple(METRIC_KEYS),
                 pro_fpr_limit: float = 0.3,
                 map_size: Optional[Union[int, Tuple[int, int]]] = None,
                 per_defect: bool = False,
                 map_dtype: str = 'float16',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        # named ``metric`` as mmdet's CocoMetric: a ``metrics`` key would
        # make mmengine's Runner read the config as an Evaluator
        metrics = (metric, ) if isinstance(metric, str) else tuple(metric)
        unknown = [m for m in metrics if m not in METRIC_KEYS]
        if unknown:
            raise KeyError(f'AnomalyMetric: unknown metric(s) {unknown}; '
                           f'valid ones are {list(METRIC_KEYS)}')
        if not metrics:
            raise ValueError('AnomalyMetric: metric is empty; name at least '
                             f'one of {list(METRIC_KEYS)}')
        # keep the user's order, drop repeats
        self.metrics = tuple(dict.fromkeys(metrics))
        if not (isinstance(pro_fpr_limit, Number) and 0 < pro_fpr_limit <= 1):
            raise ValueError('AnomalyMetric: pro_fpr_limit must be in (0, 1], '
                             f'got {pro_fpr_limit!r}')
        self.pro_fpr_limit = float(pro_fpr_limit)
        self.map_size = self._parse_map_size(map_size)
        if map_dtype not in MAP_DTYPES:
            raise ValueError(f'AnomalyMetric: map_dtype must be one of '
                             f'{MAP_DTYPES}, got {map_dtype!r}')
        self.map_dtype = np.dtype(map_dtype)
        self.per_defect = bool(per_defect)
        self._warned_float16 = False

    @staticmethod
    def _parse_map_size(map_size) -> Optional[Tuple[int, int]]:
        if map_size is None:
            return None
        if isinstance(map_size, int) and not isinstance(map_size, bool):
            map_size = (map_size, map_size)
        if (not isinstance(map_size, (tuple, list)) or len(map_size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool)
                           and s > 0 for s in map_size)):
            raise ValueError('AnomalyMetric: map_size must be None, a '
                             'positive int or an (H, W) pair of positive '
                             f'ints, got {map_size!r}')
        return tuple(map_size)

    @property
    def _pixel_metrics(self) -> List[str]:
        return [m for m in self.metrics if m in PIXEL_METRICS]

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store each sample's score, label, metainfo and (for pixel
        metrics) its map and mask, converted to compact CPU arrays.

        Args:
            data_batch (dict): The loader's batch; unused.
            data_samples (Sequence[dict]): The model's outputs as dicts,
                with the keys listed in the class docstring.
        """
        for i, sample in enumerate(data_samples):
            where = (f"AnomalyMetric: data sample "
                     f"{sample.get('img_path', f'#{i} of the batch')}")
            label = _scalar(_require(sample, 'gt_label', where),
                            'gt_label', where)
            if label not in (0, 1):
                raise ValueError(f'{where}: gt_label must be 0 (normal) or 1 '
                                 f'(anomalous), got {label}')
            result = dict(
                pred_score=_scalar(_require(sample, 'pred_score', where),
                                   'pred_score', where),
                gt_label=int(label),
                img_path=sample.get('img_path'),
                category=sample.get('category'),
                defect_type=sample.get('defect_type'))
            if self.per_defect and result['defect_type'] is None:
                raise KeyError(f'{where}: per_defect=True needs the '
                               "'defect_type' metainfo, which is missing")
            if self._pixel_metrics:
                result.update(self._process_maps(sample, where))
            self.results.append(result)

    def _process_maps(self, sample: dict, where: str) -> dict:
        amap = _as_2d(_require(sample, 'anomaly_map', where), 'anomaly_map',
                      where)
        mask = sample.get('gt_mask')
        if mask is not None:
            mask = _as_2d(mask, 'gt_mask', where)
            if mask.shape != amap.shape:
                raise ValueError(
                    f'{where}: anomaly_map has shape {tuple(amap.shape)} but '
                    f'gt_mask has {tuple(mask.shape)}; the model must return '
                    'the map at the original image size')
        if self.map_size is not None and tuple(amap.shape) != self.map_size:
            shrink = (self.map_size[0] <= amap.shape[0]
                      and self.map_size[1] <= amap.shape[1])
            mode = dict(mode='area') if shrink else dict(
                mode='bilinear', align_corners=False)
            amap = F.interpolate(amap[None, None].float(), self.map_size,
                                 **mode)[0, 0]
            if mask is not None:
                mask = (mask != 0)[None, None].float()
                mask = F.interpolate(mask, self.map_size,
                                     mode='nearest-exact')[0, 0]
        amap = amap.detach().float().cpu().numpy()
        peak = float(np.abs(amap).max(initial=0))
        if np.isnan(peak):
            raise ValueError(f'{where}: anomaly_map contains NaN')
        if self.map_dtype != np.float16 or peak <= _FLOAT16_MAX:
            stored = amap.astype(self.map_dtype)
        else:
            stored = amap
            if not self._warned_float16:
                print_log(
                    f'{where}: anomaly_map values reach {peak:.3g}, '
                    'beyond float16; such maps are stored as float32 (more '
                    "memory). Normalise the maps or set map_dtype='float32' "
                    'to silence this.',
                    logger='current', level=logging.WARNING)
                self._warned_float16 = True
        if mask is not None:
            mask = (mask != 0).cpu().numpy()
        return dict(anomaly_map=stored, gt_mask=mask)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the requested metrics from all processed samples.

        Args:
            results (list[dict]): What :meth:`process` stored, gathered
                from all ranks.

        Returns:
            dict[str, float]: Keys as listed in the class docstring.
        """
        if not results:
            raise ValueError('AnomalyMetric: no results to evaluate; was '
                             'process() called?')
        categories = sorted({str(r['category']) for r in results
                             if r.get('category') is not None})
        if len(categories) > 1:
            print_log(
                f'AnomalyMetric: one evaluation mixes categories '
                f'{categories}; MVTec AD reports each category separately '
                '(one dataset and evaluator per category).',
                logger='current', level=logging.WARNING)
        scores = np.array([r['pred_score'] for r in results],
                          dtype=np.float64)
        labels = np.array([r['gt_label'] for r in results], dtype=bool)
        metrics, notes = {}, {}
        image_metrics = [m for m in self.metrics if m not in PIXEL_METRICS]
        if image_metrics or self.per_defect:
            num_pos = int(labels.sum())
            if num_pos == 0 or num_pos == labels.size:
                raise ValueError(
                    'AnomalyMetric: image metrics need both normal and '
                    f'anomalous images, got {num_pos} anomalous and '
                    f'{labels.size - num_pos} normal ones')
        for name in self.metrics:
            if name == 'image_auroc':
                metrics[METRIC_KEYS[name]] = roc_auc(scores, labels)
            elif name == 'image_f1_max':
                f1, thr = f1_max(scores, labels)
                metrics[METRIC_KEYS[name]] = f1
                notes[METRIC_KEYS[name]] = f'threshold {thr:.6g}'
        if self._pixel_metrics:
            maps_masks = self._pixel_inputs(results)
            if maps_masks is not None:
                metrics.update(self._compute_pixel(*maps_masks, notes))
        if self.per_defect:
            defects = sorted({str(r['defect_type'])
                              for r, y in zip(results, labels) if y})
            defect_of = np.array([str(r['defect_type']) for r in results])
            for defect in defects:
                keep = ~labels | (defect_of == defect)
                metrics[f'image_AUROC/{defect}'] = roc_auc(
                    scores[keep], labels[keep])
        self._log_table(metrics, notes, len(results))
        return metrics

    def _pixel_inputs(self, results: list
                      ) -> Optional[Tuple[List[np.ndarray], List[np.ndarray]]]:
        """Maps and masks for the pixel metrics, or None (with a logged
        note) when anomalous images lack masks."""
        no_mask = [r for r in results if r['gt_mask'] is None]
        missing = [r for r in no_mask if r['gt_label'] == 1]
        names = ', '.join(self._pixel_metrics)
        if missing and len(no_mask) == len(results):
            print_log(f'AnomalyMetric: the data samples have no gt_mask, so '
                      f'the pixel metrics ({names}) are skipped.',
                      logger='current', level=logging.INFO)
            return None
        if missing:
            print_log(
                f'AnomalyMetric: {len(missing)} of '
                f'{int(sum(r["gt_label"] for r in results))} anomalous images '
                f'have no gt_mask (e.g. {missing[0]["img_path"]}), so the '
                f'pixel metrics ({names}) are skipped; the dataset should '
                'give a mask for every anomalous image.',
                logger='current', level=logging.WARNING)
            return None
        maps = [r['anomaly_map'] for r in results]
        # a normal image without a mask is all normal
        masks = [np.zeros(r['anomaly_map'].shape, dtype=bool)
                 if r['gt_mask'] is None else r['gt_mask'] for r in results]
        num_anomalous = sum(int(m.sum()) for m in masks)
        num_pixels = sum(m.size for m in masks)
        if num_anomalous == 0 or num_anomalous == num_pixels:
            raise ValueError(
                'AnomalyMetric: pixel metrics need both normal and anomalous '
                f'pixels, got {num_anomalous} anomalous of {num_pixels}; if '
                'the dataset has no masks, leave gt_mask None (the pixel '
                'metrics are then skipped) or drop them from `metrics`')
        return maps, masks

    def _compute_pixel(self, maps: List[np.ndarray], masks: List[np.ndarray],
                       notes: dict) -> Dict[str, float]:
        metrics = {}
        for name in self._pixel_metrics:
            key = METRIC_KEYS[name]
            if name == 'pixel_auroc':
                metrics[key] = pixel_auroc(maps, masks)
            elif name == 'au_pro':
                metrics[key] = pro_auc(maps, masks, self.pro_fpr_limit)
                notes[key] = f'FPR <= {self.pro_fpr_limit:g}'
            elif name == 'pixel_f1_max':
                f1, thr = f1_max(
                    np.concatenate([m.ravel().astype(np.float32)
                                    for m in maps]),
                    np.concatenate([m.ravel() for m in masks]))
                metrics[key] = f1
                notes[key] = f'threshold {thr:.6g}'
        if self.map_size is not None:
            for key in metrics:
                notes[key] = ', '.join(
                    filter(None, [notes.get(key),
                                  f'maps at {self.map_size[0]}x'
                                  f'{self.map_size[1]}']))
        return metrics

    @staticmethod
    def _log_table(metrics: Dict[str, float], notes: dict,
                   num_images: int) -> None:
        if not metrics:
            return
        width = max(len(k) for k in metrics)
        lines = [f'AnomalyMetric on {num_images} images:']
        for key, value in metrics.items():
            note = f'  ({notes[key]})' if key in notes else ''
            lines.append(f'  {key:<{width}}  {value:.4f}{note}')
        print_log('\n'.join(lines), logger='current', level=logging.INFO)


def _require(sample: dict, key: str, where: str):
    if key not in sample or sample[key] is None:
        raise KeyError(f'{where} has no {key!r} (keys: {sorted(sample)}); '
                       "the model's predict() must set it")
    return sample[key]


def _unwrap(value):
    # ``PixelData.to_dict()`` / ``LabelData.to_dict()`` nest the tensor
    if isinstance(value, dict) and 'data' in value:
        return value['data']
    return value


def _scalar(value, name: str, where: str) -> float:
    value = _unwrap(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            raise ValueError(f'{where}: {name} must be a single number, got '
                             f'shape {tuple(value.shape)}')
        value = value.item()
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, Number) or isinstance(value, complex):
        raise TypeError(f'{where}: {name} must be a number or a one-element '
                        f'tensor, got {type(value).__name__}')
    value = float(value)
    if np.isnan(value):
        raise ValueError(f'{where}: {name} is NaN')
    return value


def _as_2d(value, name: str, where: str) -> torch.Tensor:
    value = _unwrap(value)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'{where}: {name} must be a tensor or an ndarray, '
                        f'got {type(value).__name__}')
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 2:
        raise ValueError(f'{where}: {name} must have shape (H, W) or '
                         f'(1, H, W), got {tuple(value.shape)}')
    return value
