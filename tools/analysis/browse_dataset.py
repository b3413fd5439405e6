"""Show or save dataset samples, after the pipeline, with their gt boxes.

The dataset of ``train_dataloader`` (``--phase train``, the default) or
``val_dataloader`` is built with its pipeline, so augmentation such as
Mosaic and RandomAffine is visible exactly as the model sees it.

Examples:
    python tools/analysis/browse_dataset.py configs/det/yolov8_n_shapes.py \
        --output-dir outputs/browse --not-show --max-images 16
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from densekit.apis import DetResult, draw_detections


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Browse a detection dataset after its pipeline')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--output-dir', default=None, help='save the drawn images here')
    parser.add_argument(
        '--not-show', action='store_true', help='do not open a window')
    parser.add_argument(
        '--show-interval',
        type=float,
        default=2,
        help='seconds each image is shown')
    parser.add_argument(
        '--max-images',
        type=int,
        default=None,
        help='stop after N samples (default: the whole dataset)')
    parser.add_argument(
        '--phase',
        choices=['train', 'val'],
        default='train',
        help='dataloader whose dataset and pipeline are browsed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, xxx=yyy format')
    args = parser.parse_args(argv)
    if args.not_show and args.output_dir is None:
        parser.error('nothing to do: --not-show without --output-dir')
    if args.max_images is not None and args.max_images < 1:
        parser.error(f'--max-images must be at least 1, got '
                     f'{args.max_images}')
    return args


def sample_to_drawing(item: dict, classes: Sequence[str]):
    """A packed sample -> (BGR uint8 image (H, W, 3), gt DetResult)."""
    img = item['inputs'].permute(1, 2, 0).cpu().numpy()
    img = np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))
    gt = item['data_samples'].gt_instances
    bboxes = gt.bboxes
    bboxes = getattr(bboxes, 'tensor', bboxes)  # HorizontalBoxes -> Tensor
    bboxes = bboxes.cpu().numpy().astype(np.float32).reshape(-1, 4)
    labels = gt.labels.cpu().numpy().astype(np.int64)
    names = [
        classes[i] if 0 <= i < len(classes) else f'class_{i}'
        for i in labels.tolist()
    ]
    result = DetResult(
        bboxes=bboxes,
        scores=np.ones(len(labels), dtype=np.float32),
        labels=labels,
        class_names=names,
        img_shape=img.shape[:2],
        img_path=item['data_samples'].get('img_path'))
    return img, result


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'error: config file {args.config} does not exist',
              file=sys.stderr)
        return 1
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    key = f'{args.phase}_dataloader'
    if 'dataset' not in cfg.get(key, {}):
        print(f'error: config {args.config} has no `{key}.dataset`',
              file=sys.stderr)
        return 1
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfg[key].dataset)
    classes = tuple(dataset.metainfo.get('classes', ()))
    palette = dataset.metainfo.get('palette')
    if args.output_dir is not None:
        os.makedirs(args.output_dir, exist_ok=True)

    num = len(dataset) if args.max_images is None else min(
        len(dataset), args.max_images)
    progress = ProgressBar(num)
    for index in range(num):
        img, gt = sample_to_drawing(dataset[index], classes)
        vis = draw_detections(img, gt, palette, show_score=False)
        if args.output_dir is not None:
            stem = osp.splitext(osp.basename(gt.img_path or 'sample'))[0]
            out_file = osp.join(args.output_dir, f'{index:06d}_{stem}.jpg')
            if not cv2.imwrite(out_file, vis):
                print(f'\nerror: could not write {out_file}', file=sys.stderr)
                return 1
        if not args.not_show:
            try:
                cv2.imshow('browse_dataset', vis)
                cv2.waitKey(max(1, int(args.show_interval * 1000)))
            except cv2.error as e:
                print(f'\nerror: cannot open a window ({e}); use --not-show '
                      'with --output-dir on a machine without a display',
                      file=sys.stderr)
                return 1
        progress.update()
    sys.stdout.write('\n')
    if args.output_dir is not None:
        print(f'{num} image(s) saved to {args.output_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
