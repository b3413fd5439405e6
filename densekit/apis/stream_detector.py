"""Streaming (real-time) replay of a detector over Argoverse-HD sequences.

:class:`FrameDetector` is the small protocol the replay drives;
:class:`MMDetFrameDetector` adapts any mmdet/densekit detection config to it;
:func:`run_stream_replay` replays every sequence in simulated real time
(:func:`~densekit.evaluation.functional.simulate_stream`, sap-toolkit's
``srt_det.py`` with the detector actually run on the picked frames) and
scores the timestamped outputs with streaming AP and offline AP
(:func:`~densekit.evaluation.functional.streaming_coco_eval`).

::

    run_stream_replay():
        per sequence: detector.reset()
                      simulate_stream(detector on the picked frames,
                                      clock = fixed runtime or measured)
        streaming_coco_eval() + offline_coco_eval() over all sequences

Examples:
    >>> from densekit.apis import MMDetFrameDetector, run_stream_replay
    >>> det = MMDetFrameDetector('configs/det/yolov8_n_shapes.py',
    ...                          'epoch_7.pth', device='cpu')
    >>> report = run_stream_replay(det, 'annotations/val.json', 'data/',
    ...                            fixed_runtime=0.05)
    >>> report['sAP'], report['AP'], report['dropped_frames']
"""
import copy
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from densekit.evaluation.functional.stream_simulation import simulate_stream
from densekit.evaluation.functional.streaming_ap import (load_stream_gt,
                                                         offline_coco_eval,
                                                         streaming_coco_eval)
from .image_io import transform_name

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]

# transforms that read the frame(s), replaced by mmdet.LoadImageFromNDArray
_LOADERS = ('LoadImageFromFile', 'LoadImageFromFileSafe',
            'LoadImageFromNDArray', 'LoadStreamFrames')
# transforms that need ground truth, dropped
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadStreamAnnotations')

__all__ = [
    'FrameDetector', 'MMDetFrameDetector', 'build_stream_inference_pipeline',
    'run_stream_replay'
]


class FrameDetector:
    """Protocol of a detector fed one frame at a time, in stream order.

    Subclasses implement :meth:`__call__`; :meth:`reset` is called before
    each sequence (clear feature buffers, trackers, ...).
    """

    def reset(self) -> None:
        """Start a new sequence. The default does nothing."""

    def __call__(self, frame_bgr: np.ndarray, frame_info: dict) -> Detections:
        """Detect objects in one frame.

        Args:
            frame_bgr (np.ndarray): uint8 BGR frame of shape (H, W, 3).
            frame_info (dict): ``img_id``, ``sid``, ``fid``, ``seq_name``,
                ``img_path``, ``width``, ``height`` of the frame.

        Returns:
            tuple: ``bboxes`` float (N, 4) x1y1x2y2 in frame pixels,
            ``scores`` float (N, ), ``labels`` int (N, ) class indices.
        """
        raise NotImplementedError


def build_stream_inference_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline for frames given as arrays.

    The frame loader (``LoadImageFromFile[Safe]`` or
    ``densekit.LoadStreamFrames``) becomes ``mmdet.LoadImageFromNDArray``
    and annotation loaders are dropped; resize, pad and pack are kept.

    Raises:
        ValueError: The config has no test pipeline or no frame loader.
    """
    from mmdet.utils import get_test_pipeline_cfg
    if 'test_dataloader' not in cfg:
        raise ValueError(f'MMDetFrameDetector: config {cfg.filename} has no '
                         '`test_dataloader` (its pipeline is used)')
    out, found = [], False
    for transform in copy.deepcopy(get_test_pipeline_cfg(cfg)):
        name = transform_name(transform.get('type'))
        if name in _ANNOTATION_LOADERS:
            continue
        if name in _LOADERS:
            transform, found = dict(type='mmdet.LoadImageFromNDArray'), True
        out.append(transform)
    if not found:
        raise ValueError(
            f'MMDetFrameDetector: the test pipeline of {cfg.filename} has no '
            f'frame loader (one of {_LOADERS})')
    return out


class MMDetFrameDetector(FrameDetector):
    """:class:`FrameDetector` for any mmdet/densekit detection config.

    Each frame goes through the config's test pipeline (see
    :func:`build_stream_inference_pipeline`) and the model:

    * a plain detector: ``model.test_step`` (data preprocessor +
      ``predict``, boxes rescaled to the frame);
    * a model with ``predict_stream`` (e.g. a streaming detector keeping a
      buffer of past features, as StreamYOLO's ``on_pipe`` mode): the data
      preprocessor, then ``model.predict_stream(batch_inputs,
      batch_data_samples)``, which must return a list of ``DetDataSample``
      with ``pred_instances`` in frame pixels, like ``predict``; only the
      *current* frame is given (a (1, 3, H, W) batch, or (1, 1, 3, H, W)
      after ``densekit.StreamDataPreprocessor``), the model remembers the
      past. :meth:`reset` calls ``model.reset_stream()`` when it exists.

    A config whose test pipeline stacks past frames
    (``densekit.LoadStreamFrames``) for a model without ``predict_stream``
    is refused: the replay feeds single frames.

    Args:
        config (str | Config): Detection config (an object is copied).
        checkpoint (str, optional): Checkpoint; None keeps random weights.
        device (str, optional): Torch device; None picks CUDA when
            available.
        score_thr (float): Detections below it are dropped (after the
            model's ``test_cfg``). Defaults to 0 (keep all, best for AP).

    Attributes:
        classes (tuple[str]): Class name of each label.
        forecast_frames (int): k when the model forecasts frame t+k from
            frame t (a temporal model, its training ``forecast_offset``),
            0 for a per-frame detector.
    """

    def __init__(self,
                 config: Union[str, os.PathLike, Config],
                 checkpoint: Optional[str] = None,
                 *,
                 device: Optional[str] = None,
                 score_thr: float = 0.0) -> None:
        from mmcv.transforms import Compose
        from mmdet.apis import init_detector
        if isinstance(config, (str, os.PathLike)):
            if not osp.isfile(config):
                raise FileNotFoundError(
                    f'MMDetFrameDetector: config file {config} does not '
                    'exist')
            cfg = Config.fromfile(os.fspath(config))
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError('MMDetFrameDetector: config must be a path or a '
                            f'Config, but got {type(config).__name__}')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'MMDetFrameDetector: checkpoint {checkpoint} does not exist')
        if isinstance(score_thr, bool) or not isinstance(
                score_thr, (int, float)) or not 0.0 <= score_thr <= 1.0:
            raise ValueError('MMDetFrameDetector: score_thr must be in '
                             f'[0, 1], but got {score_thr!r}')
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        pipeline = build_stream_inference_pipeline(cfg)
        from densekit.utils.checkpoint_check import (check_weights_fit,
                                                     read_checkpoint)
        ckpt = None if checkpoint is None else read_checkpoint(checkpoint)
        self.model = init_detector(cfg, checkpoint, device=device)
        if ckpt is not None:  # init_detector loads non-strictly
            check_weights_fit(self.model, ckpt, path=checkpoint,
                              config=cfg.filename or 'the config',
                              owner='MMDetFrameDetector')
        self.device = torch.device(device)
        self.score_thr = float(score_thr)
        self.streaming = callable(getattr(self.model, 'predict_stream', None))
        stacks = any(
            transform_name(t.get('type')) == 'LoadStreamFrames'
            for t in cfg.test_dataloader.dataset.get('pipeline', []))
        if stacks and not self.streaming:
            raise ValueError(
                f'MMDetFrameDetector: the test pipeline of {cfg.filename} '
                'stacks past frames (LoadStreamFrames) but '
                f'{type(self.model).__name__} has no `predict_stream`; the '
                'streaming replay feeds one frame at a time, so the model '
                'must buffer the past itself')
        self.pipeline = Compose(pipeline)  # after init_detector's scope
        self.classes = self._classes(cfg)
        self.forecast_frames = self._forecast_frames(cfg)
        print_log(
            f'MMDetFrameDetector: {type(self.model).__name__} via '
            + ('predict_stream (stateful)' if self.streaming else
               'test_step (per frame)'), logger='current')

    def _classes(self, cfg: Config) -> Tuple[str, ...]:
        """Class names: the checkpoint's, else the config's test set's."""
        meta = getattr(self.model, 'dataset_meta', None) or {}
        classes = tuple(meta.get('classes', ()))
        num = getattr(getattr(self.model, 'bbox_head', None), 'num_classes',
                      None)
        if classes and (num is None or len(classes) == num):
            return classes
        cfg_classes = (cfg.test_dataloader.dataset.get('metainfo')
                       or {}).get('classes')
        return tuple(cfg_classes) if cfg_classes else classes

    def _forecast_frames(self, cfg: Config) -> int:
        """k of a model trained to forecast frame t+k (the training set's
        ``forecast_offset``, when the model fuses past frames), else 0."""
        if getattr(self.model, 'temporal_fusion', None) is None:
            return 0
        dataset = cfg.get('train_dataloader', {}).get('dataset', {})
        return int(dataset.get('forecast_offset', 0))

    def reset(self) -> None:
        """New sequence: ``model.reset_stream()`` when the model has it."""
        reset = getattr(self.model, 'reset_stream', None)
        if callable(reset):
            reset()

    @torch.no_grad()
    def __call__(self, frame_bgr: np.ndarray, frame_info: dict) -> Detections:
        """Run the model on one frame, see :meth:`FrameDetector.__call__`."""
        img_id = frame_info.get('img_id', 0)
        packed = self.pipeline(
            dict(img=frame_bgr, img_id=img_id, cur_img_id=img_id,
                 sid=frame_info.get('sid', 0), fid=frame_info.get('fid', 0),
                 num_past_frames=0, has_future_frame=False))
        data = dict(inputs=[packed['inputs']],
                    data_samples=[packed['data_samples']])
        if self.streaming:
            data = self.model.data_preprocessor(data, False)
            samples = self.model.predict_stream(data['inputs'],
                                                data['data_samples'])
        else:
            samples = self.model.test_step(data)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        inst = samples[0].pred_instances
        bboxes = inst.bboxes
        bboxes = getattr(bboxes, 'tensor', bboxes)  # mmdet BaseBoxes
        keep = inst.scores >= self.score_thr
        return (bboxes[keep].float().cpu().numpy().reshape(-1, 4),
                inst.scores[keep].float().cpu().numpy(),
                inst.labels[keep].long().cpu().numpy())


def _cat_ids_for(detector, coco) -> Optional[List[int]]:
    """Category id per label from the detector's class names, if it has
    them and they are categories of the ground truth."""
    classes = getattr(detector, 'classes', None)
    if not classes:
        return None
    by_name = {c['name']: int(c['id']) for c in coco.dataset['categories']}
    if all(c in by_name for c in classes):
        return [by_name[c] for c in classes]
    print_log(
        f'run_stream_replay: detector classes {list(classes)[:8]} are not '
        f'all categories of the ground truth ({sorted(by_name)}); label k '
        'is scored as the k-th category id in sorted order',
        logger='current', level=logging.WARNING)
    return None


def run_stream_replay(detector: FrameDetector,
                      ann_file,
                      data_root: str,
                      *,
                      fps: float = 30.0,
                      fixed_runtime: Optional[float] = None,
                      perf_factor: float = 1.0,
                      max_seqs: Optional[int] = None,
                      warmup: int = 1,
                      cat_ids: Optional[Sequence[int]] = None) -> Dict:
    """Replay every sequence in simulated real time and score it.

    Frames are read from ``data_root / seq_dirs[sid] / file_name`` (``name``
    when there is no ``file_name``), outside the timed region (the camera
    delivers them). The detector runs on the frames the simulation picks;
    the clock advances by its measured runtime (``time.perf_counter``
    around the call, after a CUDA sync), or by ``fixed_runtime`` seconds
    for a reproducible replay. ``warmup`` calls on the first frame precede
    the replay (then :meth:`FrameDetector.reset`), as sap-toolkit warms the
    GPU before timing.

    Args:
        detector (FrameDetector): The detector.
        ann_file (str | COCO): Argoverse-HD-format annotations.
        data_root (str): Folder that ``seq_dirs`` are relative to.
        fps (float): Frame rate. Defaults to 30.
        fixed_runtime (float, optional): Seconds per frame instead of the
            measured runtime.
        perf_factor (float): Speed factor (runtimes are divided by it).
        max_seqs (int, optional): Replay only the first K sequences (by
            sid); only they are scored.
        warmup (int): Untimed calls before the replay. Defaults to 1.
        cat_ids (Sequence[int], optional): Category id of each label; None
            maps the detector's ``classes`` by name, else sorted ids.

    Returns:
        dict: ``sAP``, ``sAP50``, ``sAP75``, ``sAP_s``, ``sAP_m``,
        ``sAP_l``, ``AP``, ``AP50``, ``AP75``, ``AP_s``, ``AP_m``, ``AP_l``
        (offline, on the processed frames), ``num_frames``,
        ``processed_frames``, ``dropped_frames``, ``missed_frames``,
        ``latency_ms_median`` (frame arrival -> output),
        ``runtime_ms_median`` (measured detector runtime) and ``sequences``
        (per sequence: ``name``, ``input_fids``, ``finish_times``,
        ``dropped``).

    Raises:
        ValueError: A sequence has missing frames (fids named), or bad
            arguments.
        FileNotFoundError: A frame file does not exist (named).
    """
    from densekit.apis.image_io import read_image
    if max_seqs is not None and (isinstance(max_seqs, bool) or
                                 not isinstance(max_seqs, int) or
                                 max_seqs < 1):
        raise ValueError('run_stream_replay: max_seqs must be an int >= 1, '
                         f'but got {max_seqs!r}')
    coco, seqs = load_stream_gt(ann_file)
    seq_dirs = coco.dataset.get('seq_dirs')
    if seq_dirs is None:
        raise ValueError('run_stream_replay: the annotation file has no '
                         '"seq_dirs" (frame folder of each sequence)')
    sids = sorted(seqs)[:max_seqs]
    if not sids:
        raise ValueError('run_stream_replay: the annotation file has no '
                         'images')
    if cat_ids is None:
        cat_ids = _cat_ids_for(detector, coco)

    def frame_of(sid: int, fid: int) -> Tuple[np.ndarray, dict]:
        seq = seqs[sid]
        img = coco.imgs[seq['fid_to_img'][fid]]
        path = osp.join(data_root, seq_dirs[sid],
                        img.get('file_name', img.get('name', '')))
        info = dict(img_id=int(img['id']), sid=sid, fid=fid,
                    seq_name=seq['name'], img_path=path,
                    width=img.get('width'), height=img.get('height'))
        return read_image(path), info

    for sid in sids:
        fids = seqs[sid]['fids']
        gaps = np.setdiff1d(np.arange(fids.max() + 1), fids)
        if len(gaps):
            raise ValueError(
                f'run_stream_replay: sequence {seqs[sid]["name"]} (sid '
                f'{sid}) lacks frames fid {gaps[:10].tolist()}; a real-time '
                'replay needs every frame')
    if warmup > 0:
        first = frame_of(sids[0], int(seqs[sids[0]]['fids'][0]))
        detector.reset()
        for _ in range(int(warmup)):
            detector(*first)

    preds, report_seqs = {}, []
    dropped = processed = total = 0
    latencies, measured = [], []
    for sid in sids:
        seq = seqs[sid]
        detector.reset()
        schedule = simulate_stream(
            int(seq['fids'].max()) + 1, fps, fixed_runtime,
            detector=lambda x: detector(*x),
            frame_loader=lambda fid, sid=sid: frame_of(sid, fid),
            perf_factor=perf_factor)
        outs = schedule.outputs
        preds[sid] = dict(
            fids=schedule.input_fids,
            finish_times=schedule.exact_finish_times,  # exact pairing
            bboxes=[o[0] for o in outs],
            scores=[o[1] for o in outs],
            labels=[o[2] for o in outs])
        dropped += schedule.num_dropped
        processed += schedule.num_processed
        total += schedule.num_frames
        latencies.append(schedule.latencies)
        measured.append(schedule.measured_runtimes)
        report_seqs.append(
            dict(name=seq['name'], sid=sid,
                 input_fids=schedule.input_fids.tolist(),
                 finish_times=schedule.finish_times.tolist(),
                 dropped=schedule.num_dropped))

    stream = streaming_coco_eval(coco, preds, fps, seqs=sids,
                                 cat_ids=cat_ids)
    offline = offline_coco_eval(coco, preds, seqs=sids, cat_ids=cat_ids,
                                eval_frames='predicted')
    lat = np.concatenate(latencies)
    run = np.concatenate(measured)
    report = {k: v for k, v in stream.items() if k.startswith('sAP')}
    report.update({k: v for k, v in offline.items() if k.startswith('AP')})
    report.update(
        num_frames=total,
        processed_frames=processed,
        dropped_frames=dropped,
        missed_frames=stream['num_missed'],
        latency_ms_median=float(np.median(lat) * 1e3) if len(lat) else
        float('nan'),
        runtime_ms_median=float(np.median(run) * 1e3) if len(run) else
        float('nan'),
        sequences=report_seqs)
    return report
