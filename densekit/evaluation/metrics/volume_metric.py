"""Per-volume Dice and HD95 for 2-D models evaluated on 3-D scans (the
TransUNet / Swin-UNet protocol on Synapse and ACDC)."""
import logging
import warnings
from numbers import Integral, Number
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from densekit.evaluation.functional import per_class_volume_metrics
from densekit.evaluation.functional.volume_metrics import EMPTY_POLICIES
from densekit.registry import METRICS

Spacing = Optional[Tuple[float, float, float]]

_META_HINT = ('the dataset must set volume_id, slice_index and num_slices '
              '(and spacing) for every slice, and PackSegInputs must list '
              'them in meta_keys')


@METRICS.register_module()
class VolumeSegMetric(BaseMetric):
    """Dice (DSC) and HD95 per foreground class and volume, from a 2-D
    model's slice-by-slice predictions, as TransUNet and Swin-UNet report
    them.

    Slices are stacked back into (D, H, W) volumes in ``slice_index``
    order; for each volume and each class ``c >= 1`` (class 0 is background
    and not scored) Dice and HD95 of the binary masks ``pred == c`` and
    ``gt == c`` are computed by
    :func:`~densekit.evaluation.functional.per_class_volume_metrics`
    (medpy's ``dc`` / ``hd95`` definitions); each class is averaged over
    the volumes, and ``mDice`` / ``mHD95`` average those class means, as
    TransUNet's ``test.py`` does.

    Each element of ``data_samples`` given to :meth:`process` is a dict (a
    ``SegDataSample.to_dict()``, as the ``Evaluator`` passes it) with:

    * ``pred_sem_seg``: ``{'data': Tensor}``, int labels of shape (1, H, W)
      (or (H, W)) at the ground truth's size.
    * ``gt_sem_seg``: ``{'data': Tensor}``, same shape; ``ignore_index``
      voxels are removed from both masks of every class.
    * metainfo ``volume_id`` (str or int), ``slice_index`` (int, 0-based
      position along the volume's first axis), ``num_slices`` (int, the
      volume's depth D) and optionally ``spacing``: ``(z, y, x)`` voxel
      size (in mm, say) in array axis order, or None. SimpleITK's
      ``GetSpacing()`` is ``(x, y, z)``: reverse it. mmseg's
      ``PackSegInputs`` keeps only the metainfo named in its ``meta_keys``,
      so the test pipeline must list these four there.

    Slices may arrive in any order, interleaved across volumes and split
    across ranks. ``process`` stores one compact entry per slice (labels as
    uint8 when they fit), so mmengine's result collection gathers them and
    drops the sampler's padding; volumes are assembled in
    :meth:`compute_metrics`, which raises ``ValueError`` naming the volume
    and its missing slice indices if one is incomplete. In a
    non-distributed run a volume is scored as soon as its last slice
    arrives and its labels are freed, so only unfinished volumes are held
    in memory.

    Empty masks (``hd95_empty_policy``): ``'transunet'`` reproduces
    TransUNet's ``calculate_metric_percase`` exactly: a class predicted but
    absent from the ground truth scores Dice 1 and HD95 0, and a class not
    predicted scores Dice 0 and HD95 0 (present in the ground truth or
    not); these values are averaged like any other. ``'nan'`` scores
    undefined values NaN and skips them in the means (Dice is undefined
    when the class is absent from both, HD95 when either mask is empty); a
    class with no defined value reports NaN. The policy sets Dice and HD95
    of the empty cases together, because TransUNet's rule does.

    HD95 is in the units of the spacing: with ``spacing_from_meta=True``
    and a ``spacing`` in the metainfo, millimetres (say); otherwise voxels,
    which is what TransUNet and Swin-UNet report (they ignore spacing). A
    warning is logged when some volumes have a spacing and others do not.

    Returned keys (prefixed ``volume/`` by the evaluator): ``mDice``,
    ``mHD95``, and ``Dice/<class>`` and ``HD95/<class>`` for every
    foreground class. Dice is a fraction in [0, 1] (papers print it x100).
    The logged table lists the same numbers, plus one row per volume with
    ``log_per_volume=True``.

    References:
        Chen et al. "TransUNet: Transformers Make Strong Encoders for
        Medical Image Segmentation." arXiv:2102.04306, 2021
        (``Beckschen/TransUNet``: ``utils.py``, ``test.py``).

        Cao et al. "Swin-Unet: Unet-like Pure Transformer for Medical Image
        Segmentation." ECCVW 2022 (``HuCaoFighting/Swin-Unet``).

    Args:
        num_classes (int, optional): Number of classes including background.
            ``None`` reads ``len(dataset_meta['classes'])``. Defaults to
            None.
        ignore_index (int, optional): Ground-truth label to ignore, outside
            ``[0, num_classes)``; None ignores nothing. Defaults to 255.
        class_names (Sequence[str], optional): One name per class,
            background first (as ``dataset_meta['classes']``), used in the
            keys and the table. ``None`` takes ``dataset_meta['classes']``
            or, without it, the class indices. Defaults to None.
        spacing_from_meta (bool): Use the metainfo ``spacing`` for HD95.
            False measures HD95 in voxels, as TransUNet. Defaults to True.
        hd95_empty_policy (str): ``'transunet'`` or ``'nan'``, see above.
            Defaults to ``'transunet'``.
        log_per_volume (bool): Add one row per volume to the logged table.
            Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results are
            gathered in distributed evaluation. Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix; ``None`` uses ``'volume'``.

    Examples:
        >>> metric = VolumeSegMetric(num_classes=2)
        >>> gt = torch.zeros(1, 4, 4, dtype=torch.long)
        >>> gt[:, 1:3, 1:3] = 1
        >>> metric.process({}, [
        ...     dict(pred_sem_seg=dict(data=gt), gt_sem_seg=dict(data=gt),
        ...          volume_id='case1', slice_index=i, num_slices=2)
        ...     for i in (1, 0)])
        >>> metric.compute_metrics(metric.results)  # doctest: +SKIP
        {'mDice': 1.0, 'mHD95': 0.0, 'Dice/1': 1.0, 'HD95/1': 0.0}
    """
    default_prefix: Optional[str] = 'volume'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: Optional[int] = 255,
                 class_names: Optional[Sequence[str]] = None,
                 spacing_from_meta: bool = True,
                 hd95_empty_policy: str = 'transunet',
                 log_per_volume: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is not None and (not _is_int(num_classes)
                                        or num_classes < 2):
            raise ValueError('VolumeSegMetric: num_classes must be None or '
                             'an int >= 2 (background plus at least one '
                             f'class), got {num_classes!r}')
        if ignore_index is not None and not _is_int(ignore_index):
            raise TypeError('VolumeSegMetric: ignore_index must be an int or '
                            f'None, got {ignore_index!r}')
        if hd95_empty_policy not in EMPTY_POLICIES:
            raise ValueError('VolumeSegMetric: hd95_empty_policy must be one '
                             f'of {EMPTY_POLICIES}, got '
                             f'{hd95_empty_policy!r}')
        if class_names is not None:
            if isinstance(class_names, str):
                raise TypeError('VolumeSegMetric: class_names must be a '
                                'sequence of names, got the string '
                                f'{class_names!r}')
            class_names = tuple(str(n) for n in class_names)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ignore_index = (None if ignore_index is None else
                             int(ignore_index))
        self.class_names = class_names
        self.spacing_from_meta = bool(spacing_from_meta)
        self.empty_policy = hd95_empty_policy
        self.log_per_volume = bool(log_per_volume)
        # eager scoring (world size 1 only): volume_id -> {slice_index:
        # that slice's entry in self.results}
        self._slots: Dict[str, Dict[int, dict]] = {}

    # ------------------------------------------------------------ classes

    def _resolve_classes(self) -> Tuple[int, Tuple[str, ...]]:
        """``(num_classes, class_names)`` from the args and dataset_meta."""
        meta_classes = (self.dataset_meta or {}).get('classes')
        num_classes = self.num_classes
        if num_classes is None:
            if not meta_classes:
                raise ValueError(
                    'VolumeSegMetric: num_classes is None and dataset_meta '
                    "has no 'classes'; pass num_classes (background "
                    'included) or evaluate through a Runner whose dataset '
                    'sets metainfo classes')
            num_classes = len(meta_classes)
        elif meta_classes and len(meta_classes) != num_classes:
            raise ValueError(
                f'VolumeSegMetric: num_classes={num_classes} but '
                f"dataset_meta['classes'] has {len(meta_classes)} entries "
                f'({list(meta_classes)}); they must agree (background '
                'included)')
        if num_classes < 2:
            raise ValueError('VolumeSegMetric: need at least 2 classes '
                             f'(background plus one), got {num_classes}')
        names = self.class_names
        if names is None:
            names = (tuple(str(n) for n in meta_classes) if meta_classes else
                     tuple(str(c) for c in range(num_classes)))
        if len(names) != num_classes:
            raise ValueError(
                f'VolumeSegMetric: class_names has {len(names)} entries but '
                f'there are {num_classes} classes; give one name per class, '
                f'background first, got {list(names)}')
        ignore = self.ignore_index
        if ignore is not None and 0 <= ignore < num_classes:
            raise ValueError(
                f'VolumeSegMetric: ignore_index={ignore} is a valid class '
                f'index for num_classes={num_classes}; use a label outside '
                '[0, num_classes) (such as 255) or None')
        return num_classes, names

    def _label_dtype(self, num_classes: int) -> np.dtype:
        dtype = np.min_scalar_type(num_classes - 1)
        if self.ignore_index is not None:
            dtype = np.result_type(dtype,
                                   np.min_scalar_type(self.ignore_index))
        return np.dtype(dtype)

    # ------------------------------------------------------------ process

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store each slice's labels (compact, on the CPU) and position.

        In a non-distributed run, a volume whose slices have all arrived
        is scored here and its stored labels are released.

        Args:
            data_batch (dict): The loader's batch; unused.
            data_samples (Sequence[dict]): ``SegDataSample.to_dict()``
                outputs with the keys listed in the class docstring.
        """
        num_classes, _ = self._resolve_classes()
        dtype = self._label_dtype(num_classes)
        eager = get_world_size() == 1
        for i, sample in enumerate(data_samples):
            entry = self._parse_slice(sample, i, num_classes, dtype)
            if not eager:
                self.results.append(entry)
                continue
            vid, index = entry['volume_id'], entry['slice_index']
            slots = self._slots.setdefault(vid, {})
            if index in slots:
                raise ValueError(
                    f'VolumeSegMetric: slice {index} of volume {vid!r} was '
                    'processed twice; each (volume_id, slice_index) must '
                    'occur once in the dataset')
            slots[index] = entry
            self.results.append(entry)
            if len(slots) == entry['num_slices']:
                self._score_eagerly(vid, num_classes)

    def _parse_slice(self, sample: dict, i: int, num_classes: int,
                     dtype: np.dtype) -> dict:
        vid = sample.get('volume_id')
        where = (f'VolumeSegMetric: data sample #{i} of the batch '
                 f"({sample.get('img_path', 'no img_path')})")
        if vid is None:
            raise KeyError(f"{where} has no 'volume_id' metainfo; "
                           f'{_META_HINT}')
        if not isinstance(vid, (str, Integral)) or isinstance(vid, bool):
            raise TypeError(f'{where}: volume_id must be a str or an int, '
                            f'got {type(vid).__name__}')
        vid = str(vid)
        index = _meta_int(sample, 'slice_index', where)
        depth = _meta_int(sample, 'num_slices', where)
        where = f'VolumeSegMetric: volume {vid!r} slice {index}'
        if depth < 1 or not 0 <= index < depth:
            raise ValueError(f'{where}: need 0 <= slice_index < num_slices, '
                             f'got slice_index={index}, num_slices={depth}')
        pred = _labels_2d(sample, 'pred_sem_seg', where)
        gt = _labels_2d(sample, 'gt_sem_seg', where)
        if pred.shape != gt.shape:
            raise ValueError(
                f'{where}: pred_sem_seg has shape {pred.shape} but '
                f'gt_sem_seg has {gt.shape}; predictions must be resized to '
                'the ground-truth size')
        _check_range(pred, num_classes, None, 'pred_sem_seg', where)
        _check_range(gt, num_classes, self.ignore_index, 'gt_sem_seg', where)
        spacing = None
        if self.spacing_from_meta:
            spacing = _parse_spacing(sample.get('spacing'), where)
        return dict(volume_id=vid, slice_index=index, num_slices=depth,
                    spacing=spacing, pred=pred.astype(dtype),
                    gt=gt.astype(dtype), volume_result=None)

    def _score_eagerly(self, vid: str, num_classes: int) -> None:
        entries = list(self._slots[vid].values())
        pred, gt, spacing = _assemble(vid, entries)
        dice, hd95 = self._score(pred, gt, spacing, num_classes)
        for entry in entries:
            entry['pred'] = entry['gt'] = None
        entries[-1]['volume_result'] = dict(dice=dice, hd95=hd95,
                                            spacing=spacing)

    def _score(self, pred: np.ndarray, gt: np.ndarray, spacing: Spacing,
               num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
        return per_class_volume_metrics(
            pred, gt, num_classes, spacing=spacing,
            empty_policy=self.empty_policy, ignore_index=self.ignore_index)

    def evaluate(self, size: int) -> dict:
        """:meth:`BaseMetric.evaluate`, then forget the slices seen."""
        try:
            return super().evaluate(size)
        finally:
            self._slots.clear()

    # ------------------------------------------------------------ compute

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Assemble the volumes, score them and average.

        Args:
            results (list[dict]): The per-slice entries :meth:`process`
                stored, gathered from all ranks.

        Returns:
            dict[str, float]: Keys as listed in the class docstring.

        Raises:
            ValueError: If a volume is incomplete (naming it and its missing
                slice indices), has duplicate slices, or its slices
                disagree on ``num_slices``, ``spacing`` or shape.
        """
        if not results:
            raise ValueError('VolumeSegMetric: no results to evaluate; was '
                             'process() called?')
        num_classes, names = self._resolve_classes()
        groups: Dict[str, List[dict]] = {}
        for entry in results:
            groups.setdefault(entry['volume_id'], []).append(entry)
        rows = []  # (volume_id, spacing, dice, hd95)
        for vid in sorted(groups):
            entries = groups[vid]
            done = [e['volume_result'] for e in entries
                    if e.get('volume_result') is not None]
            if done:
                _check_complete(vid, entries)
                res = done[0]
                rows.append((vid, res['spacing'], res['dice'], res['hd95']))
                continue
            pred, gt, spacing = _assemble(vid, entries)
            rows.append((vid, spacing,
                         *self._score(pred, gt, spacing, num_classes)))
        with_spacing = sum(r[1] is not None for r in rows)
        if 0 < with_spacing < len(rows):
            print_log(
                f'VolumeSegMetric: {with_spacing} of {len(rows)} volumes '
                'have a spacing and the others none, so HD95 mixes physical '
                'units and voxels; set spacing for every volume, or '
                'spacing_from_meta=False to measure all in voxels.',
                logger='current', level=logging.WARNING)
        dice = np.stack([r[2] for r in rows])  # (V, C - 1)
        hd95 = np.stack([r[3] for r in rows])
        class_dice, class_hd95 = _nanmean(dice, 0), _nanmean(hd95, 0)
        metrics = {'mDice': float(_nanmean(class_dice, 0)),
                   'mHD95': float(_nanmean(class_hd95, 0))}
        for c, name in enumerate(names[1:]):
            metrics[f'Dice/{name}'] = float(class_dice[c])
            metrics[f'HD95/{name}'] = float(class_hd95[c])
        unit = ('spacing units' if with_spacing == len(rows) else
                'voxels' if with_spacing == 0 else 'mixed units')
        self._log_table(names[1:], class_dice, class_hd95, metrics, rows,
                        unit)
        return metrics

    def _log_table(self, names: Sequence[str], class_dice: np.ndarray,
                   class_hd95: np.ndarray, metrics: dict, rows: list,
                   unit: str) -> None:
        header = ['class', 'Dice', 'HD95']
        body = [[n, f'{d:.4f}', f'{h:.4f}']
                for n, d, h in zip(names, class_dice, class_hd95)]
        body.append(['mean', f"{metrics['mDice']:.4f}",
                     f"{metrics['mHD95']:.4f}"])
        lines = [f'VolumeSegMetric on {len(rows)} volumes (HD95 in {unit}, '
                 f'empty-mask policy {self.empty_policy!r}):']
        lines += _format_table(header, body)
        if self.log_per_volume:
            header = ['volume', 'mDice', 'mHD95'] + [
                f'{n} Dice/HD95' for n in names]
            body = [[vid, f'{_nanmean(d, 0):.4f}', f'{_nanmean(h, 0):.4f}']
                    + [f'{dc:.4f}/{hc:.2f}' for dc, hc in zip(d, h)]
                    for vid, _, d, h in rows]
            lines.append('per volume:')
            lines += _format_table(header, body)
        print_log('\n'.join(lines), logger='current', level=logging.INFO)


# ---------------------------------------------------------------- helpers


def _is_int(x) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _meta_int(sample: dict, key: str, where: str) -> int:
    value = sample.get(key)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if value is None:
        raise KeyError(f'{where} has no {key!r} metainfo; {_META_HINT}')
    if not _is_int(value):
        raise TypeError(f'{where}: {key} must be an int, got {value!r}')
    return int(value)


def _labels_2d(sample: dict, key: str, where: str) -> np.ndarray:
    value = sample.get(key)
    if isinstance(value, dict):
        value = value.get('data')
    if value is None:
        raise KeyError(f"{where} has no {key!r} (with 'data'); the test "
                       'pipeline must load the annotations (gt_sem_seg) and '
                       'the model must predict pred_sem_seg')
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f'{where}: {key} data must be a tensor or an '
                        f'ndarray, got {type(value).__name__}')
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 2:
        raise ValueError(f'{where}: {key} must have shape (1, H, W) or '
                         f'(H, W), got {value.shape}')
    if not (np.issubdtype(value.dtype, np.integer) or value.dtype == bool):
        raise TypeError(f'{where}: {key} must hold integer labels, got '
                        f'dtype {value.dtype}')
    return value


def _check_range(labels: np.ndarray, num_classes: int,
                 ignore_index: Optional[int], key: str, where: str) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bad.any():
        extra = '' if ignore_index is None else f' or {ignore_index}'
        raise ValueError(f'{where}: {key} must hold labels in [0, '
                         f'{num_classes}){extra}, got '
                         f'{np.unique(labels[bad])[:5].tolist()}')


def _parse_spacing(spacing, where: str) -> Spacing:
    if spacing is None:
        return None
    if isinstance(spacing, (torch.Tensor, np.ndarray)):
        spacing = spacing.tolist()
    if (not isinstance(spacing, (list, tuple)) or len(spacing) != 3
            or not all(isinstance(s, Number)
                       and not isinstance(s, (bool, complex))
                       and np.isfinite(s) and s > 0 for s in spacing)):
        raise ValueError(f'{where}: spacing must be None or three positive '
                         f'numbers (z, y, x), got {spacing!r}')
    return tuple(float(s) for s in spacing)


def _check_complete(vid: str, entries: List[dict]) -> int:
    """Check the slices of one volume; returns its depth."""
    depths = sorted({e['num_slices'] for e in entries})
    if len(depths) != 1:
        raise ValueError(f'VolumeSegMetric: the slices of volume {vid!r} '
                         f'disagree on num_slices: {depths}')
    depth = depths[0]
    indices = np.array([e['slice_index'] for e in entries])
    counts = np.bincount(indices, minlength=depth)
    if (counts > 1).any():
        raise ValueError(
            f'VolumeSegMetric: volume {vid!r} has duplicate slice(s) '
            f'{np.flatnonzero(counts > 1).tolist()}; each (volume_id, '
            'slice_index) must occur once in the dataset')
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f'VolumeSegMetric: volume {vid!r} is incomplete: '
            f'{missing.size} of {depth} slices missing, indices '
            f'{_ranges(missing)}; evaluate every slice of every volume '
            '(no subset, no drop_last)')
    return depth


def _assemble(vid: str, entries: List[dict]
              ) -> Tuple[np.ndarray, np.ndarray, Spacing]:
    """Stack one volume's slices into (D, H, W) pred and gt volumes."""
    _check_complete(vid, entries)
    spacings = {e['spacing'] for e in entries}
    if len(spacings) != 1:
        raise ValueError(f'VolumeSegMetric: the slices of volume {vid!r} '
                         f'disagree on spacing: {sorted(spacings, key=str)}')
    shapes = {e['pred'].shape for e in entries}
    if len(shapes) != 1:
        raise ValueError(f'VolumeSegMetric: the slices of volume {vid!r} '
                         f'have different shapes {sorted(shapes)}')
    entries = sorted(entries, key=lambda e: e['slice_index'])
    pred = np.stack([e['pred'] for e in entries])
    gt = np.stack([e['gt'] for e in entries])
    return pred, gt, spacings.pop()


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the all-NaN RuntimeWarning (gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _ranges(indices: np.ndarray, limit: int = 20) -> str:
    """``[0, 1, 2, 5]`` -> ``'0-2, 5'`` (at most ``limit`` runs)."""
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.r_[indices[0], indices[breaks + 1]]
    ends = np.r_[indices[breaks], indices[-1]]
    runs = [f'{s}' if s == e else f'{s}-{e}' for s, e in zip(starts, ends)]
    more = f', ... ({len(runs) - limit} more runs)' if len(runs) > limit \
        else ''
    return ', '.join(runs[:limit]) + more


def _format_table(header: List[str], body: List[List[str]]) -> List[str]:
    widths = [max(len(str(r[j])) for r in [header] + body)
              for j in range(len(header))]
    return [('  ' + '  '.join(f'{str(v):<{w}}'
                              for v, w in zip(r, widths))).rstrip()
            for r in [header] + body]
