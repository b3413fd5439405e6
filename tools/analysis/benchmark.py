"""Measure a model's inference latency on random input.

Two timings per config, each the statistics of ``--runs`` calls after
``--warmup`` untimed ones on a ``(batch, 3, H, W)`` tensor already in the
model's input range (the data preprocessor is excluded):

* forward: ``model._forward(x)`` (backbone, neck, head convolutions);
* full: ``model.predict(x, data_samples, rescale=True)``, i.e. forward plus
  the head's decoding, score filtering, NMS and rescaling.

Detectors are timed interleaved: after each model's warm-up, every timed
round runs each model once, so the machine's drift hits all of them alike
(the ``x first`` column: forward median over the first row's).
``--fuse-conv-bn`` folds the BatchNorms into their convolutions first
(``densekit.models.utils.fuse_conv_bn``); ``--fuse-conv-bn both`` times
every config unfused and folded.

Examples:
    python tools/analysis/benchmark.py configs/det/mamba_yolo_t_coco.py \
        configs/det/yolov8_s_coco.py --shape 640 640 --runs 20 --threads 2 \
        --fuse-conv-bn both
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

    python tools/analysis/benchmark.py \
        configs/anomaly/efficientad_s_synthetic.py \
        configs/anomaly/efficientad_m_mvtec.py --shape 256 --runs 20

Runtime backends (``--backend pytorch onnxruntime openvino``): each config
is exported (``densekit.deploy``, ONNX opset 17, float32) at ``--shape``
and its tensor forward (what the graph computes: the detector's head maps,
the segmentor's logits, EfficientAD's maps and score) is timed in PyTorch
eager and in each runtime on the same input, batch ``--batch-size``, with
``--threads`` threads (torch, ONNX Runtime and OpenVINO alike), printing
the median, the ratio to eager and the largest relative difference of the
outputs from eager. EfficientAD also gets its optimised PyTorch path
(``EfficientADInference``, fused float32 channels-last: the eager maps);
Mamba-YOLO's eager forward uses the C++ scan kernel::

    python tools/analysis/benchmark.py configs/det/yolov8_{n,s}_coco.py \
        --backend pytorch onnxruntime openvino --shape 640 --runs 20 \
        --warmup 3 --threads 2

Note:
    Post-processing time depends on how many boxes pass the model's
    ``test_cfg.score_thr``, which differs between random and trained
    weights (and random versus real images). Quote "forward" to compare
    architectures, "full" for end-to-end model latency.
"""
import argparse
import copy
import os.path as osp
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from get_flops import (build_model, count_model_complexity, format_table,
                       load_config)
from mmdet.structures import DetDataSample
from mmengine.config import DictAction
from mmengine.runner import load_checkpoint

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


def benchmark_models(models: Sequence[nn.Module],
                     shape: Sequence[int] = (640, 640),
                     *,
                     batch_size: int = 1,
                     warmup: int = 5,
                     runs: int = 30) -> List[dict]:
    """Time built detectors' forward and full inference, interleaved: each
    timed round runs every model once, so a drift of the machine's speed
    during the run hits all of them alike.

    Args:
        models (Sequence[nn.Module]): mmdet detectors in eval mode, on one
            device.
        shape (Sequence[int]): Input (H, W). Defaults to (640, 640).
        batch_size (int): Images per call. Defaults to 1.
        warmup (int): Untimed calls of each model first. Defaults to 5.
        runs (int): Timed rounds. Defaults to 30.

    Returns:
        list[dict]: Per model, ``forward`` and ``full``, each a dict of
        ``median``, ``p90`` and ``mean`` milliseconds per batch, and ``fps``
        (images/s from the full median).
    """
    if batch_size < 1 or warmup < 0 or runs < 1:
        raise ValueError('need batch_size >= 1, warmup >= 0 and runs >= 1, '
                         f'but got batch_size={batch_size}, warmup={warmup}, '
                         f'runs={runs}')
    device = next(models[0].parameters()).device
    height, width = (int(s) for s in shape)
    inputs = torch.rand(batch_size, 3, height, width, device=device)
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta) for _ in range(batch_size)]
    calls = [(lambda m=m: m._forward(inputs),
              lambda m=m: m.predict(inputs, samples, rescale=True))
             for m in models]
    times = [([], []) for _ in models]
    with torch.no_grad():
        for forward, full in calls:
            for _ in range(warmup):
                forward()
                full()
        for _ in range(runs):
            for (forward, full), (t_forward, t_full) in zip(calls, times):
                t_forward.extend(time_fn(forward, warmup=0, runs=1,
                                         device=device))
                t_full.extend(time_fn(full, warmup=0, runs=1,
                                      device=device))
    results = []
    for t_forward, t_full in times:
        full_stats = _stats(np.asarray(t_full))
        results.append(dict(
            forward=_stats(np.asarray(t_forward)),
            full=full_stats,
            fps=1e3 * batch_size / full_stats['median']))
    return results


def benchmark_model(model: nn.Module,
                    shape: Sequence[int] = (640, 640),
                    *,
                    batch_size: int = 1,
                    warmup: int = 5,
                    runs: int = 30) -> dict:
    """:func:`benchmark_models` of one detector (its one result dict)."""
    return benchmark_models([model], shape, batch_size=batch_size,
                            warmup=warmup, runs=runs)[0]


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
    from densekit.models.anomaly_detectors import EfficientADInference
    from densekit.utils.hardware import cpu_supports_bf16
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


def _rel_diff(ref: np.ndarray, out: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    diff = float(np.abs(out - ref).max()) if ref.size else 0.0
    return diff / scale if scale > 0 else diff


def benchmark_backends(model: nn.Module, shape: Sequence[int],
                       backends: Sequence[str], *, batch_size: int = 1,
                       warmup: int = 3, runs: int = 20,
                       threads: Optional[int] = None) -> List[dict]:
    """Latency of a model's exported tensor forward per backend.

    Returns:
        list[dict]: ``name`` (backend / path), ``median`` and ``p90`` (ms
        per batch), ``diff`` (max relative output difference from eager,
        None for eager itself).
    """
    import tempfile

    from densekit.deploy.exporter import build_export_spec, export_model
    from densekit.deploy.runtime import RuntimeSession
    spec = build_export_spec(model, shape, batch_size=batch_size)
    inputs = spec.inputs
    device = torch.device('cpu')
    rows = []
    with torch.no_grad():
        ref = spec.module(*inputs)
        ref = [r.float().numpy() for r in (ref if isinstance(ref, tuple)
                                            else (ref, ))]
        if 'pytorch' in backends:
            times = time_fn(lambda: spec.module(*inputs), warmup=warmup,
                            runs=runs, device=device)
            rows.append(dict(name='pytorch eager', diff=None,
                             **_stats(times)))
            if is_anomaly_model(model):
                from densekit.models.anomaly_detectors import \
                    EfficientADInference
                fast = EfficientADInference(model, channels_last=True,
                                            fuse=True, dtype='float32')
                maps = fast(inputs[0])[0].numpy()
                times = time_fn(lambda: fast(inputs[0]), warmup=warmup,
                                runs=runs, device=device)
                rows.append(dict(name='pytorch optimised (fused fp32 '
                                 'channels-last)',
                                 diff=_rel_diff(ref[2], maps),
                                 **_stats(times)))
    runtimes = [b for b in backends if b != 'pytorch']
    if runtimes:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_model(model, tmp, shape=shape, name='model')
            feeds = dict(zip(spec.input_names, [t.numpy() for t in inputs]))
            for backend in runtimes:
                session = RuntimeSession(path, backend, threads)
                outs = list(session(feeds).values())
                diff = max(_rel_diff(r, o) for r, o in zip(ref, outs))
                times = time_fn(lambda: session(feeds), warmup=warmup,
                                runs=runs, device=device)
                rows.append(dict(name=backend, diff=diff, **_stats(times)))
                del session
    return rows


def main_backends(args, device: torch.device) -> int:
    """The ``--backend`` table (see the module docstring)."""
    from densekit.deploy.runtime import check_backend
    backends = [check_backend(b) for b in args.backend]
    if device.type != 'cpu':
        print('--backend compares CPU runtimes; use --device cpu')
        return 2
    checkpoints = args.checkpoint or [None] * len(args.configs)
    header = ['config', 'input', 'backend', 'median (ms)', 'p90 (ms)',
              'x eager', 'max rel diff vs eager']
    rows = []
    for config, checkpoint in zip(args.configs, checkpoints):
        cfg = load_config(config, args.cfg_options)
        model = build_model(cfg)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint, map_location='cpu')
        results = benchmark_backends(
            model, args.shape, backends, batch_size=args.batch_size,
            warmup=args.warmup, runs=args.runs, threads=args.threads)
        eager = next((r['median'] for r in results
                      if r['name'] == 'pytorch eager'), None)
        for r in results:
            rows.append([
                osp.splitext(osp.basename(config))[0],
                'x'.join(map(str, args.shape)), r['name'],
                f'{r["median"]:.1f}', f'{r["p90"]:.1f}',
                f'{r["median"] / eager:.2f}' if eager else '-',
                '-' if r['diff'] is None else f'{r["diff"]:.1e}'])
        del model
    print(format_table(header, rows))
    print(f'batch {args.batch_size}, {torch.get_num_threads()} torch '
          f'threads, runtimes with {args.threads or "default"} threads; '
          f'median / p90 of {args.runs} runs after {args.warmup} warm-up; '
          'tensor forward only (the post-processing is the same PyTorch '
          'code for every backend); input torch.rand')
    return 0


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
    parser.add_argument(
        '--fuse-conv-bn', nargs='?', const='yes', default='no',
        choices=['no', 'yes', 'both'],
        help='fold BatchNorms into the convolutions before timing (yes, '
        'the bare flag) or time each config unfused and fused (both)')
    parser.add_argument(
        '--backend', nargs='+', default=None,
        help='compare the exported tensor forward in these backends '
        '(pytorch, onnxruntime, openvino) instead of the default table')
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
    if args.backend:
        return main_backends(args, device)
    checkpoints: List[Optional[str]] = args.checkpoint or [None] * len(
        args.configs)
    header = [
        'config', 'device', 'batch', 'input', 'params (M)', 'GFLOPs',
        'forward median', 'full median', 'full p90', 'full mean', 'FPS'
    ]
    rows = []
    status = 0
    entries = []  # (row name, model, complexity) of the detectors
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
        name = osp.splitext(osp.basename(config))[0]
        if args.fuse_conv_bn in ('no', 'both'):
            entries.append((name, model, complexity))
        if args.fuse_conv_bn in ('yes', 'both'):
            from densekit.models.utils.fuse_conv_bn import fuse_conv_bn
            fused = fuse_conv_bn(copy.deepcopy(model).eval())
            entries.append((name + ' (conv+bn fused)', fused, complexity))
    if entries:
        results = benchmark_models(
            [model for _, model, _ in entries],
            entries[0][2]['input_shape'],
            batch_size=args.batch_size,
            warmup=args.warmup,
            runs=args.runs)
        device_name = device.type if device.type != 'cpu' else \
            f'cpu x{torch.get_num_threads()}'
        for (name, _, complexity), result in zip(entries, results):
            rows.append([
                name, device_name,
                str(args.batch_size), 'x'.join(map(
                    str, complexity['input_shape'])),
                f'{complexity["params_m"]:.2f}',
                f'{complexity["gflops"]:.2f}',
                f'{result["forward"]["median"]:.1f}',
                f'{result["full"]["median"]:.1f}',
                f'{result["full"]["p90"]:.1f}',
                f'{result["full"]["mean"]:.1f}',
                f'{result["fps"]:.1f}'
            ])
        if len(rows) > 1:
            base = results[0]['forward']['median']
            header.append('x first')
            for row, result in zip(rows, results):
                row.append(f'{result["forward"]["median"] / base:.2f}')
    if rows:
        print(format_table(header, rows))
        print(f'{args.runs} timed rounds after {args.warmup} warm-up runs, '
              'the models interleaved (each round runs every model once); '
              'x first: forward median / the first row\'s. ' + FOOTNOTE)
    return status


if __name__ == '__main__':
    sys.exit(main())
