"""Plug-in learning benchmark: a detection plug-in next to its plain detector.

Trains each config of a pair on the synthetic shapes set through
``tools/train.py`` (wall-clock timed), evaluates the final checkpoint with
``tools/test.py`` (pycocotools bbox AP), and prints one table. The two
configs of a pair share backbone, data and schedule; only the plug-in
differs:

* ``retinanet``:    RetinaNet       vs RetinaNet-BVR (RelationNet++)
* ``faster-rcnn``:  Faster R-CNN    vs CBNetV2 (Dual-ResNet-50) Faster R-CNN
* ``faster-rcnn-bvr``: Faster R-CNN vs Faster R-CNN-BVR (not run by default)

The minutes are training only: in-training validation is switched off
(``train_cfg.val_begin`` past the schedule) and ``tools/test.py`` evaluates
the last checkpoint afterwards.

A plug-in costs time, so the plain detector is compared twice: on the same
schedule (same epochs), and, with ``--same-time``, trained for as many
epochs as fit in the plug-in's training minutes (its schedule lengthened:
``train_cfg.max_epochs`` and the cosine decay ``param_scheduler.1``). A
pair passes when the plug-in reaches ``--min-map50`` (default 0.40) within
``--max-train-minutes`` (default 15) of training and at least matches every
plain run's mAP@0.5 (less ``--tolerance``, default 0). Exits non-zero when
a pair fails. With ``--seeds 0 1 ...`` every config is trained once per
seed and judged by its mean mAP@0.5 (per-seed values in the table) and its
slowest run.

Examples:
    python tools/analysis/plugin_benchmark.py --same-time
    python tools/analysis/plugin_benchmark.py --pairs retinanet \
        --work-dir work_dirs/plugin_benchmark
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import learning_benchmark

# name -> (plain config, plug-in config, plug-in name)
PAIRS = {
    'retinanet': ('configs/det/retinanet_r50_fpn_shapes.py',
                  'configs/det/bvr_retinanet_r50_fpn_shapes.py', 'BVR'),
    'faster-rcnn': ('configs/det/faster-rcnn_r50_fpn_shapes.py',
                    'configs/det/faster-rcnn_cbv2-r50_fpn_shapes.py',
                    'CBNetV2'),
    'faster-rcnn-bvr': ('configs/det/faster-rcnn_r50_fpn_shapes.py',
                        'configs/det/bvr_faster-rcnn_r50_fpn_shapes.py',
                        'BVR'),
}
DEFAULT_PAIRS = ('retinanet', 'faster-rcnn')
# training runs skip in-training validation: the minutes are training only
TRAIN_ONLY = ['train_cfg.val_begin=1000000']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pairs', nargs='+', default=list(DEFAULT_PAIRS),
                        choices=sorted(PAIRS))
    parser.add_argument('--work-dir', default='work_dirs/plugin_benchmark')
    parser.add_argument('--data-root', default='data/synthetic_shapes')
    parser.add_argument('--max-train-minutes', type=float, default=15.0)
    parser.add_argument('--min-map50', type=float, default=0.40)
    parser.add_argument('--tolerance', type=float, default=0.0,
                        help='the plug-in may trail the plain detector by '
                        'this much mAP@0.5')
    parser.add_argument('--same-time', action='store_true',
                        help='also train the plain detector for the '
                        "plug-in's training minutes (more epochs)")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='train every config once per seed '
                        '(randomness.seed); mAP is the mean over seeds, '
                        'the minutes the slowest run')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='forwarded to tools/train.py and tools/test.py '
                        'of every config')
    return parser.parse_args(argv)


def load_config(config: str, options: Sequence[str] = ()):
    """``config`` with ``key=value`` overrides (as --cfg-options)."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(osp.join(ROOT, config))
    if options:
        parsed = argparse.ArgumentParser()
        parsed.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parsed.parse_args(['--o', *options]).o)
    return cfg


def count_params(config: str) -> int:
    """Parameters of the config's model (built on CPU, no weights read)."""
    from mmengine.registry import init_default_scope

    import densekit  # noqa: F401  (registers densekit's modules)
    from densekit.registry import MODELS
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


def schedule_options(config: str, epochs: int,
                     options: Sequence[str] = ()) -> List[str]:
    """--cfg-options that lengthen ``config``'s epoch schedule to
    ``epochs``: the loop's ``max_epochs`` and the end of its cosine decay
    (``param_scheduler.1``, the shapes schedules' layout, checked)."""
    cfg = load_config(config, options)
    schedulers = cfg.get('param_scheduler') or []
    decay = schedulers[1] if len(schedulers) == 2 else None
    if decay is None or decay.get('type') != 'CosineAnnealingLR' or \
            not decay.get('by_epoch', True):
        raise ValueError(
            f'{config}: --same-time lengthens a schedule of [warm-up, '
            'CosineAnnealingLR by epoch] (param_scheduler.1); this config '
            f'has {[s.get("type") for s in schedulers]}')
    begin = int(decay.get('begin', 0))
    return [f'train_cfg.max_epochs={epochs}',
            f'param_scheduler.1.end={epochs}',
            f'param_scheduler.1.T_max={epochs - begin}']


def same_time_epochs(epochs: int, plain_minutes: float,
                     plugin_minutes: float) -> int:
    """Epochs of the plain detector that take the plug-in's training time
    (at least its own schedule)."""
    return max(epochs, round(epochs * plugin_minutes / plain_minutes))


def passes(plugin: dict, plains: Sequence[dict], args) -> bool:
    """The pair's criterion: the plug-in reaches ``args.min_map50`` within
    ``args.max_train_minutes`` and at least matches every plain run."""
    return (plugin['mAP_50'] >= args.min_map50
            and plugin['minutes'] <= args.max_train_minutes
            and all(plugin['mAP_50'] >= p['mAP_50'] - args.tolerance
                    for p in plains))


def train_and_test(bench, config: str, work_dir: str, options,
                   train_options=()) -> dict:
    """Train ``config`` into ``work_dir``, test its last checkpoint."""
    os.makedirs(osp.join(ROOT, work_dir), exist_ok=True)
    py = sys.executable
    train_cfg_options = ['--cfg-options', *options, *TRAIN_ONLY,
                         *train_options]
    start = time.perf_counter()
    bench.run([py, 'tools/train.py', config, '--work-dir', work_dir,
               *train_cfg_options], osp.join(ROOT, work_dir, 'train.log'))
    minutes = (time.perf_counter() - start) / 60
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    test_options = ['--cfg-options', *options] if options else []
    out = bench.run([py, 'tools/test.py', config, checkpoint, '--work-dir',
                     work_dir, *test_options],
                    osp.join(ROOT, work_dir, 'test.log'))
    epochs = int(load_config(config, [*options, *train_options])
                 .train_cfg.max_epochs)
    return dict(bench.read_metrics('det', out), minutes=minutes,
                params=count_params(config), epochs=epochs)


def over_seeds(bench, config: str, work_dir: str, options, seeds,
               train_options=()) -> dict:
    """:func:`train_and_test` once per seed (``randomness.seed``, work dir
    ``seed{S}``); returns the mean mAPs, the slowest run's minutes and the
    per-seed results (``runs``)."""
    runs = [train_and_test(bench, config, osp.join(work_dir, f'seed{seed}'),
                           [*options, f'randomness.seed={seed}'],
                           train_options) for seed in seeds]
    return summarize_seeds(runs)


def summarize_seeds(runs: Sequence[dict]) -> dict:
    """Mean ``mAP_50`` / ``mAP`` over the runs, the largest ``minutes``."""
    mean = {k: sum(r[k] for r in runs) / len(runs)
            for k in ('mAP_50', 'mAP') if all(k in r for r in runs)}
    return dict(runs[0], **mean, minutes=max(r['minutes'] for r in runs),
                runs=list(runs))


def per_seed(res: dict, key: str) -> str:
    """``res[key]`` (the mean), followed by the per-seed values."""
    text = f'{res[key]:.3f}'
    if len(res.get('runs', ())) > 1:
        text += ' (' + ', '.join(f'{r[key]:.3f}' for r in res['runs']) + ')'
    return text


def main(argv=None):
    args = parse_args(argv)
    bench = learning_benchmark  # its run() and read_metrics()
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    bench.run([sys.executable, 'tools/data/make_synthetic.py', 'shapes',
               '--out', args.data_root],
              osp.join(ROOT, args.work_dir, 'data.log'))
    options = list(args.cfg_options)
    rows, ok = [], True
    for name in args.pairs:
        plain_cfg, plugin_cfg, plugin = PAIRS[name]
        work = osp.join(args.work_dir, name)
        plain = over_seeds(bench, plain_cfg, osp.join(work, 'plain'),
                           options, args.seeds)
        plug = over_seeds(bench, plugin_cfg, osp.join(work, 'plugin'),
                          options, args.seeds)
        runs = [('plain', plain_cfg, plain)]
        if args.same_time:
            epochs = same_time_epochs(plain['epochs'], plain['minutes'],
                                      plug['minutes'])
            if epochs > plain['epochs']:
                runs.append(('plain, same time', plain_cfg, over_seeds(
                    bench, plain_cfg, osp.join(work, 'plain_same_time'),
                    options, args.seeds,
                    schedule_options(plain_cfg, epochs, options))))
        passed = passes(plug, [r for _, _, r in runs], args)
        ok &= passed
        for label, cfg, res in [*runs, (plugin, plugin_cfg, plug)]:
            rows.append((name, label, osp.basename(cfg),
                         f"{res['params'] / 1e6:.2f}M", str(res['epochs']),
                         f"{res['minutes']:.1f}", per_seed(res, 'mAP_50'),
                         f"{res.get('mAP', float('nan')):.3f}",
                         ('PASS' if passed else 'FAIL') if res is plug
                         else ''))
    header = ('pair', 'model', 'config', 'params', 'epochs', 'train min',
              'mAP@0.5', 'mAP', 'result')
    widths = [max(len(str(r[i])) for r in [header, *rows])
              for i in range(len(header))]
    print(f'\n{os.cpu_count()} CPU cores; targets: plug-in mAP@0.5 >= '
          f'{args.min_map50:.2f} within {args.max_train_minutes:g} min and '
          f'>= every plain run - {args.tolerance:g}')
    for row in [header, *rows]:
        print(' | '.join(f'{str(v):<{w}}' for v, w in zip(row, widths)))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
