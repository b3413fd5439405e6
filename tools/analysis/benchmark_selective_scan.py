"""Time densekit's selective scans against the sequential reference loop.

For each sequence length L the script times, on CPU, in float32:

* ``cpp-cpu``: :func:`densekit.models.layers.selective_scan_cpp`, the C++
  kernel (listed when ``densekit._ext`` is built);
* ``chunked``: :func:`densekit.models.layers.selective_scan_chunked`;
* ``reference``: the loop over L of mamba's ``selective_scan_ref``
  (:func:`densekit.models.layers.selective_scan.selective_scan_ref`);
* ``triton``: :func:`densekit.ops.selective_scan_triton.selective_scan_triton`
  with ``--triton`` (needs ``triton``), run by Triton's interpreter
  (``TRITON_INTERPRET=1``) on the CPU: a correctness check, far slower than
  the others and no speed figure (use small ``--lengths``/``--dim``).

``forward`` runs under ``torch.no_grad()``; ``fwd+bwd`` is the forward with
every input requiring grad plus ``y.backward(dy)``. Each (implementation, L)
runs in a fresh spawned process; "peak RSS" is how far the process's resident
memory rose above its level before the first call (``VmHWM`` after resetting
it through ``/proc/self/clear_refs``; ``ru_maxrss`` growth elsewhere).

Inputs follow Mamba's initialisation: ``A = -[1..N]`` per channel,
``delta = softplus(x + bias)`` with the bias giving steps log-uniform in
[1e-3, 1e-1]. ``--a-scale`` multiplies A to stress large ``|A| * delta``.

Defaults are Mamba-YOLO-T's stride-8 and stride-4 maps at 320 and 640
(L = 40 x 40 = 1600 and 80 x 80 = 6400), B=1, D=192, N=16, G=1.

Examples:
    python tools/analysis/benchmark_selective_scan.py
    python tools/analysis/benchmark_selective_scan.py --lengths 1600 \\
        --threads 1 --runs 10 --a-scale 100
    python tools/analysis/benchmark_selective_scan.py --triton \\
        --lengths 256 --dim 16
"""
import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from terminaltables import AsciiTable

from densekit.models.layers import selective_scan_chunked, selective_scan_cpp
from densekit.models.layers.selective_scan import selective_scan_ref
from densekit.ops import load_ext
from densekit.ops.selective_scan_triton import (selective_scan_triton,
                                                triton_available)

IMPLEMENTATIONS = dict(chunked=selective_scan_chunked,
                       reference=selective_scan_ref)
if load_ext()[0] is not None:
    IMPLEMENTATIONS = {'cpp-cpu': selective_scan_cpp, **IMPLEMENTATIONS}
IMPLEMENTATIONS['triton'] = selective_scan_triton  # timed only with --triton


def make_inputs(batch: int, dim: int, state: int, groups: int, length: int,
                a_scale: float = 1.0, seed: int = 0) -> dict:
    """Mamba-initialised float32 inputs (keyword arguments of the scan)."""
    gen = torch.Generator().manual_seed(seed)
    dt = torch.exp(
        torch.rand(dim, generator=gen) * (np.log(0.1) - np.log(1e-3)) +
        np.log(1e-3))
    return dict(
        u=torch.randn(batch, dim, length, generator=gen),
        delta=0.5 * torch.randn(batch, dim, length, generator=gen),
        A=-a_scale * torch.arange(1, state + 1.).repeat(dim, 1),
        B=torch.randn(batch, groups, state, length, generator=gen),
        C=torch.randn(batch, groups, state, length, generator=gen),
        D=torch.ones(dim),
        delta_bias=dt + torch.log(-torch.expm1(-dt)),  # softplus^-1(dt)
        delta_softplus=True)


def time_ms(fn: Callable[[], object], warmup: int, runs: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def _rss_kib(field: str) -> Optional[int]:
    """``VmRSS`` / ``VmHWM`` (peak) of this process in KiB (Linux only)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Make ``VmHWM`` restart from the current RSS (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _case(impl: str, shape: dict, a_scale: float, warmup: int, runs: int,
          threads: int) -> dict:
    """One implementation at one shape; runs in its own process."""
    torch.set_num_threads(threads)
    inputs = make_inputs(**shape, a_scale=a_scale)
    grad_y = torch.randn(shape['batch'], shape['dim'], shape['length'])
    # peak RSS growth over the timings: VmHWM reset to the current RSS where
    # the kernel allows it, else growth of ru_maxrss (which misses peaks
    # lower than the one left by importing torch)
    if _reset_peak_rss() and _rss_kib('VmRSS') is not None:
        rss0, peak = _rss_kib('VmRSS'), lambda: _rss_kib('VmHWM')
    else:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = lambda: resource.getrusage(  # noqa: E731
            resource.RUSAGE_SELF).ru_maxrss
    fn = IMPLEMENTATIONS[impl]
    with torch.no_grad():
        fwd = time_ms(lambda: fn(**inputs), warmup, runs)

    def fwd_bwd():
        args = {
            k: v.detach().requires_grad_() if torch.is_tensor(v) else v
            for k, v in inputs.items()
        }
        fn(**args).backward(grad_y)

    both = time_ms(fwd_bwd, warmup, runs)
    return dict(fwd=fwd, both=both, rss_mib=(peak() - rss0) / 1024)


def max_abs_diff(impl: str, shape: dict, a_scale: float) -> float:
    inputs = make_inputs(**shape, a_scale=a_scale)
    with torch.no_grad():
        ours = IMPLEMENTATIONS[impl](**inputs)
        ref = selective_scan_ref(**inputs)
    return (ours - ref).abs().max().item()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Selective scans vs the sequential reference')
    parser.add_argument('--lengths', type=int, nargs='+',
                        default=[1600, 6400], help='sequence lengths L')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--dim', type=int, default=192, help='channels D')
    parser.add_argument('--state', type=int, default=16, help='state N')
    parser.add_argument('--groups', type=int, default=1, help='B/C groups G')
    parser.add_argument(
        '--a-scale', type=float, default=1.0,
        help='multiply A = -[1..N] (e.g. 100 for |A| * delta up to ~1000)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2,
                        help='torch.set_num_threads. Defaults to 2')
    parser.add_argument(
        '--triton', action='store_true',
        help='add the Triton kernels, run by the interpreter on the CPU '
        '(correctness only)')
    args = parser.parse_args(argv)
    if args.triton:
        # before anything imports triton (spawned cases inherit it)
        os.environ['TRITON_INTERPRET'] = '1'
        if not triton_available():
            parser.error('--triton needs triton (`pip install triton`)')
    if args.runs < 5 or args.warmup < 1:
        parser.error(f'need --runs >= 5 and --warmup >= 1 for a median and '
                     f'p90, got --runs {args.runs} --warmup {args.warmup}')
    if args.threads < 1 or args.dim % args.groups:
        parser.error(f'need --threads >= 1 and --groups dividing --dim, got '
                     f'--threads {args.threads} --dim {args.dim} --groups '
                     f'{args.groups}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    header = [
        'L', 'impl', 'fwd median', 'fwd p90', 'fwd+bwd median',
        'fwd+bwd p90', 'speed-up fwd', 'speed-up fwd+bwd', 'peak RSS MiB',
        'max |y - y_ref|'
    ]
    rows = []
    impls = [i for i in IMPLEMENTATIONS if i != 'triton' or args.triton]
    ctx = mp.get_context('spawn')
    for length in args.lengths:
        shape = dict(batch=args.batch, dim=args.dim, state=args.state,
                     groups=args.groups, length=length)
        results = {}
        for impl in impls:
            with ctx.Pool(1) as pool:
                results[impl] = pool.apply(
                    _case, (impl, shape, args.a_scale, args.warmup,
                            args.runs, args.threads))
        ref = results['reference']
        for impl, res in results.items():
            rows.append([
                str(length), impl, f'{np.median(res["fwd"]):.1f}',
                f'{np.percentile(res["fwd"], 90):.1f}',
                f'{np.median(res["both"]):.1f}',
                f'{np.percentile(res["both"], 90):.1f}',
                f'{np.median(ref["fwd"]) / np.median(res["fwd"]):.1f}x',
                f'{np.median(ref["both"]) / np.median(res["both"]):.1f}x',
                f'{res["rss_mib"]:.0f}',
                '-' if impl == 'reference' else
                f'{max_abs_diff(impl, shape, args.a_scale):.2e}'
            ])
    table = AsciiTable([header] + rows)
    for i in range(2, len(header)):
        table.justify_columns[i] = 'right'
    print(table.table)
    print(f'ms, median / p90 of {args.runs} runs after {args.warmup} '
          f'warm-up; float32, cpu x{args.threads}, B={args.batch}, '
          f'D={args.dim}, N={args.state}, G={args.groups}, A scale '
          f'{args.a_scale:g}. Peak RSS: growth of a fresh process\'s resident '
          'memory over both timings (outputs, work buffers, autograd graph; '
          'inputs excluded).')
    if args.triton:
        print('triton: run by Triton\'s interpreter on the CPU '
              '(TRITON_INTERPRET=1), for correctness only: its times are '
              'not a speed figure (time it on a GPU)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
