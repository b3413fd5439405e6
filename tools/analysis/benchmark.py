"""Measure a detector's inference latency on random input.

Two timings per config, each the statistics of ``--runs`` calls after
``--warmup`` untimed ones on a ``(batch, 3, H, W)`` tensor already in the
model's input range (the data preprocessor is excluded):

* forward: ``model._forward(x)`` (backbone, neck, head convolutions);
* full: ``model.predict(x, data_samples, rescale=True)``, i.e. forward plus
  the head's decoding, score filtering, NMS and rescaling.

Examples:
    python tools/analysis/benchmark.py configs/det/yolov8_n_shapes.py \
        --checkpoint work_dirs/yolov8_n_shapes/epoch_12.pth --shape 256 256
    python tools/analysis/benchmark.py configs/det/yolov8_{n,s}_coco.py \
        --runs 50 --threads 2

Note:
    Post-processing time depends on how many boxes pass the model's
    ``test_cfg.score_thr``, which differs between random and trained
    weights (and random versus real images). Quote "forward" to compare
    architectures, "full" for end-to-end model latency.
"""
import argparse
import os.path as osp
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from get_flops import (build_model, count_model_complexity,  # noqa: E402
                       format_table, load_config)
from mmdet.structures import DetDataSample  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

FOOTNOTE = (
    'forward: model._forward(x); full: model.predict(x, rescale=True) = '
    'forward + decode + NMS + rescale; data preprocessor excluded; input '
    'torch.rand.\n'
    'median / p90 / mean in ms per batch; FPS = 1000 x batch / full median; '
    'GFLOPs = 2 x mmengine GMACs at batch 1 (see get_flops.py).')


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], *, warmup: int, runs: int,
            device: torch.device) -> np.ndarray:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` calls.

    Returns:
        np.ndarray: float64 latencies of shape (runs, ).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def _stats(times: np.ndarray) -> dict:
    return dict(
        median=float(np.median(times)),
        p90=float(np.percentile(times, 90)),
        mean=float(np.mean(times)))


def benchmark_model(model: nn.Module,
                    shape: Sequence[int] = (640, 640),
                    *,
                    batch_size: int = 1,
                    warmup: int = 5,
                    runs: int = 30) -> dict:
    """Time a built detector's forward and full inference.

    Args:
        model (nn.Module): An mmdet detector in eval mode, on its device.
        shape (Sequence[int]): Input (H, W). Defaults to (640, 640).
        batch_size (int): Images per call. Defaults to 1.
        warmup (int): Untimed calls first. Defaults to 5.
        runs (int): Timed calls. Defaults to 30.

    Returns:
        dict: ``forward`` and ``full``, each a dict of ``median``, ``p90``
        and ``mean`` milliseconds per batch, and ``fps`` (images/s from the
        full median).
    """
    if batch_size < 1 or warmup < 0 or runs < 1:
        raise ValueError('need batch_size >= 1, warmup >= 0 and runs >= 1, '
                         f'but got batch_size={batch_size}, warmup={warmup}, '
                         f'runs={runs}')
    device = next(model.parameters()).device
    height, width = (int(s) for s in shape)
    inputs = torch.rand(batch_size, 3, height, width, device=device)
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta) for _ in range(batch_size)]
    with torch.no_grad():
        forward = time_fn(
            lambda: model._forward(inputs),
            warmup=warmup, runs=runs, device=device)
        full = time_fn(
            lambda: model.predict(inputs, samples, rescale=True),
            warmup=warmup, runs=runs, device=device)
    full_stats = _stats(full)
    return dict(
        forward=_stats(forward),
        full=full_stats,
        fps=1e3 * batch_size / full_stats['median'])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark detector latency (median / p90 / mean)')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument(
        '--checkpoint',
        nargs='+',
        default=None,
        help='checkpoint per config, in the same order (default: random '
        'weights)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[640, 640],
        help='input height and width (one value: square)')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--runs', type=int, default=30)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads for CPU runs (default: torch\'s choice)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, xxx=yyy format')
    args = parser.parse_args(argv)
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if len(args.shape) != 2:
        parser.error(f'--shape takes 1 or 2 integers, got {args.shape}')
    if args.checkpoint is not None and \
            len(args.checkpoint) != len(args.configs):
        parser.error(f'--checkpoint needs one file per config: got '
                     f'{len(args.checkpoint)} for {len(args.configs)} '
                     'config(s)')
    if args.runs < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--runs and --batch-size must be >= 1 and --warmup >= 0')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    checkpoints: List[Optional[str]] = args.checkpoint or [None] * len(
        args.configs)
    header = [
        'config', 'device', 'batch', 'input', 'params (M)', 'GFLOPs',
        'forward median', 'full median', 'full p90', 'full mean', 'FPS'
    ]
    rows = []
    for config, checkpoint in zip(args.configs, checkpoints):
        model = build_model(load_config(config, args.cfg_options))
        if checkpoint is not None:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'checkpoint file {checkpoint} does not exist')
            load_checkpoint(model, checkpoint, map_location='cpu')
        model.to(device)
        complexity = count_model_complexity(model, args.shape)
        result = benchmark_model(
            model,
            complexity['input_shape'],
            batch_size=args.batch_size,
            warmup=args.warmup,
            runs=args.runs)
        name = device.type if device.type != 'cpu' else \
            f'cpu x{torch.get_num_threads()}'
        rows.append([
            osp.splitext(osp.basename(config))[0], name,
            str(args.batch_size), 'x'.join(map(str,
                                               complexity['input_shape'])),
            f'{complexity["params_m"]:.2f}', f'{complexity["gflops"]:.2f}',
            f'{result["forward"]["median"]:.1f}',
            f'{result["full"]["median"]:.1f}',
            f'{result["full"]["p90"]:.1f}', f'{result["full"]["mean"]:.1f}',
            f'{result["fps"]:.1f}'
        ])
        del model
    print(format_table(header, rows))
    print(f'{args.runs} timed runs after {args.warmup} warm-up runs. '
          + FOOTNOTE)
    return 0


if __name__ == '__main__':
    sys.exit(main())
