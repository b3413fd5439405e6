"""Evaluate a checkpoint on a config's test set (mmdet's ``tools/test.py``).

Examples:
    python tools/test.py configs/det/yolov8_n_shapes.py \
        work_dirs/yolov8_n_shapes/epoch_30.pth --out preds.pkl --show-dir vis
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from densekit.engine.config_setup import (PREFLIGHT_ERRORS, preflight_message,
                                          prepare_config)
from densekit.ops.mmcv_cuda_fallback import adapt_mmcv_ops


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a densekit model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation logs')
    parser.add_argument(
        '--out', type=str,
        help='detection: dump predictions to a .pkl file (mmdet '
        'DumpDetResults); segmentation: a folder for the predicted label '
        'maps (PNG, as mmseg\'s tools/test.py)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory (relative to the work dir\'s timestamped folder) '
        'where painted images are saved')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, xxx=yyy format')
    parser.add_argument(
        '--no-strict', action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or reshaped keys keep their initial values); by default '
        'any mismatch stops with the first mismatching keys')
    parser.add_argument(
        '--fuse-conv-bn', action='store_true',
        help='fold BatchNorms into the convolutions before testing (same '
        'predictions to float round-off, faster)')
    parser.add_argument(
        '--unreadable-as-empty', action='store_true',
        help='score a test image that cannot be read as an image with no '
        'detections and list such images at the end (detection); by '
        'default the first one stops the test, naming the file')
    parser.add_argument(
        '--data-check', choices=['error', 'warn'], default='error',
        help='annotation faults mmdet survives (boxes it drops, missing '
        'image files): stop before testing (error, default) or log them')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def preflight(args):
    """The checked config (pre-flight errors raised as
    :data:`PREFLIGHT_ERRORS`)."""
    from densekit.utils.checkpoint_check import check_checkpoint_file
    check_checkpoint_file(args.checkpoint)
    cfg = prepare_config(
        args.config, launcher=args.launcher, cfg_options=args.cfg_options,
        work_dir=args.work_dir, data_check=args.data_check,
        classes_from='test_dataloader',
        unreadable='empty' if args.unreadable_as_empty else 'raise')
    cfg.load_from = args.checkpoint
    if args.fuse_conv_bn:
        cfg.setdefault('custom_hooks', []).append(
            dict(type='densekit.FuseConvBNHook'))

    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise KeyError('--show/--show-dir need '
                           '`default_hooks.visualization` in the config')
        hook['draw'] = True
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            hook['test_out_dir'] = args.show_dir

    is_seg = cfg.get('default_scope') == 'mmseg'
    if args.out is not None and is_seg:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if args.out is not None and not is_seg and \
            not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out}')
    return cfg, is_seg


def main():
    args = parse_args()
    adapt_mmcv_ops()  # a no-op unless mmcv lacks its CUDA ops
    try:
        cfg, is_seg = preflight(args)
    except PREFLIGHT_ERRORS as e:  # a clear message needs no traceback
        print(preflight_message(e), file=sys.stderr)
        return 1

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    from densekit.utils.checkpoint_check import (CheckpointError,
                                                 check_weights_fit)
    model = getattr(runner.model, 'module', runner.model)
    try:  # mmengine loads non-strictly: check the fit first
        check_weights_fit(model, args.checkpoint, strict=not args.no_strict,
                          config=args.config)
    except CheckpointError as e:
        print(preflight_message(e), file=sys.stderr)
        return 1
    if args.out is not None and not is_seg:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    from densekit.datasets.transforms.loading import (ImageLoadError,
                                                      image_load_message)
    try:
        runner.test()
    except ImageLoadError as e:
        print(f'{type(e).__name__}: {image_load_message(e)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
