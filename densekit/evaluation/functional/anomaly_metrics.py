"""Image- and pixel-level anomaly-detection metrics (MVTec AD protocol).

Pure numpy functions (torch tensors are accepted and moved to the CPU) used
by :class:`densekit.evaluation.AnomalyMetric`:

* :func:`roc_auc`: exact area under the ROC curve, ties counted as half a
  correct ordering (equals ``sklearn.metrics.roc_auc_score``).
* :func:`f1_max`: the best F1 over all thresholds, and that threshold.
* :func:`pixel_auroc`: :func:`roc_auc` over every pixel of every image.
* :func:`pro_curve` / :func:`pro_auc`: the per-region-overlap curve and the
  normalised area under it up to a false-positive-rate limit (AU-PRO).

Every function is exact over all distinct thresholds: it sorts the scores
once and reads the curve off cumulative sums, so there is no loop over
pixels or thresholds and no threshold grid to choose. The cost is one
``argsort`` of all values (``O(n log n)``) plus a few arrays of ``n``
elements (about 30 bytes per pixel in all); for full-size MVTec images
downsample first (``AnomalyMetric(map_size=256)``).

References:
    Bergmann, Batzner, Fauser, Sattlegger, Steger. "The MVTec Anomaly
    Detection Dataset: A Comprehensive Real-World Dataset for Unsupervised
    Anomaly Detection." IJCV 129, 2021 (per-region overlap, Sec. 3.2).

    Bergmann, Fauser, Sattlegger, Steger. "Uninformed Students:
    Student-Teacher Anomaly Detection with Discriminative Latent
    Embeddings." CVPR 2020 (where the PRO curve was introduced).
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]
MapsLike = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray],
                 Sequence[torch.Tensor]]

# 8-connectivity for the ground-truth regions, as in the MVTec AD
# evaluation code.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

__all__ = ['roc_auc', 'f1_max', 'pixel_auroc', 'pro_curve', 'pro_auc']


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _as_scores(x, name: str, where: str) -> np.ndarray:
    """Flat float scores; float16 is widened to float32 (numpy sorts half
    precision slowly), float32/64 are kept, anything else becomes float64."""
    x = _to_numpy(x).ravel()
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    elif x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f'{where}: {name} must be numeric, got dtype '
                            f'{x.dtype}')
        x = x.astype(np.float64)
    if np.isnan(x).any():
        raise ValueError(f'{where}: {name} contains '
                         f'{int(np.isnan(x).sum())} NaN value(s); NaN has '
                         'no rank, check the model output')
    return x


def _as_binary(x, name: str, where: str) -> np.ndarray:
    """Flat boolean labels from bool or 0/1 values."""
    x = _to_numpy(x).ravel()
    if x.dtype == bool:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f'{where}: {name} must be bool or 0/1 numbers, got '
                        f'dtype {x.dtype}')
    bad = (x != 0) & (x != 1)
    if bad.any():
        raise ValueError(
            f'{where}: {name} must be binary (0 normal, 1 anomalous), got '
            f'values {np.unique(x[bad])[:5].tolist()} besides 0/1')
    return x == 1


def _check_pair(scores: np.ndarray, labels: np.ndarray, where: str) -> None:
    if scores.shape != labels.shape:
        raise ValueError(f'{where}: scores and labels must have the same '
                         f'number of elements, got {scores.size} scores and '
                         f'{labels.size} labels')
    if scores.size == 0:
        raise ValueError(f'{where}: got no scores')


def _clf_curve(scores: np.ndarray, labels: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false and true positives at every distinct threshold.

    Predicting "anomalous" for ``score >= threshold``, with thresholds
    running over the distinct scores from high to low.

    Returns:
        tuple[np.ndarray]: ``fps``, ``tps`` (int64, shape (T,), both
        non-decreasing) and ``thresholds`` (shape (T,), decreasing).
    """
    order = np.argsort(scores, kind='stable')[::-1]
    sorted_scores = scores[order]
    # the last index of each run of equal scores closes one threshold
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    tps = np.cumsum(labels[order], dtype=np.int64)[ends]
    fps = (ends + 1) - tps
    return fps, tps, sorted_scores[ends]


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Exact area under the ROC curve.

    The curve has one point per distinct score, so a tie between a normal
    and an anomalous sample is a diagonal segment and counts as half a
    correct ordering: the result is the Mann-Whitney U statistic divided by
    ``num_pos * num_neg`` and equals ``sklearn.metrics.roc_auc_score``.

    Args:
        scores (np.ndarray | torch.Tensor | Sequence[float]): Anomaly
            scores of any shape (flattened), higher = more anomalous.
        labels (np.ndarray | torch.Tensor | Sequence[int]): Same number of
            elements, bool or 0/1 (1 = anomalous).

    Returns:
        float: ROC AUC in [0, 1].

    Raises:
        ValueError: If only one class is present, or on NaN scores,
            non-binary labels or mismatched sizes.

    Examples:
        >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    where = 'roc_auc'
    scores = _as_scores(scores, 'scores', where)
    labels = _as_binary(labels, 'labels', where)
    _check_pair(scores, labels, where)
    num_pos = int(labels.sum())
    num_neg = labels.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            f'{where}: ROC AUC is undefined with only one class present, '
            f'got {num_pos} anomalous and {num_neg} normal label(s)')
    fps, tps, _ = _clf_curve(scores, labels)
    fps = np.r_[0, fps].astype(np.float64)
    tps = np.r_[0, tps].astype(np.float64)
    # trapezoids in counts, normalised once at the end
    area = np.sum(np.diff(fps) * (tps[1:] + tps[:-1])) / 2
    return float(area / (num_pos * num_neg))


def f1_max(scores: ArrayLike, labels: ArrayLike) -> Tuple[float, float]:
    """The maximum F1 score over all thresholds.

    Every distinct score is tried as a threshold, predicting "anomalous"
    for ``score >= threshold``; ``F1 = 2 TP / (2 TP + FP + FN)``.

    Args:
        scores (np.ndarray | torch.Tensor | Sequence[float]): Anomaly
            scores of any shape (flattened), higher = more anomalous.
        labels (np.ndarray | torch.Tensor | Sequence[int]): Same number of
            elements, bool or 0/1 (1 = anomalous).

    Returns:
        tuple[float, float]: ``(f1, threshold)``: the best F1 and the
        (highest) threshold reaching it.

    Raises:
        ValueError: If there is no anomalous label (F1 is then 0 at every
            threshold), or on NaN scores, non-binary labels or mismatched
            sizes.

    Examples:
        >>> f1, thr = f1_max([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 1, 0])
        >>> round(f1, 4), thr
        (0.8571, 0.6)
    """
    where = 'f1_max'
    scores = _as_scores(scores, 'scores', where)
    labels = _as_binary(labels, 'labels', where)
    _check_pair(scores, labels, where)
    num_pos = int(labels.sum())
    if num_pos == 0:
        raise ValueError(f'{where}: F1 needs at least one anomalous label, '
                         f'got {labels.size} normal ones only')
    fps, tps, thresholds = _clf_curve(scores, labels)
    # 2TP / (2TP + FP + FN) with FN = P - TP
    f1 = 2 * tps / (tps + fps + num_pos).astype(np.float64)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def _as_map_list(maps: MapsLike, name: str, where: str) -> list:
    """Per-image 2-D arrays from an (N, H, W) / (H, W) array or tensor or
    a sequence of (H, W) (or 1xHxW) arrays or tensors."""
    if isinstance(maps, (np.ndarray, torch.Tensor)):
        if maps.ndim == 2:
            maps = maps[None]
        if maps.ndim == 4 and maps.shape[1] == 1:
            maps = maps[:, 0]
        if maps.ndim != 3:
            raise ValueError(f'{where}: {name} must have shape (N, H, W), '
                             f'(N, 1, H, W) or (H, W), got '
                             f'{tuple(maps.shape)}')
        maps = list(maps)
    out = []
    for i, m in enumerate(maps):
        m = _to_numpy(m)
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise ValueError(f'{where}: {name}[{i}] must have shape (H, W) '
                             f'or (1, H, W), got {m.shape}')
        out.append(m)
    if not out:
        raise ValueError(f'{where}: got no {name}')
    return out


def _flatten_pairs(anomaly_maps: MapsLike, gt_masks: MapsLike,
                   where: str) -> Tuple[list, list]:
    maps = _as_map_list(anomaly_maps, 'anomaly_maps', where)
    masks = _as_map_list(gt_masks, 'gt_masks', where)
    if len(maps) != len(masks):
        raise ValueError(f'{where}: got {len(maps)} anomaly maps but '
                         f'{len(masks)} ground-truth masks')
    for i, (m, g) in enumerate(zip(maps, masks)):
        if m.shape != g.shape:
            raise ValueError(f'{where}: anomaly_maps[{i}] has shape '
                             f'{m.shape} but gt_masks[{i}] has {g.shape}; '
                             'resize the map to the mask (original image) '
                             'size first')
    return maps, masks


def pixel_auroc(anomaly_maps: MapsLike, gt_masks: MapsLike) -> float:
    """Pixel-level ROC AUC: :func:`roc_auc` over all pixels of all images.

    Args:
        anomaly_maps (np.ndarray | torch.Tensor | Sequence): Shape
            (N, H, W), or N maps of shape (H, W) (sizes may differ).
        gt_masks (np.ndarray | torch.Tensor | Sequence): Binary masks
            shaped like ``anomaly_maps``; any nonzero value is anomalous.

    Returns:
        float: Pixel AUROC in [0, 1].
    """
    maps, masks = _flatten_pairs(anomaly_maps, gt_masks, 'pixel_auroc')
    scores = np.concatenate([_as_scores(m, 'anomaly_maps', 'pixel_auroc')
                             for m in maps])
    labels = np.concatenate([g.ravel() != 0 for g in masks])
    return roc_auc(scores, labels)


def pro_curve(anomaly_maps: MapsLike,
              gt_masks: MapsLike) -> Tuple[np.ndarray, np.ndarray]:
    """The per-region-overlap (PRO) curve over all distinct thresholds.

    Each image's mask is split into connected regions (8-connectivity).
    At threshold ``t`` (a pixel is predicted anomalous if its score
    ``>= t``):

    * ``PRO(t)`` is the mean, over all regions of all images, of the
      fraction of the region's pixels predicted anomalous;
    * ``FPR(t)`` is the fraction of all normal pixels (of all images)
      predicted anomalous.

    Both are sums over the pixels at or above ``t``: a pixel of a region of
    ``s`` pixels adds ``1 / (s * num_regions)`` to PRO and a normal pixel
    adds ``1 / num_normal`` to FPR. So one descending sort and two
    cumulative sums, read at the last pixel of each run of equal scores,
    give the exact curve at every distinct threshold. Images whose mask is
    empty contribute normal pixels only.

    Args:
        anomaly_maps (np.ndarray | torch.Tensor | Sequence): Shape
            (N, H, W), or N maps of shape (H, W) (sizes may differ).
        gt_masks (np.ndarray | torch.Tensor | Sequence): Binary masks
            shaped like ``anomaly_maps``; any nonzero value is anomalous.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``fprs`` and ``pros``, float64 of
        shape (T + 2,), one point per distinct threshold from high to low,
        framed by (0, 0) and (1, 1). ``fprs`` is non-decreasing; points
        with equal FPR are vertical steps.

    Raises:
        ValueError: If there is no anomalous or no normal pixel, on NaN
            scores or on shape mismatches.
    """
    where = 'pro_curve'
    maps, masks = _flatten_pairs(anomaly_maps, gt_masks, where)
    region_ids, region_sizes = [], [np.zeros(1, dtype=np.int64)]
    num_regions = 0
    for mask in masks:
        labelled, n = ndimage.label(mask != 0, structure=_EIGHT_CONNECTED)
        labelled = labelled.ravel().astype(np.int64)
        region_sizes.append(np.bincount(labelled, minlength=n + 1)[1:])
        # global ids: 0 = normal, regions of image k follow those of k-1
        labelled[labelled > 0] += num_regions
        region_ids.append(labelled)
        num_regions += n
    region_ids = np.concatenate(region_ids)
    region_sizes = np.concatenate(region_sizes)
    normal = region_ids == 0
    num_normal = int(normal.sum())
    if num_regions == 0:
        raise ValueError(f'{where}: the ground-truth masks have no anomalous '
                         'region; PRO needs at least one')
    if num_normal == 0:
        raise ValueError(f'{where}: the ground-truth masks have no normal '
                         'pixel; the false positive rate is undefined')
    scores = np.concatenate(
        [_as_scores(m, 'anomaly_maps', where) for m in maps])

    # per-region weight 1 / (size * num_regions); index 0 (normal) adds 0
    weights = np.zeros(num_regions + 1, dtype=np.float64)
    weights[1:] = 1.0 / (region_sizes[1:] * num_regions)
    order = np.argsort(scores, kind='stable')[::-1]
    sorted_scores = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    pros = np.cumsum(weights[region_ids[order]])[ends]
    fprs = np.cumsum(normal[order], dtype=np.int64)[ends] / num_normal
    # the float sum of the PRO weights may overshoot 1 by rounding
    np.clip(pros, 0.0, 1.0, out=pros)
    return np.r_[0.0, fprs, 1.0], np.r_[0.0, pros, 1.0]


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoidal area under the piecewise-linear (x, y) from x[0] to
    ``x_max``, interpolating y at ``x_max``; x is non-decreasing and spans
    [0, 1]."""
    stop = int(np.searchsorted(x, x_max, side='right'))  # x[:stop] <= x_max
    xs, ys = x[:stop], y[:stop]
    if xs[-1] < x_max:
        # x[stop] > x_max > x[stop - 1], so the segment is not vertical
        x0, x1, y0, y1 = x[stop - 1], x[stop], y[stop - 1], y[stop]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_at]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1])) / 2)


def pro_auc(anomaly_maps: MapsLike,
            gt_masks: MapsLike,
            fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (AU-PRO).

    The MVTec AD protocol (Bergmann et al., IJCV 2021): integrate
    :func:`pro_curve` over FPR from 0 to ``fpr_limit`` with the trapezoidal
    rule, the curve interpolated linearly at ``fpr_limit``, and divide by
    ``fpr_limit``, so a perfect map scores 1.0 and a random one about
    ``fpr_limit / 2``.

    Args:
        anomaly_maps (np.ndarray | torch.Tensor | Sequence): Shape
            (N, H, W), or N maps of shape (H, W) (sizes may differ).
        gt_masks (np.ndarray | torch.Tensor | Sequence): Binary masks
            shaped like ``anomaly_maps``; any nonzero value is anomalous.
        fpr_limit (float): Upper integration limit on the false positive
            rate, in (0, 1]. Defaults to 0.3.

    Returns:
        float: AU-PRO in [0, 1].

    Raises:
        ValueError: On a bad ``fpr_limit``, and as :func:`pro_curve`.

    Examples:
        >>> masks = np.array([[[0, 1], [0, 0]]])
        >>> pro_auc(masks * 0.9, masks)
        1.0
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f'pro_auc: fpr_limit must be in (0, 1], got '
                         f'{fpr_limit}')
    fprs, pros = pro_curve(anomaly_maps, gt_masks)
    return _area_up_to(fprs, pros, float(fpr_limit)) / fpr_limit
