"""Export a model to ONNX or OpenVINO IR (densekit.deploy).

Examples:
    python tools/deploy/export.py configs/det/yolov8_n_coco.py yolov8_n.pth \
        --format onnx --out exported/ --shape 640 640
    python tools/deploy/export.py configs/det/yolov8_n_coco.py yolov8_n.pth \
        --format openvino --out exported/ --with-postprocess
    python tools/deploy/export.py configs/anomaly/efficientad_s_mvtec.py \
        bottle.pth --format onnx --out exported/ --dynamic-batch

Writes ``<out>/<name>.onnx`` (or ``.xml`` + ``.bin``) and ``<name>.json``
(task, input size, input/output names, class names) and prints their
paths. What the graph computes per task: ``densekit/deploy/exporter.py``.
The input size is ``--shape`` if given, else the config's (data
preprocessor ``size``, test pipeline ``Pad`` / ``Resize``), else 640x640.
A bad input (checkpoint not matching the config, unknown format, a module
that does not export) prints one ``error:`` line, exits 1 and writes
nothing.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

from mmengine.config import DictAction

ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError,
          RuntimeError, KeyError)


def config_input_shape(cfg) -> Optional[List[int]]:
    """(H, W) a config's test pipeline feeds the model, when fixed."""
    size = (cfg.model.get('data_preprocessor') or {}).get('size')
    if size:
        return [int(size[0]), int(size[1])]
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        return None
    found = None
    for step in pipeline:
        name = str(step.get('type', '')).split('.')[-1]
        if name in ('Pad', 'StreamPad') and step.get('size'):
            w, h = step['size']  # mmcv: (w, h)
            return [int(h), int(w)]
        if name == 'Resize' and step.get('scale') is not None:
            scale = step['scale']
            scale = (scale, scale) if isinstance(scale, int) else scale
            found = [int(scale[1]), int(scale[0])]
    return found


def class_names(cfg, meta: dict) -> Optional[List[str]]:
    """Class names from the checkpoint's ``dataset_meta``, else the
    config's test dataset (None when neither has them)."""
    classes = (meta.get('dataset_meta') or {}).get('classes')
    if classes is None:
        try:
            import copy

            from mmengine.registry import DATASETS
            dataset = copy.deepcopy(cfg.test_dataloader.dataset)
            dataset['lazy_init'] = True
            classes = DATASETS.build(dataset).metainfo.get('classes')
        except Exception:  # noqa: BLE001 - names are optional meta data
            classes = None
    return None if classes is None else [str(c) for c in classes]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a densekit model to ONNX / OpenVINO IR')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--format', default='onnx',
                        help='onnx or openvino (default: onnx)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--name', default=None,
                        help='file stem (default: the config file name)')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (one value: square)')
    parser.add_argument('--dynamic-batch', action='store_true')
    parser.add_argument('--with-postprocess', action='store_true',
                        help='detectors: decode + NMS in the graph')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 weights (computation stays float32)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) == 1:
        args.shape = args.shape * 2
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        from densekit.deploy.exporter import (build_model, check_format,
                                              default_name, export_model,
                                              load_config,
                                              load_state_dict_strict)
        fmt = check_format(args.format)
        if args.shape is not None and len(args.shape) != 2:
            raise ValueError(f'--shape takes 1 or 2 integers, got '
                             f'{args.shape}')
        cfg = load_config(args.config, args.cfg_options)
        model = build_model(cfg)
        meta = load_state_dict_strict(model, args.checkpoint,
                                      f'config {args.config}')
        shape = args.shape or config_input_shape(cfg) or [640, 640]
        path = export_model(
            model, args.out, fmt=fmt, shape=shape,
            name=args.name or default_name(args.config),
            dynamic_batch=args.dynamic_batch,
            with_postprocess=args.with_postprocess, fp16=args.fp16,
            extra_meta=dict(config=osp.abspath(args.config),
                            checkpoint=osp.abspath(args.checkpoint),
                            classes=class_names(cfg, meta)))
    except ERRORS as e:
        message = ' '.join(str(e).split())
        print(f'error: {message}', file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
