"""Streaming evaluation: replay sequences in simulated real time, report sAP.

Every sequence of an Argoverse-HD-format annotation file is replayed at
``--fps`` (sap-toolkit's simulated streaming, ``det/srt_det.py``): the
detector always takes the latest arrived frame, frames it cannot keep up
with are dropped, and each output is stamped with its finish time (measured
runtime, or ``--fixed-runtime`` for a reproducible run). Each ground-truth
frame is then scored with the latest output finished by its time (streaming
AP, ``det/streaming_eval.py``); offline AP scores the same outputs on their
own input frames. See :func:`densekit.apis.run_stream_replay`.

Examples:
    python tools/stream/stream_eval.py configs/det/yolov8_n_shapes.py \
        work_dirs/yolov8_n_shapes/epoch_7.pth \
        --ann-file data/synthetic_moving_shapes/annotations/val.json \
        --data-root data/synthetic_moving_shapes --fixed-runtime 0.05 \
        --out work_dirs/stream_eval.json

Settings: the command line wins over the config (``--cfg-options``).
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from mmengine.config import DictAction

from densekit.engine.config_setup import prepare_config

TABLE_ROWS = (('sAP', 'sAP'), ('sAP50', 'sAP50'), ('sAP75', 'sAP75'),
              ('offline AP', 'AP'), ('offline AP50', 'AP50'),
              ('dropped frames', 'dropped_frames'),
              ('missed frames', 'missed_frames'),
              ('median latency (ms)', 'latency_ms_median'),
              ('median runtime (ms)', 'runtime_ms_median'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Streaming AP of a detector replayed in simulated real '
        'time over Argoverse-HD-format sequences')
    parser.add_argument('config', help='detection config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--ann-file', required=True,
                        help='Argoverse-HD-format annotation JSON')
    parser.add_argument('--data-root', required=True,
                        help='folder the "seq_dirs" of the annotation file '
                        'are relative to')
    parser.add_argument('--fps', type=float, default=30.0,
                        help='frame rate of the stream (default 30)')
    parser.add_argument('--perf-factor', type=float, default=1.0,
                        help='speed factor: runtimes are divided by it '
                        '(sap-toolkit --perf-factor; 2 = twice as fast)')
    parser.add_argument('--fixed-runtime', type=float, default=None,
                        help='seconds per frame for the clock instead of '
                        'the measured runtime (deterministic)')
    parser.add_argument('--max-seqs', type=int, default=None,
                        help='replay only the first K sequences')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available)')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='drop detections below this score')
    parser.add_argument('--out', default=None,
                        help='write the metrics and the per-sequence '
                        'schedules to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy format')
    args = parser.parse_args(argv)
    for name in ('ann_file', 'checkpoint'):
        path = getattr(args, name)
        if not osp.isfile(path):
            parser.error(f'--{name.replace("_", "-")} {path} does not exist'
                         if name == 'ann_file' else
                         f'checkpoint {path} does not exist')
    if not osp.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root} is not a directory')
    if not args.fps > 0 or not args.perf_factor > 0:
        parser.error('--fps and --perf-factor must be > 0')
    if args.fixed_runtime is not None and not args.fixed_runtime >= 0:
        parser.error('--fixed-runtime must be >= 0 seconds')
    if args.max_seqs is not None and args.max_seqs < 1:
        parser.error('--max-seqs must be >= 1')
    return args


def format_table(report: dict) -> str:
    """The summary table (AP values in %)."""
    lines = ['| metric | value |', '|---|---|']
    for title, key in TABLE_ROWS:
        value = report[key]
        if key.startswith(('sAP', 'AP')):
            text = f'{100 * value:.1f}' if value >= 0 else 'n/a'
        elif isinstance(value, float):
            text = 'n/a' if math.isnan(value) else f'{value:.1f}'
        else:
            text = str(value)
        lines.append(f'| {title} | {text} |')
    lines.append(f'| frames processed | {report["processed_frames"]}/'
                 f'{report["num_frames"]} |')
    return '\n'.join(lines)


def _json_safe(value):
    """NaN -> None, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def main(argv=None):
    args = parse_args(argv)
    from densekit.apis.stream_detector import (MMDetFrameDetector,
                                               run_stream_replay)
    cfg = prepare_config(args.config, cfg_options=args.cfg_options,
                         check_data=False)
    detector = MMDetFrameDetector(cfg, args.checkpoint, device=args.device,
                                  score_thr=args.score_thr)
    report = run_stream_replay(
        detector, args.ann_file, args.data_root, fps=args.fps,
        fixed_runtime=args.fixed_runtime, perf_factor=args.perf_factor,
        max_seqs=args.max_seqs)
    clock = f'fixed {args.fixed_runtime} s/frame' \
        if args.fixed_runtime is not None else 'measured runtime'
    print(f'Streaming evaluation at {args.fps:g} FPS ({clock}, '
          f'perf factor {args.perf_factor:g}, '
          f'{len(report["sequences"])} sequences)')
    print(format_table(report))
    if args.out:
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(_json_safe(report), f, indent=1)
        print(f'results written to {args.out}')
    return report


if __name__ == '__main__':
    main()
