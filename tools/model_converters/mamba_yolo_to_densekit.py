"""Convert an official Mamba YOLO checkpoint to a densekit checkpoint.

Source: https://github.com/HZAI-ZJNU/Mamba-YOLO (built on Ultralytics, whose
files carry AGPL-3.0 headers; check the terms of any weights you convert).
The mapping itself is
:func:`densekit.models.backbones.mamba_yolo.convert_mamba_yolo`.

Ultralytics checkpoints (``best.pt``) pickle the whole model, so reading them
needs the official code importable. Either export a plain state dict there::

    # in the official Mamba-YOLO environment
    import torch
    ckpt = torch.load('best.pt', map_location='cpu', weights_only=False)
    model = ckpt.get('ema') or ckpt['model']
    torch.save(model.float().state_dict(), 'mamba_yolo_t_sd.pth')

and convert that file here, or pass ``--unpickle-model`` with the official
repository on ``PYTHONPATH`` (runs arbitrary pickled code: only for files
you trust).

Examples:
    python tools/model_converters/mamba_yolo_to_densekit.py \
        mamba_yolo_t_sd.pth work_dirs/mamba_yolo_t_densekit.pth \
        --config configs/det/mamba_yolo_t_coco.py

The scale (T/B/L, from the stem width and the stage depths) is always read
from the checkpoint and printed. With ``--config`` the converted keys and
shapes are checked against the config's model; a different scale is
reported first, in one line (``checkpoint looks like B (stem 64 channels,
...), config is T (...)``), and any mismatch exits with status 1 without
writing the output file.

The output is ``{'state_dict': ..., 'meta': ...}``; use it with
``--cfg-options load_from=...`` or ``DetInferencer(config, weights)``. The
model's inputs are RGB in [0, 1], as ultralytics' (the configs' data
preprocessor does that), and the number of classes must match the
checkpoint's ``nc`` (``model.bbox_head.num_classes``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.backbones.mamba_yolo import (  # noqa: E402
    convert_mamba_yolo, mamba_yolo_arch_of)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official Mamba YOLO (ultralytics) checkpoint '
        'to densekit keys')
    parser.add_argument('src', help='official checkpoint or state dict')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--config',
        help='densekit config to build the model and check every key and '
        'shape against (recommended)')
    parser.add_argument(
        '--unpickle-model', action='store_true',
        help='load a checkpoint that pickles the ultralytics model (needs '
        'the official code importable; executes pickled code)')
    return parser.parse_args(argv)


def load_source(path: str, unpickle_model: bool):
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    if unpickle_model:
        return torch.load(path, map_location='cpu', weights_only=False)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickled nn.Module or other objects
        raise RuntimeError(
            f'{path} is not a plain state dict ({type(err).__name__}); '
            'ultralytics checkpoints pickle the model. Export a state dict '
            'in the official environment (see this script\'s docstring) or '
            'rerun with --unpickle-model and the official code on '
            'PYTHONPATH') from err


def build_model_state(config: str) -> dict:
    """State dict of the model a densekit config builds."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from densekit.registry import MODELS

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return MODELS.build(cfg.model).state_dict()


def check_against_config(state_dict: dict, model_state: dict) -> list:
    """Keys and shapes of ``state_dict`` against the model's; problems as
    strings."""
    problems = [f'missing in checkpoint: {k}' for k in model_state
                if k not in state_dict]
    for key, value in state_dict.items():
        if key not in model_state:
            problems.append(f'not in the model: {key}')
        elif tuple(value.shape) != tuple(model_state[key].shape):
            problems.append(
                f'shape of {key}: checkpoint {tuple(value.shape)}, model '
                f'{tuple(model_state[key].shape)}')
    return problems


def describe_scale(state_dict: dict) -> tuple:
    """``(arch, stem, depths, text)`` of :func:`mamba_yolo_arch_of`, with
    ``text`` e.g. ``'T (stem 32 channels, stage depths 1-1-3-1)'``."""
    arch, stem, depths = mamba_yolo_arch_of(state_dict)
    detail = (f'stem {stem} channels, stage depths '
              f'{"-".join(map(str, depths))}')
    name = arch if arch is not None else 'no official scale'
    return arch, stem, depths, f'{name} ({detail})'


def main(argv=None) -> int:
    """Convert; returns the exit status (0: written, 1: see the output).

    The scale (T/B/L) is always read from the checkpoint and printed. With
    ``--config``, a checkpoint whose scale (stem width, stage depths)
    differs from the config's model is refused before anything else is
    printed about it, and so is any key or shape mismatch: no file is
    written. Unconverted official keys are listed and give status 1, but
    the file is still written.
    """
    args = parse_args(argv)
    source = load_source(args.src, args.unpickle_model)
    state_dict, unconverted = convert_mamba_yolo(source)
    try:
        arch, stem, depths, found = describe_scale(state_dict)
    except ValueError as err:  # no stem: not a Mamba YOLO checkpoint
        print(f'{args.src} is not a Mamba YOLO checkpoint ({err}); nothing '
              'written')
        return 1
    problems = None
    if args.config:
        model_state = build_model_state(args.config)
        cfg_arch, cfg_stem, cfg_depths, expected = describe_scale(
            model_state)
        if (stem, depths) != (cfg_stem, cfg_depths):
            # the one line to read: printed before the details
            print(f'checkpoint looks like {found}, config is {expected} '
                  f'({args.config}); nothing written')
        problems = check_against_config(state_dict, model_state)
    print(f'converted {len(state_dict)} tensors; checkpoint looks like '
          f'{found}')
    if unconverted:
        print(f'Unconverted keys ({len(unconverted)}):')
        for key in unconverted:
            print(f'  {key}')
    if problems:
        print(f'{len(problems)} mismatches against {args.config}:')
        for line in problems:
            print(f'  {line}')
        return 1
    if args.config:
        print(f'every key and shape matches {args.config}')
    else:
        print('not checked against a model: pass --config to check every '
              'key and shape')
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_mamba_yolo',
                              arch=arch)), args.dst)
    print(f'saved {args.dst}')
    return 1 if unconverted else 0


if __name__ == '__main__':
    sys.exit(main())
