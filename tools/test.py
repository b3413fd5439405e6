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

from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from densekit.engine.config_setup import prepare_config  # noqa: E402
from densekit.ops.mmcv_cuda_fallback import adapt_mmcv_ops  # noqa: E402


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
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    adapt_mmcv_ops()  # a no-op unless mmcv lacks its CUDA ops
    cfg = prepare_config(
        args.config, launcher=args.launcher, cfg_options=args.cfg_options,
        work_dir=args.work_dir)
    cfg.load_from = args.checkpoint

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

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    if args.out is not None and not is_seg:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
