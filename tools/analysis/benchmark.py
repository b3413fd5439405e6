"""Measure a model's inference latency on random input.

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

Anomaly-detection configs (EfficientAD) get their own table: each
inference path of ``densekit.EfficientADInference`` (plain eager float32,
channels-last, frozen TorchScript with fused conv+ReLU, bfloat16) timed at
batch 1 (latency, median) and at ``--throughput-batch`` (default 16,
images/s), with the speed-up over the plain eager float32 forward measured
in the same run. The float32 paths give the plain path's maps (to float32
rounding); the bfloat16 path's maps differ from them by up to about 1% of
the map range, so its scores and AUROCs may move slightly. With
``--checkpoint``, ``--eval-paths`` also runs the config's test set through
the plain and the fastest path (usually the bfloat16 one) and reports image
and pixel AUROC of both; ``--check`` exits non-zero unless the fastest path
is ``--min-speedup`` (default 2) times faster and both AUROCs agree within
``--max-auroc-diff`` (default 0.005)::

    python tools/analysis/benchmark.py configs/anomaly/efficientad_s_synthetic.py \
        configs/anomaly/efficientad_m_mvtec.py --shape 256 --runs 20

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


# (name, EfficientADInference options or None for the model's own eager
# float32 forward)
ANOMALY_PATHS = [
    ('eager fp32 (plain)', None),
    ('eager fp32 channels-last',
     dict(channels_last=True, fuse=False, dtype='float32')),
    ('fused fp32 channels-last',
     dict(channels_last=True, fuse=True, dtype='float32')),
    ('fused bf16 channels-last',
     dict(channels_last=True, fuse=True, dtype='bfloat16')),
]


def is_anomaly_model(model: nn.Module) -> bool:
    return type(model).__name__ == 'EfficientAD'


def anomaly_paths(model: nn.Module, device: torch.device) -> List[tuple]:
    """The inference paths that run on this device (bfloat16 needs native
    CPU support or a CUDA device)."""
    from densekit.engine.optimizers import cpu_supports_bf16
    from densekit.models.anomaly_detectors import EfficientADInference
    import copy
    paths = []
    for name, options in ANOMALY_PATHS:
        if options is None:  # a contiguous-format float32 copy
            plain = copy.deepcopy(model).eval()
            plain.channels_last = False
            for net in (plain.teacher, plain.student, plain.autoencoder):
                net.to(memory_format=torch.contiguous_format)
            paths.append((name, plain._forward))
            continue
        if options['dtype'] == 'bfloat16' and device.type == 'cpu' and \
                not cpu_supports_bf16():
            continue
        paths.append((name, EfficientADInference(model, **options)))
    return paths


def benchmark_anomaly_model(model: nn.Module,
                            shape: Sequence[int] = (256, 256),
                            *,
                            throughput_batch: int = 16,
                            warmup: int = 3,
                            runs: int = 20) -> List[dict]:
    """Latency (batch 1) and throughput of every EfficientAD path.

    Returns:
        list[dict]: ``name``, ``latency`` (stats in ms at batch 1),
        ``throughput`` (images/s at ``throughput_batch``), ``speedup``
        (plain eager latency / this latency).
    """
    device = next(model.parameters()).device
    height, width = (int(s) for s in shape)
    single = torch.rand(1, 3, height, width, device=device)
    batch = torch.rand(throughput_batch, 3, height, width, device=device)
    results = []
    with torch.no_grad():
        for name, fn in anomaly_paths(model, device):
            latency = _stats(time_fn(lambda: fn(single), warmup=warmup,
                                     runs=runs, device=device))
            big = time_fn(lambda: fn(batch), warmup=1,
                          runs=max(1, runs // 5), device=device)
            results.append(dict(
                name=name, latency=latency,
                throughput=1e3 * throughput_batch / float(np.median(big))))
    base = results[0]['latency']['median']
    for r in results:
        r['speedup'] = base / r['latency']['median']
    return results


def evaluate_anomaly_paths(model: nn.Module, cfg, paths: Sequence[tuple],
                           max_images: Optional[int] = None) -> List[dict]:
    """Image and pixel AUROC of the config's test set through each path."""
    from mmengine.runner import Runner

    from densekit.evaluation.functional import pixel_auroc, roc_auc
    loader_cfg = dict(cfg.test_dataloader)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    device = next(model.parameters()).device
    scores = {name: [] for name, _ in paths}
    maps = {name: [] for name, _ in paths}
    labels, masks = [], []
    with torch.no_grad():
        for i, data in enumerate(loader):
            if max_images is not None and i >= max_images:
                break
            data = model.data_preprocessor(data, False)
            inputs = data['inputs'].to(device)
            sample = data['data_samples'][0]
            labels.append(int(sample.gt_label))
            masks.append(sample.gt_mask.cpu().numpy())
            for name, fn in paths:
                # the map at the mask's (original) size and the score as
                # EfficientAD.predict computes them
                anomaly_map, score = model.map_and_score(
                    fn(inputs)[0][0], tuple(sample.gt_mask.shape))
                scores[name].append(float(score))
                maps[name].append(anomaly_map.cpu().numpy())
    return [dict(name=name,
                 image_auroc=roc_auc(np.asarray(scores[name]), labels),
                 pixel_auroc=pixel_auroc(maps[name], masks))
            for name, _ in paths]


def main_anomaly(args, config: str, model: nn.Module, cfg,
                 device: torch.device, has_checkpoint: bool) -> int:
    """The EfficientAD table (see the module docstring)."""
    shape = args.shape if args.shape != [640, 640] else [256, 256]
    results = benchmark_anomaly_model(
        model, shape, throughput_batch=args.throughput_batch,
        warmup=args.warmup, runs=args.runs)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = device.type if device.type != 'cpu' else \
        f'cpu x{torch.get_num_threads()}'
    header = ['config', 'device', 'path', 'input', 'params (M)',
              'latency b1 median (ms)', 'p90', 'speed-up',
              f'throughput b{args.throughput_batch} (img/s)']
    rows = [[osp.splitext(osp.basename(config))[0], name, r['name'],
             'x'.join(map(str, shape)), f'{params:.2f}',
             f'{r["latency"]["median"]:.1f}', f'{r["latency"]["p90"]:.1f}',
             f'{r["speedup"]:.2f}x', f'{r["throughput"]:.1f}']
            for r in results]
    print(format_table(header, rows))
    print(f'{args.runs} timed batch-1 runs after {args.warmup} warm-up; '
          'throughput: median of max(1, runs/5) batches. Speed-up: plain '
          'eager fp32 latency / path latency, same process and input. '
          'fp32 paths give the plain maps; bf16 paths maps within about 1% '
          'of their range of them.')
    ok = True
    fastest = max(results, key=lambda r: r['speedup'])
    if args.eval_paths:
        if not has_checkpoint:
            print('--eval-paths needs --checkpoint (a trained model with its '
                  'statistics)')
            return 2
        paths = [p for p in anomaly_paths(model, device)
                 if p[0] in (results[0]['name'], fastest['name'])]
        evals = evaluate_anomaly_paths(model, cfg, paths, args.max_images)
        print(format_table(
            ['path', 'image AUROC', 'pixel AUROC'],
            [[e['name'], f'{e["image_auroc"]:.4f}', f'{e["pixel_auroc"]:.4f}']
             for e in evals]))
        diff = max(abs(evals[0][k] - evals[-1][k])
                   for k in ('image_auroc', 'pixel_auroc'))
        print(f'largest AUROC difference: {diff:.4f} (limit '
              f'{args.max_auroc_diff})')
        ok = diff <= args.max_auroc_diff
    if args.check:
        ok = ok and fastest['speedup'] >= args.min_speedup
        print(f'check: fastest path "{fastest["name"]}" '
              f'{fastest["speedup"]:.2f}x (need >= {args.min_speedup}x): '
              + ('PASS' if ok else 'FAIL'))
    return 0 if ok else 1


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark model latency (median / p90 / mean)')
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
    anomaly = parser.add_argument_group('anomaly-detection (EfficientAD)')
    anomaly.add_argument('--throughput-batch', type=int, default=16)
    anomaly.add_argument('--eval-paths', action='store_true',
                         help='AUROC of the plain and the fastest path on '
                         'the config\'s test set (needs --checkpoint); the '
                         'fastest is usually bfloat16, whose maps differ '
                         'from the plain ones by up to ~1%% of their range '
                         '(the float32 paths keep them)')
    anomaly.add_argument('--max-images', type=int, default=None,
                         help='evaluate only this many test images')
    anomaly.add_argument('--check', action='store_true',
                         help='exit 1 unless the fastest path meets '
                         '--min-speedup (and --max-auroc-diff with '
                         '--eval-paths)')
    anomaly.add_argument('--min-speedup', type=float, default=2.0)
    anomaly.add_argument('--max-auroc-diff', type=float, default=0.005)
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
    status = 0
    for config, checkpoint in zip(args.configs, checkpoints):
        cfg = load_config(config, args.cfg_options)
        model = build_model(cfg)
        if checkpoint is not None:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'checkpoint file {checkpoint} does not exist')
            load_checkpoint(model, checkpoint, map_location='cpu')
        model.to(device)
        if is_anomaly_model(model):
            status = max(status, main_anomaly(args, config, model, cfg,
                                              device, checkpoint is not None))
            continue
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
    if rows:
        print(format_table(header, rows))
        print(f'{args.runs} timed runs after {args.warmup} warm-up runs. '
              + FOOTNOTE)
    return status


if __name__ == '__main__':
    sys.exit(main())
