"""Plug-in learning benchmark: a detection plug-in next to its plain detector.

Trains each config of a pair on the synthetic shapes set through
``tools/train.py`` (wall-clock timed), evaluates the final checkpoint with
``tools/test.py`` (pycocotools bbox AP), and prints one table. The two
configs of a pair share backbone, data and schedule; only the plug-in
differs:

* ``retinanet``:    RetinaNet       vs RetinaNet-BVR (RelationNet++)
* ``faster-rcnn``:  Faster R-CNN    vs CBNetV2 (Dual-ResNet-50) Faster R-CNN
* ``faster-rcnn-bvr``: Faster R-CNN vs Faster R-CNN-BVR (not run by default)

A pair passes when the plug-in reaches ``--min-map50`` (default 0.40) within
``--max-train-minutes`` (default 15) of training and at least matches the
plain detector's mAP@0.5 (less ``--tolerance``, default 0). Exits non-zero
when a pair fails.

Examples:
    python tools/analysis/plugin_benchmark.py
    python tools/analysis/plugin_benchmark.py --pairs retinanet \
        --work-dir work_dirs/plugin_benchmark
"""
import argparse
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import learning_benchmark  # noqa: E402

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
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='forwarded to tools/train.py and tools/test.py '
                        'of every config')
    return parser.parse_args(argv)


def count_params(config: str) -> int:
    """Parameters of the config's model (built on CPU, no weights read)."""
    import densekit  # noqa: F401  (registers densekit's modules)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


def train_and_test(bench, config: str, work_dir: str, options) -> dict:
    """Train ``config`` into ``work_dir``, test its last checkpoint."""
    os.makedirs(osp.join(ROOT, work_dir), exist_ok=True)
    py = sys.executable
    start = time.perf_counter()
    bench.run([py, 'tools/train.py', config, '--work-dir', work_dir,
               *options], osp.join(ROOT, work_dir, 'train.log'))
    minutes = (time.perf_counter() - start) / 60
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out = bench.run([py, 'tools/test.py', config, checkpoint, '--work-dir',
                     work_dir, *options],
                    osp.join(ROOT, work_dir, 'test.log'))
    return dict(bench.read_metrics('det', out), minutes=minutes,
                params=count_params(config))


def main(argv=None):
    args = parse_args(argv)
    bench = learning_benchmark  # its run() and read_metrics()
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    bench.run([sys.executable, 'tools/data/make_synthetic.py', 'shapes',
               '--out', args.data_root],
              osp.join(ROOT, args.work_dir, 'data.log'))
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options \
        else []
    rows, ok = [], True
    for name in args.pairs:
        plain_cfg, plugin_cfg, plugin = PAIRS[name]
        plain = train_and_test(bench, plain_cfg,
                               osp.join(args.work_dir, name, 'plain'),
                               options)
        plug = train_and_test(bench, plugin_cfg,
                              osp.join(args.work_dir, name, 'plugin'),
                              options)
        passed = (plug['mAP_50'] >= args.min_map50
                  and plug['minutes'] <= args.max_train_minutes
                  and plug['mAP_50'] >= plain['mAP_50'] - args.tolerance)
        ok &= passed
        for label, cfg, res in (('plain', plain_cfg, plain),
                                (plugin, plugin_cfg, plug)):
            rows.append((name, label, osp.basename(cfg),
                         f"{res['params'] / 1e6:.2f}M",
                         f"{res['minutes']:.1f}", f"{res['mAP_50']:.3f}",
                         f"{res.get('mAP', float('nan')):.3f}",
                         ('PASS' if passed else 'FAIL') if res is plug
                         else ''))
    header = ('pair', 'model', 'config', 'params', 'train min', 'mAP@0.5',
              'mAP', 'result')
    widths = [max(len(str(r[i])) for r in [header, *rows])
              for i in range(len(header))]
    print(f'\n{os.cpu_count()} CPU cores; targets: plug-in mAP@0.5 >= '
          f'{args.min_map50:.2f} within {args.max_train_minutes:g} min and '
          f'>= plain - {args.tolerance:g}')
    for row in [header, *rows]:
        print(' | '.join(f'{str(v):<{w}}' for v, w in zip(row, widths)))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
