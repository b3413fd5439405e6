"""Learning benchmark: a model trained on the synthetic set on this machine.

Generates the data if missing, trains the config through ``tools/train.py``
(wall-clock timed), evaluates the final checkpoint through ``tools/test.py``,
prints a table and exits non-zero when the targets are missed:

* detection configs (``default_scope='mmdet'``, default
  ``configs/det/yolov8_n_shapes.py``): the synthetic shapes set, pycocotools
  COCO bbox AP, target ``--min-map50`` (default 0.50);
* segmentation configs (``default_scope='mmseg'``): the synthetic shapes
  segmentation set, mmseg's IoUMetric, target ``--min-miou`` (default 0.70);
* medical segmentation configs (an mmseg config whose evaluator is
  ``densekit.VolumeSegMetric``, e.g. ``configs/medseg/unet_phantom.py``):
  the synthetic phantom-organ CT, per-volume Dice / HD95 over the organs,
  target ``--min-dice`` (default 0.80);
* anomaly-detection configs (``default_scope='densekit'``, e.g.
  ``configs/anomaly/efficientad_s_synthetic.py``): the synthetic texture-
  defect set, densekit's AnomalyMetric, targets ``--min-image-auroc`` and
  ``--min-pixel-auroc`` (default 0.95 each);

all within ``--max-train-minutes`` (default 15) of training.

Examples:
    python tools/analysis/learning_benchmark.py --work-dir work_dirs/bench
    python tools/analysis/learning_benchmark.py \
        --config configs/seg/upernet_yolov8-n_shapes.py
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
# mmseg's IoUMetric logs percentages: "mIoU: 85.1200  mAcc: ...  aAcc: ..."
SEG_METRIC_RE = re.compile(r'\b(aAcc|mIoU|mAcc): ([0-9.]+)')
# task -> (make_synthetic.py task, default data root)
SYNTHETIC = dict(det=('shapes', 'data/synthetic_shapes'),
                 seg=('shapes_seg', 'data/synthetic_shapes_seg'),
                 anomaly=('anomaly', 'data/synthetic_anomaly'),
                 medseg=('phantom', 'data/synthetic_phantom'))
# densekit.AnomalyMetric: "anomaly/image_AUROC: 0.9912" (fractions)
ANOMALY_METRIC_RE = re.compile(
    r'anomaly/(image_AUROC|pixel_AUROC|AU-PRO|image_F1max): ([0-9.]+)')
# densekit.VolumeSegMetric: "volume/mDice: 0.8312  volume/mHD95: 3.1000"
VOLUME_METRIC_RE = re.compile(r'volume/(mDice|mHD95): ([0-9.]+|nan)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config', default='configs/det/yolov8_n_shapes.py')
    parser.add_argument('--work-dir', default='work_dirs/learning_benchmark')
    parser.add_argument(
        '--data-root', default=None,
        help='synthetic data folder (default: data/synthetic_shapes, or '
        'data/synthetic_shapes_seg for segmentation configs)')
    parser.add_argument('--max-train-minutes', type=float, default=15.0)
    parser.add_argument('--min-map50', type=float, default=0.50,
                        help='detection target')
    parser.add_argument('--min-miou', type=float, default=0.70,
                        help='segmentation target (fraction, not percent)')
    parser.add_argument('--min-dice', type=float, default=0.80,
                        help='medical segmentation target (mean Dice over '
                        'the organs, fraction)')
    parser.add_argument('--min-image-auroc', type=float, default=0.95,
                        help='anomaly-detection target')
    parser.add_argument('--min-pixel-auroc', type=float, default=0.95,
                        help='anomaly-detection target')
    parser.add_argument(
        '--amp', action='store_true',
        help='train with tools/train.py --amp (bfloat16 autocast on CPUs '
        'that have it)')
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


def config_task(config: str) -> str:
    """``'medseg'`` for mmseg-scoped configs evaluated per volume
    (``densekit.VolumeSegMetric``), ``'seg'`` for other mmseg-scoped configs,
    ``'anomaly'`` for densekit-scoped ones, else ``'det'``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    scope = cfg.get('default_scope')
    if scope == 'mmseg' and 'VolumeSegMetric' in str(
            cfg.get('test_evaluator', {}).get('type', '')):
        return 'medseg'
    return {'mmseg': 'seg', 'densekit': 'anomaly'}.get(scope, 'det')


def read_metrics(task: str, out: str) -> dict:
    """The final metrics tools/test.py printed, as fractions."""
    if task == 'det':
        metrics = {('mAP' + (m[0] or '')): float(m[1])
                   for m in METRIC_RE.findall(out)}
        if 'mAP_50' not in metrics:
            raise SystemExit('tools/test.py printed no coco/bbox_mAP_50')
    elif task == 'medseg':
        metrics = {k: float(v) for k, v in VOLUME_METRIC_RE.findall(out)}
        if 'mDice' not in metrics:
            raise SystemExit('tools/test.py printed no volume/mDice')
    elif task == 'anomaly':
        metrics = {k: float(v) for k, v in ANOMALY_METRIC_RE.findall(out)}
        if 'image_AUROC' not in metrics or 'pixel_AUROC' not in metrics:
            raise SystemExit('tools/test.py printed no anomaly/image_AUROC '
                             'and anomaly/pixel_AUROC')
    else:
        metrics = {k: float(v) / 100 for k, v in SEG_METRIC_RE.findall(out)}
        if 'mIoU' not in metrics:
            raise SystemExit('tools/test.py printed no mIoU')
    return metrics


def main(argv=None):
    args = parse_args(argv)
    task = config_task(args.config)
    synthetic_task, default_root = SYNTHETIC[task]
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    py = sys.executable
    run([py, 'tools/data/make_synthetic.py', synthetic_task, '--out',
         args.data_root or default_root],
        osp.join(ROOT, args.work_dir, 'data.log'))
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options \
        else []

    start = time.perf_counter()
    amp = ['--amp'] if args.amp else []
    run([py, 'tools/train.py', args.config, '--work-dir', args.work_dir,
         *amp, *options], osp.join(ROOT, args.work_dir, 'train.log'))
    train_minutes = (time.perf_counter() - start) / 60

    with open(osp.join(ROOT, args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out = run([py, 'tools/test.py', args.config, checkpoint, '--work-dir',
               args.work_dir, *options],
              osp.join(ROOT, args.work_dir, 'test.log'))
    metrics = read_metrics(task, out)

    ok_time = train_minutes <= args.max_train_minutes
    rows = [
        ('config', args.config + (' (--amp)' if args.amp else '')),
        ('CPU cores', str(os.cpu_count())),
        ('train wall-clock (min)',
         f'{train_minutes:.1f} (target <= {args.max_train_minutes:g})'),
        ('checkpoint', checkpoint),
    ]
    if task == 'det':
        ok_score = metrics['mAP_50'] >= args.min_map50
        rows += [
            ('COCO bbox mAP@0.5', f"{metrics['mAP_50']:.3f} "
             f'(target >= {args.min_map50:.2f})'),
            ('COCO bbox mAP@[.5:.95]',
             f"{metrics.get('mAP', float('nan')):.3f}"),
            ('COCO bbox mAP@0.75',
             f"{metrics.get('mAP_75', float('nan')):.3f}"),
        ]
    elif task == 'anomaly':
        ok_score = (metrics['image_AUROC'] >= args.min_image_auroc
                    and metrics['pixel_AUROC'] >= args.min_pixel_auroc)
        rows += [
            ('image AUROC', f"{metrics['image_AUROC']:.3f} (target >= "
             f'{args.min_image_auroc:.2f})'),
            ('pixel AUROC', f"{metrics['pixel_AUROC']:.3f} (target >= "
             f'{args.min_pixel_auroc:.2f})'),
            ('AU-PRO (FPR <= 0.3)',
             f"{metrics.get('AU-PRO', float('nan')):.3f}"),
            ('image F1-max',
             f"{metrics.get('image_F1max', float('nan')):.3f}"),
        ]
    elif task == 'medseg':
        ok_score = metrics['mDice'] >= args.min_dice
        rows += [
            ('mean Dice (organs, per volume)', f"{metrics['mDice']:.3f} "
             f'(target >= {args.min_dice:.2f})'),
            ('mean HD95', f"{metrics.get('mHD95', float('nan')):.2f} "
             '(mm when the volumes carry a spacing)'),
        ]
        per_class = re.findall(r'volume/Dice/(\w+): ([0-9.]+|nan)', out)
        rows += [(f'Dice {name}', f'{float(v):.3f}')
                 for name, v in per_class]
    else:
        ok_score = metrics['mIoU'] >= args.min_miou
        rows += [
            ('mIoU', f"{metrics['mIoU']:.3f} (target >= "
             f'{args.min_miou:.2f})'),
            ('mAcc', f"{metrics.get('mAcc', float('nan')):.3f}"),
            ('aAcc', f"{metrics.get('aAcc', float('nan')):.3f}"),
        ]
    rows.append(('result', 'PASS' if ok_time and ok_score else 'FAIL'))
    width = max(len(k) for k, _ in rows)
    print('\n'.join(f'{k:<{width}} | {v}' for k, v in rows))
    return 0 if ok_time and ok_score else 1


if __name__ == '__main__':
    sys.exit(main())
