"""Convert an official FocalNet checkpoint to densekit's FocalNet keys.

Source: https://github.com/microsoft/FocalNet (MIT licence); ImageNet
checkpoints such as ``focalnet_tiny_srf.pth`` store ``{'model': state_dict}``
with keys ``patch_embed.*``, ``layers.{i}.blocks.{j}.*``,
``layers.{i}.downsample.*``, ``norm.*`` and ``head.*``. The mapping itself is
:func:`densekit.models.backbones.focalnet.convert_focalnet`.

Examples:
    Backbone weights for a detector / segmentor (final norm and head
    dropped; the per-output ``norm{i}`` start from scratch, as officially)::

        python tools/model_converters/focalnet_to_densekit.py \
            focalnet_tiny_srf.pth work_dirs/focalnet_t_srf_densekit.pth \
            --arch T-SRF

    then ``init_cfg=dict(type='Pretrained', checkpoint=...)`` in the
    backbone config. (``FocalNet`` also accepts the official file there
    directly and converts it on the fly.) For the official detection
    setting (kernels 9, 11[, 13] from the window-3 ImageNet weights), add
    ``--focal-window 9``: the kernels are zero-padded around the centre, as
    the official detection code does.

    The whole classifier (``FocalNetClassifier``)::

        python tools/model_converters/focalnet_to_densekit.py \
            focalnet_tiny_srf.pth focalnet_t_srf_cls.pth --with-head \
            --arch T-SRF
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.backbones.focalnet import (  # noqa: E402
    FocalNet, convert_focalnet, focalnet_classifier)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official FocalNet checkpoint to densekit '
        'keys')
    parser.add_argument('src', help='official checkpoint or state dict')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--arch', choices=sorted(FocalNet.arch_settings),
        help='build this densekit FocalNet and check every key and shape '
        'against it (recommended)')
    parser.add_argument(
        '--with-head', action='store_true',
        help='keep the final norm and the classifier head (keys of '
        'FocalNetClassifier) instead of backbone-only keys')
    parser.add_argument(
        '--focal-window', type=int,
        help='first focal kernel of the target model (e.g. 9 for the '
        'official detection fine-tunes); kernels are padded/cropped')
    parser.add_argument(
        '--prefix', default='',
        help='prefix added to every output key, e.g. "backbone." for a '
        'whole-detector load_from (not with --with-head)')
    return parser.parse_args(argv)


def check_against_model(state_dict: dict, arch: str, with_head: bool,
                        focal_window=None) -> list:
    """Build the densekit model; return problems as strings."""
    kwargs = dict(focal_windows=focal_window)
    if with_head:
        num_classes = state_dict['head.weight'].shape[0] \
            if 'head.weight' in state_dict else 0
        model = focalnet_classifier(arch, num_classes=num_classes, **kwargs)
    else:
        model = FocalNet(arch=arch, **kwargs)
    # ImageNet checkpoints have no per-output norms: expected to be missing
    problems, missing_optional = state_dict_problems(
        state_dict, model.state_dict(),
        optional=() if with_head else (r'norm\d+\.', ))
    if missing_optional:
        print('left to random init (no ImageNet counterpart): '
              + ', '.join(missing_optional))
    return problems


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise FileNotFoundError(f'checkpoint {args.src} does not exist')
    source = read_checkpoint_file(args.src)
    state_dict = convert_focalnet(source, with_head=args.with_head,
                                  focal_windows=args.focal_window)
    print(f'converted {len(state_dict)} tensors')
    if args.arch:
        problems = check_against_model(state_dict, args.arch,
                                       args.with_head, args.focal_window)
        if problems:
            print(f'{len(problems)} mismatches against FocalNet '
                  f'{args.arch}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches FocalNet {args.arch}')
    if args.prefix:
        state_dict = {args.prefix + k: v for k, v in state_dict.items()}
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_focalnet')), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
