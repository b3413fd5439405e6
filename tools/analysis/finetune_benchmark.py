"""Fine-tuning benchmark: from a densekit checkpoint of other classes vs
from scratch, on the same budget.

1. pretrain YOLOv8-n from scratch on a subset of the synthetic shapes'
   classes (``--pretrain-classes``, default circle and square: the other
   shapes are unlabelled background there) for ``--pretrain-epochs``;
2. fine-tune ``configs/det/yolov8_n_finetune_example.py`` on all 4 classes
   with ``load_from`` = that checkpoint (the head's class layers are
   re-initialised: the run's WARNING line is printed);
3. train the same config, same schedule and seed, with ``load_from=None``
   (all three runs on the first ``--num-train-images`` training images);
4. evaluate each final checkpoint with ``tools/test.py`` (COCO bbox AP on
   the val set of its classes) and print a table of iterations, training
   minutes and AP.

Runs go through ``tools/train.py`` / ``tools/test.py`` in subprocesses
(``--cfg-options`` forwarded to all three trainings); the synthetic set is
generated when missing.

Examples:
    python tools/analysis/finetune_benchmark.py \
        --work-dir work_dirs/finetune_benchmark
    # reuse a pretraining run
    python tools/analysis/finetune_benchmark.py --pretrained \
        work_dirs/finetune_benchmark/pretrain/epoch_3.pth
"""
import argparse
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/det/yolov8_n_finetune_example.py'
METRIC_RE = re.compile(r'coco/bbox_mAP(_50|_75)?: ([0-9.]+)')
REINIT_RE = re.compile(r'YOLOv8Head \(bbox_head\): the checkpoint predicts.*')
CLASSES = ('circle', 'square', 'triangle', 'star')
PALETTE = [(220, 20, 60), (0, 114, 189), (0, 166, 81), (237, 177, 32)]

# the pretraining run: yolov8_n_shapes.py on a class subset, its own epochs
PRETRAIN_CONFIG = '''
_base_ = '{root}/configs/det/yolov8_n_shapes.py'
data_root = '{data_root}/'
metainfo = dict(classes={classes!r}, palette={palette!r})
model = dict(bbox_head=dict(num_classes={num_classes}))
train_dataloader = dict(dataset=dict(dataset=dict(
    data_root=data_root, metainfo=metainfo)))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
max_epochs = {epochs}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', eta_min=0.002 * 0.05, by_epoch=True,
         begin=1, end=max_epochs, T_max=max_epochs - 1,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001,
         update_buffers=True, strict_load=False, priority=49),
    dict(type='densekit.CloseMosaicHook', num_last_epochs=1),
]
'''
# fine-tuning / from scratch: the example config on the chosen data root
RUN_CONFIG = '''
_base_ = '{root}/{config}'
data_root = '{data_root}/'
train_dataloader = dict(dataset=dict(dataset=dict(data_root=data_root)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
'''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/finetune_benchmark')
    parser.add_argument('--data-root', default='data/synthetic_shapes')
    parser.add_argument('--pretrain-classes', nargs='+',
                        default=['circle', 'square'], choices=CLASSES)
    parser.add_argument('--pretrain-epochs', type=int, default=3)
    parser.add_argument(
        '--num-train-images', type=int, default=1000,
        help='train every run on the first N training images (0: all), '
        'which sets the iterations per epoch (N / 16). Defaults to 1000')
    parser.add_argument(
        '--pretrained',
        help='skip step 1: fine-tune from this densekit checkpoint')
    parser.add_argument(
        '--cfg-options', nargs='*', default=[],
        help='forwarded to the three tools/train.py runs (e.g. a shorter '
        'schedule for a smoke test)')
    return parser.parse_args(argv)


def run(args, log_path):
    """A repo script in a subprocess, its output to ``log_path``; returns
    (output, seconds)."""
    start = time.time()
    res = subprocess.run([sys.executable, *args], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    seconds = time.time() - start
    with open(log_path, 'w') as f:
        f.write(res.stdout)
    if res.returncode != 0:
        raise RuntimeError(f'{" ".join(args)} failed (exit '
                           f'{res.returncode}); log: {log_path}\n'
                           + res.stdout[-3000:])
    return res.stdout, seconds


def train(config, work_dir, cfg_options):
    """Train through tools/train.py; (final checkpoint, minutes,
    iterations, output)."""
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    out, seconds = run(['tools/train.py', config, '--work-dir', work_dir,
                        *options], osp.join(work_dir, 'train_output.log'))
    last = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')),
                  key=lambda p: int(re.findall(r'epoch_(\d+)', p)[-1]))[-1]
    # mmengine's "Epoch(train)  [1][ 10/125]": iterations per epoch
    iters = re.findall(r'Epoch\(train\)\s+\[\d+\]\[\s*\d+/(\d+)\]', out)
    epochs = int(re.findall(r'epoch_(\d+)', last)[-1])
    per_epoch = int(iters[-1]) if iters else 0
    return last, seconds / 60, per_epoch * epochs, out


def evaluate(config, checkpoint, work_dir):
    out, _ = run(['tools/test.py', config, checkpoint, '--work-dir',
                  work_dir], osp.join(work_dir, 'test_output.log'))
    found = {key: float(value) for key, value in METRIC_RE.findall(out)}
    return found.get('_50'), found.get('')


def main(argv=None) -> int:
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.abspath(osp.join(ROOT, args.data_root))
    if not osp.isfile(osp.join(data_root, 'annotations',
                               'instances_train.json')):
        run(['tools/data/make_synthetic.py', 'shapes', '--out', data_root],
            osp.join(work_dir + '_make_synthetic.log'))
    subset = [f'train_dataloader.dataset.dataset.indices='
              f'{args.num_train_images}'] if args.num_train_images else []
    cfg_options = subset + list(args.cfg_options)
    rows = []
    if args.pretrained:
        pretrained = osp.abspath(args.pretrained)
    else:
        folder = osp.join(work_dir, 'pretrain')
        os.makedirs(folder, exist_ok=True)
        classes = tuple(args.pretrain_classes)
        config = osp.join(folder, 'pretrain_config.py')
        with open(config, 'w') as f:
            f.write(PRETRAIN_CONFIG.format(
                root=ROOT, data_root=data_root, classes=classes,
                palette=[PALETTE[CLASSES.index(c)] for c in classes],
                num_classes=len(classes), epochs=args.pretrain_epochs))
        pretrained, minutes, iters, _ = train(config, folder, cfg_options)
        map50, map_ = evaluate(config, pretrained, folder)
        rows.append((f'pretrain ({len(classes)} classes: '
                     f'{", ".join(classes)})', 'random init', iters, minutes,
                     map50, map_))
    config = osp.join(work_dir, 'run_config.py')
    os.makedirs(work_dir, exist_ok=True)
    with open(config, 'w') as f:
        f.write(RUN_CONFIG.format(root=ROOT, config=CONFIG,
                                  data_root=data_root))
    reinit = None
    for name, load_from in (('fine-tune (4 classes)', pretrained),
                            ('from scratch (4 classes)', None)):
        folder = osp.join(work_dir, 'finetune' if load_from else 'scratch')
        os.makedirs(folder, exist_ok=True)
        checkpoint, minutes, iters, out = train(
            config, folder, [f'load_from={load_from}', *cfg_options])
        if load_from:
            match = REINIT_RE.search(out)
            reinit = match.group(0) if match else None
        map50, map_ = evaluate(config, checkpoint, folder)
        rows.append((name, 'pretrain checkpoint' if load_from else
                     'random init', iters, minutes, map50, map_))
    header = ('run', 'init', 'train iters', 'train min', 'mAP@0.5',
              'mAP@[.5:.95]')
    table = [header] + [(r[0], r[1], str(r[2]), f'{r[3]:.1f}',
                         'n/a' if r[4] is None else f'{r[4]:.3f}',
                         'n/a' if r[5] is None else f'{r[5]:.3f}')
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(' | '.join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print('-|-'.join('-' * w for w in widths))
    print(f'config: {CONFIG} (load_from set / None), data: {data_root} '
          f'(first {args.num_train_images or "all"} training images, all '
          f'val images), CPU cores: {os.cpu_count()}; train min = '
          'tools/train.py wall clock (start-up and the final validation '
          'included)')
    print(f'load_from log line: {reinit}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
