"""Volume-level medical segmentation metrics (TransUNet / Swin-UNet protocol).

Pure numpy/scipy functions (torch tensors are accepted and moved to the CPU)
used by :class:`densekit.evaluation.VolumeSegMetric`:

* :func:`dice_coefficient`: Dice (DSC) of two binary masks, as medpy's
  ``metric.binary.dc``.
* :func:`surface_distances`: distances from each surface voxel of one mask
  to the nearest surface voxel of the other, as medpy's private
  ``__surface_distances``.
* :func:`hd95`: the 95th percentile of the symmetric surface distances, as
  medpy's ``metric.binary.hd95``.
* :func:`per_class_volume_metrics`: Dice and HD95 of every foreground class
  of a labelled volume, with TransUNet's handling of empty masks
  (``calculate_metric_percase``) or an alternative.

Surface and distance definitions follow medpy exactly (``medpy/metric/
binary.py``; medpy is not a dependency): the surface of a mask is
``mask ^ binary_erosion(mask, generate_binary_structure(ndim,
connectivity))`` with scipy's default ``border_value=0``, so voxels on the
array boundary are surface voxels (a one-slice volume is all surface); the
distance from a surface voxel of A to B is
``distance_transform_edt(~surface(B), sampling=spacing)`` read at that
voxel, i.e. the Euclidean distance between voxel centres in the units of
``spacing``; HD95 is ``np.percentile`` (linear interpolation) at 95 of the
concatenated A->B and B->A distances. Everything is one erosion and one EDT
per direction on the bounding box of the two masks (with a one-voxel
margin, which leaves the result unchanged), with no loop over voxels.

References:
    Chen et al. "TransUNet: Transformers Make Strong Encoders for Medical
    Image Segmentation." arXiv:2102.04306, 2021 (``Beckschen/TransUNet``,
    ``utils.py``: ``calculate_metric_percase``, ``test_single_volume``).

    Cao et al. "Swin-Unet: Unet-like Pure Transformer for Medical Image
    Segmentation." ECCVW 2022 (``HuCaoFighting/Swin-Unet``, ``utils.py``,
    the same two functions).

    Maier. MedPy, ``medpy/metric/binary.py`` (``dc``, ``hd95``,
    ``__surface_distances``), GPL-3.0; reimplemented here from its
    documented definition.
"""
import math
from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage

ArrayLike = Union[np.ndarray, torch.Tensor]
SpacingLike = Optional[Union[float, Sequence[float]]]

# how empty masks are scored, see per_class_volume_metrics
EMPTY_POLICIES = ('transunet', 'nan')

__all__ = [
    'dice_coefficient', 'surface_distances', 'hd95',
    'per_class_volume_metrics', 'EMPTY_POLICIES'
]


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_mask(x, name: str, where: str) -> np.ndarray:
    """A boolean array; nonzero is foreground, as in medpy."""
    x = _to_numpy(x)
    if x.dtype != bool:
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f'{where}: {name} must be a bool or numeric '
                            f'array, got dtype {x.dtype}')
        x = x != 0
    return np.atleast_1d(x)


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: Tuple[str, str],
                      where: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f'{where}: {names[0]} and {names[1]} must have the '
                         f'same shape, got {a.shape} and {b.shape}')


def _normalize_spacing(spacing: SpacingLike, ndim: int,
                       where: str) -> Optional[Tuple[float, ...]]:
    """``None`` (unit spacing), or one positive finite float per axis."""
    if spacing is None:
        return None
    if isinstance(spacing, (np.ndarray, torch.Tensor)):
        spacing = _to_numpy(spacing).tolist()
    if isinstance(spacing, Number) and not isinstance(spacing, bool):
        spacing = (spacing, ) * ndim
    if not isinstance(spacing, (list, tuple)) or len(spacing) != ndim:
        raise ValueError(f'{where}: spacing must be None, a number or a '
                         f'sequence of {ndim} numbers (one per axis, in '
                         f'array axis order), got {spacing!r}')
    values = []
    for s in spacing:
        if (not isinstance(s, Number) or isinstance(s, (bool, complex))
                or not math.isfinite(s) or s <= 0):
            raise ValueError(f'{where}: spacing values must be positive '
                             f'finite numbers, got {spacing!r}')
        values.append(float(s))
    return tuple(values)


def _surface(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    # medpy: ``result ^ binary_erosion(result, structure=footprint,
    # iterations=1)``; border_value=0 makes the array boundary a surface
    return mask ^ ndimage.binary_erosion(mask, structure=footprint,
                                         iterations=1)


def _crop_box(*masks: np.ndarray) -> Tuple[slice, ...]:
    """Bounding box of the union of ``masks`` grown by one voxel, clipped
    to the array.

    On a side with a margin the crop adds a background layer, so erosion
    sees the same neighbourhood; on a clipped side the crop boundary is the
    array boundary, which erosion treats the same way (``border_value=0``).
    All surface voxels lie inside and Euclidean distances between them do
    not depend on the crop, so the distances are unchanged.
    """
    union = np.logical_or.reduce(masks)
    box = []
    for axis in range(union.ndim):
        others = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=others))
        box.append(slice(max(int(hits[0]) - 1, 0),
                         min(int(hits[-1]) + 2, union.shape[axis])))
    return tuple(box)


def _check_not_empty(a: np.ndarray, b: np.ndarray, names: Tuple[str, str],
                     where: str) -> None:
    for mask, name in zip((a, b), names):
        if not mask.any():
            raise ValueError(
                f'{where}: {name} contains no foreground voxel, so surface '
                'distances are undefined (medpy raises RuntimeError here); '
                'per_class_volume_metrics applies an empty-mask policy '
                'instead')


def dice_coefficient(pred: ArrayLike, gt: ArrayLike) -> float:
    """Dice coefficient (DSC) of two binary masks, as medpy's
    ``metric.binary.dc``: ``2 |P & G| / (|P| + |G|)``.

    Args:
        pred (np.ndarray | torch.Tensor): Predicted mask of any shape;
            nonzero (or True) is foreground.
        gt (np.ndarray | torch.Tensor): Ground-truth mask, same shape.

    Returns:
        float: Dice in [0, 1]; 1.0 when both masks are empty (medpy's
        convention; :func:`per_class_volume_metrics` decides empty cases
        by its ``empty_policy`` before calling this).

    Examples:
        >>> dice_coefficient(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))
        0.5
    """
    where = 'dice_coefficient'
    pred = _as_mask(pred, 'pred', where)
    gt = _as_mask(gt, 'gt', where)
    _check_same_shape(pred, gt, ('pred', 'gt'), where)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & gt)) / total


def surface_distances(result: ArrayLike,
                      reference: ArrayLike,
                      spacing: SpacingLike = None,
                      connectivity: int = 1) -> np.ndarray:
    """Distances from every surface voxel of ``result`` to the nearest
    surface voxel of ``reference`` (medpy's ``__surface_distances``).

    Args:
        result (np.ndarray | torch.Tensor): Binary mask of any rank;
            nonzero is foreground.
        reference (np.ndarray | torch.Tensor): Binary mask, same shape.
        spacing (float | Sequence[float], optional): Voxel size along each
            array axis (e.g. ``(z, y, x)`` in mm for a (D, H, W) volume); a
            number applies to all axes. ``None`` means 1 (distances in
            voxels). Defaults to None.
        connectivity (int): Connectivity of the erosion structure,
            ``scipy.ndimage.generate_binary_structure(ndim, connectivity)``;
            1 (face neighbours, medpy's default) up to ``ndim``. Defaults
            to 1.

    Returns:
        np.ndarray: float64, shape (S,), one distance per surface voxel of
        ``result`` in C (row-major) order of the voxels.

    Raises:
        ValueError: If either mask is empty, the shapes differ, or
            ``spacing`` / ``connectivity`` is invalid.
    """
    where = 'surface_distances'
    result = _as_mask(result, 'result', where)
    reference = _as_mask(reference, 'reference', where)
    return _surface_distance_pair(result, reference, spacing, connectivity,
                                  where, ('result', 'reference'))[0]


def _surface_distance_pair(a: np.ndarray, b: np.ndarray, spacing: SpacingLike,
                           connectivity: int, where: str,
                           names: Tuple[str, str]
                           ) -> Tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (a -> b, b -> a) on the common crop."""
    _check_same_shape(a, b, names, where)
    spacing = _normalize_spacing(spacing, a.ndim, where)
    if (not isinstance(connectivity, int) or isinstance(connectivity, bool)
            or not 1 <= connectivity <= a.ndim):
        raise ValueError(f'{where}: connectivity must be an int in [1, '
                         f'{a.ndim}] for {a.ndim}-D masks, got '
                         f'{connectivity!r}')
    _check_not_empty(a, b, names, where)
    box = _crop_box(a, b)
    a, b = a[box], b[box]
    footprint = ndimage.generate_binary_structure(a.ndim, connectivity)
    a_border = _surface(a, footprint)
    b_border = _surface(b, footprint)
    # the EDT measures the distance to the nearest zero, so invert borders
    a_to_b = ndimage.distance_transform_edt(~b_border, sampling=spacing)
    b_to_a = ndimage.distance_transform_edt(~a_border, sampling=spacing)
    return a_to_b[a_border], b_to_a[b_border]


def hd95(pred: ArrayLike,
         gt: ArrayLike,
         spacing: SpacingLike = None,
         connectivity: int = 1) -> float:
    """95th percentile of the symmetric surface distance, as medpy's
    ``metric.binary.hd95``.

    ``np.percentile(np.hstack((d(pred -> gt), d(gt -> pred))), 95)`` with
    :func:`surface_distances` and numpy's default linear interpolation, so
    it lies between the 95th-percentile distances and need not be one of
    them. TransUNet and Swin-UNet call it without spacing (voxel units).

    Args:
        pred (np.ndarray | torch.Tensor): Predicted binary mask of any rank,
            e.g. a (D, H, W) volume; nonzero is foreground.
        gt (np.ndarray | torch.Tensor): Ground-truth mask, same shape.
        spacing (float | Sequence[float], optional): Voxel size per array
            axis (``(z, y, x)`` for (D, H, W)); ``None`` means voxel units.
            Defaults to None.
        connectivity (int): Erosion structure connectivity, see
            :func:`surface_distances`. Defaults to 1.

    Returns:
        float: HD95 in the units of ``spacing`` (voxels if None); 0 when
        the masks are equal.

    Raises:
        ValueError: If either mask is empty (undefined; see
            :func:`per_class_volume_metrics` for the empty-mask policies),
            the shapes differ, or ``spacing`` / ``connectivity`` is invalid.

    Examples:
        >>> a = np.zeros(12, dtype=bool)
        >>> b = a.copy()
        >>> a[0] = True
        >>> b[[0, 10]] = True
        >>> hd95(a, b)  # distances [0] and [0, 10]: 0 + 0.9 * 10
        9.0
    """
    where = 'hd95'
    pred = _as_mask(pred, 'pred', where)
    gt = _as_mask(gt, 'gt', where)
    d1, d2 = _surface_distance_pair(pred, gt, spacing, connectivity, where,
                                    ('pred', 'gt'))
    return float(np.percentile(np.hstack((d1, d2)), 95))


def per_class_volume_metrics(pred_vol: ArrayLike,
                             gt_vol: ArrayLike,
                             num_classes: int,
                             spacing: SpacingLike = None,
                             empty_policy: str = 'transunet',
                             ignore_index: Optional[int] = None,
                             connectivity: int = 1
                             ) -> Tuple[np.ndarray, np.ndarray]:
    """Dice and HD95 of every foreground class of one labelled volume.

    Class 0 is background and is not scored (TransUNet's
    ``for i in range(1, classes)``). For class ``c`` the masks are
    ``P = pred_vol == c`` and ``G = gt_vol == c``; when both are nonempty
    the result is ``(dice_coefficient(P, G), hd95(P, G, spacing))`` under
    every policy. Empty masks follow ``empty_policy``:

    ========================  =====================  ==================
    case                      ``'transunet'``        ``'nan'``
    ========================  =====================  ==================
    P nonempty, G empty       Dice 1, HD95 0         Dice 0, HD95 NaN
    P empty, G nonempty       Dice 0, HD95 0         Dice 0, HD95 NaN
    P empty, G empty          Dice 0, HD95 0         Dice NaN, HD95 NaN
    ========================  =====================  ==================

    ``'transunet'`` reproduces ``calculate_metric_percase`` of
    ``Beckschen/TransUNet`` and ``HuCaoFighting/Swin-Unet`` (identical in
    both)::

        if pred.sum() > 0 and gt.sum() > 0: return dc, hd95
        elif pred.sum() > 0 and gt.sum() == 0: return 1, 0
        else: return 0, 0

    so a false positive on an absent class scores a perfect (1, 0), a
    missed class scores the best HD95 (0) and a correctly absent class
    scores Dice 0; the values enter the means like any other. Use it to
    compare with published Synapse / ACDC numbers (where every organ is
    usually present, so the cases are rare). ``'nan'`` marks undefined
    values NaN so that means can skip them: Dice is undefined only when the
    class is absent from both; HD95 whenever either mask is empty.

    Args:
        pred_vol (np.ndarray | torch.Tensor): Predicted labels, int, shape
            (D, H, W) (any rank works), values in [0, num_classes).
        gt_vol (np.ndarray | torch.Tensor): Ground-truth labels, same
            shape, values in [0, num_classes) or ``ignore_index``.
        num_classes (int): Number of classes including background (>= 2).
        spacing (float | Sequence[float], optional): Voxel size per axis,
            ``(z, y, x)`` for (D, H, W); ``None`` gives HD95 in voxels, as
            TransUNet (which ignores spacing). Defaults to None.
        empty_policy (str): ``'transunet'`` or ``'nan'``, see above.
            Defaults to ``'transunet'``.
        ignore_index (int, optional): Ground-truth label whose voxels are
            removed from both P and G of every class (they count for
            neither Dice nor the surfaces). ``None`` ignores nothing.
            Defaults to None.
        connectivity (int): Erosion structure connectivity for HD95, see
            :func:`surface_distances`. Defaults to 1 (medpy's).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(dice, hd95)``, float64, each of
        shape (num_classes - 1,), entry ``c - 1`` for class ``c``; HD95 in
        the units of ``spacing``.

    Raises:
        ValueError: On mismatched shapes, labels outside the valid range,
            an unknown ``empty_policy`` or bad ``spacing``.
    """
    where = 'per_class_volume_metrics'
    if empty_policy not in EMPTY_POLICIES:
        raise ValueError(f'{where}: empty_policy must be one of '
                         f'{EMPTY_POLICIES}, got {empty_policy!r}')
    if (not isinstance(num_classes, int) or isinstance(num_classes, bool)
            or num_classes < 2):
        raise ValueError(f'{where}: num_classes must be an int >= 2 '
                         f'(background plus at least one class), got '
                         f'{num_classes!r}')
    pred_vol = _to_numpy(pred_vol)
    gt_vol = _to_numpy(gt_vol)
    _check_same_shape(pred_vol, gt_vol, ('pred_vol', 'gt_vol'), where)
    for vol, name in ((pred_vol, 'pred_vol'), (gt_vol, 'gt_vol')):
        if not np.issubdtype(vol.dtype, np.integer):
            raise TypeError(f'{where}: {name} must hold integer labels, got '
                            f'dtype {vol.dtype}')
    _check_labels(pred_vol, num_classes, None, 'pred_vol', where)
    _check_labels(gt_vol, num_classes, ignore_index, 'gt_vol', where)
    valid = None if ignore_index is None else gt_vol != ignore_index
    spacing = _normalize_spacing(spacing, pred_vol.ndim, where)
    dice = np.empty(num_classes - 1, dtype=np.float64)
    dist = np.empty(num_classes - 1, dtype=np.float64)
    for c in range(1, num_classes):
        p = pred_vol == c
        g = gt_vol == c
        if valid is not None:
            p &= valid
        has_p, has_g = bool(p.any()), bool(g.any())
        if has_p and has_g:
            dice[c - 1] = dice_coefficient(p, g)
            dist[c - 1] = hd95(p, g, spacing, connectivity)
        elif empty_policy == 'transunet':
            dice[c - 1], dist[c - 1] = (1.0, 0.0) if has_p else (0.0, 0.0)
        else:
            dice[c - 1] = 0.0 if (has_p or has_g) else np.nan
            dist[c - 1] = np.nan
    return dice, dist


def _check_labels(vol: np.ndarray, num_classes: int,
                  ignore_index: Optional[int], name: str, where: str) -> None:
    bad = (vol < 0) | (vol >= num_classes)
    if ignore_index is not None:
        bad &= vol != ignore_index
    if bad.any():
        extra = '' if ignore_index is None else f' or {ignore_index}'
        raise ValueError(
            f'{where}: {name} must hold labels in [0, {num_classes}){extra}, '
            f'got {np.unique(vol[bad])[:5].tolist()}')
