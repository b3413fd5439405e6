"""Convert an official HorNet checkpoint to densekit's HorNet keys.

Source: https://github.com/raoyongming/HorNet (MIT licence). The ImageNet
release files (``hornet_tiny_7x7.pth``, ``hornet_tiny_gf.pth``,
``hornet_small_7x7.pth``, ... from the README's model zoo) store
``{'model': state_dict}`` (training checkpoints may add ``'model_ema'``,
``'optimizer'``, ``'args'``) with keys ``downsample_layers.{i}.{0,1}.*``,
``stages.{i}.{j}.*``, ``norm.*`` and ``head.*``. Official detection /
segmentation checkpoints (``backbone.``-prefixed, with ``backbone.norm{i}``)
are accepted too. The mapping itself is
:func:`densekit.models.backbones.hornet.convert_hornet` (re-exported here as
``convert_hornet``).

Examples:
    Backbone weights for a detector / segmentor (final norm and head
    dropped; the per-output ``norm{i}`` start from scratch, as officially)::

        python tools/model_converters/hornet_to_densekit.py \
            hornet_tiny_7x7.pth work_dirs/hornet_t_7x7_densekit.pth \
            --arch T-7x7

    then ``backbone=dict(type='densekit.HorNet', arch='T-7x7',
    init_cfg=dict(type='Pretrained', checkpoint=...))``. (``HorNet`` also
    accepts the official file there directly and converts it on the fly.)

    GF weights for larger maps, as the official ADE20K configs (complex
    weights resized bilinearly from 14x8 / 7x4 to 24x13 / 12x7)::

        python tools/model_converters/hornet_to_densekit.py \
            hornet_tiny_gf.pth hornet_t_gf_ade.pth --arch T-GF \
            --gf-sizes 24,13 12,7

    The whole classifier (``HorNetClassifier``)::

        python tools/model_converters/hornet_to_densekit.py \
            hornet_tiny_7x7.pth hornet_t_7x7_cls.pth --arch T-7x7 --with-head

The official ImageNet training normalises RGB inputs with timm's ImageNet
default mean/std (0-255 scale: mean 123.675/116.28/103.53, std
58.395/57.12/57.375), as the official COCO / ADE20K configs do.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.backbones.hornet import (  # noqa: E402
    HorNet, convert_hornet, hornet_classifier)

__all__ = ['convert_hornet', 'check_against_model', 'main']


def _gf_size(text: str):
    h, w = (int(v) for v in text.split(','))
    return h, w


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official HorNet checkpoint to densekit keys')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--arch', choices=sorted(HorNet.arch_settings),
        help='build this densekit HorNet and check every key and shape '
        'against it (recommended)')
    parser.add_argument(
        '--with-head', action='store_true',
        help='keep the final norm and the classifier head (keys of '
        'HorNetClassifier) instead of backbone-only keys')
    parser.add_argument(
        '--use-ema', action='store_true',
        help="convert checkpoint['model_ema'] instead of checkpoint['model']")
    parser.add_argument(
        '--gf-sizes', nargs=2, type=_gf_size, metavar='H,W',
        help='resize the GF complex weights of stages 2 and 3 to these '
        'sizes (e.g. 24,13 12,7)')
    parser.add_argument(
        '--prefix', default='',
        help='prefix added to every output key, e.g. "backbone." for a '
        'whole-detector load_from (not with --with-head)')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (executes pickled code: '
        'only for files you trust)')
    return parser.parse_args(argv)


def load_source(path: str, unsafe: bool = False):
    """``torch.load`` the official file (safely unless ``unsafe``)."""
    return read_checkpoint_file(path, unsafe)


def check_against_model(state_dict: dict, arch, with_head: bool,
                        gf_sizes=None) -> list:
    """Build the densekit model; return the problems of a strict load as
    strings. The backbone's per-output norms (no ImageNet counterpart) may
    be missing; they are reported, not counted."""
    if with_head:
        num_classes = state_dict['head.weight'].shape[0] \
            if 'head.weight' in state_dict else 1000
        model = hornet_classifier(arch, num_classes=num_classes,
                                  gf_sizes=gf_sizes)
    else:
        model = HorNet(arch=arch, gf_sizes=gf_sizes)
    problems, missing_optional = state_dict_problems(
        state_dict, model.state_dict(),
        optional=() if with_head else (r'norm\d+\.', ))
    if missing_optional:
        print('left to random init (no ImageNet counterpart): '
              + ', '.join(missing_optional))
    return problems


def main(argv=None) -> int:
    args = parse_args(argv)
    source = load_source(args.src, args.unsafe_load)
    gf_sizes = None if args.gf_sizes is None else \
        [None, None] + list(args.gf_sizes)
    state_dict = convert_hornet(source, with_head=args.with_head,
                                use_ema=args.use_ema, gf_sizes=gf_sizes)
    print(f'converted {len(state_dict)} tensors')
    if args.arch:
        problems = check_against_model(state_dict, args.arch,
                                       args.with_head, gf_sizes)
        if problems:
            print(f'{len(problems)} mismatches against HorNet '
                  f'{args.arch}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches HorNet {args.arch}')
    if args.prefix:
        state_dict = {args.prefix + k: v for k, v in state_dict.items()}
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_hornet',
                              with_head=args.with_head,
                              use_ema=args.use_ema)), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
