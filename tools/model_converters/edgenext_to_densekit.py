"""Convert an official EdgeNeXt ImageNet checkpoint to densekit keys.

Source: https://github.com/mmaaz60/EdgeNeXt (MIT licence), release files
such as ``edgenext_xx_small.pth``, ``edgenext_x_small.pth``,
``edgenext_small.pth`` (LayerNorm/GELU models; the ``*_bn_hs`` files are not
supported). The mapping itself is
:func:`densekit.models.backbones.edgenext.convert_edgenext`.

The official files are training checkpoints (``{'model': ..., 'args':
argparse.Namespace, ...}``, possibly with ``'model_ema'``); they load with
``weights_only=True`` once ``argparse.Namespace`` is allowed, which this
script does. Anything else pickled needs ``--unsafe-load`` (runs pickled
code: only for files you trust).

Examples:
    # backbone weights for ``init_cfg=dict(type='Pretrained', ...)``
    python tools/model_converters/edgenext_to_densekit.py \
        edgenext_small.pth edgenext_s_backbone.pth --arch s

    # the whole classifier (densekit.models.backbones.edgenext
    # .EdgeNeXtClassifier)
    python tools/model_converters/edgenext_to_densekit.py \
        edgenext_small.pth work_dirs/edgenext_s_cls.pth --arch s --with-head

The output is ``{'state_dict': ..., 'meta': ...}``. In a detector or
segmentor config use it as::

    backbone=dict(type='densekit.EdgeNeXt', arch='s',
                  init_cfg=dict(type='Pretrained',
                                checkpoint='edgenext_s_backbone.pth'))

The official training normalises RGB inputs with timm's ImageNet default
mean/std (``--imagenet_default_mean_and_std``; 0-255 scale: mean
123.675/116.28/103.53, std 58.395/57.12/57.375) or, with that flag off, the
Inception mean/std (127.5, 127.5); the ImageNet models were trained at
256x256 (``models/model.py`` comments). Check the recipe of the file you
convert.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.backbones.edgenext import (  # noqa: E402
    EdgeNeXt, EdgeNeXtClassifier, convert_edgenext)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official EdgeNeXt checkpoint to densekit '
        'keys')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--arch', choices=sorted(EdgeNeXt.arch_settings),
        help='check every key and shape against this densekit model '
        '(recommended)')
    parser.add_argument(
        '--with-head', action='store_true',
        help='keep the ImageNet norm/head (keys of EdgeNeXtClassifier); by '
        'default only the backbone is kept')
    parser.add_argument(
        '--use-ema', action='store_true',
        help="convert checkpoint['model_ema'] instead of checkpoint['model']")
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (executes pickled code)')
    return parser.parse_args(argv)


def load_source(path: str, unsafe: bool = False):
    """``torch.load`` the official file (safely unless ``unsafe``)."""
    return read_checkpoint_file(path, unsafe)


def check_against_model(state_dict: dict, arch: str, with_head: bool) -> list:
    """Problems (as strings) of loading ``state_dict`` strictly; the
    backbone's output norms (not in ImageNet checkpoints) may be missing."""
    model = EdgeNeXtClassifier(arch) if with_head else EdgeNeXt(arch=arch)
    return state_dict_problems(
        state_dict, model.state_dict(),
        optional=() if with_head else (r'norm\d+\.', ))[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    source = load_source(args.src, args.unsafe_load)
    state_dict = convert_edgenext(source, with_head=args.with_head,
                                  use_ema=args.use_ema)
    print(f'converted {len(state_dict)} tensors')
    if args.arch:
        problems = check_against_model(state_dict, args.arch, args.with_head)
        if problems:
            print(f'{len(problems)} mismatches against EdgeNeXt '
                  f'arch={args.arch!r}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches arch={args.arch!r}')
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_edgenext',
                              with_head=args.with_head,
                              use_ema=args.use_ema)), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
