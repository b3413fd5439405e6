"""Learning benchmark: YOLOv8-n on the synthetic shapes set on this machine.

Generates the data if missing, trains ``configs/det/yolov8_n_shapes.py``
through ``tools/train.py`` (wall-clock timed), evaluates the final checkpoint
through ``tools/test.py`` (pycocotools COCO bbox AP), prints a table and exits
non-zero when the targets are missed (default: mAP@0.5 >= 0.50 within 15 min
of training).

Example:
    python tools/analysis/learning_benchmark.py --work-dir work_dirs/bench
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRIC_RE = re.compile(r'coco/bbox_mAP(_50|_75)?: ([0-9.]+)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config', default='configs/det/yolov8_n_shapes.py')
    parser.add_argument('--work-dir', default='work_dirs/learning_benchmark')
    parser.add_argument('--data-root', default='data/synthetic_shapes')
    parser.add_argument('--max-train-minutes', type=float, default=15.0)
    parser.add_argument('--min-map50', type=float, default=0.50)
    parser.add_argument(
        '--cfg-options', nargs='*', default=[],
        help='forwarded to tools/train.py and tools/test.py')
    return parser.parse_args(argv)


def run(cmd, log_path):
    """Run ``cmd`` from the repo root, tee its output to ``log_path``."""
    print('$', ' '.join(cmd), flush=True)
    with open(log_path, 'w') as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit(f'{cmd[1]} failed (exit {proc.returncode}); '
                         f'log: {log_path}')
    return proc.stdout


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    py = sys.executable
    run([py, 'tools/data/make_synthetic.py', 'shapes', '--out',
         args.data_root], osp.join(ROOT, args.work_dir, 'data.log'))
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options \
        else []

    start = time.perf_counter()
    run([py, 'tools/train.py', args.config, '--work-dir', args.work_dir,
         *options], osp.join(ROOT, args.work_dir, 'train.log'))
    train_minutes = (time.perf_counter() - start) / 60

    with open(osp.join(ROOT, args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out = run([py, 'tools/test.py', args.config, checkpoint, '--work-dir',
               args.work_dir, *options],
              osp.join(ROOT, args.work_dir, 'test.log'))
    metrics = {('mAP' + (m[0] or '')): float(m[1])
               for m in METRIC_RE.findall(out)}
    if 'mAP_50' not in metrics:
        raise SystemExit('tools/test.py printed no coco/bbox_mAP_50')

    ok_time = train_minutes <= args.max_train_minutes
    ok_map = metrics['mAP_50'] >= args.min_map50
    rows = [
        ('config', args.config),
        ('CPU cores', str(os.cpu_count())),
        ('train wall-clock (min)',
         f'{train_minutes:.1f} (target <= {args.max_train_minutes:g})'),
        ('checkpoint', checkpoint),
        ('COCO bbox mAP@0.5', f"{metrics['mAP_50']:.3f} "
         f'(target >= {args.min_map50:.2f})'),
        ('COCO bbox mAP@[.5:.95]', f"{metrics.get('mAP', float('nan')):.3f}"),
        ('COCO bbox mAP@0.75', f"{metrics.get('mAP_75', float('nan')):.3f}"),
        ('result', 'PASS' if ok_time and ok_map else 'FAIL'),
    ]
    width = max(len(k) for k, _ in rows)
    print('\n'.join(f'{k:<{width}} | {v}' for k, v in rows))
    return 0 if ok_time and ok_map else 1


if __name__ == '__main__':
    sys.exit(main())
