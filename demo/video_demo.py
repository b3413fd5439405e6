"""Detect objects in, segment or score a video; write an annotated copy.

Examples:
    python demo/video_demo.py clip.mp4 \
        --config configs/det/yolov8_n_shapes.py \
        --weights work_dirs/yolov8_n_shapes/epoch_12.pth --out outputs/clip.mp4

Frames are read with ``cv2.VideoCapture`` and written with
``cv2.VideoWriter`` (``mp4v`` codec, the input's frame rate). Each output
frame shows its model latency (preprocess + inference + postprocess); the
run ends with a summary of overall FPS (reading, model, drawing and writing)
and median model latency. A segmentation config (``default_scope='mmseg'``,
e.g. ``configs/seg/upernet_yolov8-n_shapes.py``) draws each frame's class
overlay with a legend instead of boxes. An anomaly-detection config
(``model.type='densekit.EfficientAD'``, e.g.
``configs/anomaly/efficientad_s_synthetic.py``) draws each frame's anomaly
heat map with its score and decision (bottom-left corner; ``--score-thr`` is
the image-score threshold, default the config's
``model.test_cfg.score_threshold``, else 0.3), writes one JSON line per
frame (``frame``, ``score``, ``is_anomalous``, ``threshold``) to
``<out without extension>.jsonl`` and ends with a count of anomalous frames.
A missing or unreadable video exits with status 1.

``--streaming`` replays the video as a real-time stream instead (streaming
perception, Li et al. ECCV 2020): frames arrive at the video's frame rate
(``--stream-fps`` to override), the detector always takes the latest
arrived frame and skips those it cannot keep up with, and every output frame
shows what a real-time system would show then: the latest finished output,
labelled with the frame it was computed from, the end-to-end latency
(arrival of that frame -> output) and, for a forecasting model such as
``configs/stream/streamyolo_yolov8-n_moving-shapes.py``, that its boxes are
the forecast of frame t+k. The clock is the measured runtime, or
``--fixed-runtime`` seconds per frame (reproducible); ``--perf-factor``
simulates faster (> 1) or slower hardware. Any detection config works
(a streaming model keeps its feature buffer across frames)::

    python demo/video_demo.py clip.mp4 --streaming \
        --config configs/stream/streamyolo_yolov8-n_moving-shapes.py \
        --weights work_dirs/streamyolo/epoch_6.pth --out outputs/stream.mp4
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time
from typing import Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2
import numpy as np
from mmengine.utils import ProgressBar

from densekit.apis import (AnomalyInferencer, SegResult, build_inferencer,
                           draw_anomaly, draw_detections, draw_segmentation)
from densekit.apis.cli import add_label_args, add_runtime_args
from densekit.apis.image_io import TIMING_STAGES

DEFAULT_FPS = 25.0  # when the container does not report a frame rate


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in, segment or score (anomaly detection) '
        'a video with a densekit model')
    parser.add_argument('video', help='input video file')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument(
        '--out',
        default=None,
        help='output video (.mp4); default outputs/demo/<video name>.mp4')
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=None,
        help='detection: box score threshold (default 0.3); anomaly '
        'detection: image-score threshold (default the config\'s '
        'model.test_cfg.score_threshold, else 0.3); unused for segmentation')
    parser.add_argument(
        '--max-frames',
        type=int,
        default=None,
        help='stop after N frames (default: the whole video)')
    add_runtime_args(parser)
    add_label_args(parser)
    streaming = parser.add_argument_group(
        'streaming', 'simulated real-time replay (detection configs)')
    streaming.add_argument(
        '--streaming', action='store_true',
        help='replay the video in simulated real time: show the latest '
        'finished output at every frame, with its latency (and forecast '
        'horizon)')
    streaming.add_argument(
        '--stream-fps', type=float, default=None,
        help='frame rate of the stream (default: the video\'s)')
    streaming.add_argument(
        '--fixed-runtime', type=float, default=None,
        help='seconds per processed frame for the clock instead of the '
        'measured runtime')
    streaming.add_argument(
        '--perf-factor', type=float, default=1.0,
        help='speed factor: runtimes are divided by it (default 1)')
    args = parser.parse_args(argv)
    if not args.streaming and (args.stream_fps is not None or
                               args.fixed_runtime is not None or
                               args.perf_factor != 1.0):
        parser.error('--stream-fps, --fixed-runtime and --perf-factor need '
                     '--streaming')
    if args.streaming and args.backend != 'pytorch':
        parser.error('--streaming runs PyTorch only (the exported StreamYOLO '
                     'step keeps its buffer as explicit state, but the '
                     'replay does not drive it yet); drop --backend')
    if args.stream_fps is not None and not args.stream_fps > 0:
        parser.error(f'--stream-fps must be > 0, got {args.stream_fps}')
    if args.fixed_runtime is not None and not args.fixed_runtime >= 0:
        parser.error(f'--fixed-runtime must be >= 0, got '
                     f'{args.fixed_runtime}')
    if not args.perf_factor > 0:
        parser.error(f'--perf-factor must be > 0, got {args.perf_factor}')
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f'--max-frames must be at least 1, got '
                     f'{args.max_frames}')
    if args.out is None:
        stem = osp.splitext(osp.basename(args.video))[0]
        args.out = osp.join('outputs', 'demo', f'{stem}.mp4')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.video):
        print(f'error: video file {args.video} does not exist',
              file=sys.stderr)
        return 1
    if osp.abspath(args.out) == osp.abspath(args.video):
        print(f'error: --out {args.out} would overwrite the input video',
              file=sys.stderr)
        return 1
    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        print(f'error: cannot read video {args.video}: OpenCV could not '
              'open it or decode its first frame (not a video, corrupt, or '
              'an unsupported codec)', file=sys.stderr)
        return 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not fps or math.isnan(fps) or fps <= 0:
        fps = DEFAULT_FPS
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total > 0 else args.max_frames

    if args.streaming:
        capture.release()
        return run_streaming(args, fps)
    try:
        inferencer = build_inferencer(
            args.config,
            args.weights,
            device=args.device,
            score_thr=args.score_thr,
            backend=args.backend,
            backend_model=args.backend_model,
            fuse_conv_bn=args.fuse_conv_bn,
            multi_label=args.multi_label)
    except (FileNotFoundError, ValueError, TypeError, ImportError) as e:
        capture.release()
        print(f'error: {e}', file=sys.stderr)
        return 1

    height, width = frame.shape[:2]
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width, height))
    if not writer.isOpened():
        capture.release()
        print(f'error: cannot open {args.out} for writing (mp4v codec)',
              file=sys.stderr)
        return 1
    is_anomaly = isinstance(inferencer, AnomalyInferencer)
    scores_file = osp.splitext(args.out)[0] + '.jsonl'
    scores = open(scores_file, 'w') if is_anomaly else None
    anomalous = 0

    latencies, stages = [], {k: [] for k in TIMING_STAGES}
    progress = ProgressBar(max(total, 0))
    start = time.perf_counter()
    try:
        while ok:
            result = inferencer(frame)
            latency = sum(result.timings_ms[k] for k in TIMING_STAGES)
            latencies.append(latency)
            for k in TIMING_STAGES:
                stages[k].append(result.timings_ms[k])
            if is_anomaly:
                # bottom-left: the frame latency goes top-left
                vis = draw_anomaly(frame, result.anomaly_map, result.score,
                                   result.threshold, corner='bottom-left')
                anomalous += result.is_anomalous
                scores.write(json.dumps(dict(
                    frame=len(latencies), score=round(result.score, 6),
                    is_anomalous=result.is_anomalous,
                    threshold=result.threshold)) + '\n')
            else:
                draw = (draw_segmentation if isinstance(result, SegResult)
                        else draw_detections)
                vis = draw(frame, result, inferencer.palette)
            cv2.putText(vis, f'frame {len(latencies)}: {latency:.1f} ms',
                        (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            writer.write(vis)
            progress.update()
            if args.max_frames is not None and \
                    len(latencies) >= args.max_frames:
                break
            ok, frame = capture.read()
            if ok and frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height))
    finally:
        capture.release()
        writer.release()
        if scores is not None:
            scores.close()
    elapsed = time.perf_counter() - start
    sys.stdout.write('\n')

    medians = {k: float(np.median(v)) for k, v in stages.items()}
    print(f'{args.video}: {len(latencies)} frames in {elapsed:.2f}s, '
          f'{len(latencies) / elapsed:.1f} FPS overall (read + model + draw '
          f'+ write), median latency {np.median(latencies):.1f}ms, p90 '
          f'{np.percentile(latencies, 90):.1f}ms (median '
          f'{medians["preprocess"]:.1f}ms preprocess, '
          f'{medians["inference"]:.1f}ms inference, '
          f'{medians["postprocess"]:.1f}ms postprocess; device '
          f'{inferencer.device.type}) -> {args.out}')
    if is_anomaly:
        print(f'{anomalous}/{len(latencies)} frame(s) anomalous (score >= '
              f'{inferencer.score_thr:g}); per-frame scores -> {scores_file}')
    return 0


def _caption(vis: np.ndarray, lines: Sequence[str]) -> None:
    """White text lines with a dark outline, top-left."""
    for row, text in enumerate(lines):
        org = (8, 20 + 18 * row)
        for color, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(vis, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        color, width, cv2.LINE_AA)


def run_streaming(args: argparse.Namespace, video_fps: float) -> int:
    """``--streaming``: replay in simulated real time, draw what is shown."""
    from densekit.apis import DetResult, MMDetFrameDetector
    from densekit.apis.stream_video import (count_video_frames,
                                            replay_video_stream)
    fps = args.stream_fps or video_fps
    score_thr = 0.3 if args.score_thr is None else args.score_thr
    try:
        detector = MMDetFrameDetector(args.config, args.weights,
                                      device=args.device,
                                      score_thr=score_thr)
    except (FileNotFoundError, ValueError, TypeError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    num_frames = count_video_frames(args.video, limit=args.max_frames)
    replay = replay_video_stream(
        detector, args.video, fps, num_frames=num_frames,
        fixed_runtime=args.fixed_runtime, perf_factor=args.perf_factor)
    schedule = replay.schedule
    horizon = detector.forecast_frames
    palette = (getattr(detector.model, 'dataset_meta', None) or
               {}).get('palette')

    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read()
    height, width = frame.shape[:2]
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*'mp4v'),
                             video_fps, (width, height))
    if not writer.isOpened():
        capture.release()
        print(f'error: cannot open {args.out} for writing (mp4v codec)',
              file=sys.stderr)
        return 1
    classes = detector.classes
    try:
        for fid in range(num_frames):
            if frame.shape[:2] != (height, width):
                frame = cv2.resize(frame, (width, height))
            index = int(replay.shown[fid])
            if index < 0:
                vis = frame.copy()
                lines = [f'frame {fid}: no output yet']
            else:
                bboxes, scores, labels = schedule.outputs[index]
                src = int(schedule.input_fids[index])
                names = [classes[i] if i < len(classes) else str(i)
                         for i in labels.tolist()]
                vis = draw_detections(
                    frame, DetResult(bboxes, scores, labels, names,
                                     (height, width)), palette)
                what = (f'forecast of frame {src + horizon} from frame {src}'
                        if horizon else f'detections of frame {src}')
                lines = [f'frame {fid}: {what}',
                         f'latency {replay.latency_ms(index):.0f} ms '
                         f'({fid - src} frame(s) old)']
            _caption(vis, lines)
            writer.write(vis)
            ok, frame = capture.read()
            if not ok and fid + 1 < num_frames:
                break
    finally:
        capture.release()
        writer.release()
    lat = schedule.latencies * 1e3
    clock = (f'fixed {args.fixed_runtime:g} s/frame'
             if args.fixed_runtime is not None else 'measured runtime')
    latency = (f'median end-to-end latency {np.median(lat):.1f}ms, p90 '
               f'{np.percentile(lat, 90):.1f}ms' if len(lat) else
               'no output finished')
    kind = f'forecasting t+{horizon}' if horizon else 'per-frame detections'
    print(f'{args.video}: streamed {num_frames} frames at {fps:g} FPS '
          f'({clock}, perf factor {args.perf_factor:g}; {kind}): '
          f'{schedule.num_processed} processed, {schedule.num_dropped} '
          f'dropped, {latency} -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
