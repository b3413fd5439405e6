"""Streaming learning benchmark: a forecasting detector vs the same detector
without forecasting, both judged by streaming AP at their measured latency.

Generates the synthetic moving-shapes videos if missing, trains both
configs through ``tools/train.py`` (wall-clock timed), then replays the val
sequences in simulated real time at 30 FPS through
``tools/stream/stream_eval.py`` (the detector takes the latest frame, frames
it cannot keep up with are dropped, every ground-truth frame is scored with
the latest finished output) and prints one table:

* still (``configs/stream/still_yolov8-n_moving-shapes.py``): YOLOv8-n on
  the current frame; in a stream its output for frame t is shown while the
  world has moved on;
* forecasting (``configs/stream/streamyolo_yolov8-n_moving-shapes.py``):
  the same YOLOv8-n with StreamYOLO's Dual-Flow Perception and trend-aware
  loss, trained to predict frame t+1 from (t-1, t), with the feature
  buffer at inference (one backbone pass per frame).

The clock of each replay is that detector's measured runtime on this
machine: the median of ``--timing-frames`` calls on val frames, the two
detectors called in alternation so that both see the same machine load
(``--threads`` torch threads), then used as a fixed per-frame runtime, as
sap-toolkit simulates a measured runtime distribution. Measuring each
replay's own wall clock instead (``--wall-clock``) lets the load of the
moment decide: on this 2-core machine the same model's median runtime
varies by +-30% between runs. ``--fixed-runtime`` gives both the same
runtime. Passes (exit 0) when the forecasting model's sAP exceeds the still
model's.

Examples:
    python tools/analysis/stream_benchmark.py --work-dir work_dirs/stream
    python tools/analysis/stream_benchmark.py --cfg-options \
        train_cfg.max_epochs=4   # shorter schedules (both models)
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import learning_benchmark

MODELS = (
    ('still', 'configs/stream/still_yolov8-n_moving-shapes.py'),
    ('forecasting', 'configs/stream/streamyolo_yolov8-n_moving-shapes.py'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/stream_benchmark')
    parser.add_argument('--data-root', default='data/synthetic_moving_shapes')
    parser.add_argument('--models', nargs='+', default=[m for m, _ in MODELS],
                        choices=[m for m, _ in MODELS])
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--fixed-runtime', type=float, default=None,
                        help='seconds per frame for both detectors instead '
                        'of their measured runtime')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads of the timing and the replay')
    parser.add_argument('--timing-frames', type=int, default=60,
                        help='calls per detector for the runtime median')
    parser.add_argument('--wall-clock', action='store_true',
                        help='clock each replay by its own measured '
                        'runtimes instead of the interleaved median')
    parser.add_argument('--skip-train', action='store_true',
                        help='reuse the checkpoints already in --work-dir')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='forwarded to tools/train.py of both configs')
    return parser.parse_args(argv)


def _data_options(data_root):
    root = data_root.rstrip('/') + '/'
    return [f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}annotations/val.json',
            f'test_evaluator.ann_file={root}annotations/val.json']


def train(bench, config, work_dir, options, skip):
    os.makedirs(osp.join(ROOT, work_dir), exist_ok=True)
    record = osp.join(ROOT, work_dir, 'train_minutes.json')
    if not skip:
        start = time.perf_counter()
        bench.run([sys.executable, 'tools/train.py', config, '--work-dir',
                   work_dir, '--cfg-options', *options],
                  osp.join(ROOT, work_dir, 'train.log'))
        with open(record, 'w') as f:
            json.dump(dict(minutes=(time.perf_counter() - start) / 60), f)
    minutes = float('nan')
    if osp.isfile(record):
        with open(record) as f:
            minutes = json.load(f)['minutes']
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip(), minutes


def measure_runtimes(models, args):
    """Median seconds per call of each (config, checkpoint), the models
    called in alternation on the first val sequence's frames (each keeps
    its own stream buffer), after 5 untimed calls each."""
    import torch

    from densekit.apis import MMDetFrameDetector, read_image
    torch.set_num_threads(args.threads)
    with open(osp.join(ROOT, args.data_root, 'annotations', 'val.json')) as f:
        gt = json.load(f)
    seq0 = [im for im in gt['images'] if im['sid'] == 0]
    seq0.sort(key=lambda im: im['fid'])
    frames = [read_image(osp.join(ROOT, args.data_root, 'frames',
                                  gt['seq_dirs'][0], im['file_name']))
              for im in seq0]
    detectors = {name: MMDetFrameDetector(osp.join(ROOT, cfg), osp.join(
        ROOT, ckpt), device='cpu') for name, (cfg, ckpt) in models.items()}
    times = {name: [] for name in models}
    for i in range(5 + args.timing_frames):
        fid = i % len(frames)
        if fid == 0:
            for det in detectors.values():
                det.reset()
        for name, det in detectors.items():
            start = time.perf_counter()
            det(frames[fid], dict(img_id=seq0[fid]['id'], sid=0, fid=fid))
            if i >= 5:
                times[name].append(time.perf_counter() - start)
    return {name: float(sorted(t)[len(t) // 2]) for name, t in times.items()}


def stream_eval(bench, config, checkpoint, args, work_dir, runtime=None):
    out = osp.join(work_dir, 'stream_eval.json')
    cmd = [sys.executable, 'tools/stream/stream_eval.py', config,
           checkpoint, '--ann-file',
           osp.join(args.data_root, 'annotations', 'val.json'),
           '--data-root', osp.join(args.data_root, 'frames'), '--fps',
           str(args.fps), '--device', 'cpu', '--out', out]
    if runtime is not None:
        cmd += ['--fixed-runtime', f'{runtime:.6f}']
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print('$', ' '.join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    with open(osp.join(ROOT, work_dir, 'stream_eval.log'), 'w') as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit(f'stream_eval failed for {config}')
    with open(osp.join(ROOT, out)) as f:
        return json.load(f)


def _val_map(work_dir):
    """The training run's last val COCO mAP (each output against the
    frame the val set targets, t+1), in %, from its log."""
    logs = sorted(glob.glob(osp.join(ROOT, work_dir, '*', '*.log')))
    found = []
    for path in logs:
        with open(path) as f:
            found += re.findall(r'coco/bbox_mAP: ([0-9.]+)', f.read())
    return f'{100 * float(found[-1]):.1f}' if found else 'n/a'


def main(argv=None):
    args = parse_args(argv)
    bench = learning_benchmark  # its run() and read_metrics()
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    bench.run([sys.executable, 'tools/data/make_synthetic.py',
               'moving_shapes', '--out', args.data_root],
              osp.join(ROOT, args.work_dir, 'data.log'))
    options = _data_options(args.data_root) + list(args.cfg_options)
    trained = {}
    for name, config in MODELS:
        if name not in args.models:
            continue
        work_dir = osp.join(args.work_dir, name)
        checkpoint, minutes = train(bench, config, work_dir, options,
                                    args.skip_train)
        trained[name] = (config, checkpoint, minutes, work_dir)
    if args.fixed_runtime is not None:
        runtimes = {name: args.fixed_runtime for name in trained}
    elif args.wall_clock:
        runtimes = {name: None for name in trained}
    else:
        runtimes = measure_runtimes(
            {n: (c, ck) for n, (c, ck, _, _) in trained.items()}, args)
    results = {}
    for name, (config, checkpoint, minutes, work_dir) in trained.items():
        report = stream_eval(bench, config, checkpoint, args, work_dir,
                             runtimes[name])
        results[name] = dict(report, minutes=minutes, config=config)

    header = ('model', 'config', 'train min', 'offline AP vs t+1', 'sAP',
              'sAP50', 'sAP75', 'runtime ms', 'median latency ms',
              'dropped frames')
    rows = []
    for name, r in results.items():
        rows.append((name, osp.basename(r['config']), f"{r['minutes']:.1f}",
                     _val_map(osp.join(args.work_dir, name)),
                     f"{100 * r['sAP']:.1f}", f"{100 * r['sAP50']:.1f}",
                     f"{100 * r['sAP75']:.1f}",
                     f"{r['runtime_ms_median'] or float('nan'):.1f}"
                     if runtimes[name] is None else
                     f'{1e3 * runtimes[name]:.1f}',
                     f"{r['latency_ms_median'] or float('nan'):.1f}",
                     f"{r['dropped_frames']}/{r['num_frames']}"))
    widths = [max(len(str(row[i])) for row in [header, *rows])
              for i in range(len(header))]
    clock = (f'fixed {args.fixed_runtime:g} s/frame' if args.fixed_runtime
             is not None else
             f'each replay\'s measured wall clock, {args.threads} threads'
             if args.wall_clock else
             f'interleaved median runtime of {args.timing_frames} calls, '
             f'{args.threads} threads')
    print(f'\nstreaming replay of the val sequences at {args.fps:g} FPS '
          f'({clock}); sAP in %')
    for row in [header, *rows]:
        print(' | '.join(f'{str(v):<{w}}' for v, w in zip(row, widths)))
    if len(results) < 2:
        return 0
    gain = results['forecasting']['sAP'] - results['still']['sAP']
    verdict = 'PASS' if gain > 0 else 'FAIL'
    print(f'result | {verdict} (forecasting - still sAP = '
          f'{100 * gain:+.1f} points)')
    return 0 if gain > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
