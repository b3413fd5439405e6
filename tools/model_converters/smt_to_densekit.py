"""Convert an official SMT checkpoint to densekit's SMT keys.

Source: https://github.com/AFeng-x/SMT (release v1.0.0: ``smt_tiny.pth``,
``smt_small.pth``, ``smt_base.pth``, ``smt_large_22k*.pth``). The ImageNet
checkpoints store the state dict of ``models/smt.py`` (keys
``patch_embed{i}.*``, ``block{i}.{j}.*``, ``norm{i}.*``, ``head.*``), either
flat or as ``{'model': ...}`` of the Swin-style training code. The mapping
is :func:`convert_smt` (defined in
:mod:`densekit.models.backbones.smt`, re-exported here).

The training code also pickles its yacs config next to the weights; such a
file does not load with ``weights_only=True`` and needs ``--unsafe-load``
(runs pickled code: only for files you trust).

Examples:
    Backbone weights for a detector / segmentor (every backbone tensor,
    stage norms included, comes from the checkpoint; only ``head`` is
    dropped)::

        python tools/model_converters/smt_to_densekit.py \
            smt_small.pth work_dirs/smt_s_densekit.pth --arch S

    then ``backbone=dict(type='densekit.SMT', arch='S',
    init_cfg=dict(type='Pretrained', checkpoint=...))``. (``SMT`` also
    accepts the official file there directly and converts it on the fly.)

    The whole classifier (``SMTClassifier``)::

        python tools/model_converters/smt_to_densekit.py \
            smt_tiny.pth smt_t_cls.pth --arch T --with-head

The official training normalises RGB inputs with timm's ImageNet mean/std
(0-255 scale: mean 123.675/116.28/103.53, std 58.395/57.12/57.375) at
224x224 (bicubic resize).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import torch  # noqa: E402

from densekit.models.utils.checkpoint import (  # noqa: E402
    read_checkpoint_file, state_dict_problems)
from densekit.models.backbones.smt import (SMT, convert_smt,  # noqa: E402
                                           smt_classifier)

__all__ = ['convert_smt', 'check_against_model', 'main']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official SMT checkpoint to densekit keys')
    parser.add_argument('src', help='official checkpoint or state dict')
    parser.add_argument('dst', help='output densekit checkpoint')
    parser.add_argument(
        '--arch', choices=sorted(SMT.arch_settings),
        help='build this densekit SMT and check every key and shape against '
        'it (recommended)')
    parser.add_argument(
        '--with-head', action='store_true',
        help='keep the classifier head (keys of SMTClassifier) instead of '
        'backbone-only keys')
    parser.add_argument(
        '--prefix', default='',
        help='prefix added to every output key, e.g. "backbone." for a '
        'whole-detector load_from (not with --with-head)')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='torch.load with weights_only=False (executes pickled code)')
    return parser.parse_args(argv)


def load_source(path: str, unsafe: bool = False):
    """``torch.load`` the official file (safely unless ``unsafe``)."""
    return read_checkpoint_file(path, unsafe)


def check_against_model(state_dict: dict, arch: str,
                        with_head: bool) -> list:
    """Build the densekit model; return the problems of a strict load."""
    if with_head:
        num_classes = state_dict['head.weight'].shape[0] \
            if 'head.weight' in state_dict else 0
        model = smt_classifier(arch, num_classes=num_classes)
    else:
        model = SMT(arch=arch)
    # BatchNorm counters are optional (PyTorch fills them in)
    return state_dict_problems(state_dict, model.state_dict(),
                               optional=(r'.*num_batches_tracked$', ))[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    source = load_source(args.src, args.unsafe_load)
    state_dict = convert_smt(source, with_head=args.with_head)
    print(f'converted {len(state_dict)} tensors')
    if args.arch:
        problems = check_against_model(state_dict, args.arch, args.with_head)
        if problems:
            print(f'{len(problems)} mismatches against SMT {args.arch}:')
            for line in problems:
                print(f'  {line}')
            return 1
        print(f'every key and shape matches SMT {args.arch}')
    if args.prefix:
        state_dict = {args.prefix + k: v for k, v in state_dict.items()}
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_smt',
                              with_head=args.with_head)), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
