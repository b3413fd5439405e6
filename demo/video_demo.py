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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

from densekit.apis import (AnomalyInferencer, SegResult,  # noqa: E402
                           build_inferencer, draw_anomaly, draw_detections,
                           draw_segmentation)
from densekit.apis.det_inferencer import TIMING_STAGES  # noqa: E402

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
    args = parser.parse_args(argv)
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

    try:
        inferencer = build_inferencer(
            args.config,
            args.weights,
            device=args.device,
            score_thr=args.score_thr)
    except (FileNotFoundError, ValueError, TypeError) as e:
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


if __name__ == '__main__':
    sys.exit(main())
