"""Time the ONNX formulations of the selective scan in ONNX Runtime and
OpenVINO at Mamba-YOLO-T's SS2D calls.

Each formulation of :func:`densekit.models.layers.selective_scan_export.
selective_scan_export` (``--methods``) is exported on its own for every
distinct scan shape of Mamba-YOLO-T at ``--shape`` (batch 1; at 640x640:
D x L = 256 x 25600 once, 512 x 6400 twice, 1024 x 1600 five times,
2048 x 400 twice, N = 16, G = 4), run ``--runs`` times after one warm-up,
and the per-shape medians are summed with each shape's multiplicity: the
scan time of one forward pass. The C++ kernel (``cpp-cpu``) and the
chunked PyTorch path are timed on the same inputs for comparison. Every
exported graph's output is compared with :func:`selective_scan_ref`
(the max relative difference is printed).

Example (the README's table):
    python tools/analysis/benchmark_scan_export.py --shape 640 --threads 2
"""
import argparse
import collections
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from densekit.models.layers.selective_scan import (selective_scan_chunked,
                                                   selective_scan_cpp)
from densekit.models.layers.selective_scan_export import (
    EXPORT_METHODS, selective_scan_export)


def mamba_yolo_scan_shapes(size: int = 640) -> List[Tuple[Tuple[int, int],
                                                          int]]:
    """``((D, L), count)`` of Mamba-YOLO-T's selective scan calls at a
    ``size`` x ``size`` input (4 routes, so D is 4 x d_inner)."""
    s = size // 4  # the first SS2D stage runs at stride 4
    calls = [(256, s * s), (512, (s // 2)**2), (1024, (s // 4)**2),
             (1024, (s // 4)**2), (1024, (s // 4)**2), (2048, (s // 8)**2),
             (1024, (s // 4)**2), (512, (s // 2)**2), (1024, (s // 4)**2),
             (2048, (s // 8)**2)]
    return sorted(collections.Counter(calls).items(), key=lambda c: -c[0][1])


class _Scan(nn.Module):

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def forward(self, u, delta, A, B, C, D, bias):
        return selective_scan_export(u, delta, A, B, C, D, bias, True,
                                     method=self.method)


def scan_inputs(dim: int, length: int, seed: int = 0) -> Tuple:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(1, dim, length, generator=g)
    delta = torch.randn(1, dim, length, generator=g) * 0.5
    A = -torch.rand(dim, 16, generator=g) * 4 - 0.1
    B = torch.randn(1, 4, 16, length, generator=g)
    C = torch.randn(1, 4, 16, length, generator=g)
    D = torch.randn(dim, generator=g)
    bias = torch.randn(dim, generator=g) * 0.5
    return u, delta, A, B, C, D, bias


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def benchmark(size: int, methods: Sequence[str], backends: Sequence[str],
              runs: int, threads: int) -> List[dict]:
    from densekit.deploy.exporter import onnx_export
    from densekit.deploy.runtime import RuntimeSession
    shapes = mamba_yolo_scan_shapes(size)
    rows: Dict[str, dict] = {}

    def add(name, ms, count, diff=None, nodes=None):
        row = rows.setdefault(name, dict(name=name, ms=0.0, diff=0.0,
                                         nodes=0))
        row['ms'] += ms * count
        if diff is not None:
            row['diff'] = max(row['diff'], diff)
        if nodes is not None:
            row['nodes'] += nodes * count
    names = ['u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias']
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for (dim, length), count in shapes:
            inputs = scan_inputs(dim, length)
            ref = selective_scan_chunked(*inputs[:5], inputs[5], inputs[6],
                                         True)
            add('PyTorch eager, cpp-cpu kernel', _median_ms(
                lambda: selective_scan_cpp(*inputs, True), runs), count)
            add('PyTorch eager, chunked', _median_ms(
                lambda: selective_scan_chunked(*inputs, True), runs), count)
            feeds = {n: t.numpy() for n, t in zip(names, inputs)}
            for method in methods:
                path = osp.join(tmp, f'{method}_{dim}_{length}.onnx')
                onnx_export(_Scan(method), inputs, path, input_names=names,
                            output_names=['y'])
                import onnx
                nodes = len(onnx.load(path, load_external_data=False)
                            .graph.node)
                for backend in backends:
                    session = RuntimeSession(path, backend, threads)
                    out = session(feeds)['y']
                    diff = float(np.abs(out - ref.numpy()).max() /
                                 np.abs(ref.numpy()).max())
                    add(f'{backend}, {method}',
                        _median_ms(lambda: session(feeds), runs), count,
                        diff, nodes)
                    session = None  # free it before the next backend
    return list(rows.values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', type=int, default=640,
                        help='square input size of Mamba-YOLO-T')
    parser.add_argument('--methods', nargs='+',
                        default=['unrolled', 'loop-chunked'],
                        choices=EXPORT_METHODS)
    parser.add_argument('--backends', nargs='+',
                        default=['onnxruntime', 'openvino'],
                        choices=['onnxruntime', 'openvino'])
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    if args.shape % 32:
        parser.error(f'--shape must be a multiple of 32, got {args.shape}')
    torch.set_num_threads(args.threads)
    rows = benchmark(args.shape, args.methods, args.backends, args.runs,
                     args.threads)
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from get_flops import format_table
    print(format_table(
        ['scan', 'ms per forward (sum of calls)', 'ONNX nodes',
         'max rel diff vs chunked'],
        [[r['name'], f'{r["ms"]:.1f}', str(r['nodes'] or '-'),
          f'{r["diff"]:.1e}' if r['nodes'] else '-'] for r in rows]))
    print(f'Mamba-YOLO-T scan calls at {args.shape}x{args.shape}, batch 1, '
          f'{args.threads} threads, median of {args.runs} per call shape')
    return 0


if __name__ == '__main__':
    sys.exit(main())
