"""Streaming AP (sAP) of a detector evaluated frame by frame by a Runner."""
import logging
import math
from collections import defaultdict
from numbers import Real
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from densekit.evaluation.functional.stream_simulation import simulate_stream
from densekit.evaluation.functional.streaming_ap import (load_stream_gt,
                                                         offline_coco_eval,
                                                         streaming_coco_eval)
from densekit.registry import METRICS

_META_HINT = ('the test dataset must be a streaming dataset (e.g. '
              'densekit.ArgoverseHDDataset) and the pipeline\'s '
              'PackStreamInputs/PackDetInputs must keep "sid" and "fid" (and '
              '"cur_img_id") in meta_keys')


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@METRICS.register_module()
class StreamingAPMetric(BaseMetric):
    """Streaming AP (Li et al., ECCV 2020) from a Runner's per-frame
    predictions and a latency model.

    A Runner test loop runs the detector on *every* frame of a streaming
    dataset; this metric then replays each sequence in simulated real time
    (:func:`~densekit.evaluation.functional.simulate_stream`, sap-toolkit's
    ``srt_det.py``): a single detector process whose runtime per frame is
    the latency model, which always takes the latest arrived frame and drops
    the frames it cannot keep up with. The outputs it would have produced,
    stamped with their finish times, are scored by
    :func:`~densekit.evaluation.functional.streaming_coco_eval` against every
    ground-truth frame (latest output finished by ``fid / fps``).

    ::

        process(): keep sid, fid, cur_img_id, img_id, boxes (+ runtime)
        compute_metrics(): per sequence: simulate_stream()
                           -> outputs of the picked frames + finish times
                           -> streaming_coco_eval() (sAP)
                           -> offline_coco_eval() (AP, every frame)

    Each element of ``data_samples`` (a ``DetDataSample.to_dict()``) needs
    ``pred_instances`` (``bboxes`` (N, 4) x1y1x2y2 in original-image
    pixels, ``scores`` (N, ), ``labels`` (N, )) and the metainfo ``sid``
    (sequence index of the annotation file), ``fid`` (index of the input
    frame) and ``cur_img_id`` (image id of the input frame; ``img_id`` is
    used when absent), plus ``runtime_key`` when that latency model is used.

    Timing uses the *input* frame (``fid``/``cur_img_id``): an output
    computed from frame t is stamped ``start + runtime``, whatever frame it
    describes. Offline AP scores each output on ``img_id``, the frame it is
    meant for (the input frame for a plain detector, frame t+k for a
    forecaster of ``forecast_offset=k``), as mmdet's ``CocoMetric`` does.

    Frames without a sample at the end of a sequence (a forecaster has none
    for its last k frames) end the detector's input stream, but the stream
    still lasts until the last ground-truth frame (its outputs may finish
    until then and the last frames are scored). A frame inside the input
    stream that the simulation picks but that has no prediction raises
    ``ValueError`` naming the sequence and frame.

    Returned keys (prefixed ``stream/`` by default): ``sAP``, ``sAP50``,
    ``sAP75``, ``sAP_s``, ``sAP_m``, ``sAP_l``, ``AP``, ``AP50``, ``AP75``
    (offline), ``dropped_frames`` (frames the simulated detector skipped,
    all sequences), ``missed_frames`` (GT frames before any output),
    ``latency_ms_median`` (median input-frame-arrival to output).

    Args:
        ann_file (str): Argoverse-HD-format annotation JSON (the test
            dataset's): ``images`` with ``sid``/``fid``, ``sequences``.
        runtime (float, optional): Latency model: seconds per frame.
        runtime_key (str, optional): Latency model: a metainfo key holding
            each frame's measured runtime in seconds (set by the model).
            Exactly one of ``runtime`` and ``runtime_key`` is given.
        perf_factor (float): Speed factor, runtimes are divided by it
            (sap-toolkit's ``--perf-factor``). Defaults to 1.
        fps (float): Frame rate of the stream. Defaults to 30.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Key prefix; None uses ``'stream'``.

    Examples:
        >>> test_evaluator = dict(
        ...     type='densekit.StreamingAPMetric',
        ...     ann_file='data/argoverse_hd/annotations/val.json',
        ...     runtime=0.045)  # 45 ms per frame, 1.35 frame intervals
    """
    default_prefix: Optional[str] = 'stream'

    def __init__(self,
                 ann_file: str,
                 *,
                 runtime: Optional[float] = None,
                 runtime_key: Optional[str] = None,
                 perf_factor: float = 1.0,
                 fps: float = 30.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(ann_file, str) or not ann_file:
            raise TypeError('StreamingAPMetric: ann_file must be the path of '
                            f'an Argoverse-HD-format JSON, got {ann_file!r}')
        if (runtime is None) == (runtime_key is None):
            raise ValueError(
                'StreamingAPMetric: give exactly one latency model, '
                '`runtime` (seconds per frame) or `runtime_key` (metainfo '
                f'key of measured runtimes), but got runtime={runtime!r}, '
                f'runtime_key={runtime_key!r}')
        if runtime is not None and (isinstance(runtime, bool)
                                    or not isinstance(runtime, Real)
                                    or not math.isfinite(runtime)
                                    or runtime < 0):
            raise ValueError('StreamingAPMetric: runtime must be a number of '
                             f'seconds >= 0, but got {runtime!r}')
        if runtime_key is not None and not isinstance(runtime_key, str):
            raise TypeError('StreamingAPMetric: runtime_key must be a str, '
                            f'but got {type(runtime_key).__name__}')
        for name, value in (('perf_factor', perf_factor), ('fps', fps)):
            if isinstance(value, bool) or not isinstance(value, Real) or \
                    not math.isfinite(value) or value <= 0:
                raise ValueError(f'StreamingAPMetric: {name} must be a '
                                 f'number > 0, but got {value!r}')
        self.ann_file = ann_file
        self.runtime = None if runtime is None else float(runtime)
        self.runtime_key = runtime_key
        self.perf_factor = float(perf_factor)
        self.fps = float(fps)

    # ---------------------------------------------------------- process
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each frame's predictions and stream position.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): ``DetDataSample.to_dict()`` of
                each frame, see the class docstring.
        """
        for sample in data_samples:
            missing = [k for k in ('sid', 'fid') if k not in sample]
            if self.runtime_key is not None and \
                    self.runtime_key not in sample:
                missing.append(self.runtime_key)
            if missing or 'pred_instances' not in sample:
                raise ValueError(
                    f'StreamingAPMetric: a data sample (img_id '
                    f'{sample.get("img_id")}, img_path '
                    f'{sample.get("img_path")}) lacks '
                    f'{missing or ["pred_instances"]}; {_META_HINT}'
                    + (f', and the model must set "{self.runtime_key}"'
                       if self.runtime_key in missing else ''))
            pred = sample['pred_instances']
            cur_id = sample.get('cur_img_id', sample.get('img_id'))
            if cur_id is None:
                raise ValueError(
                    'StreamingAPMetric: a data sample has neither '
                    f'"cur_img_id" nor "img_id"; {_META_HINT}')
            entry = dict(
                sid=int(sample['sid']),
                fid=int(sample['fid']),
                cur_img_id=int(cur_id),
                img_id=int(sample.get('img_id', cur_id)),
                bboxes=_to_numpy(pred['bboxes']).astype(
                    np.float32).reshape(-1, 4),
                scores=_to_numpy(pred['scores']).astype(
                    np.float32).reshape(-1),
                labels=_to_numpy(pred['labels']).astype(
                    np.int64).reshape(-1))
            if self.runtime_key is not None:
                entry['runtime'] = float(_to_numpy(
                    sample[self.runtime_key]).reshape(-1)[0])
            self.results.append(entry)

    # ---------------------------------------------------------- compute
    def _cat_ids(self, coco) -> Optional[List[int]]:
        """Category id of each label, from ``dataset_meta['classes']``."""
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            return None
        by_name = {c['name']: int(c['id'])
                   for c in coco.dataset.get('categories', [])}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(
                f'StreamingAPMetric: dataset classes {missing} are not '
                f'categories of {self.ann_file} ({sorted(by_name)})')
        return [by_name[c] for c in classes]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Simulate every sequence and score it.

        Args:
            results (list[dict]): The entries kept by :meth:`process`, from
                all ranks.

        Returns:
            dict[str, float]: See the class docstring.
        """
        coco, gt_seqs = load_stream_gt(self.ann_file)
        cat_ids = self._cat_ids(coco)
        by_seq: Dict[int, Dict[int, dict]] = defaultdict(dict)
        for entry in results:
            sid, fid = entry['sid'], entry['fid']
            if sid not in gt_seqs:
                raise ValueError(
                    f'StreamingAPMetric: a prediction has sid {sid}, which '
                    f'is not a sequence of {self.ann_file}')
            if fid in by_seq[sid]:
                raise ValueError(
                    f'StreamingAPMetric: sequence {gt_seqs[sid]["name"]} '
                    f'(sid {sid}) has two predictions for fid {fid}')
            by_seq[sid][fid] = entry
        unseen = [s['name'] for sid, s in gt_seqs.items() if sid not in by_seq]
        if unseen:
            print_log(
                f'StreamingAPMetric: {len(unseen)} sequences of '
                f'{self.ann_file} have no predictions and are not scored: '
                f'{unseen[:5]}', logger='current', level=logging.WARNING)

        stream_preds, offline_preds = {}, {}
        dropped, latencies = 0, []
        for sid in sorted(by_seq):
            frames, seq = by_seq[sid], gt_seqs[sid]
            num_inputs = max(frames) + 1
            # the stream lasts until the last GT frame has been shown
            end_time = (int(seq['fids'].max()) + 1) / self.fps
            if self.runtime is not None:
                runtime = self.runtime
            else:
                runtime = np.full(num_inputs, np.nan)
                for fid, entry in frames.items():
                    runtime[fid] = entry['runtime']
            try:
                schedule = simulate_stream(
                    num_inputs, self.fps, runtime,
                    perf_factor=self.perf_factor, end_time=end_time)
            except ValueError as e:
                raise ValueError(
                    f'StreamingAPMetric: sequence {seq["name"]} (sid {sid}): '
                    f'{e} (no prediction, or no "{self.runtime_key}", for '
                    'a frame the simulated detector picks)') from e
            picked = schedule.input_fids.tolist()
            lacking = [f for f in picked if f not in frames]
            if lacking:
                raise ValueError(
                    f'StreamingAPMetric: sequence {seq["name"]} (sid {sid}): '
                    f'the simulated detector picks frames {lacking[:10]} but '
                    'the test set has no prediction for them (frames '
                    'skipped by the dataset, e.g. around a gap); every '
                    'frame of a sequence up to its last sample needs one')
            dropped += schedule.num_dropped
            latencies.append(schedule.latencies)
            chosen = [frames[f] for f in picked]
            stream_preds[sid] = dict(
                img_ids=[e['cur_img_id'] for e in chosen],
                finish_times=schedule.exact_finish_times,  # exact pairing
                bboxes=[e['bboxes'] for e in chosen],
                scores=[e['scores'] for e in chosen],
                labels=[e['labels'] for e in chosen])
            everything = [frames[f] for f in sorted(frames)]
            offline_preds[sid] = dict(
                img_ids=[e['img_id'] for e in everything],
                bboxes=[e['bboxes'] for e in everything],
                scores=[e['scores'] for e in everything],
                labels=[e['labels'] for e in everything])

        seqs = sorted(by_seq)
        stream = streaming_coco_eval(
            coco, stream_preds, self.fps, seqs=seqs, cat_ids=cat_ids,
            return_log=True)
        offline = offline_coco_eval(
            coco, offline_preds, seqs=seqs, cat_ids=cat_ids,
            eval_frames='predicted')
        print_log('StreamingAPMetric (streaming, pycocotools):\n' +
                  stream.pop('log'), logger='current')
        lat = np.concatenate(latencies) if latencies else np.zeros(0)
        out = {k: stream[k] for k in ('sAP', 'sAP50', 'sAP75', 'sAP_s',
                                      'sAP_m', 'sAP_l')}
        out.update({k: offline[k] for k in ('AP', 'AP50', 'AP75')})
        out.update(
            dropped_frames=int(dropped),
            missed_frames=int(stream['num_missed']),
            latency_ms_median=float(np.median(lat) * 1e3)
            if len(lat) else float('nan'))
        return out
