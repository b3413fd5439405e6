"""Train a model from a config (mmdet's ``tools/train.py`` flags).

Setting precedence: command line (``--work-dir``, ``--cfg-options``, ...)
> the config file > defaults (``./work_dirs/<config name>``).

Examples:
    python tools/train.py configs/det/yolov8_n_shapes.py
    python tools/train.py configs/det/yolov8_n_shapes.py --resume
    bash tools/dist_train.sh configs/det/yolov8_n_shapes.py 2
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from densekit.engine.config_setup import (PREFLIGHT_ERRORS,
                                          add_exact_resume_hook, apply_amp,
                                          preflight_message, prepare_config,
                                          resolve_resume)
from densekit.ops.mmcv_cuda_fallback import adapt_mmcv_ops


def parse_args():
    parser = argparse.ArgumentParser(description='Train a densekit model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: float16 AmpOptimWrapper on CUDA, '
        'bfloat16 autocast (densekit.CPUAutocastOptimWrapper) on CPUs with '
        'native bfloat16')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by actual / base batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint; without a path, from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, xxx=yyy format; each key '
        'must exist in the config (or be accepted by its parent type)')
    parser.add_argument(
        '--data-check', choices=['error', 'warn'], default='error',
        help='annotation faults mmdet survives (boxes it drops, missing '
        'image files): stop before training (error, default) or log them')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def preflight(args):
    """The config, checked and ready for the Runner; pre-flight errors
    (missing data, bad annotations, unknown keys, a corrupt checkpoint) are
    raised as :data:`PREFLIGHT_ERRORS`."""
    cfg = prepare_config(
        args.config, launcher=args.launcher, cfg_options=args.cfg_options,
        work_dir=args.work_dir, data_check=args.data_check)

    if args.amp:
        apply_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs `auto_scale_lr.'
                           'base_batch_size` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None:
        # --resume without a path: the work dir's last_checkpoint; a missing
        # one is said in one line and training starts from scratch
        cfg.resume = True
        cfg.load_from = resolve_resume(cfg, args.resume)
    add_exact_resume_hook(cfg)
    return cfg


def main():
    args = parse_args()
    # mmcv's kernels for CUDA tensors without its CUDA ops, and for CPU
    # bfloat16 (a no-op otherwise)
    adapt_mmcv_ops(low_precision_cpu=args.amp)
    try:
        cfg = preflight(args)
    except PREFLIGHT_ERRORS as e:  # a clear message needs no traceback
        print(preflight_message(e), file=sys.stderr)
        return 1

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    from densekit.datasets.transforms.loading import (ImageLoadError,
                                                      image_load_message)
    try:
        runner.train()
    except ImageLoadError as e:  # a validation image (training skips them)
        print(f'{type(e).__name__}: {image_load_message(e)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
