"""Training speed of a config per selective-scan implementation.

Builds the config's model, optimizer and training dataloader (through
mmengine's Runner, as ``tools/train.py`` does), draws ``--warmup + --iters``
batches once, then times ``model.train_step`` (forward, loss, backward,
optimizer step) on them: data loading and augmentation are excluded, so the
figure compares models, not pipelines. Each implementation runs in a fresh
process with ``DENSEKIT_SELECTIVE_SCAN`` set (``cpp``: the C++ kernel with
SS2D's fused four-route scan, SS2D's CPU default; ``cpp-unfused``: the same
kernel behind SS2D's cross-scan / selective scan / cross-merge path
(``SS2D.fused_scan = False``); ``pytorch``: the chunked pure-PyTorch scan).

Example:
    python tools/data/make_synthetic.py shapes --out data/synthetic_shapes
    python tools/analysis/benchmark_train.py configs/det/mamba_yolo_t_shapes.py
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULT_TAG = 'BENCHMARK_TRAIN_RESULT '


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--impls', nargs='+', default=['cpp', 'pytorch'],
                        choices=['cpp', 'cpp-unfused', 'pytorch', 'cuda',
                                 'auto'])
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--worker', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--unfused', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iters < 3 or args.warmup < 1:
        parser.error('need --iters >= 3 and --warmup >= 1')
    return args


def run_worker(args: argparse.Namespace) -> dict:
    """Time train steps in this process (its scan path is already set)."""
    import torch
    from mmengine.runner import Runner

    sys.path.insert(0, ROOT)
    from densekit.engine.config_setup import prepare_config
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = prepare_config(args.config, work_dir=work_dir)
        cfg.train_dataloader.num_workers = 0
        cfg.train_dataloader.persistent_workers = False
        runner = Runner.from_cfg(cfg)
        loader = runner.build_dataloader(cfg.train_dataloader)
        optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
        model = runner.model
        if args.unfused:
            for module in model.modules():
                if hasattr(module, 'fused_scan'):
                    module.fused_scan = False
        model.train()
        batches, it = [], iter(loader)
        for _ in range(args.warmup + args.iters):
            batches.append(next(it))
        times = []
        for i, data in enumerate(batches):
            start = time.perf_counter()
            model.train_step(data, optim_wrapper)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    return dict(batch_size=len(batches[0]['inputs']),
                median_s=float(np.median(times)),
                p90_s=float(np.percentile(times, 90)),
                threads=torch.get_num_threads())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_TAG + json.dumps(run_worker(args)), flush=True)
        return 0
    rows = []
    for impl in args.impls:
        cmd = [sys.executable, osp.abspath(__file__), args.config, '--worker',
               '--iters', str(args.iters), '--warmup', str(args.warmup)]
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        if impl == 'cpp-unfused':
            cmd += ['--unfused']
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=dict(os.environ, DENSEKIT_SELECTIVE_SCAN=impl.split(
                '-')[0]))
        lines = [line for line in proc.stdout.splitlines()
                 if line.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:])
            raise SystemExit(f'{impl}: worker failed (exit '
                             f'{proc.returncode})')
        rows.append((impl, json.loads(lines[-1][len(RESULT_TAG):])))
    base = rows[-1][1]['median_s']
    header = ('scan', 'batch', 'threads', 'step median (s)', 'step p90 (s)',
              'iters/s', 'images/s', f'speed-up vs {rows[-1][0]}')
    table = [header]
    for impl, res in rows:
        table.append((impl, str(res['batch_size']), str(res['threads']),
                      f"{res['median_s']:.3f}", f"{res['p90_s']:.3f}",
                      f"{1 / res['median_s']:.2f}",
                      f"{res['batch_size'] / res['median_s']:.1f}",
                      f"{base / res['median_s']:.2f}x"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths))
              + ' |')
        if i == 0:
            print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    print(f'{args.config}: median of {args.iters} train steps after '
          f'{args.warmup} warm-up (forward + loss + backward + optimizer; '
          'data loading excluded).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
