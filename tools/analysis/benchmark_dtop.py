"""DToP benchmark: pruning on vs off on the same images.

Runs a trained :class:`densekit.models.segmentors.DToPEncoderDecoder` over
the config's test split twice per image, once with dynamic token pruning
and once without, and prints for each mode:

* mIoU / mAcc / aAcc (mmseg's IoUMetric, in percent);
* GFLOPs executed per image, counted by ``torch.utils.flop_counter`` on
  the operations that really ran (so removed tokens are not counted) and
  reported as multiply-adds, the convention of the DToP paper and mmcv
  (matmul, convolution and attention products; element-wise ops and the
  final resize are not counted in either mode);
* CPU latency per image (median of ``--repeat`` interleaved runs of every
  image, batch 1, after a warm-up);
* token-block operations (tokens fed to each ViT block, summed) and the
  fraction of tokens that exited at each early exit.

Without ``--checkpoint`` it first trains the config with ``tools/train.py``
into ``--work-dir`` (generating the synthetic data if it is missing) and
benchmarks the last checkpoint. ``--check`` makes it exit 1 unless pruning
saves at least ``--min-flop-saving`` of the FLOPs, is faster, and loses at
most ``--max-miou-drop`` mIoU points, for the config's pruning setting
(row ``on``); ``--sweep 0.95:5 0.9:20`` adds rows for other thresholds and
top-k values on the same images.

Examples:
    python tools/analysis/benchmark_dtop.py configs/seg/dtop_vit-t-p8_shapes.py
    python tools/analysis/benchmark_dtop.py \
        configs/seg/dtop_vit-t-p8_shapes.py \
        --checkpoint work_dirs/dtop_vit-t-p8_shapes/iter_1200.pth --check
"""
import argparse
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch
from mmengine.config import Config, DictAction
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from torch.utils.flop_counter import FlopCounterMode

from densekit.utils.compat import install_mmengine_compat

install_mmengine_compat()  # mmengine loads the checkpoints below


def pruning_modes(model, sweep: Sequence[str]) -> Dict[str, Optional[dict]]:
    """Row name -> ``model.pruning`` settings (None: pruning off). The
    config's own setting is row ``on``; ``--sweep t:k`` adds rows."""
    modes = {'off': None, 'on': dict(model.pruning, enabled=True)}
    for item in sweep:
        threshold, _, topk = item.partition(':')
        setting = dict(model.pruning, enabled=True,
                       threshold=float(threshold))
        if topk:
            setting['keep_topk'] = int(topk)
        modes[f'on t={setting["threshold"]:g} '
              f'k={setting["keep_topk"]}'] = setting
    return modes


def apply_mode(model, setting: Optional[dict]) -> None:
    if setting is None:
        model.pruning['enabled'] = False
    else:
        model.pruning.update(setting)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', default=None,
                        help='trained weights; default: train the config')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_dtop')
    parser.add_argument('--num-images', type=int, default=None,
                        help='first N test images (default: all)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='timed runs per image and mode')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (default: torch default)')
    parser.add_argument(
        '--sweep', nargs='*', default=[], metavar='T[:K]',
        help='extra pruning rows: threshold T (and keep_topk K), e.g. '
        '0.95:5 0.9:20')
    parser.add_argument('--check', action='store_true',
                        help='exit 1 when a goal below is missed')
    parser.add_argument('--min-flop-saving', type=float, default=0.20)
    parser.add_argument('--max-miou-drop', type=float, default=0.5,
                        help='mIoU points')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy format')
    return parser.parse_args(argv)


def train(config: str, work_dir: str, cfg_options: Optional[dict]) -> str:
    """Train ``config`` with tools/train.py; the last checkpoint's path."""
    py = sys.executable
    cfg = Config.fromfile(config)
    data_root = cfg.train_dataloader.dataset.get('data_root', '')
    if 'synthetic_shapes_seg' in str(data_root):
        subprocess.run([py, 'tools/data/make_synthetic.py', 'shapes_seg',
                        '--out', data_root], cwd=REPO_ROOT, check=True)
    cmd = [py, 'tools/train.py', config, '--work-dir', work_dir]
    if cfg_options:
        cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in
                                    cfg_options.items()]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO_ROOT, check=True)
    print(f'trained in {(time.perf_counter() - start) / 60:.1f} min')
    with open(osp.join(REPO_ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def build(config: str, checkpoint: str, cfg_options: Optional[dict]):
    """The model (eval, CPU) and a batch-1 test dataloader."""
    from densekit.models.segmentors import DToPEncoderDecoder
    from densekit.registry import MODELS

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if not isinstance(model, DToPEncoderDecoder):
        raise SystemExit(f'{config}: model.type must be '
                         f'densekit.DToPEncoderDecoder, got {type(model)}')
    load_checkpoint(model, checkpoint, map_location='cpu')
    model.eval()
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    evaluator = cfg.test_evaluator
    return model, loader, evaluator


def make_metric(evaluator_cfg, dataset_meta):
    from mmseg.registry import METRICS
    metric = METRICS.build(evaluator_cfg)
    metric.dataset_meta = dataset_meta
    return metric


def executed_macs(model, inputs, samples) -> int:
    """Multiply-adds that really ran in one ``predict``."""
    counter = FlopCounterMode(display=False)
    with counter:
        model.predict(inputs, samples)
    return counter.get_total_flops() // 2


def benchmark(model, loader, evaluator_cfg, num_images: Optional[int],
              repeat: int, sweep: Sequence[str] = ()) -> Dict[str, dict]:
    modes = pruning_modes(model, sweep)
    metrics = {m: make_metric(evaluator_cfg, loader.dataset.metainfo)
               for m in modes}
    stats = {m: dict(latency=[], macs=[], block_tokens=0, tokens=0,
                     exited=None) for m in modes}
    batches = []
    for i, data in enumerate(loader):
        if num_images is not None and i >= num_images:
            break
        batches.append(model.data_preprocessor(data, False))
    if not batches:
        raise SystemExit('the test split is empty')
    with torch.no_grad():
        for data in batches[:2]:  # warm-up
            for mode, setting in modes.items():
                apply_mode(model, setting)
                model.predict(data['inputs'], data['data_samples'])
        for data in batches:
            for mode, setting in modes.items():
                apply_mode(model, setting)
                st = stats[mode]
                st['macs'].append(
                    executed_macs(model, data['inputs'],
                                  data['data_samples']))
                for _ in range(repeat):
                    start = time.perf_counter()
                    out = model.predict(data['inputs'],
                                        data['data_samples'])
                    st['latency'].append(time.perf_counter() - start)
                prune = model.prune_stats
                st['block_tokens'] += sum(prune['tokens_per_block'])
                st['tokens'] += prune['tokens']
                exited = prune['exited_per_stage']
                st['exited'] = exited if st['exited'] is None else [
                    a + b for a, b in zip(st['exited'], exited)]
                metrics[mode].process(data, [s.to_dict() for s in out])
    apply_mode(model, modes['on'])
    results = {}
    for mode in modes:
        st = stats[mode]
        scores = metrics[mode].compute_metrics(metrics[mode].results)
        results[mode] = dict(
            mIoU=scores['mIoU'], mAcc=scores.get('mAcc', float('nan')),
            aAcc=scores['aAcc'],
            gflops=statistics.mean(st['macs']) / 1e9,
            latency_ms=statistics.median(st['latency']) * 1e3,
            block_tokens=st['block_tokens'] / len(batches),
            exited=[e / st['tokens'] for e in st['exited']],
            images=len(batches))
    return results


def format_table(results: Dict[str, dict]) -> str:
    header = ['pruning', 'mIoU', 'mAcc', 'aAcc', 'GFLOPs/img',
              'latency (ms)', 'token-block ops/img', 'exited per stage']
    rows = [header]
    for mode in results:
        r = results[mode]
        rows.append([
            mode, f"{r['mIoU']:.2f}", f"{r['mAcc']:.2f}", f"{r['aAcc']:.2f}",
            f"{r['gflops']:.3f}", f"{r['latency_ms']:.1f}",
            f"{r['block_tokens']:.0f}",
            ' / '.join(f'{e:.1%}' for e in r['exited'])
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [' | '.join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, '-+-'.join('-' * w for w in widths))
    return '\n'.join(lines)


def check_goals(results: Dict[str, dict], min_flop_saving: float,
                max_miou_drop: float) -> List[str]:
    """Human-readable goal lines, each starting with PASS or FAIL."""
    off, on = results['off'], results['on']
    saving = 1 - on['gflops'] / off['gflops']
    drop = off['mIoU'] - on['mIoU']
    speedup = off['latency_ms'] / on['latency_ms']
    goals = [
        (saving >= min_flop_saving,
         f'FLOPs saved {saving:.1%} (goal >= {min_flop_saving:.0%})'),
        (on['latency_ms'] < off['latency_ms'],
         f'latency {on["latency_ms"]:.1f} vs {off["latency_ms"]:.1f} ms '
         f'({speedup:.2f}x; goal: lower with pruning)'),
        (drop <= max_miou_drop,
         f'mIoU {on["mIoU"]:.2f} vs {off["mIoU"]:.2f} (drop {drop:+.2f} '
         f'points; goal <= {max_miou_drop:g})'),
    ]
    return [('PASS ' if ok else 'FAIL ') + text for ok, text in goals]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or train(args.config, args.work_dir,
                                          args.cfg_options)
    model, loader, evaluator = build(args.config, checkpoint,
                                     args.cfg_options)
    results = benchmark(model, loader, evaluator, args.num_images,
                        args.repeat, args.sweep)
    images = results['on']['images']
    print(f'\nDToP benchmark: {args.config}, {checkpoint}; {images} images, '
          f'batch 1, {torch.get_num_threads()} threads, threshold '
          f"{model.pruning['threshold']}, top-{model.pruning['keep_topk']}")
    print(format_table(results))
    print('GFLOPs: multiply-adds executed (torch FlopCounterMode / 2), the '
          "paper's convention; latency: median per image.")
    goals = check_goals(results, args.min_flop_saving, args.max_miou_drop)
    print('\n'.join(goals))
    if args.check and any(g.startswith('FAIL') for g in goals):
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
