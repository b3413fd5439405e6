"""CPU RoIAlign speed: densekit's kernel next to mmcv's ``roi_align``.

Times forward and backward (median of ``--repeats`` runs after
``--warmup``) of RoIAlign over four FPN levels (strides 4-32, 7 x 7 bins,
adaptive sampling, ``aligned=True``: mmdet's Faster R-CNN setting) with
RoIs spread over the levels as mmdet's ``SingleRoIExtractor`` maps them
(FPN Eq. 1: a RoI of side ~56 * 2**l px on level l). Cases:

* ``shapes``: densekit's shapes Faster R-CNN step, 8 images of 256 px,
  64-channel FPN, 512 RoIs (64 sampled per image);
* ``coco``: one 800 x 1216 COCO image, 256-channel FPN, 512 RoIs (mmdet's
  ``rcnn.sampler.num``).

Example:
    python tools/analysis/benchmark_roi_align.py --repeats 10
"""
import argparse
import sys
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

CASES: Dict[str, dict] = {
    'shapes': dict(batch=8, channels=64, height=256, width=256, rois=512),
    'coco': dict(batch=1, channels=256, height=800, width=1216, rois=512),
}
STRIDES = (4, 8, 16, 32)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES),
                        choices=list(CASES))
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.repeats < 3 or args.warmup < 0:
        parser.error('need --repeats >= 3 and --warmup >= 0')
    return args


def make_inputs(batch: int, channels: int, height: int, width: int,
                rois: int, seed: int = 0
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Per-level features ``(batch, channels, H / s, W / s)`` and RoIs
    ``(rois / 4, 5)`` sized for their level."""
    gen = torch.Generator().manual_seed(seed)
    feats, level_rois = [], []
    per_level = rois // len(STRIDES)
    for level, stride in enumerate(STRIDES):
        feats.append(torch.randn(batch, channels, height // stride,
                                 width // stride, generator=gen))
        side = 56 * 2**level * (0.5 + torch.rand(per_level, 1,
                                                  generator=gen))
        side = side.clamp(max=min(height, width))
        x1 = torch.rand(per_level, 1, generator=gen) * (width - side)
        y1 = torch.rand(per_level, 1, generator=gen) * (height - side)
        index = torch.randint(0, batch, (per_level, 1),
                              generator=gen).float()
        level_rois.append(torch.cat([index, x1, y1, x1 + side, y1 + side],
                                    1))
    return feats, level_rois


def time_op(fn: Callable, feats: List[torch.Tensor],
            rois: List[torch.Tensor], repeats: int,
            warmup: int) -> Tuple[float, float]:
    """Median forward and backward milliseconds over all levels."""
    forward, backward = [], []
    for i in range(warmup + repeats):
        inputs = [f.detach().requires_grad_() for f in feats]
        start = time.perf_counter()
        outs = [fn(x, r, 7, 1 / s, 0, 'avg', True)
                for x, r, s in zip(inputs, rois, STRIDES)]
        mid = time.perf_counter()
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
        end = time.perf_counter()
        if i >= warmup:
            forward.append(mid - start)
            backward.append(end - mid)
    return float(np.median(forward)) * 1e3, float(np.median(backward)) * 1e3


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmcv.ops import roi_align as mmcv_roi_align

    from densekit.ops.roi_align import roi_align, uses_cpu_kernel
    if not uses_cpu_kernel(torch.zeros(1, 1, 2, 2)):
        print('densekit._ext has no RoIAlign kernel: build it with '
              '`python setup.py build_ext --inplace`', file=sys.stderr)
        return 1
    print(f'{torch.get_num_threads()} threads, median of {args.repeats} '
          f'runs (ms, forward / backward over 4 FPN levels)')
    print('case   | setting                          | mmcv fwd | mmcv bwd '
          '| densekit fwd | densekit bwd | speed-up (fwd+bwd)')
    for name in args.cases:
        case = CASES[name]
        feats, rois = make_inputs(**case)
        ref = time_op(mmcv_roi_align, feats, rois, args.repeats,
                      args.warmup)
        ours = time_op(roi_align, feats, rois, args.repeats, args.warmup)
        setting = (f'{case["batch"]}x{case["channels"]}x{case["height"]}x'
                   f'{case["width"]}, {case["rois"]} RoIs')
        print(f'{name:6s} | {setting:32s} | {ref[0]:8.1f} | {ref[1]:8.1f} '
              f'| {ours[0]:12.1f} | {ours[1]:12.1f} | '
              f'{sum(ref) / sum(ours):.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
