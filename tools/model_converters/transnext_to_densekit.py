"""Convert an official TransNeXt checkpoint to densekit's TransNeXt keys.

Source: https://github.com/DaiShiResearch/TransNeXt (ImageNet-1K files such
as ``transnext_micro_224_1k.pth``, ``transnext_tiny_224_1k.pth``,
``transnext_small_224_1k.pth``, ``transnext_base_224_1k.pth``). They store
the state dict of ``classification/transnext_native.py`` /
``transnext_cuda.py`` (same parameter names: ``patch_embed{i}.*``,
``block{i}.{j}.*``, ``norm{i}.*``, ``head.*``), flat or under ``'model'``.
Detection/segmentation checkpoints (``backbone.``-prefixed) are accepted
too. The mapping is :func:`convert_transnext` (defined in
:mod:`densekit.models.backbones.transnext`, re-exported here).

Examples:
    Backbone weights for a detector / segmentor (only ``head`` and the
    official non-persistent CPB buffers are dropped)::

        python tools/model_converters/transnext_to_densekit.py \
            transnext_tiny_224_1k.pth checkpoints/transnext-tiny_in1k.pth \
            --arch tiny

    then ``backbone=dict(type='densekit.TransNeXt', arch='tiny',
    img_size=512, pretrain_size=224, init_cfg=dict(type='Pretrained',
    checkpoint=...))``. (``TransNeXt`` also accepts the official file there
    directly and converts it on the fly.)

    The whole classifier (``TransNeXtClassifier``)::

        python tools/model_converters/transnext_to_densekit.py \
            transnext_micro_224_1k.pth transnext_m_cls.pth --arch micro \
            --with-head

The official training normalises RGB inputs with timm's ImageNet mean/std
(0-255 scale: mean 123.675/116.28/103.53, std 58.395/57.12/57.375) at
224x224.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.backbones.transnext import (  # noqa: E402
    TransNeXt, convert_transnext, transnext_classifier)
from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)

__all__ = ['convert_transnext', 'check_against_model', 'main']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official TransNeXt checkpoint to densekit '
        'keys')
    parser.add_argument('src', help='official checkpoint or state dict')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--arch', choices=sorted(TransNeXt.arch_settings),
        help='build this densekit TransNeXt and check every key and shape '
        'against it (recommended)')
    parser.add_argument(
        '--with-head', action='store_true',
        help='keep the classifier head (keys of TransNeXtClassifier) '
        'instead of backbone-only keys')
    parser.add_argument(
        '--prefix', default='',
        help='prefix added to every output key, e.g. "backbone." for a '
        'whole-detector load_from (not with --with-head)')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (executes pickled code)')
    return parser.parse_args(argv)


def check_against_model(state_dict: dict, arch: str,
                        with_head: bool) -> list:
    """Build the densekit model (at the ImageNet size 224, which fixes no
    parameter shape); return the problems of a strict load."""
    if with_head:
        num_classes = state_dict['head.weight'].shape[0] \
            if 'head.weight' in state_dict else 0
        model = transnext_classifier(arch, num_classes=num_classes)
    else:
        model = TransNeXt(arch=arch)
    return state_dict_problems(state_dict, model.state_dict())[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.prefix and args.with_head:
        print('--prefix and --with-head do not combine')
        return 2
    source = read_checkpoint_file(args.src, args.unsafe_load)
    state_dict = convert_transnext(source, with_head=args.with_head)
    print(f'converted {len(state_dict)} tensors')
    if args.arch:
        problems = check_against_model(state_dict, args.arch, args.with_head)
        if problems:
            print(f'{len(problems)} mismatches against TransNeXt '
                  f'{args.arch}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches TransNeXt {args.arch}')
    if args.prefix:
        state_dict = {args.prefix + k: v for k, v in state_dict.items()}
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_transnext',
                              with_head=args.with_head)), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
