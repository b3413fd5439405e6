"""Where a model's CPU forward time goes: torch.profiler's top operators.

Builds the config's model (random weights unless ``--checkpoint``), runs
``--warmup`` untimed forwards, then profiles ``--runs`` forwards of
``model._forward`` (backbone, neck, head; no data preprocessor, decode or
NMS) and prints the ``--top`` operators by self CPU time as a table:
milliseconds per forward and share of the total. ``--variants`` profiles
the same model several ways in one run, interleaved:

* ``fused``: SS2D's fused C++ scan op (the CPU default);
* ``unfused``: SS2D's cross-scan + selective scan + cross-merge path;
* ``fuse-conv-bn``: ``fused`` with BatchNorms folded into the
  convolutions (``densekit.models.utils.fuse_conv_bn``, what the
  inferencers use).

Example:
    python tools/analysis/profile_ops.py configs/det/mamba_yolo_t_coco.py \\
        --shape 640 640 --threads 2 --variants unfused fused fuse-conv-bn
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from get_flops import build_model, load_config

VARIANTS = ('fused', 'unfused', 'fuse-conv-bn')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--shape', type=int, nargs=2, default=[640, 640])
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--top', type=int, default=10)
    parser.add_argument('--variants', nargs='+', choices=VARIANTS,
                        default=['fused'])
    return parser.parse_args(argv)


def set_variant(model: torch.nn.Module, variant: str) -> torch.nn.Module:
    """A copy of the model as ``variant`` runs it (every variant its own
    copy: they are profiled interleaved)."""
    import copy

    from densekit.models.layers import SS2D
    from densekit.models.utils.fuse_conv_bn import fuse_conv_bn
    model = copy.deepcopy(model).eval()
    if variant == 'fuse-conv-bn':
        fuse_conv_bn(model)
    for m in model.modules():
        if isinstance(m, SS2D):
            m.fused_scan = variant != 'unfused'
    return model


def profile_ops(model: torch.nn.Module, x: torch.Tensor, runs: int,
                warmup: int) -> Dict[str, float]:
    """Self CPU milliseconds per forward of every operator."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad():
        for _ in range(warmup):
            model._forward(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model._forward(x)
    return {
        e.key: e.self_cpu_time_total / 1e3 / runs
        for e in prof.key_averages()
    }


def format_table(name: str, ops: Dict[str, float], top: int) -> str:
    total = sum(ops.values())
    rows = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    lines = [f'{name}: {total:.0f} ms of operator self time per forward',
             '| operator | ms / forward | share |', '|---|---|---|']
    lines += [f'| {k} | {v:.1f} | {100 * v / total:.1f}% |' for k, v in rows]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    model = build_model(cfg)
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    x = torch.rand(1, 3, *args.shape)
    models = {v: set_variant(model, v) for v in args.variants}
    results: Dict[str, List[Dict[str, float]]] = {v: [] for v in models}
    for _ in range(2):  # interleaved: the machine's drift hits all alike
        for variant, m in models.items():
            results[variant].append(profile_ops(m, x, args.runs, args.warmup))
    for variant, runs in results.items():
        ops = {k: min(r.get(k, 0.0) for r in runs) for k in runs[0]}
        print(format_table(f'{osp.basename(args.config)} [{variant}], '
                           f'{args.shape[0]}x{args.shape[1]}, '
                           f'{torch.get_num_threads()} threads', ops,
                           args.top))
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
