"""Per-frame compute of a streaming detector: feature buffer vs recompute.

A streaming detector that fuses the last N + 1 frames can either recompute
the backbone + neck of all N + 1 frames for every new frame
(``model.predict`` on the window) or run them once on the new frame and
reuse the buffered features of the N earlier ones
(``model.predict_stream``, DAMO-StreamNet's / StreamYOLO's buffer). This
script measures both on the same frames for each config:

* GFLOPs executed per frame (mmengine's FlopAnalyzer on the per-frame part,
  backbone + neck, and on the fusion + head part):
  recompute = (N + 1) x per-frame + fusion/head, buffer = per-frame +
  fusion/head;
* CPU (or GPU) latency per new frame, median / p90 of ``--runs`` calls
  after ``--warmup``, both paths on the same random frames, including the
  head's decoding and NMS;
* the largest difference of the two paths' box scores (they compute the
  same function: 0 up to float round-off).

Examples:
    python tools/analysis/benchmark_stream_buffer.py \
        configs/stream/streamyolo_yolov8-n_moving-shapes.py \
        configs/stream/damo-streamnet_yolov8-n_moving-shapes.py \
        --shape 256 256 --runs 30

``--check`` exits with status 1 unless, for every config with N >= 1, the
buffer executes fewer FLOPs and has a lower median latency than recomputing.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import time_fn
from get_flops import build_model, format_table, load_config
from mmdet.structures import DetDataSample
from mmengine.analysis import FlopAnalyzer
from mmengine.config import DictAction
from mmengine.runner import load_checkpoint

HEADER = ['config', 'N', 'path', 'GFLOPs/frame', 'median ms', 'p90 ms',
          'speed-up']


class _FrameFeats(nn.Module):
    """Backbone + neck of one frame (for the FLOP counter)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame):
        return self.model.extract_frame_feats(frame)


class _FuseHead(nn.Module):
    """Temporal fusion + head outputs of stacked per-frame features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *stacked):
        return self.model.bbox_head(self.model.fuse(list(stacked)))


def _gflops(module: nn.Module, inputs: tuple) -> float:
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return 2 * analyzer.total() / 1e9


def _check_streaming_model(model: nn.Module, config: str) -> int:
    for name in ('predict_stream', 'reset_stream', 'extract_frame_feats',
                 'fuse', 'num_past_frames'):
        if not hasattr(model, name):
            raise TypeError(
                f'{config}: {type(model).__name__} has no `{name}`; this '
                'benchmark needs a streaming detector such as '
                'densekit.StreamYOLODetector')
    return int(model.num_past_frames)


def benchmark_stream_buffer(model: nn.Module,
                            shape: Sequence[int] = (256, 256),
                            *,
                            warmup: int = 3,
                            runs: int = 20,
                            seed: int = 0) -> dict:
    """Time and count both paths of a built streaming detector.

    Args:
        model (nn.Module): A streaming detector in eval mode on its device.
        shape (Sequence[int]): Frame (H, W), already padded as the model
            expects.
        warmup (int): Untimed calls per path.
        runs (int): Timed calls per path.
        seed (int): Seed of the random frames.

    Returns:
        dict: ``num_past_frames``; ``recompute`` and ``buffer``, each with
        ``gflops`` per frame, ``median`` and ``p90`` milliseconds;
        ``max_score_diff`` between the two paths' detections of the last
        frame.
    """
    if warmup < 0 or runs < 1:
        raise ValueError(f'need warmup >= 0 and runs >= 1, got {warmup}, '
                         f'{runs}')
    device = next(model.parameters()).device
    n = int(model.num_past_frames)
    height, width = (int(s) for s in shape)
    gen = torch.Generator().manual_seed(seed)
    # enough distinct frames for every timed call to see a new one
    frames = torch.rand(warmup + runs + n + 1, 3, height, width,
                        generator=gen).to(device)
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1.0, 1.0),
                sid=0)

    def samples():
        return [DetDataSample(metainfo=dict(meta))]

    with torch.no_grad():
        per_frame = _gflops(_FrameFeats(model), (frames[:1], ))
        feats = model.extract_frame_feats(frames[:1])
        stacked = tuple(f[:, None].expand(-1, n + 1, *f.shape[1:])
                        .contiguous() for f in feats)
        fuse_head = _gflops(_FuseHead(model), stacked)

        cursor = {'recompute': 0, 'buffer': 0}

        def recompute():
            i = cursor['recompute']
            cursor['recompute'] += 1
            window = frames[i:i + n + 1][None]
            return model.predict(window, samples(), rescale=False)

        def buffered():
            i = cursor['buffer']
            cursor['buffer'] += 1
            return model.predict_stream(frames[i + n:i + n + 1], samples(),
                                        rescale=False)

        # the buffer path starts on a filled buffer: frames 0..n-1 pushed
        model.reset_stream()
        for i in range(n):
            model.predict_stream(frames[i:i + 1], samples(), rescale=False)
        times_buffer = time_fn(buffered, warmup=warmup, runs=runs,
                               device=device)
        times_recompute = time_fn(recompute, warmup=warmup, runs=runs,
                                  device=device)
        # both paths on the same last window
        last = warmup + runs - 1
        a = model.predict(frames[last:last + n + 1][None], samples(),
                          rescale=False)[0].pred_instances
        model.reset_stream()
        for i in range(last, last + n + 1):
            b = model.predict_stream(frames[i:i + 1], samples(),
                                     rescale=False)[0].pred_instances
    k = min(len(a.scores), len(b.scores))
    diff = float((a.scores[:k] - b.scores[:k]).abs().max()) if k else 0.0
    if len(a.scores) != len(b.scores):
        diff = float('inf')
    return dict(
        num_past_frames=n,
        recompute=dict(gflops=(n + 1) * per_frame + fuse_head,
                       median=float(np.median(times_recompute)),
                       p90=float(np.percentile(times_recompute, 90))),
        buffer=dict(gflops=per_frame + fuse_head,
                    median=float(np.median(times_buffer)),
                    p90=float(np.percentile(times_buffer, 90))),
        max_score_diff=diff)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-frame compute of streaming detectors: feature '
        'buffer (predict_stream) vs recomputing every frame (predict)')
    parser.add_argument('configs', nargs='+', help='streaming configs')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint for the (single) config; random '
                        'weights otherwise (compute does not depend on '
                        'them)')
    parser.add_argument('--shape', type=int, nargs=2, default=[256, 256],
                        metavar=('H', 'W'), help='frame size (default 256)')
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--check', action='store_true',
                        help='exit 1 unless the buffer is cheaper in FLOPs '
                        'and median latency for every config with N >= 1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config')
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.configs) > 1:
        parser.error('--checkpoint needs exactly one config')
    if args.runs < 1 or args.warmup < 0:
        parser.error('--runs must be >= 1 and --warmup >= 0')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: List[List[str]] = []
    failures = []
    for config in args.configs:
        cfg = load_config(config, args.cfg_options)
        model = build_model(cfg).to(args.device)
        if args.checkpoint:
            load_checkpoint(model, args.checkpoint, map_location='cpu')
        _check_streaming_model(model, config)
        res = benchmark_stream_buffer(model, args.shape, warmup=args.warmup,
                                      runs=args.runs)
        n = res['num_past_frames']
        name = osp.splitext(osp.basename(config))[0]
        rec, buf = res['recompute'], res['buffer']
        for path, r in (('recompute', rec), ('buffer', buf)):
            speed = rec['median'] / r['median']
            rows.append([name, str(n), path, f'{r["gflops"]:.3f}',
                         f'{r["median"]:.1f}', f'{r["p90"]:.1f}',
                         f'{speed:.2f}x'])
        print(f'{name}: buffer vs recompute max |score diff| '
              f'{res["max_score_diff"]:.2e}')
        if n >= 1 and not (buf['gflops'] < rec['gflops']
                           and buf['median'] < rec['median']):
            failures.append(name)
        if res['max_score_diff'] > 1e-3:
            failures.append(f'{name} (paths disagree)')
    print(format_table(HEADER, rows))
    print(f'frames {args.shape[0]}x{args.shape[1]}, batch 1, device '
          f'{args.device}, threads {torch.get_num_threads()}; latency per '
          'new frame incl. decoding + NMS; median of '
          f'{args.runs} runs after {args.warmup} warm-up; GFLOPs = 2 x '
          'mmengine MACs')
    if args.check:
        if failures:
            print(f'FAIL: {", ".join(failures)}')
            return 1
        print('PASS: the buffer executes fewer FLOPs and is faster per '
              'frame')
    return 0


if __name__ == '__main__':
    sys.exit(main())
