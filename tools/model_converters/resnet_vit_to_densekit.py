"""Convert the ImageNet-21k ``R50+ViT-B_16.npz`` (or ``ViT-B_16.npz``) that
TransUNet fine-tunes to densekit's :class:`ResNetViT` keys.

Source: google-research/vision_transformer (Apache-2.0), the ``imagenet21k``
files TransUNet's README links (``R50+ViT-B_16.npz``: hybrid, trained at
224 x 224, position embedding 1 + 14 x 14). The mapping is
:func:`densekit.models.backbones.resnet_vit.convert_resnet_vit`; the
position embedding is resized (bicubic) to ``--img-size // 16``.

Examples:
    python tools/model_converters/resnet_vit_to_densekit.py \
        R50+ViT-B_16.npz r50_vit-b16_in21k.pth --img-size 224
    # the pure ViT (ResNetViT(hybrid=False))
    python tools/model_converters/resnet_vit_to_densekit.py \
        ViT-B_16.npz vit-b16_in21k.pth --pure-vit

Use the output as ``backbone=dict(type='densekit.ResNetViT', ...,
init_cfg=dict(type='Pretrained', checkpoint='r50_vit-b16_in21k.pth'))``.
TransUNet feeds [0, 1] grey slices repeated to 3 channels, unnormalised.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from densekit.models.backbones.resnet_vit import (  # noqa: E402
    ResNetViT, convert_resnet_vit)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert R50+ViT-B_16.npz / ViT-B_16.npz to densekit')
    parser.add_argument('src', help='official .npz')
    parser.add_argument('dst', help='output densekit checkpoint (.pth)')
    parser.add_argument('--img-size', type=int, default=224,
                        help='training size of the model (grid = size // 16)')
    parser.add_argument('--pure-vit', action='store_true',
                        help='ViT-B_16.npz for ResNetViT(hybrid=False)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    grid = (args.img_size // 16, args.img_size // 16)
    with np.load(args.src) as npz:
        state_dict = convert_resnet_vit(
            {k: npz[k] for k in npz.files}, grid_size=grid,
            vit_stage=0 if args.pure_vit else 4)
    model = ResNetViT(img_size=args.img_size, hybrid=not args.pure_vit)
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [k for k in state_dict if k in own
             and state_dict[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        print(f'mismatch: missing {missing}, unexpected {unexpected}, '
              f'shapes {wrong}')
        return 1
    torch.save(dict(state_dict=state_dict,
                    meta=dict(converted_from=osp.abspath(args.src),
                              converter='convert_resnet_vit',
                              img_size=args.img_size)), args.dst)
    print(f'converted {len(state_dict)} tensors, saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
