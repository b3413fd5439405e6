"""One-shot device check: does every densekit family train and predict here?

Run on a bare GPU machine (PyTorch + Triton, no internet) after
``tools/device_check.sh`` has installed the stack from carried wheels, or on
any machine with densekit's environment. In one process:

1. **Environment**: torch / CUDA / device name, Triton, mmcv (with or
   without CUDA ops; without them :func:`densekit.ops.mmcv_cuda_fallback.
   use_cpu_ops_for_cuda` runs mmcv's CPU kernels on copies), the selective
   scan implementations available.
2. **Selective scan**: Triton vs the sequential reference (outputs and every
   gradient, float32 and bfloat16 inputs), then forward + backward time of
   every available implementation (Triton, chunked PyTorch, mamba_ssm /
   VMamba kernels, the C++ CPU kernel) on the SS2D calls of one Mamba-YOLO-T
   forward (``--scan-shape``: batch 16 at 640 by default; ``--smoke``: batch
   1 at 64).
3. **Families**: for YOLOv8-n, Mamba-YOLO-T, RetinaNet-BVR, CBNetV2 Faster
   R-CNN, UPerNet, DToP, Swin-UNet, EfficientAD-S and StreamYOLO, on a small
   synthetic set generated in a temporary folder: ``--iters`` training
   iterations through mmengine's Runner (forward, backward, optimizer
   step, the config's hooks) in float32 and with AMP (float16 with loss
   scaling on CUDA, bfloat16 autocast on the CPU), then inference
   (``test_step`` on a val batch, under autocast for AMP). Step time
   (median after the first), inference time, peak memory (CUDA), the loss.
   ``--audit-devices`` also fails a family whose densekit code creates a
   tensor without ``device=`` while it runs (a CPU tensor on a GPU run).

One table at the end; the exit status is non-zero when any row failed.

Examples:
    bash tools/device_check.sh --wheels /path/to/wheels   # bare GPU box
    python tools/analysis/device_check.py                  # this machine
    python tools/analysis/device_check.py --device cpu --smoke --audit-devices
"""
import argparse
import contextlib
import inspect
import logging
import os
import os.path as osp
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

# name: (config, synthetic set, its folder under data/)
FAMILIES = {
    'yolov8-n': ('configs/det/yolov8_n_shapes.py', 'shapes'),
    'mamba-yolo-t': ('configs/det/mamba_yolo_t_shapes.py', 'shapes'),
    'retinanet-bvr': ('configs/det/bvr_retinanet_r50_fpn_shapes.py',
                      'shapes'),
    'cbnetv2-faster-rcnn': ('configs/det/faster-rcnn_cbv2-r50_fpn_shapes.py',
                            'shapes'),
    'upernet-yolov8-n': ('configs/seg/upernet_yolov8-n_shapes.py',
                         'shapes_seg'),
    'dtop': ('configs/seg/dtop_vit-t-p8_shapes.py', 'shapes_seg'),
    'swin-unet': ('configs/medseg/swin-unet_phantom.py', 'phantom'),
    'efficientad-s': ('configs/anomaly/efficientad_s_synthetic.py',
                      'anomaly'),
    'streamyolo': ('configs/stream/streamyolo_yolov8-n_moving-shapes.py',
                   'moving_shapes'),
}
# the synthetic sets at the configs' data roots, small: a few iterations
DATASETS = {
    'shapes': ('synthetic_shapes', ['--num-train', '16', '--num-val', '4']),
    'shapes_seg': ('synthetic_shapes_seg',
                   ['--num-train', '16', '--num-val', '4']),
    'phantom': ('synthetic_phantom', ['--num-train', '2', '--num-test', '1',
                                      '--size', '8', '224', '224']),
    'anomaly': ('synthetic_anomaly',
                ['--num-train', '16', '--num-test-good', '2',
                 '--num-test-defect', '2']),
    'moving_shapes': ('synthetic_moving_shapes',
                      ['--num-train-seqs', '2', '--num-val-seqs', '1',
                       '--frames-per-seq', '12', '--val-frames-per-seq',
                       '6']),
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny sizes (batch 2, 2 iterations, small scan '
                        'shapes): the CI form of the check')
    parser.add_argument('--families', nargs='+', choices=list(FAMILIES),
                        default=list(FAMILIES))
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'amp'],
                        default=['fp32', 'amp'])
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations per run (default 5; '
                        '--smoke: 2)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="training batch size (default: the config's; "
                        '--smoke: 2)')
    parser.add_argument('--scan-shape', nargs=3, type=int, default=None,
                        metavar=('BATCH', 'H', 'W'),
                        help='Mamba-YOLO-T input whose SS2D calls the scan '
                        'timing uses (default 16 640 640; --smoke 1 64 64)')
    parser.add_argument('--scan-runs', type=int, default=None,
                        help='timed scan repetitions (default 10; --smoke 1)')
    parser.add_argument('--skip-scan', action='store_true')
    parser.add_argument('--audit-devices', action='store_true',
                        help='fail a family whose densekit code creates '
                        'tensors without device= while it runs')
    parser.add_argument('--work-dir', default=None,
                        help='where the synthetic data and work dirs go '
                        '(default: a temporary folder, removed)')
    args = parser.parse_args(argv)
    import torch
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch sees no CUDA device')
    args.iters = args.iters or (2 if args.smoke else 5)
    if args.batch_size is None and args.smoke:
        args.batch_size = 2
    args.scan_shape = args.scan_shape or ([1, 64, 64] if args.smoke else
                                          [16, 640, 640])
    args.scan_runs = args.scan_runs or (1 if args.smoke else 10)
    return args


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------
def environment(device: str) -> List[List[str]]:
    import mmcv
    import torch

    from densekit.models.layers.selective_scan import available_impls
    from densekit.ops.roi_align import mmcv_has_cuda_ops
    rows = [['torch', torch.__version__],
            ['device', torch.cuda.get_device_name() if device == 'cuda'
             else f'cpu ({os.cpu_count()} cores, '
             f'{torch.get_num_threads()} threads)']]
    if device == 'cuda':
        rows.append(['CUDA (torch build)', str(torch.version.cuda)])
    try:
        import triton
        rows.append(['triton', triton.__version__])
    except ImportError as e:
        rows.append(['triton', f'not importable ({e})'])
    rows.append(['mmcv', f'{mmcv.__version__} ('
                 f'{"with" if mmcv_has_cuda_ops() else "without"} CUDA ops)'])
    rows.append(['selective scan', ', '.join(
        f'{k}: {v}' for k, v in available_impls(device).items())])
    return rows


# --------------------------------------------------------------------------
# Selective scan
# --------------------------------------------------------------------------
def record_scan_calls(shape: Sequence[int], device: str) -> list:
    """The (u, delta, A, B, C, D, delta_bias) shapes of every selective-scan
    call in one Mamba-YOLO-T forward on a ``(batch, 3, H, W)`` input."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import densekit.models.layers.ss2d as ss2d_module
    from densekit.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/det/mamba_yolo_t_coco.py'))
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(cfg.model.backbone).to(device).eval()
    for module in backbone.modules():
        # the fused CPU kernel bypasses selective_scan_fn; record the calls
        # the CUDA / Triton path makes
        if isinstance(module, ss2d_module.SS2D):
            module.fused_scan = False
    calls = []
    original = ss2d_module.selective_scan_fn

    def spy(u, delta, A, B, C, D=None, delta_bias=None, **kwargs):
        calls.append(dict(
            shapes=[tuple(t.shape) if t is not None else None
                    for t in (u, delta, A, B, C, D, delta_bias)],
            delta_softplus=kwargs.get('delta_softplus', False)))
        return original(u, delta, A, B, C, D, delta_bias, **kwargs)

    ss2d_module.selective_scan_fn = spy
    try:
        with torch.no_grad():
            # record at batch 1, scale the batch afterwards
            backbone(torch.rand(1, 3, shape[1], shape[2], device=device))
    finally:
        ss2d_module.selective_scan_fn = original
    for call in calls:
        call['shapes'] = [
            None if s is None else
            ((shape[0], ) + s[1:] if i in (0, 1, 3, 4) else s)
            for i, s in enumerate(call['shapes'])
        ]
    return calls


def _scan_inputs(call: dict, device: str, dtype, requires_grad=True):
    import torch
    gen = torch.Generator(device=device).manual_seed(0)
    u_s, d_s, a_s, b_s, c_s, dd_s, db_s = call['shapes']

    def rand(shape, scale=1.0, shift=0.0, dt=dtype):
        t = (torch.rand(shape, generator=gen, device=device) * scale +
             shift).to(dt)
        return t.requires_grad_(requires_grad)

    u = rand(u_s, 2, -1)
    delta = rand(d_s, 0.5, -0.5)
    A = rand(a_s, -1.0, -0.05, torch.float32)
    B, C = rand(b_s, 2, -1), rand(c_s, 2, -1)
    D = rand(dd_s, dt=torch.float32) if dd_s else None
    bias = rand(db_s, 0.2, -0.1, torch.float32) if db_s else None
    return [u, delta, A, B, C, D, bias]


def scan_parity(device: str) -> List[List[str]]:
    """Triton vs the sequential reference: max errors of the output and of
    every input gradient (fp32, bf16 inputs; grouped B/C, L = 100)."""
    import torch

    from densekit.models.layers.selective_scan import selective_scan_fn
    rows = []
    call = dict(shapes=[(2, 8, 100), (2, 8, 100), (8, 4), (2, 2, 4, 100),
                        (2, 2, 4, 100), (8, ), (8, )])
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
        inputs = _scan_inputs(call, device, dtype)
        grad = torch.randn(2, 8, 100, device=device).to(dtype)
        results = []
        for impl in ('triton', 'reference'):
            xs = [x.detach().clone().requires_grad_() if x is not None
                  else None for x in inputs]
            out = selective_scan_fn(*xs, delta_softplus=True, impl=impl)
            out.backward(grad)
            results.append([out] + [x.grad for x in xs if x is not None])
        errors = [float((a.detach().float() - b.detach().float()).abs().max() /
                        b.float().abs().max().clamp(min=1e-6))
                  for a, b in zip(*results)]
        worst = max(errors)
        rows.append([f'triton vs reference ({str(dtype)[6:]})',
                     f'{worst:.1e} (out {errors[0]:.1e})',
                     'OK' if worst <= tol else f'FAIL (> {tol:g})'])
    return rows


def scan_timing(args) -> List[List[str]]:
    """Forward + backward time of every available implementation over the
    SS2D calls of one Mamba-YOLO-T forward."""
    import torch

    from densekit.models.layers.selective_scan import (available_impls,
                                                       selective_scan_fn)
    calls = record_scan_calls(args.scan_shape, args.device)
    impls = [name for name, ok in available_impls(args.device).items()
             if ok == 'yes' and name != 'reference']
    rows = []
    for impl in impls:
        if impl == 'triton' and args.device == 'cpu':
            rows.append([f'{impl}', '-', 'interpreter: correctness only'])
            continue
        for dtype in (torch.float32, torch.bfloat16):
            inputs = [_scan_inputs(c, args.device, dtype) for c in calls]

            def step():
                for call, xs in zip(calls, inputs):
                    out = selective_scan_fn(
                        *xs, delta_softplus=call['delta_softplus'],
                        impl=impl)
                    out.sum().backward()

            try:
                step()  # warm-up (Triton compiles here)
                times = []
                for _ in range(args.scan_runs):
                    _sync(args.device)
                    start = time.perf_counter()
                    step()
                    _sync(args.device)
                    times.append(time.perf_counter() - start)
                times.sort()
                rows.append([f'{impl} ({str(dtype)[6:]})',
                             f'{1e3 * times[len(times) // 2]:.1f} ms',
                             f'{len(calls)} calls, batch '
                             f'{args.scan_shape[0]} at '
                             f'{args.scan_shape[1]}x{args.scan_shape[2]}'])
            except Exception as e:  # a path that does not run here
                rows.append([f'{impl} ({str(dtype)[6:]})', '-',
                             f'FAIL: {type(e).__name__}: {e}'[:120]])
    return rows


def _sync(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


# --------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------
_FACTORIES = ('zeros', 'ones', 'empty', 'full', 'arange', 'linspace',
              'logspace', 'eye', 'rand', 'randn', 'randint', 'randperm',
              'tensor', 'as_tensor')


@contextlib.contextmanager
def audit_tensor_creation(leaks: List[str]):
    """Record densekit call sites (outside the data pipeline, which builds
    CPU tensors by design) that create tensors without ``device=``
    (``torch.zeros(...)`` and friends) while the block runs."""
    import torch
    from torch.overrides import TorchFunctionMode
    factories = {getattr(torch, name) for name in _FACTORIES}
    package = osp.join(ROOT, 'densekit') + os.sep
    # the data pipeline builds its tensors on the CPU by design
    data = osp.join(package, 'datasets') + os.sep
    torch_dir = osp.dirname(torch.__file__)
    dispatch_files = {osp.join(torch_dir, 'overrides.py'),
                      osp.join(torch_dir, 'utils', '_device.py')}

    class Mode(TorchFunctionMode):

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in factories and kwargs.get('device') is None and not (
                    func is torch.as_tensor and args and
                    isinstance(args[0], torch.Tensor)):
                # the direct caller (past torch's dispatch helpers)
                # decides: densekit code is a leak; torch's, mmdet's and
                # mmengine's own calls are not ours
                frame = inspect.currentframe().f_back
                while frame is not None and frame.f_code.co_filename in \
                        dispatch_files:
                    frame = frame.f_back
                name = osp.normpath(frame.f_code.co_filename) if frame \
                    else ''
                if name.startswith(package) and not name.startswith(data):
                    leaks.append(f'{osp.relpath(name, ROOT)}:'
                                 f'{frame.f_lineno} torch.{func.__name__}')
            return func(*args, **kwargs)

    with Mode():
        yield


def make_datasets(families: Sequence[str], root: str) -> None:
    """The synthetic sets the families need, under ``root/data``."""
    import subprocess
    needed = {FAMILIES[f][1] for f in families}
    for task in sorted(needed):
        folder, extra = DATASETS[task]
        out = osp.join(root, 'data', folder)
        subprocess.run([sys.executable,
                        osp.join(ROOT, 'tools/data/make_synthetic.py'), task,
                        '--out', out] + extra, check=True,
                       stdout=subprocess.DEVNULL)


def _timing_hook(records: Dict[str, list]):
    import torch
    from mmengine.hooks import Hook

    class StepTimer(Hook):
        priority = 'VERY_LOW'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            _sync(records['device'])
            if records['device'] == 'cuda':
                torch.cuda.reset_peak_memory_stats()
            self._start = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            _sync(records['device'])
            records['steps'].append(time.perf_counter() - self._start)
            if records['device'] == 'cuda':
                records['memory'].append(torch.cuda.max_memory_allocated())
            if outputs and 'loss' in outputs:
                records['loss'].append(float(outputs['loss']))

    return StepTimer()


def check_family(name: str, precision: str, args, root: str) -> dict:
    """Train ``args.iters`` iterations and run one inference batch."""
    import torch
    from mmengine.runner import Runner

    from densekit.engine.config_setup import apply_amp, prepare_config
    config = osp.join(ROOT, FAMILIES[name][0])
    work_dir = osp.join(root, 'work_dirs', f'{name}_{precision}')
    cfg = prepare_config(config, work_dir=work_dir)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters,
                         val_interval=10**9)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.log_level = 'WARNING'
    cfg.visualizer = dict(type='Visualizer', vis_backends=[])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
            if args.batch_size and loader == 'train_dataloader':
                cfg[loader].batch_size = args.batch_size
    if precision == 'amp':
        apply_amp(cfg, 'AmpOptimWrapper' if args.device == 'cuda' else
                  'densekit.CPUAutocastOptimWrapper')
    # no validation inside the run: inference is timed below
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    records = dict(device=args.device, steps=[], memory=[], loss=[])
    leaks: List[str] = []

    def audit():
        return (audit_tensor_creation(leaks) if args.audit_devices else
                contextlib.nullcontext())

    runner = Runner.from_cfg(cfg)
    runner.register_hook(_timing_hook(records))
    with audit():
        model = runner.train()
    model.eval()
    loader = runner.build_dataloader(cfg.test_dataloader)
    batch = next(iter(loader))
    autocast = contextlib.nullcontext()
    if precision == 'amp':
        autocast = torch.autocast(
            args.device,
            dtype=torch.float16 if args.device == 'cuda' else torch.bfloat16)
    infer = []
    with torch.no_grad(), audit(), autocast:
        for _ in range(2):
            _sync(args.device)
            start = time.perf_counter()
            outputs = model.test_step(batch)
            _sync(args.device)
            infer.append(time.perf_counter() - start)
    steps = records['steps'][1:] or records['steps']
    steps = sorted(steps)
    losses = records['loss']
    status = 'OK'
    if len(outputs) != len(batch['data_samples']):
        status = (f'FAIL: {len(outputs)} predictions for '
                  f'{len(batch["data_samples"])} images')
    elif not losses or not all(map(_finite, losses)):
        status = f'FAIL: loss {losses}'
    elif leaks:
        status = 'FAIL: tensors created without device= at ' + \
            ', '.join(sorted(set(leaks))[:5])
    return dict(step=steps[len(steps) // 2], infer=infer[-1],
                memory=max(records['memory']) if records['memory'] else None,
                loss=losses[-1] if losses else float('nan'), status=status)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float('inf')


def format_table(rows: List[List[str]], header: List[str]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.device == 'cpu' and 'triton' not in sys.modules:
        # Triton kernels run on CPU tensors only in its interpreter
        os.environ.setdefault('TRITON_INTERPRET', '1')
    import torch
    from mmengine.logging import MMLogger

    import densekit  # noqa: F401  (registers the modules)
    from densekit.ops.mmcv_cuda_fallback import adapt_mmcv_ops
    adapt_mmcv_ops(low_precision_cpu='amp' in args.precisions)
    MMLogger.get_instance('mmengine', log_level='WARNING')
    logging.getLogger('mmengine').setLevel(logging.WARNING)
    failed = False
    print(format_table(environment(args.device), ['what', 'here']))

    if not args.skip_scan:
        from densekit.models.layers.selective_scan import available_impls
        rows = []
        if available_impls(args.device).get('triton') == 'yes':
            rows += scan_parity(args.device)
        rows += scan_timing(args)
        failed |= any('FAIL' in r[2] for r in rows)
        print('\nselective scan (forward + backward, median)')
        print(format_table(rows, ['implementation', 'time / max rel. error',
                                  'note']))

    workdir = args.work_dir or tempfile.mkdtemp(prefix='densekit_check_')
    cwd = os.getcwd()
    rows = []
    try:
        make_datasets(args.families, workdir)
        os.chdir(workdir)  # the configs' relative data roots
        for name in args.families:
            for precision in args.precisions:
                start = time.perf_counter()
                try:
                    r = check_family(name, precision, args, workdir)
                except Exception as e:  # report, go on with the others
                    traceback.print_exc()
                    r = dict(step=None, infer=None, memory=None,
                             loss=float('nan'),
                             status=f'FAIL: {type(e).__name__}: {e}'[:200])
                failed |= r['status'] != 'OK'
                rows.append([
                    name, precision,
                    '-' if r['step'] is None else f'{1e3 * r["step"]:.0f}',
                    '-' if r['infer'] is None else f'{1e3 * r["infer"]:.0f}',
                    '-' if r['memory'] is None else
                    f'{r["memory"] / 2**20:.0f}', f'{r["loss"]:.3g}',
                    f'{time.perf_counter() - start:.0f}', r['status']
                ])
                print(f'[device_check] {name} {precision}: {r["status"]}',
                      flush=True)
                if args.device == 'cuda':
                    torch.cuda.empty_cache()
    finally:
        os.chdir(cwd)
        if args.work_dir is None:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
    amp = ('float16 autocast + loss scaling' if args.device == 'cuda' else
           'bfloat16 autocast')
    print(f'\nfamilies on {args.device} (amp: {amp}; '
          f'{"smoke sizes" if args.smoke else "config sizes"})')
    print(format_table(rows, ['family', 'precision', 'train step (ms)',
                              'inference (ms)', 'peak memory (MiB)', 'loss',
                              'wall (s)', 'status']))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
