"""Count a model's parameters and FLOPs with mmengine's counter.

The tensor forward (``model._forward(x)``: backbone, neck and head, without
the data preprocessor or post-processing) is traced once on a zero input.
Detectors and segmentors alike: for a segmentor that is the backbone and the
decode head (auxiliary heads are training-only); a DToP segmentor is counted
unpruned here, its executed FLOPs with pruning come from
``tools/analysis/benchmark_dtop.py``.

Examples:
    python tools/analysis/get_flops.py configs/det/yolov8_n_coco.py
    python tools/analysis/get_flops.py --all-yolov8 --shape 640 640

Conventions (also printed under the table): mmengine's ``FlopAnalyzer``
counts one multiply-add as one "flop", so its number is reported as GMACs;
``GFLOPs = 2 x GMACs`` is the convention of ultralytics' published YOLOv8
figures (thop MACs x 2). ``count_complexity`` and ``main`` are importable
(tests load this file with importlib).
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config, DictAction
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from terminaltables import AsciiTable

from densekit.utils.compat import install_mmengine_compat

install_mmengine_compat()  # mmengine loads the checkpoints below

YOLOV8_COCO_CONFIGS = [
    osp.join('configs', 'det', f'yolov8_{scale}_coco.py')
    for scale in 'nsmlx'
]
# Published by ultralytics (YOLOv8 README, detection table; COCO, 640x640
# input): params in millions and GFLOPs (= thop MACs x 2, BN fused), keyed by
# config file stem.
PUBLISHED_YOLOV8 = {
    'yolov8_n_coco': dict(params_m=3.2, gflops=8.7),
    'yolov8_s_coco': dict(params_m=11.2, gflops=28.6),
    'yolov8_m_coco': dict(params_m=25.9, gflops=78.9),
    'yolov8_l_coco': dict(params_m=43.7, gflops=165.2),
    'yolov8_x_coco': dict(params_m=68.2, gflops=257.8),
}
PUBLISHED_SHAPE = (640, 640)

FOOTNOTE = (
    'params (M): trainable and frozen parameters of the model (BN weights '
    'included, not fused).\n'
    'GMACs: mmengine FlopAnalyzer total of the tensor forward (it names '
    'multiply-adds "flops"): conv/linear multiply-adds, 2 per BN element, 1 '
    'per upsampled element; data preprocessor and NMS excluded.\n'
    'GFLOPs: 2 x GMACs, the convention of ultralytics\' published YOLOv8 '
    'numbers (thop MACs x 2).\n'
    'ref: ultralytics YOLOv8 README (COCO, 640x640, BN fused into conv); '
    'diff = (measured - ref) / ref; FLOPs are compared only at 640x640.')


def _native_mha_macs(inputs, outputs) -> int:
    """Multiply-adds of ``aten::_native_multi_head_attention`` (the fused
    ``nn.MultiheadAttention`` of eval mode, used by ViTs), which mmengine
    has no counter for: q/k/v and output projections plus the two attention
    products."""
    from mmengine.analysis.jit_handles import get_shape
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    batch, len_q, dims = query[0], query[-2], query[-1]
    len_k = key[-2]
    proj = len_q * dims * dims * 2 + len_k * dims * dims * 2
    attn = 2 * len_q * len_k * dims
    return int(batch * (proj + attn))


class _TensorForward(nn.Module):
    """Wrap a model so that ``forward(x)`` is its ``_forward(x)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor):
        return self.model._forward(inputs)


def load_config(config: Union[str, Config],
                cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (or copy a Config) and merge ``cfg_options``."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(config)
    else:
        raise TypeError('config must be a file path or an mmengine Config, '
                        f'but got {type(config)}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'config {cfg.filename} has no `model` to build')
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's default scope, in eval mode."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model)
    model = revert_sync_batchnorm(model)
    return model.eval()


def _input_shape(model: nn.Module, shape: Sequence[int]) -> Tuple[int, int]:
    """Pad ``(H, W)`` up to the data preprocessor's ``pad_size_divisor``."""
    divisor = getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1
    return tuple(-(-int(s) // divisor) * divisor for s in shape)


def count_model_complexity(model: nn.Module,
                           shape: Sequence[int] = (640, 640)) -> dict:
    """Parameters and mmengine FLOP count of a built model's tensor forward.

    Args:
        model (nn.Module): An OpenMMLab model with ``_forward(inputs)``.
        shape (Sequence[int]): Input (H, W); padded up to the model's
            ``data_preprocessor.pad_size_divisor`` as inference would.
            Defaults to (640, 640).

    Returns:
        dict: ``params`` (int), ``macs`` (int, mmengine's "flops"), ``flops``
        (int, 2 x macs), ``gmacs`` and ``gflops`` (float, in 1e9),
        ``params_m`` (float, in 1e6), ``input_shape`` (H, W) actually traced
        and ``uncounted_ops`` (dict op name -> occurrences mmengine has no
        counter for).
    """
    if len(shape) != 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f'shape must be (H, W) with positive sizes, but got '
                         f'{tuple(shape)}')
    height, width = _input_shape(model, shape)
    device = next(model.parameters()).device
    inputs = torch.zeros(1, 3, height, width, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(_TensorForward(model), (inputs, ))
            analyzer.set_op_handle('aten::_native_multi_head_attention',
                                   _native_mha_macs)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            macs = int(analyzer.total())
            uncounted = dict(analyzer.unsupported_ops())
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return dict(
        params=params,
        params_m=params / 1e6,
        macs=macs,
        flops=2 * macs,
        gmacs=macs / 1e9,
        gflops=2 * macs / 1e9,
        input_shape=(height, width),
        uncounted_ops=uncounted)


def count_complexity(cfg: Union[str, Config],
                     shape: Sequence[int] = (640, 640)) -> dict:
    """Build the model of a config and count its complexity.

    Args:
        cfg (str | Config): Config file or object.
        shape (Sequence[int]): Input (H, W). Defaults to (640, 640).

    Returns:
        dict: See :func:`count_model_complexity`.

    Examples:
        >>> info = count_complexity('configs/det/yolov8_n_coco.py')
        >>> round(info['params_m'], 2), round(info['gflops'], 1)
        (3.16, 8.8)
    """
    return count_model_complexity(build_model(load_config(cfg)), shape)


def reference_for(config: Union[str, Config]) -> Optional[Dict[str, float]]:
    """Published ultralytics numbers for a ``yolov8_{n,s,m,l,x}_coco`` config
    (matched by file stem), else None."""
    filename = config.filename if isinstance(config, Config) else config
    if not filename:
        return None
    return PUBLISHED_YOLOV8.get(osp.splitext(osp.basename(filename))[0])


def _diff(measured: float, ref: float) -> str:
    return f'{(measured - ref) / ref * 100:+.1f}%'


def format_table(header: List[str], rows: List[List[str]]) -> str:
    """An ASCII table with right-aligned numeric columns."""
    table = AsciiTable([header] + rows)
    for i in range(1, len(header)):
        table.justify_columns[i] = 'right'
    return table.table


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count params and FLOPs of model configs')
    parser.add_argument('configs', nargs='*', help='config file(s)')
    parser.add_argument(
        '--all-yolov8',
        action='store_true',
        help='add configs/det/yolov8_{n,s,m,l,x}_coco.py')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[640, 640],
        help='input height and width (one value: square). Defaults to '
        '640 640')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, xxx=yyy format')
    args = parser.parse_args(argv)
    if args.all_yolov8:
        args.configs += [
            osp.join(REPO_ROOT, path) for path in YOLOV8_COCO_CONFIGS
        ]
    if not args.configs:
        parser.error('give at least one config, or --all-yolov8')
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    if len(args.shape) != 2:
        parser.error(f'--shape takes 1 or 2 integers, got {args.shape}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the complexity table; returns the exit status."""
    args = parse_args(argv)
    header = [
        'config', 'input', 'params (M)', 'GMACs', 'GFLOPs', 'ref params (M)',
        'params diff', 'ref GFLOPs', 'GFLOPs diff'
    ]
    rows, uncounted = [], {}
    for path in args.configs:
        info = count_complexity(load_config(path, args.cfg_options),
                                args.shape)
        ref = reference_for(path)
        row = [
            osp.splitext(osp.basename(path))[0],
            'x'.join(map(str, info['input_shape'])),
            f'{info["params_m"]:.2f}', f'{info["gmacs"]:.2f}',
            f'{info["gflops"]:.2f}'
        ]
        if ref is not None:
            row += [f'{ref["params_m"]:.1f}',
                    _diff(info['params_m'], ref['params_m'])]
            if tuple(info['input_shape']) == PUBLISHED_SHAPE:
                row += [f'{ref["gflops"]:.1f}',
                        _diff(info['gflops'], ref['gflops'])]
            else:
                row += [f'{ref["gflops"]:.1f} @640', '-']
        else:
            row += ['-'] * 4
        rows.append(row)
        for op, count in info['uncounted_ops'].items():
            uncounted[op] = max(uncounted.get(op, 0), count)
    print(format_table(header, rows))
    print(FOOTNOTE)
    if uncounted:
        print('not counted (no mmengine counter): ' + ', '.join(
            f'{op} x{n}' for op, n in sorted(uncounted.items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
