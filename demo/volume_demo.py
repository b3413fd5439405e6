"""Segment medical volumes with a 2D medical segmentor; save a slice grid,
the label volume and a JSON.

Examples:
    python demo/volume_demo.py data/synthetic_phantom/test_vol_h5 \
        --config configs/medseg/unet_phantom.py \
        --weights work_dirs/unet_phantom/iter_400.pth
    python demo/volume_demo.py patient101_frame01.nii.gz \
        --config configs/medseg/unet_acdc-224x224.py --weights ...

INPUTS are volume files (TransUNet ``*.npy.h5``, NIfTI ``*.nii[.gz]``) or
folders of them (not recursive; ACDC's ``*_gt`` label files are skipped as
inputs and used as the ground truth of their image). Every slice goes
through the config's test pipeline (batched, ``--batch-size``), the label
maps are stacked back into the volume (:class:`densekit.apis.
VolumeInferencer`). Writes, per volume ``<name>``:

* ``OUT/vis/<name>.png``: ``--num-slices`` slices (evenly spaced over the
  slices with predicted organs) in a grid, predicted organs overlaid in the
  class colours, ground-truth boundaries in white when the volume has
  labels, and a legend with each organ's predicted volume (ml when the
  file gives a voxel spacing);
* ``OUT/pred/<name>.npy``: the (D, H, W) uint8 label volume;

and ``OUT/predictions.json`` (shape, spacing, voxels / ml per class, and
per-class Dice and HD95 against the ground truth when there is one, the
TransUNet protocol of :class:`densekit.VolumeSegMetric`).

Exit status: 0 on success; 1 if a volume could not be read (the others
are still processed, each bad file is named); 2 if no input matched.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import List, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2
import numpy as np
from mmengine.config import DictAction

from densekit.apis import VolumeInferencer, draw_volume_grid
from densekit.apis.cli import add_runtime_args
from densekit.datasets.medical_io import (H5_SUFFIXES, NIFTI_SUFFIXES,
                                          strip_nifti_suffix)
from densekit.evaluation.functional import per_class_volume_metrics

VOLUME_SUFFIXES = tuple(H5_SUFFIXES) + tuple(NIFTI_SUFFIXES)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', nargs='+',
                        help='volume files or folders of volumes')
    parser.add_argument('--config', required=True)
    parser.add_argument('--weights', default=None)
    parser.add_argument('--out-dir', default='outputs/volume_demo')
    parser.add_argument('--device', default=None)
    parser.add_argument('--batch-size', type=int, default=8,
                        help='slices per forward pass')
    parser.add_argument('--num-slices', type=int, default=12,
                        help='slices shown in the grid')
    parser.add_argument('--cols', type=int, default=4,
                        help='grid columns')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value')
    add_runtime_args(parser)
    return parser.parse_args(argv)


def is_volume(path: str) -> bool:
    name = osp.basename(path).lower()
    if not name.endswith(VOLUME_SUFFIXES):
        return False
    # ACDC labels (<case>_gt.nii.gz) are ground truth, not inputs
    return not strip_nifti_suffix(name).endswith('_gt')


def collect_inputs(inputs: List[str]) -> Tuple[List[str], List[str]]:
    """(volume files, inputs that matched nothing)."""
    files, empty = [], []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item)
                           if is_volume(f))
        elif any(c in item for c in '*?['):
            found = sorted(f for f in glob.glob(item, recursive=True)
                           if is_volume(f))
        else:
            found = [item]  # a missing file is reported when read
        if found:
            files.extend(found)
        else:
            empty.append(item)
    return files, empty


def main(argv=None) -> int:
    args = parse_args(argv)
    files, empty = collect_inputs(args.inputs)
    for item in empty:
        print(f'no volume matched {item!r} (suffixes: '
              f'{", ".join(VOLUME_SUFFIXES)})', file=sys.stderr)
    if not files:
        return 2
    inferencer = VolumeInferencer(args.config, args.weights,
                                  device=args.device,
                                  batch_size=args.batch_size,
                                  cfg_options=args.cfg_options,
                                  backend=args.backend,
                                  backend_model=args.backend_model,
            fuse_conv_bn=args.fuse_conv_bn)
    for sub in ('vis', 'pred'):
        os.makedirs(osp.join(args.out_dir, sub), exist_ok=True)
    records, failed = [], 0
    num_classes = len(inferencer.classes)
    for path in files:
        try:
            result = inferencer(path)
        except (OSError, ValueError, KeyError, IndexError) as e:
            print(f'{path}: {e}', file=sys.stderr)
            failed += 1
            continue
        record = result.to_dict()
        summary = ''
        if result.gt_volume is not None:
            dice, hd = per_class_volume_metrics(
                result.label_volume, result.gt_volume, num_classes,
                spacing=result.spacing)
            names = inferencer.classes[1:]
            record['dice'] = {n: float(d) for n, d in zip(names, dice)}
            record['hd95'] = {n: float(h) for n, h in zip(names, hd)}
            record['mean_dice'] = float(np.nanmean(dice))
            summary = f', mean Dice {record["mean_dice"]:.3f}'
        grid = draw_volume_grid(result, inferencer.palette,
                                num_slices=args.num_slices, cols=args.cols)
        vis_path = osp.join(args.out_dir, 'vis', result.name + '.png')
        cv2.imwrite(vis_path, grid)
        np.save(osp.join(args.out_dir, 'pred', result.name + '.npy'),
                result.label_volume.astype(np.uint8))
        record['vis'] = vis_path
        records.append(record)
        organs = ', '.join(f'{n} {v}' for n, v in
                           result.class_voxels().items() if v)
        print(f'{path}: {result.label_volume.shape[0]} slices in '
              f'{result.timings_ms["inference"]:.0f} ms; voxels: '
              f'{organs or "no organs"}{summary} -> {vis_path}')
    with open(osp.join(args.out_dir, 'predictions.json'), 'w') as f:
        json.dump(records, f, indent=2)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
