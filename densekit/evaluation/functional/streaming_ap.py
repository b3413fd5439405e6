"""Streaming AP (sAP) and offline AP on Argoverse-HD-format ground truth.

Streaming perception (Li et al., "Towards Streaming Perception", ECCV 2020,
Sec. 3; official code ``mtli/sap-toolkit``, ``det/streaming_eval.py``, the
copy used by StreamYOLO is ``yancie-yjr/StreamYOLO:sAP/streamyolo/
streaming_eval.py``) scores a detector by what it has *output by the time
each frame is shown*:

* Frame ``fid`` of a sequence is the world state at ``t = fid / fps``
  (``streaming_eval.py``: ``t = (ii - eta) / fps`` with the default
  ``eta = 0`` and ``ii`` the frame's index in its sequence, which is the
  Argoverse-HD ``fid``). Time is measured from the arrival of frame 0, the
  clock of :func:`~densekit.evaluation.functional.simulate_stream`.
* Each ground-truth frame is paired with the **latest** output whose
  timestamp (finish time) is ``<= t``, compared without tolerance: an
  output finishing exactly at ``t`` counts, one finishing any time after
  ``t`` does not (``while tidx_p1 < len(timestamps) and
  timestamps[tidx_p1] <= t: tidx_p1 += 1``, then output ``tidx_p1 - 1``).
  Of several outputs finishing at the same time the last one counts. A
  frame before the first output gets no detections and counts as a miss.
* densekit compares exact rational times (:func:`pair_stream_predictions`),
  so float round-off cannot move a pairing: ``fid / fps`` is exact and
  timestamps are taken as given, Fractions exactly and floats through
  :func:`~densekit.evaluation.functional.stream_simulation.exact_time`,
  which preserves every float comparison. Float timestamps therefore pair
  exactly as sap-toolkit pairs them, and
  :func:`~densekit.evaluation.functional.simulate_stream`'s exact
  ``exact_finish_times`` pair as the arithmetic says (sap-toolkit's float
  clock can land a hair after a frame it reaches exactly).
* The frame receives the detections of its paired output, re-labelled with
  the frame's ``image_id``, and COCO AP is computed over all frames by
  pycocotools, exactly like offline AP (sap-toolkit's ``eval_ccf``).

So a detector that finishes each frame at its arrival (zero latency) gets
sAP = offline AP, and any latency scores the old boxes against the moved
objects.

Predictions are given per sequence as a dict (keys: a sequence index ``sid``
or a sequence name from the annotation file's ``sequences``)::

    {
        'img_ids': (P,) int    # image id of each output's INPUT frame, or
        'fids': (P,) int       # its frame index in the sequence (one of two)
        'finish_times': (P,)   # seconds since frame 0 arrived, non-decreasing;
                               # floats or exact Fractions (simulate_stream's
                               # exact_finish_times)
        'bboxes': [ (Ni, 4) ]  # per output, x1y1x2y2 pixels of the frame
        'scores': [ (Ni,) ],
        'labels': [ (Ni,) ],   # class indices into ``cat_ids``
    }

``cat_ids`` maps label ``k`` to category id ``cat_ids[k]``; it defaults to
the annotation file's category ids sorted, the order mmdet's ``CocoDataset``
gives labels when ``classes`` lists the categories in id order.
"""
import bisect
import contextlib
import copy
import io
import os
from fractions import Fraction
from numbers import Integral, Real
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .stream_simulation import exact_time

__all__ = [
    'pair_stream_predictions', 'streaming_coco_eval', 'offline_coco_eval',
    'load_stream_gt'
]

# seconds of slack of the input check "an output cannot finish before its
# input frame arrived" only (e.g. ``fid * (1 / fps)`` one ulp early); the
# pairing itself has no slack
_CAUSAL_SLACK = Fraction(1, 10**9)
_STAT_NAMES = ('', '50', '75', '_s', '_m', '_l')


def _exact_times(values, name: str) -> List[Fraction]:
    """1-D ``values`` as exact Fractions (:func:`exact_time`)."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f'{name} must be 1-D, but got shape {arr.shape}')
    out = []
    for k, value in enumerate(arr.tolist()):
        try:
            out.append(exact_time(value))
        except (TypeError, ValueError):
            raise ValueError(f'{name}[{k}] is {value!r}, not a finite time '
                             'in seconds') from None
    return out


def pair_stream_predictions(frame_times, finish_times) -> np.ndarray:
    """Index of the latest output finished at or before each frame's time.

    The rule of sap-toolkit's ``streaming_eval.py``: frame ``i`` (at
    ``t_i``) gets output ``j = max{j : finish_times[j] <= t_i}``, with no
    tolerance, or none (-1). Times are compared as exact rationals: ints
    and :class:`~fractions.Fraction` exactly, floats as read by
    :func:`~densekit.evaluation.functional.stream_simulation.exact_time`
    (which keeps the order of any two floats, so float inputs pair exactly
    as the toolkit's float comparison pairs them).

    Changed: the ``atol`` argument (a 1e-9 s slack) is gone; pass exact
    times (``simulate_stream(...).exact_finish_times``, ``Fraction(fid) /
    fps``) where float round-off would land an output after a frame it
    reaches exactly.

    Args:
        frame_times (array-like): (F, ) times of the ground-truth frames in
            seconds (``fid / fps``), any order; numbers or Fractions.
        finish_times (array-like): (P, ) output timestamps in seconds,
            non-decreasing (one detector process emits them in order).

    Returns:
        np.ndarray: int64 (F, ): for each frame the index into
        ``finish_times`` of its output, ``-1`` when no output had finished
        by then. Ties count: ``finish_times[j] == frame_times[i]`` pairs
        ``i`` with ``j`` (or with a later ``j'`` finishing at the same time).

    Raises:
        ValueError: An input is not 1-D, holds NaN/inf or non-numbers, or
            ``finish_times`` decreases somewhere (the index is named).

    Examples:
        >>> pair_stream_predictions([0, 1 / 30, 2 / 30], [0.04, 0.05])
        array([-1,  0,  1])
        >>> from fractions import Fraction
        >>> pair_stream_predictions([Fraction(6, 30)], [Fraction(1, 5)])
        array([0])
    """
    frames = _exact_times(frame_times, 'pair_stream_predictions: '
                          'frame_times')
    finish = _exact_times(finish_times, 'pair_stream_predictions: '
                          'finish_times')
    for k in range(1, len(finish)):
        if finish[k] < finish[k - 1]:
            raise ValueError(
                'pair_stream_predictions: finish_times must be '
                'non-decreasing (one detector emits outputs in order), but '
                f'output {k} finishes at {float(finish[k])} before output '
                f'{k - 1} at {float(finish[k - 1])}')
    return np.asarray([bisect.bisect_right(finish, t) - 1 for t in frames],
                      dtype=np.int64)


# ------------------------------------------------------------ ground truth
def _load_coco(coco_gt):
    from pycocotools.coco import COCO
    if isinstance(coco_gt, COCO):
        return coco_gt
    if isinstance(coco_gt, (str, os.PathLike)):
        path = os.fspath(coco_gt)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'streaming eval: annotation file {path} does not exist')
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(path)
    raise TypeError('streaming eval: coco_gt must be a pycocotools COCO or '
                    f'an annotation file path, but got {type(coco_gt)}')


def load_stream_gt(coco_gt) -> Tuple[object, Dict[int, dict]]:
    """Read the sequences of an Argoverse-HD-format ground truth.

    Args:
        coco_gt (COCO | str): pycocotools ``COCO`` or a JSON path with
            ``images`` carrying ``sid`` and ``fid`` (see the module
            docstring); ``sequences`` (names) is optional.

    Returns:
        tuple: ``(coco, seqs)``; ``seqs[sid]`` is a dict with ``name``,
        ``fids`` (int64, sorted), ``img_ids`` (int64, same order) and
        ``fid_to_img`` / ``img_to_fid`` dicts.

    Raises:
        ValueError: An image lacks ``sid``/``fid``, or two images of one
            sequence share a ``fid`` (named).
    """
    coco = _load_coco(coco_gt)
    dataset = coco.dataset
    names = dataset.get('sequences')
    per_seq: Dict[int, List[Tuple[int, int]]] = {}
    for img in dataset.get('images', []):
        for key in ('sid', 'fid'):
            if key not in img:
                raise ValueError(
                    f'streaming eval: image id {img.get("id")} '
                    f'({img.get("file_name", img.get("name"))}) has no '
                    f'"{key}"; streaming evaluation needs Argoverse-HD-format '
                    'images with a sequence index "sid" and frame index "fid"')
        per_seq.setdefault(int(img['sid']), []).append(
            (int(img['fid']), int(img['id'])))
    seqs = {}
    for sid, frames in sorted(per_seq.items()):
        arr = np.asarray(sorted(frames), dtype=np.int64).reshape(-1, 2)
        name = names[sid] if names is not None and 0 <= sid < len(
            names) else str(sid)
        dup = np.flatnonzero(np.diff(arr[:, 0]) == 0)
        if len(dup):
            fid = int(arr[dup[0], 0])
            ids = arr[arr[:, 0] == fid, 1].tolist()
            raise ValueError(f'streaming eval: sequence {name} (sid {sid}) '
                             f'has several images with fid {fid}: ids {ids}')
        seqs[sid] = dict(
            name=name,
            fids=arr[:, 0].copy(),
            img_ids=arr[:, 1].copy(),
            fid_to_img=dict(zip(arr[:, 0].tolist(), arr[:, 1].tolist())),
            img_to_fid=dict(zip(arr[:, 1].tolist(), arr[:, 0].tolist())))
    return coco, seqs


def _resolve_seq(key, seqs: Dict[int, dict]) -> int:
    if isinstance(key, Integral) and not isinstance(key, bool):
        if int(key) in seqs:
            return int(key)
    elif isinstance(key, str):
        for sid, seq in seqs.items():
            if seq['name'] == key:
                return sid
    names = [s['name'] for s in seqs.values()][:5]
    raise ValueError(
        f'streaming eval: predictions are given for sequence {key!r}, which '
        f'is not in the ground truth (known: sids {sorted(seqs)[:10]}, '
        f'names {names}, ...)')


def _default_cat_ids(coco) -> List[int]:
    return sorted(int(c['id']) for c in coco.dataset.get('categories', []))


# ------------------------------------------------------------- predictions
def _check_seq_predictions(pred: Mapping, seq: dict, sid: int,
                           num_cats: int, need_times: bool) -> dict:
    """Validate one sequence's predictions; returns arrays with ``fids``."""
    name = f'sequence {seq["name"]} (sid {sid})'
    if not isinstance(pred, Mapping):
        raise TypeError(f'streaming eval: predictions of {name} must be a '
                        f'dict, but got {type(pred).__name__}')
    has_ids, has_fids = 'img_ids' in pred, 'fids' in pred
    if has_ids == has_fids:
        raise ValueError(f'streaming eval: predictions of {name} need '
                         'exactly one of "img_ids" (input image ids) or '
                         '"fids" (input frame indices)')
    missing = [k for k in ('bboxes', 'scores', 'labels') if k not in pred]
    if need_times and 'finish_times' not in pred:
        missing.append('finish_times')
    if missing:
        raise ValueError(f'streaming eval: predictions of {name} lack keys '
                         f'{missing}')
    raw = np.asarray(pred['img_ids' if has_ids else 'fids']).reshape(-1)
    num = len(raw)
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f'streaming eval: {name}: '
                         f'{"img_ids" if has_ids else "fids"} must be '
                         f'integers, but got dtype {raw.dtype}')
    if has_ids:
        lookup, what = seq['img_to_fid'], 'image id'
    else:
        lookup, what = seq['fid_to_img'], 'fid'
    unknown = [v for v in raw.tolist() if v not in lookup]
    if unknown:
        k = raw.tolist().index(unknown[0])
        raise ValueError(
            f'streaming eval: {name}, output {k}: input {what} {unknown[0]} '
            f'is not a frame of this sequence ({len(unknown)} unknown in '
            'all)')
    if has_ids:
        img_ids = raw.astype(np.int64)
        fids = np.asarray([lookup[v] for v in raw.tolist()], dtype=np.int64)
    else:
        fids = raw.astype(np.int64)
        img_ids = np.asarray([lookup[v] for v in raw.tolist()],
                             dtype=np.int64)
    for key in ('bboxes', 'scores', 'labels'):
        if len(pred[key]) != num:
            raise ValueError(f'streaming eval: {name}: {num} outputs but '
                             f'{len(pred[key])} entries in "{key}"')
    bboxes, scores, labels = [], [], []
    for k in range(num):
        b = np.asarray(pred['bboxes'][k], dtype=np.float64)
        b = b.reshape(0, 4) if b.size == 0 else b
        s = np.asarray(pred['scores'][k], dtype=np.float64).reshape(-1)
        lab = np.asarray(pred['labels'][k]).reshape(-1)
        if b.ndim != 2 or b.shape[1] != 4 or len(s) != len(b) or \
                len(lab) != len(b):
            raise ValueError(
                f'streaming eval: {name}, output {k} (input fid '
                f'{fids[k]}): bboxes must be (N, 4) with N scores and N '
                f'labels, but got bboxes {b.shape}, scores {s.shape}, '
                f'labels {lab.shape}')
        if len(lab) and (not np.issubdtype(lab.dtype, np.integer) or
                         lab.min() < 0 or lab.max() >= num_cats):
            raise ValueError(
                f'streaming eval: {name}, output {k} (input fid '
                f'{fids[k]}): labels must be integers in [0, {num_cats}) '
                f'(indices into cat_ids), but got {lab.tolist()[:10]}')
        bboxes.append(b)
        scores.append(s)
        labels.append(lab.astype(np.int64))
    out = dict(fids=fids, img_ids=img_ids, bboxes=bboxes, scores=scores,
               labels=labels)
    if 'finish_times' in pred:
        # exact (Fractions), see pair_stream_predictions
        finish = _exact_times(pred['finish_times'],
                              f'streaming eval: {name}: finish_times')
        if len(finish) != num:
            raise ValueError(f'streaming eval: {name}: {num} outputs but '
                             f'{len(finish)} finish_times')
        out['finish_times'] = finish
    return out


def _check_causal(pred: dict, seq: dict, sid: int, fps: Fraction) -> None:
    name = f'sequence {seq["name"]} (sid {sid})'
    finish, fids = pred['finish_times'], pred['fids']
    for k in range(1, len(finish)):
        if finish[k] < finish[k - 1]:
            raise ValueError(
                f'streaming eval: {name}: finish_times must be '
                f'non-decreasing, but output {k} (input fid {fids[k]}) '
                f'finishes at {float(finish[k]):.6f} s, before output '
                f'{k - 1} (input fid {fids[k - 1]}) at '
                f'{float(finish[k - 1]):.6f} s')
    for k, (done, fid) in enumerate(zip(finish, fids.tolist())):
        arrival = fid / fps
        if done < arrival - _CAUSAL_SLACK:
            raise ValueError(
                f'streaming eval: {name}, output {k}: finishes at '
                f'{float(done):.6f} s, before its input frame fid {fid} '
                f'arrived at {float(arrival):.6f} s (fid / fps, '
                f'fps={float(fps)})')


def _to_numpy_results(img_ids: np.ndarray, pred: dict, take: np.ndarray,
                      cat_ids: np.ndarray) -> np.ndarray:
    """(K, 7) [image_id, x, y, w, h, score, category_id] for pycocotools.

    ``take[i]`` is the output index whose detections frame ``img_ids[i]``
    receives (``-1``: none). Vectorised over detections.
    """
    counts = np.asarray([len(s) for s in pred['scores']], dtype=np.int64)
    if counts.sum() == 0 or not (take >= 0).any():
        return np.zeros((0, 7))
    boxes = np.concatenate(pred['bboxes'], axis=0)
    scores = np.concatenate(pred['scores'], axis=0)
    labels = np.concatenate(pred['labels'], axis=0)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    valid = take >= 0
    frame_img = img_ids[valid]
    src = take[valid]
    n_per = counts[src]
    # detection indices of every (frame, paired output) pair
    rep_img = np.repeat(frame_img, n_per)
    starts = np.repeat(offsets[src], n_per)
    within = np.arange(n_per.sum()) - np.repeat(
        np.cumsum(n_per) - n_per, n_per)
    det = starts + within
    b = boxes[det]
    return np.stack([
        rep_img.astype(np.float64), b[:, 0], b[:, 1], b[:, 2] - b[:, 0],
        b[:, 3] - b[:, 1], scores[det], cat_ids[labels[det]].astype(
            np.float64)
    ], axis=1)


def _coco_ap(coco, results: np.ndarray, img_ids: Sequence[int],
             key_prefix: str) -> Tuple[Dict[str, float], str]:
    """pycocotools bbox AP of ``results`` on ``img_ids``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        if len(results):
            coco_dt = coco.loadRes(results)
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = dict(
                images=copy.deepcopy(coco.dataset['images']),
                categories=copy.deepcopy(coco.dataset['categories']),
                annotations=[])
            coco_dt.createIndex()
        evaluator = COCOeval(coco, coco_dt, 'bbox')
        evaluator.params.imgIds = sorted(int(i) for i in img_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {
        f'{key_prefix}{suffix}': float(v)
        for suffix, v in zip(_STAT_NAMES, evaluator.stats[:6])
    }
    return stats, log.getvalue()


def _prepare(coco_gt, predictions, seqs, cat_ids, need_times):
    coco, gt_seqs = load_stream_gt(coco_gt)
    if not isinstance(predictions, Mapping):
        raise TypeError('streaming eval: predictions must be a dict '
                        '{sid or sequence name: dict}, but got '
                        f'{type(predictions).__name__}')
    cat_ids = np.asarray(
        _default_cat_ids(coco) if cat_ids is None else list(cat_ids),
        dtype=np.int64)
    known = set(_default_cat_ids(coco))
    bad = [c for c in cat_ids.tolist() if c not in known]
    if bad:
        raise ValueError(f'streaming eval: cat_ids {bad} are not category '
                         f'ids of the ground truth ({sorted(known)})')
    preds = {}
    for key, pred in predictions.items():
        sid = _resolve_seq(key, gt_seqs)
        if sid in preds:
            raise ValueError(f'streaming eval: sequence {key!r} (sid {sid}) '
                             'is given twice (by index and by name)')
        preds[sid] = _check_seq_predictions(pred, gt_seqs[sid], sid,
                                            len(cat_ids), need_times)
    if seqs is None:
        eval_sids = sorted(gt_seqs)
    else:
        eval_sids = sorted({_resolve_seq(s, gt_seqs) for s in seqs})
        extra = sorted(set(preds) - set(eval_sids))
        if extra:
            raise ValueError(
                f'streaming eval: predictions are given for sequences '
                f'{[gt_seqs[s]["name"] for s in extra]} outside `seqs`')
    absent = [gt_seqs[s]['name'] for s in eval_sids if s not in preds]
    if absent:
        raise ValueError(
            f'streaming eval: no predictions for sequences {absent[:10]} '
            f'({len(absent)} of {len(eval_sids)}); pass `seqs` to evaluate '
            'only some sequences (an empty dict of lists is a sequence with '
            'no outputs)')
    return coco, gt_seqs, preds, eval_sids, cat_ids


def streaming_coco_eval(coco_gt,
                        predictions: Mapping[Union[int, str], Mapping],
                        fps: Union[float, Fraction] = 30.0,
                        *,
                        seqs: Optional[Sequence[Union[int, str]]] = None,
                        cat_ids: Optional[Sequence[int]] = None,
                        return_log: bool = False) -> Dict[str, float]:
    """Streaming AP of per-sequence timestamped outputs.

    Every ground-truth frame of the evaluated sequences is paired with the
    latest output finished at or before ``fid / fps`` (exact comparison, no
    tolerance: :func:`pair_stream_predictions`), receives that output's
    detections under its own ``image_id``, and pycocotools scores all
    frames (those without an output have no detections: their objects are
    misses).

    Args:
        coco_gt (COCO | str): Ground truth (Argoverse-HD format).
        predictions (Mapping): ``{sid or sequence name: dict}``, see the
            module docstring; ``finish_times`` is required.
        fps (float | Fraction): Frame rate of the ground truth. Defaults
            to 30.
        seqs (Sequence[int | str], optional): Sequences to evaluate; None
            means all sequences of the ground truth, each of which must then
            have predictions.
        cat_ids (Sequence[int], optional): Category id of each label; None
            uses the ground truth's sorted category ids.
        return_log (bool): Add the pycocotools summary text under ``'log'``.

    Returns:
        dict: ``sAP``, ``sAP50``, ``sAP75``, ``sAP_s``, ``sAP_m``,
        ``sAP_l`` (fractions in [0, 1]; -1 where pycocotools has no ground
        truth, e.g. no small objects), and the pairing statistics
        ``num_frames`` (evaluated GT frames), ``num_missed`` (frames before
        any output), ``num_in_time`` (frames paired with the output computed
        from that very frame) and ``mean_frame_lag`` (mean ``fid - input
        fid`` over paired frames; sap-toolkit's ``mismatch`` / frames).

    Raises:
        ValueError: Predictions for an unknown sequence or image id, missing
            sequences, decreasing finish times, an output finishing before
            its input frame arrived, malformed boxes or labels (all name the
            sequence and output).

    Examples:
        >>> streaming_coco_eval('val.json', {0: dict(
        ...     fids=[0, 2], finish_times=[0.05, 0.1],
        ...     bboxes=[b0, b2], scores=[s0, s2], labels=[l0, l2])})
        {'sAP': 0.31, 'sAP50': 0.52, ..., 'num_missed': 2, ...}
    """
    if isinstance(fps, bool) or not isinstance(fps, Real) or \
            not np.isfinite(float(fps)) or fps <= 0:
        raise ValueError(f'streaming_coco_eval: fps must be > 0, got {fps}')
    fps_q = exact_time(fps)
    coco, gt_seqs, preds, eval_sids, cat_ids = _prepare(
        coco_gt, predictions, seqs, cat_ids, need_times=True)
    parts, frame_ids = [], []
    num_frames = num_missed = num_in_time = 0
    lag_sum = 0
    for sid in eval_sids:
        seq = gt_seqs[sid]
        frame_ids.append(seq['img_ids'])
        num_frames += len(seq['fids'])
        pred = preds.get(sid)
        if pred is None or len(pred['fids']) == 0:
            num_missed += len(seq['fids'])
            continue
        _check_causal(pred, seq, sid, fps_q)
        # exact frame times fid / fps (sap-toolkit: t = ii / fps)
        take = pair_stream_predictions(
            [fid / fps_q for fid in seq['fids'].tolist()],
            pred['finish_times'])
        paired = take >= 0
        num_missed += int((~paired).sum())
        input_fids = pred['fids'][take[paired]]
        num_in_time += int((input_fids == seq['fids'][paired]).sum())
        lag_sum += int((seq['fids'][paired] - input_fids).sum())
        parts.append(_to_numpy_results(seq['img_ids'], pred, take, cat_ids))
    results = np.concatenate(parts) if parts else np.zeros((0, 7))
    img_ids = np.concatenate(frame_ids) if frame_ids else np.zeros(0, int)
    stats, log = _coco_ap(coco, results, img_ids.tolist(), 'sAP')
    num_paired = num_frames - num_missed
    stats.update(
        num_frames=num_frames,
        num_missed=num_missed,
        num_in_time=num_in_time,
        mean_frame_lag=lag_sum / num_paired if num_paired else float('nan'))
    if return_log:
        stats['log'] = log
    return stats


def offline_coco_eval(coco_gt,
                      predictions: Mapping[Union[int, str], Mapping],
                      *,
                      seqs: Optional[Sequence[Union[int, str]]] = None,
                      cat_ids: Optional[Sequence[int]] = None,
                      eval_frames: str = 'predicted',
                      return_log: bool = False) -> Dict[str, float]:
    """Plain (offline) COCO AP of the same predictions, latency ignored.

    Each output is scored on its own input frame (the ``img_ids``/``fids``
    of the predictions; ``finish_times`` is not needed).

    Args:
        coco_gt (COCO | str): Ground truth (Argoverse-HD format).
        predictions (Mapping): As :func:`streaming_coco_eval`.
        seqs (Sequence[int | str], optional): As
            :func:`streaming_coco_eval`.
        cat_ids (Sequence[int], optional): As :func:`streaming_coco_eval`.
        eval_frames (str): ``'predicted'`` scores only the frames that have
            an output (the accuracy of the detector itself when a
            simulation dropped frames); ``'all'`` scores every frame of the
            evaluated sequences (unprocessed frames count as misses).
            Defaults to ``'predicted'``.
        return_log (bool): Add the pycocotools summary under ``'log'``.

    Returns:
        dict: ``AP``, ``AP50``, ``AP75``, ``AP_s``, ``AP_m``, ``AP_l`` and
        ``num_frames`` (frames scored).

    Raises:
        ValueError: As :func:`streaming_coco_eval`, and two outputs for the
            same input frame (named).
    """
    if eval_frames not in ('predicted', 'all'):
        raise ValueError('offline_coco_eval: eval_frames must be '
                         f"'predicted' or 'all', but got {eval_frames!r}")
    coco, gt_seqs, preds, eval_sids, cat_ids = _prepare(
        coco_gt, predictions, seqs, cat_ids, need_times=False)
    parts, frame_ids = [], []
    for sid in eval_sids:
        seq = gt_seqs[sid]
        pred = preds[sid]
        uniq, counts = np.unique(pred['fids'], return_counts=True)
        if (counts > 1).any():
            fid = int(uniq[counts > 1][0])
            raise ValueError(
                f'offline_coco_eval: sequence {seq["name"]} (sid {sid}) has '
                f'{int(counts[counts > 1][0])} outputs for input fid {fid}; '
                'offline AP needs at most one output per frame')
        take = np.arange(len(pred['fids']), dtype=np.int64)
        parts.append(_to_numpy_results(pred['img_ids'], pred, take, cat_ids))
        frame_ids.append(pred['img_ids'] if eval_frames == 'predicted' else
                         seq['img_ids'])
    results = np.concatenate(parts) if parts else np.zeros((0, 7))
    img_ids = np.concatenate(frame_ids) if frame_ids else np.zeros(0, int)
    stats, log = _coco_ap(coco, results, img_ids.tolist(), 'AP')
    stats['num_frames'] = int(len(img_ids))
    if return_log:
        stats['log'] = log
    return stats
